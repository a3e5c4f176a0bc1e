#!/usr/bin/env python3
"""PySlowFast's command line: train and test a model described by a config.

    tools/run_net.py --cfg configs/K400/MVIT_B_16x4.yaml [--opts KEY VALUE ...] [--dry-run]

The training and multi-view test engine is not part of this release yet; today the command checks the config,
builds the model, prints its size and the plan of the run. With --dry-run it stops there successfully; without it,
it stops with an error that says so, rather than pretend to train.
"""

import argparse
import sys

import _paths  # noqa: F401

from mvit_video.config import ConfigError, load_config
from mvit_video.flops import count_model
from mvit_video.models import build_model


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cfg", dest="cfg_file", required=True, help="YAML config file")
    parser.add_argument("--dry-run", action="store_true", help="check the config and print the plan only")
    parser.add_argument("--opts", nargs=argparse.REMAINDER, default=[], help="KEY VALUE overrides of the config")
    return parser.parse_args(argv)


def plan(cfg) -> list:
    """Lines describing what the config asks for."""
    lines = []
    if cfg.TRAIN.ENABLE:
        lines.append(
            f"train {cfg.MODEL.MODEL_NAME} for {cfg.SOLVER.MAX_EPOCH} epochs on {cfg.DATA.PATH_TO_DATA_DIR}/train.csv, "
            f"clips of {cfg.DATA.NUM_FRAMES}x{cfg.DATA.SAMPLING_RATE} at {cfg.DATA.TRAIN_CROP_SIZE} px, "
            f"batch {cfg.TRAIN.BATCH_SIZE}, {cfg.SOLVER.OPTIMIZING_METHOD} lr {cfg.SOLVER.BASE_LR}, "
            f"validating every {cfg.TRAIN.EVAL_PERIOD} epochs, checkpoints in {cfg.OUTPUT_DIR}/checkpoints"
        )
    if cfg.TEST.ENABLE:
        lines.append(
            f"test on {cfg.DATA.PATH_TO_DATA_DIR}/test.csv with {cfg.TEST.NUM_ENSEMBLE_VIEWS} temporal clips x "
            f"{cfg.TEST.NUM_SPATIAL_CROPS} spatial crops per video, scores aggregated by {cfg.DATA.ENSEMBLE_METHOD}"
        )
    return lines


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        cfg = load_config(args.cfg_file, args.opts)
    except (ConfigError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    model = build_model(cfg)
    size = (cfg.DATA.INPUT_CHANNEL_NUM[0], cfg.DATA.NUM_FRAMES, cfg.DATA.TRAIN_CROP_SIZE, cfg.DATA.TRAIN_CROP_SIZE)
    counts = count_model(model, size, activations=False)
    print(f"config: {args.cfg_file}")
    print(f"model: {cfg.MODEL.MODEL_NAME}, {len(model.blocks)} blocks, {counts.params:,} params, "
          f"{counts.gflops:.2f} GFLOPs per {size[1]}x{size[2]}x{size[3]} clip (fvcore)")
    for line in plan(cfg):
        print(f"plan: {line}")
    if args.dry_run:
        return 0
    print("error: the training and multi-view test engine is not implemented yet; run with --dry-run to check a "
          "config", file=sys.stderr)
    return 3


if __name__ == "__main__":
    sys.exit(main())
