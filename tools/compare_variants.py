#!/usr/bin/env python3
"""Plain tiny MViT and its variants on the synthetic dataset, trained on one budget, tested and frame-shuffle probed.

    tools/compare_variants.py [--configs A.yaml B.yaml ...] [--out-dir output/variants] [--repeats 1] [--skip-train]
                              [--opts KEY VALUE ...]

For each config (default: configs/synthetic/MVIT_TINY.yaml, then MVIT_TINY_{PEG,ELSA,CEIT,PVT}.yaml and
MVITv2_TINY.yaml) in turn: trains it in OUT_DIR/<config stem, lowercased> with the same --opts and the same RNG_SEED
(resuming there as tools/run_net.py does), timing the wall time of the training call (its validation included); runs
the multi-view test (OUTPUT_DIR/test_results.json) and the frame-shuffle probe of tools/frame_shuffle_eval.py
(OUTPUT_DIR/frame_shuffle.json) on the newest checkpoint. Prints a Markdown table (params, GFLOPs, training time,
multi-view top-1, shuffled top-1, drop) and writes OUT_DIR/compare_variants.json with the rows and the machine the
times were measured on.

--skip-train tests the checkpoints already there; the training time is then the sum of the epochs' epoch_time_s in
OUTPUT_DIR/stats.jsonl (training steps only, no validation), or null without it.
"""

import argparse
import logging
import os
import sys
from pathlib import Path
from typing import List, Sequence

import _paths  # noqa: F401

from mvit_video import cli
from mvit_video.analysis.experiments import Run, split_output_dir
from mvit_video.analysis.variant_comparison import compare, format_table
from mvit_video.config import load_config

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CONFIGS = [f"configs/synthetic/MVIT_TINY{suffix}.yaml" for suffix in ("", "_PEG", "_ELSA", "_CEIT", "_PVT")] + [
    "configs/synthetic/MVITv2_TINY.yaml"
]
DEFAULT_OUT_DIR = "output/variants"


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", nargs="+", default=DEFAULT_CONFIGS, help="configs to compare, in table order")
    parser.add_argument("--out-dir", help=f"folder for the runs and compare_variants.json (default {DEFAULT_OUT_DIR})")
    parser.add_argument("--repeats", type=int, default=1, help="frame shuffles with different seeds per config")
    parser.add_argument("--skip-train", action="store_true", help="test the checkpoints already in the OUTPUT_DIRs")
    parser.add_argument("--opts", nargs=argparse.REMAINDER, default=[], help="KEY VALUE overrides of every config")
    cli.add_debug_flag(parser)
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error(f"--repeats must be at least 1, got {args.repeats}")
    return args


def resolve_config(path: str) -> str:
    """The file of ``path``: from the working directory, or else from the repository root.

    Raises:
        FileNotFoundError: naming ``path``.
    """
    for candidate in (Path(path), ROOT / path):
        if candidate.is_file():
            return str(candidate)
    here = Path.cwd()
    where = f"not in {here}" if here.resolve() == ROOT.resolve() else f"neither in {here} nor in {ROOT}"
    raise FileNotFoundError(f"config file not found: {path} ({where})")


def load_runs(configs: Sequence[str], opts: Sequence[str], out_dir: str) -> List[Run]:
    """One run per config, named by its file's stem, with OUTPUT_DIR = out_dir/<stem lowercased>.

    Raises:
        FileNotFoundError, ConfigError; ValueError: two configs with the same stem (one OUTPUT_DIR), or different
        RNG_SEEDs.
    """
    runs, seen = [], {}
    for path in configs:
        file = resolve_config(path)
        name = Path(file).stem
        if name.lower() in seen:
            raise ValueError(f"{seen[name.lower()]} and {path} would share OUTPUT_DIR "
                             f"{os.path.join(out_dir, name.lower())}; rename one")
        seen[name.lower()] = path
        runs.append(Run(name, path, load_config(file, [*opts, "OUTPUT_DIR", os.path.join(out_dir, name.lower())])))
    seeds = {run.cfg.RNG_SEED for run in runs}
    if len(seeds) > 1:
        raise ValueError(f"the configs set different RNG_SEEDs ({sorted(seeds)}); give one with --opts RNG_SEED N")
    return runs


def run(args: argparse.Namespace) -> None:
    """Compares the configs and prints the Markdown table."""
    opts, out_dir = split_output_dir(args.opts, args.out_dir)
    out_dir = out_dir if out_dir is not None else DEFAULT_OUT_DIR
    summary = compare(load_runs(args.configs, opts, out_dir), args.repeats, args.skip_train, args.opts, out_dir)
    print("\n== MViT variants on the synthetic dataset ==")
    print(format_table(summary))
    print(f"written: {os.path.join(out_dir, 'compare_variants.json')}")


def main(argv=None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", datefmt="%H:%M:%S")
    return cli.run(lambda: run(args), args.debug)


if __name__ == "__main__":
    sys.exit(main())
