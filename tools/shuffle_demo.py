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
from typing import List, Optional, Sequence

import _paths  # noqa: F401

from mvit_video import cli
from mvit_video.analysis.experiments import Run, split_output_dir
from mvit_video.analysis.shuffle_demo import format_table, run_demo
from mvit_video.config import load_config

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
    cli.add_debug_flag(parser)
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error(f"--repeats must be at least 1, got {args.repeats}")
    return args


def load_models(opts: Sequence[str], out_dir: Optional[str]) -> List[Run]:
    """Both models, each with its own OUTPUT_DIR (out_dir/<folder>, or the config's own).

    Raises:
        FileNotFoundError, ConfigError: see :func:`~mvit_video.config.load_config`.
    """
    runs = []
    for name, rel_path, folder in MODELS:
        extra = ["OUTPUT_DIR", os.path.join(out_dir, folder)] if out_dir is not None else []
        runs.append(Run(name, rel_path, load_config(str(ROOT / rel_path), [*opts, *extra])))
    return runs


def demo(args: argparse.Namespace) -> None:
    """Trains and probes both models, then prints the table and the files written."""
    opts, out_dir = split_output_dir(args.opts, args.out_dir)
    runs = load_models(opts, out_dir)
    json_path = os.path.join(out_dir, "shuffle_demo.json") if out_dir is not None else DEFAULT_SUMMARY
    summary = run_demo(runs, args.repeats, args.skip_train, args.opts, json_path)
    print("\n== frame shuffle: tiny MViT vs tiny ViT ==")
    print(format_table(summary))
    print(f"written: {json_path}, {summary['png']}; per model: "
          + ", ".join(m["frame_shuffle_json"] for m in summary["models"].values()))


def main(argv=None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", datefmt="%H:%M:%S")
    return cli.run(lambda: demo(args), args.debug)


if __name__ == "__main__":
    sys.exit(main())
