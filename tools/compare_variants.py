#!/usr/bin/env python3
"""Plain tiny MViT and its variants on the synthetic dataset, trained on one budget, tested and frame-shuffle probed.

    tools/compare_variants.py [--configs A.yaml B.yaml ...] [--out-dir output/variants] [--repeats 1] [--skip-train]
                              [--opts KEY VALUE ...]

For each config (default: configs/synthetic/MVIT_TINY.yaml, then MVIT_TINY_{PEG,ELSA,CEIT,PVT}.yaml) in turn: trains it
in OUT_DIR/<config stem, lowercased> with the same --opts and the same RNG_SEED (resuming there as tools/run_net.py
does), timing the wall time of the training call (its validation included); runs the multi-view test
(OUTPUT_DIR/test_results.json) and the frame-shuffle probe of tools/frame_shuffle_eval.py (OUTPUT_DIR/frame_shuffle.json)
on the newest checkpoint. Prints a Markdown table (params, GFLOPs, training time, multi-view top-1, shuffled top-1,
drop) and writes OUT_DIR/compare_variants.json with the rows and the machine the times were measured on.

--skip-train tests the checkpoints already there; the training time is then the sum of the epochs' epoch_time_s in
OUTPUT_DIR/stats.jsonl (training steps only, no validation), or null without it.
"""

import argparse
import logging
import os
import sys
import time
from pathlib import Path
from typing import List, Optional, Sequence, Tuple

import _paths  # noqa: F401
import simplejson
import torch

import shuffle_demo
from mvit_video.analysis.shuffle_probe import probe
from mvit_video.checkpoint import CheckpointError
from mvit_video.config import ConfigError, load_config
from mvit_video.data import AnnotationError
from mvit_video.engine.distributed import shutdown
from mvit_video.engine.stats import read_stats
from mvit_video.engine.trainer import test, train
from mvit_video.machine import describe_machine, machine_info
from mvit_video.models.build import pos_embed_kind

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CONFIGS = [f"configs/synthetic/MVIT_TINY{suffix}.yaml" for suffix in ("", "_PEG", "_ELSA", "_CEIT", "_PVT")]
DEFAULT_OUT_DIR = "output/variants"
logger = logging.getLogger("mvit_video")


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", nargs="+", default=DEFAULT_CONFIGS, help="configs to compare, in table order")
    parser.add_argument("--out-dir", help=f"folder for the runs and compare_variants.json (default {DEFAULT_OUT_DIR})")
    parser.add_argument("--repeats", type=int, default=1, help="frame shuffles with different seeds per config")
    parser.add_argument("--skip-train", action="store_true", help="test the checkpoints already in the OUTPUT_DIRs")
    parser.add_argument("--opts", nargs=argparse.REMAINDER, default=[], help="KEY VALUE overrides of every config")
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error(f"--repeats must be at least 1, got {args.repeats}")
    return args


def resolve_config(path: str) -> Tuple[str, str]:
    """(path as given, existing file): ``path`` from the working directory or else from the repository root.

    Raises:
        FileNotFoundError: naming ``path``.
    """
    for candidate in (Path(path), ROOT / path):
        if candidate.is_file():
            return path, str(candidate)
    raise FileNotFoundError(f"config file not found: {path} (neither in {os.getcwd()} nor in {ROOT})")


def load_runs(configs: Sequence[str], opts: Sequence[str], out_dir: str) -> List[Tuple[str, str, object]]:
    """(name, config as given, merged config) per config, each with OUTPUT_DIR = out_dir/<stem lowercased>.

    Raises:
        FileNotFoundError, ConfigError; ValueError: two configs with the same stem (one OUTPUT_DIR).
    """
    runs, seen = [], {}
    for path in configs:
        rel_path, file = resolve_config(path)
        name = Path(file).stem
        if name.lower() in seen:
            raise ValueError(f"{seen[name.lower()]} and {rel_path} would share OUTPUT_DIR "
                             f"{os.path.join(out_dir, name.lower())}; rename one")
        seen[name.lower()] = rel_path
        runs.append((name, rel_path, load_config(file, [*opts, "OUTPUT_DIR", os.path.join(out_dir, name.lower())])))
    seeds = {cfg.RNG_SEED for _, _, cfg in runs}
    if len(seeds) > 1:
        raise ValueError(f"the configs set different RNG_SEEDs ({sorted(seeds)}); give one with --opts RNG_SEED N")
    return runs


