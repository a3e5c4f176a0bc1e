#!/usr/bin/env python3
"""PySlowFast's command line: train and test a model described by a config.

    tools/run_net.py --cfg configs/K400/MVIT_B_16x4.yaml [--opts KEY VALUE ...]
    torchrun --nproc_per_node 8 tools/run_net.py --cfg ...            (one node, 8 processes)
    torchrun --nnodes 2 --node_rank R --master_addr HOST --nproc_per_node 8 tools/run_net.py --cfg ...
    tools/run_net.py --checkpoint NAME|PATH|URL [--cfg FILE] [--opts ...]      (test a checkpoint, no training)

TRAIN.ENABLE trains (validating every TRAIN.EVAL_PERIOD epochs, resuming with TRAIN.AUTO_RESUME); TEST.ENABLE then
runs the multi-view test on TEST.CHECKPOINT_FILE_PATH or the newest checkpoint. --dry-run only checks the config, the
data folder, its annotation files and class names, and prints the model's size, what the data holds and the plan. --checkpoint (a file, an http(s) URL or a registry name)
tests that checkpoint with TRAIN.ENABLE False; without --cfg, the config is the one it stores (or its registry
entry's), and --opts override it.
"""

import argparse
import logging
import os
import sys
import time

import _paths  # noqa: F401

from mvit_video.checkpoint import CheckpointError
from mvit_video.config import ConfigError, load_config
from mvit_video.data import AnnotationError, describe_data
from mvit_video.flops import count_model
from mvit_video.models import build_model
from mvit_video.pretrained import checkpoint_config


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cfg", dest="cfg_file", help="YAML config file")
    parser.add_argument("--checkpoint", help="test this checkpoint (a file, URL or registry name), no training")
    parser.add_argument("--dry-run", action="store_true", help="check the config and print the plan only")
    parser.add_argument("--opts", nargs=argparse.REMAINDER, default=[], help="KEY VALUE overrides of the config")
    args = parser.parse_args(argv)
    if not args.cfg_file and not args.checkpoint:
        parser.error("give --cfg, or --checkpoint to test a checkpoint")
    return args


def load(args: argparse.Namespace):
    """The config to run: --cfg and --opts, or with --checkpoint its config (TRAIN.ENABLE False) and its file."""
    if not args.checkpoint:
        return load_config(args.cfg_file, args.opts)
    return checkpoint_config(args.checkpoint, args.cfg_file, ["TRAIN.ENABLE", "False", *args.opts])[0]


def plan(cfg) -> list:
    """Lines describing what the config asks for."""
    lines = []
    if cfg.TRAIN.ENABLE:
        lines.append(
            f"train {cfg.MODEL.MODEL_NAME} for {cfg.SOLVER.MAX_EPOCH} epochs on {cfg.DATA.PATH_TO_DATA_DIR}/train, "
            f"clips of {cfg.DATA.NUM_FRAMES}x{cfg.DATA.SAMPLING_RATE} at {cfg.DATA.TRAIN_CROP_SIZE} px, "
            f"batch {cfg.TRAIN.BATCH_SIZE}, {cfg.SOLVER.OPTIMIZING_METHOD} lr {cfg.SOLVER.BASE_LR}, "
            f"validating every {cfg.TRAIN.EVAL_PERIOD} epochs, checkpoints in {cfg.OUTPUT_DIR}/checkpoints"
        )
    if cfg.TEST.ENABLE:
        lines.append(
            f"test on {cfg.DATA.PATH_TO_DATA_DIR}/test with {cfg.TEST.NUM_ENSEMBLE_VIEWS} temporal clips x "
            f"{cfg.TEST.NUM_SPATIAL_CROPS} spatial crops per video, scores aggregated by {cfg.DATA.ENSEMBLE_METHOD}"
        )
    return lines


def describe(cfg, cfg_file: str) -> None:
    model = build_model(cfg)
    size = (cfg.DATA.INPUT_CHANNEL_NUM[0], cfg.DATA.NUM_FRAMES, cfg.DATA.TRAIN_CROP_SIZE, cfg.DATA.TRAIN_CROP_SIZE)
    counts = count_model(model, size, activations=False)
    print(f"config: {cfg_file}")
    print(f"model: {cfg.MODEL.MODEL_NAME}, {len(model.blocks)} blocks, {counts.params:,} params, "
          f"{counts.gflops:.2f} GFLOPs per {size[1]}x{size[2]}x{size[3]} clip (fvcore)")
    for line in plan(cfg):
        print(f"plan: {line}")


def print_summary(cfg, results: dict, seconds: float) -> None:
    test = results.get("test")
    print("\n== summary ==")
    if "train" in results:
        t = results["train"]
        print(f"training: {t['epoch']} epochs, last loss {t['loss']:.4f}, {t['clips_per_s']:.1f} clips/s")
    if test:
        print(f"test: video top-1 {test['top1']:.1f}%, top-5 {test['top5']:.1f}% on {test['num_videos']} videos, "
              f"{test['num_views']} views each; clip top-1 {test['clip_top1']:.1f}%; "
              f"{len(test['failed_videos'])} failed videos")
    print(f"wall time: {seconds / 60:.1f} min")
    print(f"checkpoints: {os.path.join(cfg.OUTPUT_DIR, 'checkpoints')}")
    for name in ("curves.png", "stats.jsonl", "test_results.json", "test_predictions.csv"):
        path = os.path.join(cfg.OUTPUT_DIR, name)
        if os.path.exists(path):
            print(f"{name}: {path}")


def check_data(cfg) -> int:
    """Prints what the data folder holds; 0, or 1 after one error line when it cannot be used."""
    try:
        lines = describe_data(cfg)
    except (FileNotFoundError, AnnotationError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    for line in lines:
        print(f"data: {line}")
    return 0


def main(argv=None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", datefmt="%H:%M:%S")
    try:
        cfg = load(args)
    except (ConfigError, FileNotFoundError, CheckpointError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if int(os.environ.get("RANK", "0")) == 0:
        describe(cfg, args.cfg_file or args.checkpoint)
    if args.dry_run:
        return check_data(cfg)
    from mvit_video.engine.distributed import shutdown
    from mvit_video.engine.trainer import test, train

    start = time.perf_counter()
    results = {}
    try:
        if cfg.TRAIN.ENABLE:
            results.update(train(cfg))
        if cfg.TEST.ENABLE:
            results["test"] = test(cfg)
    except (FileNotFoundError, AnnotationError, CheckpointError, ConfigError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    finally:
        shutdown()
    if int(os.environ.get("RANK", "0")) == 0:
        print_summary(cfg, results, time.perf_counter() - start)
    return 0


if __name__ == "__main__":
    sys.exit(main())
