#!/usr/bin/env python3
"""The frame-shuffle probe: does a model use the order of frames, or only their appearance?

    tools/frame_shuffle_eval.py --cfg FILE | --checkpoint NAME|PATH|URL [--repeats 3] [--no-reverse] [--token-chunks]
                                [--opts KEY VALUE ...]

Tests the checkpoint (--checkpoint: a file, an http(s) URL or a registry name; else TEST.CHECKPOINT_FILE_PATH, or the
newest in OUTPUT_DIR) on the multi-view test set in order, with
the frames of every view shuffled (one seed per repeat) and reversed; prints a table and writes
OUTPUT_DIR/frame_shuffle.json and frame_shuffle.png (per-class drop). Without --cfg, the config is the one the
checkpoint stores (or its registry entry's); --cfg and --opts override it.
"""

import argparse
import logging
import sys

import _paths  # noqa: F401

from mvit_video import cli
from mvit_video.analysis.shuffle_probe import format_table, probe
from mvit_video.config import load_config
from mvit_video.pretrained import checkpoint_config


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cfg", help="config of the model and the test set (default: the checkpoint's own)")
    parser.add_argument("--checkpoint", help="a file, an http(s) URL or a registry name")
    parser.add_argument("--repeats", type=int, default=3, help="shuffles with different seeds")
    parser.add_argument("--no-reverse", action="store_true", help="skip the reversed-order condition")
    parser.add_argument("--token-chunks", action="store_true",
                        help="move whole temporal tokens (MVIT.PATCH_STRIDE[0] frames) instead of single frames")
    parser.add_argument("--opts", nargs=argparse.REMAINDER, default=[])
    cli.add_debug_flag(parser)
    args = parser.parse_args(argv)
    if not args.cfg and not args.checkpoint:
        parser.error("name the model: --checkpoint and/or --cfg")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", datefmt="%H:%M:%S")
    return cli.run(lambda: run(args), args.debug)


def run(args: argparse.Namespace) -> None:
    """Runs the probe and prints its table and files."""
    cfg = checkpoint_config(args.checkpoint, args.cfg, args.opts)[0] if args.checkpoint else \
        load_config(args.cfg, args.opts)
    report = probe(cfg, args.repeats, not args.no_reverse, args.token_chunks)
    print(format_table(report))
    print(f"written: {cfg.OUTPUT_DIR}/frame_shuffle.json, {cfg.OUTPUT_DIR}/frame_shuffle.png")


if __name__ == "__main__":
    sys.exit(main())
