"""Plain MViT and its variants trained on one budget, tested and frame-shuffle probed (tools/compare_variants.py)."""

import os
from typing import Optional, Sequence

import simplejson

from ..engine.stats import read_stats
from ..engine.trainer import test
from ..machine import describe_machine, machine_info
from ..models.build import pos_embed_kind
from .experiments import Run, budget_warnings, newest_checkpoint, prepare, summarise
from .shuffle_probe import probe

TOOL = "tools/compare_variants.py"


def compare(runs: Sequence[Run], repeats: int, skip_train: bool, opts: Sequence[str], out_dir: str) -> dict:
    """Trains (unless ``skip_train``), tests and probes every run; writes OUT_DIR/compare_variants.json.

    Returns:
        The summary: one row per run (size, times, multi-view top-1, probe numbers), the machine, warnings.
    Raises:
        FileNotFoundError: no dataset, or (with ``skip_train``) no checkpoint, before anything runs; and what training
        and testing raise.
    """
    wall = prepare(runs, skip_train, TOOL)
    rows, entries = [], {}
    for run in runs:
        ckpt = newest_checkpoint(run, TOOL)
        tested = test(run.cfg)
        report = probe(run.cfg, repeats, reverse=False)
        entries[run.name] = entry = summarise(run, ckpt, report)
        rows.append(_row(run, entry, tested, report, wall.get(run.name)))
    first = runs[0].cfg
    summary = {
        "configs": [run.config for run in runs],
        "opts": list(opts),
        "rng_seed": first.RNG_SEED,
        "max_epoch": first.SOLVER.MAX_EPOCH,
        "repeats": repeats,
        "skip_train": skip_train,
        "machine": dict(machine_info(), description=describe_machine()),
        "rows": rows,
        "warnings": budget_warnings(entries, first.SOLVER.MAX_EPOCH),
    }
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, "compare_variants.json"), "w") as f:
        simplejson.dump(summary, f, indent=2)
    return summary


def _row(run: Run, entry: dict, tested: dict, report: dict, wall_seconds: Optional[float]) -> dict:
    cfg = run.cfg
    return {
        "name": run.name,
        "config": run.config,
        "description": describe(cfg),
        "output_dir": cfg.OUTPUT_DIR,
        "checkpoint": entry["checkpoint"],
        "epochs": entry["epochs"],
        "params": entry["params"],
        "gflops": entry["gflops"],
        # wall time of train() (validation included); null with --skip-train
        "train_wall_time_s": wall_seconds,
        # sum of stats.jsonl epoch_time_s (training steps only, no validation); null without stats.jsonl
        "train_time_s_from_stats_epoch_time_s": stats_epoch_seconds(cfg, entry["epochs"]),
        "top1": tested["top1"],
        "top5": tested["top5"],
        "test_results_json": os.path.join(cfg.OUTPUT_DIR, "test_results.json"),
        "num_videos": tested["num_videos"],
        "num_views": tested["num_views"],
        "top1_ordered": report["ordered_top1"],
        "shuffled_top1_mean": report["shuffled_top1"]["mean"],
        "shuffled_top1_std": report["shuffled_top1"]["std"],
        "shuffled_top1_per_seed": report["shuffled_top1"]["per_seed"],
        "drop": report["drop"],
        "frame_shuffle_json": entry["frame_shuffle_json"],
    }


def describe(cfg) -> str:
    """The seams where ``cfg``'s model differs from plain MViT (see mvit_video/models/variants.py)."""
    m = cfg.MVIT
    parts = []
    if m.STEM != "cube":
        parts.append(f"stem {m.STEM}")
    pos = pos_embed_kind(cfg)
    rel = [axis for axis, on in (("space", m.REL_POS_SPATIAL), ("time", m.REL_POS_TEMPORAL)) if on]
    if pos == "peg":
        parts.append(f"PEG ({m.PEG_PLACEMENT})")
    elif pos != "separate" and not (pos == "none" and rel):
        parts.append(f"pos {pos}")
    if rel:
        parts.append(f"relative pos ({', '.join(rel)})")
    if m.RESIDUAL_POOLING:
        parts.append("residual pooling")
    if m.DIM_MUL_IN_ATT:
        parts.append("width grows in attention")
    if m.ATTENTION != "mhpa":
        parts.append(f"attn {m.ATTENTION}")
    if list(m.ELSA_STAGES):
        parts.append(f"ELSA stages {','.join(str(int(s)) for s in m.ELSA_STAGES)}")
    if m.MLP != "mlp":
        parts.append(f"mlp {m.MLP}")
    if m.HEAD != "linear":
        parts.append(f"head {m.HEAD}")
    if not m.CLS_EMBED_ON:
        parts.append("no cls token")
    return ", ".join(parts) or "plain MViT"


def stats_epoch_seconds(cfg, epochs: int) -> Optional[float]:
    """Sum of epoch_time_s of training epochs 1..``epochs`` in OUTPUT_DIR/stats.jsonl (the last record of an epoch a
    resumed run repeated), or None when the file or an epoch is missing."""
    path = os.path.join(cfg.OUTPUT_DIR, "stats.jsonl")
    if not os.path.isfile(path):
        return None
    times = {r["epoch"]: r["epoch_time_s"] for r in read_stats(path)
             if r.get("type") == "train_epoch" and "epoch_time_s" in r}
    if any(e not in times for e in range(1, epochs + 1)):
        return None
    return float(sum(times[e] for e in range(1, epochs + 1)))


def format_table(summary: dict) -> str:
    """The Markdown table of the README, with a line on how it was measured."""
    lines = ["| config | model | params | GFLOPs | train (min) | top-1 | shuffled top-1 | drop |",
             "|---|---|---:|---:|---:|---:|---:|---:|"]
    from_stats = False
    for r in summary["rows"]:
        if r["train_wall_time_s"] is not None:
            minutes = f"{r['train_wall_time_s'] / 60:.1f}"
        elif r["train_time_s_from_stats_epoch_time_s"] is not None:
            minutes, from_stats = f"{r['train_time_s_from_stats_epoch_time_s'] / 60:.1f}*", True
        else:
            minutes = "-"
        lines.append(f"| {r['name']} | {r['description']} | {r['params'] / 1e6:.2f} M | {r['gflops']:.2f} | {minutes} "
                     f"| {r['top1']:.1f} | {r['shuffled_top1_mean']:.1f} | {r['drop']:.1f} |")
    first = summary["rows"][0]
    lines.append("")
    lines.append(f"{summary['max_epoch']} epochs, RNG_SEED {summary['rng_seed']}; top-1 in % on {first['num_videos']} "
                 f"test videos x {first['num_views']} views; shuffled = mean over {summary['repeats']} seed"
                 f"{'s' if summary['repeats'] > 1 else ''}; drop = ordered top-1 - shuffled; GFLOPs of one training "
                 f"clip; {summary['machine']['description']}")
    if from_stats:
        lines.append("* sum of the training epochs' epoch_time_s in stats.jsonl (no validation)")
    lines.extend(summary["warnings"])
    return "\n".join(lines)