def describe(cfg) -> str:
    """The seams where ``cfg``'s model differs from plain MViT (see mvit_video/models/variants.py)."""
    m = cfg.MVIT
    parts = []
    if m.STEM != "cube":
        parts.append(f"stem {m.STEM}")
    pos = pos_embed_kind(cfg)
    if pos == "peg":
        parts.append(f"PEG ({m.PEG_PLACEMENT})")
    elif pos != "separate":
        parts.append(f"pos {pos}")
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


def run(args: argparse.Namespace, runs: List[Tuple[str, str, object]], out_dir: str) -> Tuple[dict, str]:
    """Trains (unless --skip-train), tests and probes every run; writes OUT_DIR/compare_variants.json.

    Raises:
        FileNotFoundError: no dataset, or (with --skip-train) no checkpoint; CheckpointError, AnnotationError,
        ValueError: from training and testing.
    """
    for _, _, cfg in runs:
        shuffle_demo.check_dataset(cfg, ["test"] if args.skip_train else ["train", "test"])
    wall = {}
    if args.skip_train:
        for name, rel_path, cfg in runs:
            shuffle_demo.newest_checkpoint(name, rel_path, cfg)  # every missing checkpoint named before any test
    else:
        for i, (name, rel_path, cfg) in enumerate(runs):
            logger.info("[%d/%d] training %s (%s) for %d epochs in %s", i + 1, len(runs), name, rel_path,
                        cfg.SOLVER.MAX_EPOCH, cfg.OUTPUT_DIR)
            start = time.perf_counter()
            train(cfg)
            wall[name] = time.perf_counter() - start
            logger.info("[%d/%d] %s trained in %.1f min", i + 1, len(runs), name, wall[name] / 60)
    rows, entries = [], {}
    for i, (name, rel_path, cfg) in enumerate(runs):
        ckpt = shuffle_demo.newest_checkpoint(name, rel_path, cfg)
        logger.info("[%d/%d] testing %s: %s", i + 1, len(runs), name, ckpt["path"])
        test(cfg)
        with open(os.path.join(cfg.OUTPUT_DIR, "test_results.json")) as f:
            tested = simplejson.load(f)
        logger.info("[%d/%d] frame-shuffle probe of %s (%d seeds)", i + 1, len(runs), name, args.repeats)
        report = probe(cfg, args.repeats, reverse=False)
        entry = shuffle_demo.summarise(name, rel_path, cfg, ckpt, report)
        entries[name] = entry
        epoch_seconds = stats_epoch_seconds(cfg, entry["epochs"])
        rows.append({
            "name": name,
            "config": rel_path,
            "description": describe(cfg),
            "output_dir": cfg.OUTPUT_DIR,
            "checkpoint": ckpt["path"],
            "epochs": entry["epochs"],
            "params": entry["params"],
            "gflops": entry["gflops"],
            # wall time of train() (validation included); null with --skip-train
            "train_wall_time_s": wall.get(name),
            # sum of stats.jsonl epoch_time_s (training steps only, no validation); null without stats.jsonl
            "train_time_s_from_stats_epoch_time_s": epoch_seconds,
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
        })
    summary = {
        "configs": [rel for _, rel, _ in runs],
        "opts": list(args.opts),
        "rng_seed": runs[0][2].RNG_SEED,
        "max_epoch": runs[0][2].SOLVER.MAX_EPOCH,
        "repeats": args.repeats,
        "skip_train": args.skip_train,
        "machine": dict(machine_info(), description=describe_machine()),
        "rows": rows,
        "warnings": shuffle_demo.budget_warnings(entries, runs[0][2].SOLVER.MAX_EPOCH),
    }
    os.makedirs(out_dir, exist_ok=True)
    json_path = os.path.join(out_dir, "compare_variants.json")
    with open(json_path, "w") as f:
        simplejson.dump(summary, f, indent=2)
    return summary, json_path


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


def main(argv=None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", datefmt="%H:%M:%S")
    try:
        opts, out_dir = shuffle_demo.split_output_dir(args.opts, args.out_dir)
        out_dir = out_dir if out_dir is not None else DEFAULT_OUT_DIR
        runs = load_runs(args.configs, opts, out_dir)
    except (ConfigError, FileNotFoundError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    try:
        summary, json_path = run(args, runs, out_dir)
    except (FileNotFoundError, CheckpointError, AnnotationError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    finally:
        shutdown()
    print("\n== MViT variants on the synthetic dataset ==")
    print(format_table(summary))
    print(f"written: {json_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
