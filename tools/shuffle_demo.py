#!/usr/bin/env python3
"""The MViT paper's Table 9 on the synthetic dataset: the tiny MViT and the tiny ViT, frame-shuffle probed side by side.

    tools/shuffle_demo.py [--skip-train] [--repeats 3] [--out-dir DIR] [--opts KEY VALUE ...]

Trains configs/synthetic/MVIT_TINY.yaml and configs/synthetic/VIT_TINY.yaml on the same budget (each in its own
OUTPUT_DIR, resuming there as tools/run_net.py does), runs the frame-shuffle probe of tools/frame_shuffle_eval.py on
each newest checkpoint, and prints one row per model (params, ordered, shuffled and reversed top-1, drop) and the
ordered and shuffled accuracy of the time-reversed class pairs (move_left/move_right, ...). Writes
output/shuffle_demo.json and output/shuffle_demo.png (ordered vs shuffled per model), next to the two runs' own
OUTPUT_DIR/frame_shuffle.{json,png}.

--opts apply to both configs (e.g. SOLVER.MAX_EPOCH 3). --out-dir DIR (or OUTPUT_DIR DIR among the opts) puts the runs
in DIR/mvit_tiny and DIR/vit_tiny and the summary in DIR/shuffle_demo.{json,png}. --skip-train probes the checkpoints
already there.
"""

import argparse
import logging
import os
import sys
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import _paths  # noqa: F401
import simplejson

from mvit_video.analysis.shuffle_probe import probe
from mvit_video.checkpoint import CheckpointError
from mvit_video.config import ConfigError, load_config
from mvit_video.data import AnnotationError
from mvit_video.data.synthetic import CLASSNAMES, TIME_REVERSED
from mvit_video.engine.checkpoints import checkpoint_dir, latest_checkpoint
from mvit_video.engine.distributed import shutdown
from mvit_video.engine.trainer import train
from mvit_video.flops import count_model
from mvit_video.models import build_model

ROOT = Path(__file__).resolve().parents[1]
# (name in the table, config, folder under --out-dir)
MODELS = (
    ("MViT", "configs/synthetic/MVIT_TINY.yaml", "mvit_tiny"),
    ("ViT", "configs/synthetic/VIT_TINY.yaml", "vit_tiny"),
)
DEFAULT_SUMMARY = "output/shuffle_demo.json"


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skip-train", action="store_true", help="probe the checkpoints already in the OUTPUT_DIRs")
    parser.add_argument("--repeats", type=int, default=3, help="shuffles with different seeds per model")
    parser.add_argument("--out-dir", help="folder for both runs and the summary (default: the configs' OUTPUT_DIRs "
                                          f"and {DEFAULT_SUMMARY})")
    parser.add_argument("--opts", nargs=argparse.REMAINDER, default=[], help="KEY VALUE overrides of both configs")
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error(f"--repeats must be at least 1, got {args.repeats}")
    return args


def split_output_dir(opts: Sequence[str], out_dir: Optional[str]) -> Tuple[List[str], Optional[str]]:
    """Takes OUTPUT_DIR out of ``opts`` (one OUTPUT_DIR for two runs would mix their checkpoints) as the --out-dir.

    Raises:
        ValueError: OUTPUT_DIR in the opts and a different --out-dir; TEST.CHECKPOINT_FILE_PATH in the opts.
    """
    rest: List[str] = []
    for i in range(0, len(opts), 2):
        key, value = opts[i], opts[i + 1] if i + 1 < len(opts) else None
        if key == "OUTPUT_DIR" and value is not None:
            if out_dir is not None and os.path.normpath(out_dir) != os.path.normpath(value):
                raise ValueError(f"--out-dir {out_dir} and --opts OUTPUT_DIR {value} disagree; give one of them")
            out_dir = value
            continue
        if key == "TEST.CHECKPOINT_FILE_PATH":
            raise ValueError("--opts TEST.CHECKPOINT_FILE_PATH would test one file as both models; the demo tests "
                             "each run's newest checkpoint (probe one checkpoint with tools/frame_shuffle_eval.py)")
        rest.extend(opts[i : i + 2])
    return rest, out_dir


def load_models(opts: Sequence[str], out_dir: Optional[str]) -> List[Tuple[str, str, object]]:
    """(name, config path, merged config) of both models, each with its own OUTPUT_DIR.

    Raises:
        FileNotFoundError, ConfigError: see :func:`~mvit_video.config.load_config`.
    """
    models = []
    for name, rel_path, folder in MODELS:
        extra = ["OUTPUT_DIR", os.path.join(out_dir, folder)] if out_dir is not None else []
        models.append((name, rel_path, load_config(str(ROOT / rel_path), [*opts, *extra])))
    return models


def check_dataset(cfg, splits: Sequence[str]) -> None:
    """Fails before any model is built when DATA.PATH_TO_DATA_DIR lacks one of ``splits``.

    Raises:
        FileNotFoundError: naming the missing split and how to generate the synthetic dataset.
    """
    root = cfg.DATA.PATH_TO_DATA_DIR
    for split in splits:
        if not (os.path.isfile(os.path.join(root, f"{split}.csv")) or os.path.isdir(os.path.join(root, split))):
            raise FileNotFoundError(
                f"DATA.PATH_TO_DATA_DIR = {root} has no {split} split ({os.path.join(root, split + '.csv')} not "
                f"found). Generate the synthetic dataset first: tools/make_synthetic_dataset.py --out {root} "
                f"(`make demo` and `make shuffle-demo` do this when it is missing)"
            )


