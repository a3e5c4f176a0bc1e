"""The MViT paper's Table 9 on the synthetic dataset: models trained on one budget, frame-shuffle probed side by side
(tools/shuffle_demo.py), with the accuracy of the synthetic classes that are each other played backwards."""

import os
from typing import Dict, List, Sequence, Tuple

import simplejson

from ..data.synthetic import CLASSNAMES, TIME_REVERSED
from .experiments import Run, budget_warnings, newest_checkpoint, prepare, summarise
from .shuffle_probe import probe

TOOL = "tools/shuffle_demo.py"


def run_demo(runs: Sequence[Run], repeats: int, skip_train: bool, opts: Sequence[str], json_path: str) -> dict:
    """Trains (unless ``skip_train``) and probes every run (shuffled ``repeats`` times, and reversed); writes the
    summary to ``json_path`` and its plot next to it.

    Returns:
        The summary: per model its size and probe numbers, the time-reversed pairs, warnings, the PNG's path.
    Raises:
        FileNotFoundError: no dataset, or (with ``skip_train``) no checkpoint, before anything runs; and what training
        and testing raise.
    """
    prepare(runs, skip_train, TOOL)
    entries, reports = {}, {}
    for run in runs:
        ckpt = newest_checkpoint(run, TOOL)
        reports[run.name] = probe(run.cfg, repeats, reverse=True)
        entries[run.name] = summarise(run, ckpt, reports[run.name])
    summary = {
        "repeats": repeats,
        "opts": list(opts),
        "models": entries,
        "pairs": pair_accuracies(reports),
        "warnings": budget_warnings(entries, runs[0].cfg.SOLVER.MAX_EPOCH),
    }
    os.makedirs(os.path.dirname(os.path.abspath(json_path)), exist_ok=True)
    summary["png"] = plot_summary(summary, os.path.splitext(json_path)[0] + ".png")
    with open(json_path, "w") as f:
        simplejson.dump(summary, f, indent=2)
    return summary


def time_reversed_pairs() -> List[Tuple[str, str]]:
    """The synthetic classes that are each other played backwards, each pair in the class list's order."""
    return [tuple(sorted(pair, key=CLASSNAMES.index)) for pair in TIME_REVERSED.items()]


def pair_accuracies(reports: Dict[str, dict]) -> List[dict]:
    """Ordered and shuffled accuracy of each time-reversed pair per model: the mean of the two classes' per-class
    top-1 in frame_shuffle.json (equal weight per class). Pairs with a class absent from a model's test set are left
    out."""
    pairs = []
    for first, second in time_reversed_pairs():
        row = {"pair": f"{first}/{second}", "classes": [first, second]}
        for name, report in reports.items():
            per_class = report["per_class"]
            if first not in per_class or second not in per_class:
                break
            row[name] = {c: (per_class[first][c] + per_class[second][c]) / 2 for c in ("ordered", "shuffled")}
        else:
            pairs.append(row)
    return pairs


def format_table(summary: dict) -> str:
    """The terminal summary: one row per model, then one row per time-reversed pair."""
    models = summary["models"]
    lines = [f"{'model':<6} {'params':>11} {'GFLOPs':>7} {'epochs':>6} {'ordered':>8} {'shuffled (mean +- std)':>22} "
             f"{'reversed':>8} {'drop':>7}"]
    for name, m in models.items():
        s = m["shuffled_top1"]
        reversed_ = f"{m['reversed_top1']:8.1f}" if m["reversed_top1"] is not None else f"{'-':>8}"
        lines.append(f"{name:<6} {m['params']:>11,} {m['gflops']:>7.2f} {m['epochs']:>6} {m['ordered_top1']:>8.1f} "
                     f"{s['mean']:>13.1f} +- {s['std']:<5.1f} {reversed_} {m['drop']:>7.1f}")
    lines.append(f"top-1 in % on {next(iter(models.values()))['num_videos']} test videos; drop = ordered - shuffled "
                 f"mean over {summary['repeats']} seed{'s' if summary['repeats'] > 1 else ''}")
    if summary["pairs"]:
        lines.append("")
        header = f"{'time-reversed pair':<42}" + "".join(f" {n + ' ordered':>13} {n + ' shuffled':>14}" for n in models)
        lines.append(header)
        for pair in summary["pairs"]:
            lines.append(f"{pair['pair']:<42}" + "".join(
                f" {pair[n]['ordered']:>13.1f} {pair[n]['shuffled']:>14.1f}" for n in models))
        lines.append("pair accuracy = mean per-class top-1 of its two classes; a model blind to frame order may tell "
                     "the pair from\nthe other classes but not its two classes apart (each is the other played "
                     "backwards): about 50% at best")
    lines.extend(summary["warnings"])
    return "\n".join(lines)


def plot_summary(summary: dict, png_path: str) -> str:
    """Grouped bars: ordered, shuffled (mean, with the spread over seeds) and reversed top-1 per model; a second panel
    with ordered vs shuffled accuracy of each time-reversed pair per model, where the test set has the pairs."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    models = summary["models"]
    names = list(models)
    pairs = summary["pairs"]
    fig, axes = plt.subplots(1, 2 if pairs else 1, figsize=(13 if pairs else 6, 4.5), squeeze=False,
                             gridspec_kw={"width_ratios": [1, 2.2] if pairs else [1]})
    ax = axes[0][0]
    conditions = [("ordered", "tab:blue"), ("shuffled", "tab:red")]
    if any(m["reversed_top1"] is not None for m in models.values()):
        conditions.append(("reversed", "tab:orange"))
    width = 0.8 / len(conditions)
    for j, (cond, colour) in enumerate(conditions):
        xs = [i + (j - (len(conditions) - 1) / 2) * width for i in range(len(names))]
        if cond == "shuffled":
            values = [models[n]["shuffled_top1"]["mean"] for n in names]
            errors = [models[n]["shuffled_top1"]["std"] for n in names]
        else:
            values = [models[n][f"{cond}_top1"] or 0.0 for n in names]
            errors = None
        ax.bar(xs, values, width, yerr=errors, capsize=3, label=cond, color=colour)
    ax.set_xticks(range(len(names)))
    ax.set_xticklabels([f"{n}\n(drop {models[n]['drop']:.1f})" for n in names])
    ax.set_ylabel("video top-1 (%)")
    ax.set_ylim(0, 100)
    ax.set_title("frame shuffle: all classes")
    ax.legend()
    if pairs:
        ax = axes[0][1]
        bars = [(n, cond) for n in names for cond in ("ordered", "shuffled")]
        colours = {("ordered", 0): "tab:blue", ("shuffled", 0): "tab:red",
                   ("ordered", 1): "lightsteelblue", ("shuffled", 1): "lightsalmon"}
        width = 0.8 / len(bars)
        for j, (n, cond) in enumerate(bars):
            xs = [i + (j - (len(bars) - 1) / 2) * width for i in range(len(pairs))]
            ax.bar(xs, [p[n][cond] for p in pairs], width, label=f"{n} {cond}",
                   color=colours.get((cond, names.index(n)), None))
        ax.set_xticks(range(len(pairs)))
        ax.set_xticklabels([p["pair"].replace("/", "/\n") for p in pairs], fontsize=8)
        ax.axhline(50, color="black", linewidth=0.8, linestyle="--")
        ax.set_ylim(0, 100)
        ax.set_ylabel("mean per-class top-1 of the pair (%)")
        ax.set_title("time-reversed class pairs")
        ax.legend(fontsize=8)
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(png_path)), exist_ok=True)
    fig.savefig(png_path, dpi=100)
    plt.close(fig)
    return png_path
