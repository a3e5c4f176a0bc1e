#!/usr/bin/env python3
"""Prints the parameters, fvcore GFLOPs and activations of the model a config builds.

    tools/count_flops.py --cfg configs/K400/MVIT_B_16x4.yaml [--opts KEY VALUE ...] [--json]
    tools/count_flops.py --all [--root configs]     (a Markdown table of every config under the folder)

One fused multiply-add counts as one flop, as fvcore and the MViT paper count.
"""

import argparse
import json
import sys
from pathlib import Path

import _paths  # noqa: F401

from mvit_video import cli
from mvit_video.config import load_config
from mvit_video.flops import count_model
from mvit_video.models import build_model


def config_input_size(cfg) -> tuple:
    """(C, T, H, W) of one training clip of ``cfg``."""
    return (cfg.DATA.INPUT_CHANNEL_NUM[0], cfg.DATA.NUM_FRAMES, cfg.DATA.TRAIN_CROP_SIZE, cfg.DATA.TRAIN_CROP_SIZE)


def markdown_table(root: str) -> str:
    """Params, GFLOPs and activations of every config under ``root``, one Markdown row each.

    Raises:
        FileNotFoundError: ``root`` is not a folder. ConfigError: naming the config that does not load.
    """
    if not Path(root).is_dir():
        raise FileNotFoundError(f"--root {root}: no such folder")
    rows = ["| config | params | GFLOPs | activations |", "|---|---|---|---|"]
    for path in sorted(Path(root).rglob("*.yaml")):
        cfg = load_config(str(path))
        counts = count_model(build_model(cfg), config_input_size(cfg))
        rows.append(f"| {path} | {counts.params:,} | {counts.gflops:.2f} | {counts.activations:,} |")
    return "\n".join(rows)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--cfg", help="YAML config file")
    group.add_argument("--all", action="store_true", help="every config under --root, as a Markdown table")
    parser.add_argument("--root", default=str(Path(__file__).resolve().parents[1] / "configs"))
    parser.add_argument("--json", action="store_true", help="print one JSON line instead of key: value lines")
    parser.add_argument("--opts", nargs=argparse.REMAINDER, default=[], help="KEY VALUE overrides, as in run_net")
    cli.add_debug_flag(parser)
    args = parser.parse_args(argv)
    return cli.run(lambda: count(args), args.debug)


def count(args: argparse.Namespace) -> None:
    """Prints the counts of --cfg, or the table of every config under --root."""
    if args.all:
        print(markdown_table(args.root))
        return
    cfg = load_config(args.cfg, args.opts)
    counts = count_model(build_model(cfg), config_input_size(cfg))
    if args.json:
        print(json.dumps({"cfg": args.cfg, **counts.as_dict()}))
        return
    print(f"params: {counts.params}")
    print(f"gflops: {counts.gflops:.2f}")
    print(f"activations: {counts.activations}")
    if counts.unsupported_ops:
        print(f"not counted (no fvcore rule): {counts.unsupported_ops}")


if __name__ == "__main__":
    sys.exit(main())