def newest_checkpoint(name: str, rel_path: str, cfg) -> dict:
    """The checkpoint the probe will test: the newest under OUTPUT_DIR/checkpoints.

    Raises:
        FileNotFoundError: naming the folder and the config to train.
    """
    ckpt = latest_checkpoint(cfg.OUTPUT_DIR)
    if ckpt is None:
        raise FileNotFoundError(
            f"no checkpoint of the tiny {name} in {checkpoint_dir(cfg.OUTPUT_DIR)} (OUTPUT_DIR of {rel_path}): "
            f"run tools/shuffle_demo.py without --skip-train, or train it with tools/run_net.py --cfg {rel_path}"
        )
    return ckpt


def model_size(cfg) -> Tuple[int, float]:
    """Parameters and fvcore GFLOPs of one training clip of ``cfg``."""
    size = (cfg.DATA.INPUT_CHANNEL_NUM[0], cfg.DATA.NUM_FRAMES, cfg.DATA.TRAIN_CROP_SIZE, cfg.DATA.TRAIN_CROP_SIZE)
    counts = count_model(build_model(cfg), size, activations=False)
    return counts.params, counts.gflops


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


def summarise(name: str, rel_path: str, cfg, ckpt: dict, report: dict) -> dict:
    """One model's entry of the summary: where it came from and the probe's numbers, as in its frame_shuffle.json."""
    params, gflops = model_size(cfg)
    return {
        "config": rel_path,
        "output_dir": cfg.OUTPUT_DIR,
        "frame_shuffle_json": os.path.join(cfg.OUTPUT_DIR, "frame_shuffle.json"),
        "checkpoint": ckpt["path"],
        "epochs": int(ckpt["epoch"]) + 1,
        "params": params,
        "gflops": gflops,
        "ordered_top1": report["ordered_top1"],
        "shuffled_top1": report["shuffled_top1"],
        "reversed_top1": report["reversed_top1"],
        "drop": report["drop"],
        "num_videos": report["num_videos"],
        "num_views": report["num_views"],
    }


def budget_warnings(models: Dict[str, dict], max_epoch: int) -> List[str]:
    """Lines saying when the probed checkpoints are not both from the configured budget (an OUTPUT_DIR that held a
    longer run is resumed past its end, so its newest checkpoint is the old one)."""
    epochs = {name: m["epochs"] for name, m in models.items()}
    lines = []
    if len(set(epochs.values())) > 1:
        lines.append("warning: the two checkpoints are not from the same budget ("
                     + ", ".join(f"{name} {e} epochs" for name, e in epochs.items()) + ")")
    for name, e in epochs.items():
        if e != max_epoch:
            lines.append(f"warning: SOLVER.MAX_EPOCH is {max_epoch} but the {name} checkpoint probed is from epoch {e} "
                         f"({models[name]['checkpoint']}); to train it on this budget from scratch, remove "
                         f"{models[name]['output_dir']}")
    return lines


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


def run(args: argparse.Namespace, models: List[Tuple[str, str, object]], out_dir: Optional[str]) -> Tuple[dict, str]:
    """Trains (unless --skip-train) and probes both ``models`` of :func:`load_models`; writes the summary JSON and PNG.

    Returns:
        The summary and the path of its JSON.
    Raises:
        FileNotFoundError: no dataset, or (with --skip-train) no checkpoint; CheckpointError, AnnotationError,
        ValueError: from training and testing, as in tools/run_net.py.
    """
    for _, _, cfg in models:
        check_dataset(cfg, ["test"] if args.skip_train else ["train", "test"])
    if args.skip_train:
        for name, rel_path, cfg in models:
            newest_checkpoint(name, rel_path, cfg)  # every missing checkpoint named before any test runs
    else:
        for name, rel_path, cfg in models:
            logging.getLogger("mvit_video").info("training the tiny %s (%s) in %s", name, rel_path, cfg.OUTPUT_DIR)
            train(cfg)
    entries, reports = {}, {}
    for name, rel_path, cfg in models:
        ckpt = newest_checkpoint(name, rel_path, cfg)
        logging.getLogger("mvit_video").info("probing the tiny %s: %s", name, ckpt["path"])
        reports[name] = probe(cfg, args.repeats, reverse=True)
        entries[name] = summarise(name, rel_path, cfg, ckpt, reports[name])
    summary = {
        "repeats": args.repeats,
        "opts": list(args.opts),
        "models": entries,
        "pairs": pair_accuracies(reports),
        "warnings": budget_warnings(entries, models[0][2].SOLVER.MAX_EPOCH),
    }
    json_path = os.path.join(out_dir, "shuffle_demo.json") if out_dir is not None else DEFAULT_SUMMARY
    os.makedirs(os.path.dirname(os.path.abspath(json_path)), exist_ok=True)
    summary["png"] = plot_summary(summary, os.path.splitext(json_path)[0] + ".png")
    with open(json_path, "w") as f:
        simplejson.dump(summary, f, indent=2)
    return summary, json_path


def main(argv=None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", datefmt="%H:%M:%S")
    try:
        opts, out_dir = split_output_dir(args.opts, args.out_dir)
        models = load_models(opts, out_dir)
    except (ConfigError, FileNotFoundError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    try:
        summary, json_path = run(args, models, out_dir)
    except (FileNotFoundError, CheckpointError, AnnotationError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    finally:
        shutdown()
    print("\n== frame shuffle: tiny MViT vs tiny ViT ==")
    print(format_table(summary))
    print(f"written: {json_path}, {summary['png']}; per model: "
          + ", ".join(m["frame_shuffle_json"] for m in summary["models"].values()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
