#!/usr/bin/env python3
"""PySlowFast's command line: train and test a model described by a config.

    tools/run_net.py --cfg FILE [KEY VALUE ...] [--dry-run] [--debug]          (--opts KEY VALUE ... also works)
    tools/run_net.py --cfg FILE NUM_GPUS 8                                      (one machine, 8 processes)
    tools/run_net.py --cfg FILE --init_method tcp://HOST0:9999 --num_shards 4 --shard_id I NUM_GPUS 8
                                                                                (machine I of 4, as PySlowFast)
    torchrun --nproc_per_node 8 tools/run_net.py --cfg FILE NUM_GPUS 8         (torchrun's launch instead)
    tools/run_net.py --checkpoint NAME|PATH|URL [--cfg FILE] [KEY VALUE ...]   (test a checkpoint, no training)

TRAIN.ENABLE trains (validating every TRAIN.EVAL_PERIOD epochs, resuming with TRAIN.AUTO_RESUME); TEST.ENABLE then
runs the multi-view test on TEST.CHECKPOINT_FILE_PATH or the newest checkpoint. --dry-run only checks the config, the
data folder, its annotation files and class names, and prints the model's size, what the data holds and the plan.
--checkpoint (a file, an http(s) URL or a registry name) tests that checkpoint with TRAIN.ENABLE False; without --cfg,
the config is the one it stores (or its registry entry's), and the overrides apply to it. --num_shards and --shard_id
set NUM_SHARDS and SHARD_ID (after the overrides).
"""

import argparse
import logging
import os
import sys
import time

import _paths  # noqa: F401

from mvit_video import cli
from mvit_video.config import load_config
from mvit_video.data import describe_data
from mvit_video.engine.distributed import launched_by_torchrun, plan_launch, torchrun_world
from mvit_video.engine.launch import is_reporting_process
from mvit_video.engine.launch import run as run_job
from mvit_video.flops import count_model
from mvit_video.models import build_model
from mvit_video.pretrained import checkpoint_config


def parse_args(argv=None) -> argparse.Namespace:
    """The options, with ``overrides``: the positional KEY VALUE pairs, then those after --opts, then the shards."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     usage="%(prog)s --cfg FILE [KEY VALUE ...] [options]")
    parser.add_argument("--cfg", dest="cfg_file", help="YAML config file")
    parser.add_argument("--checkpoint", help="test this checkpoint (a file, URL or registry name), no training")
    parser.add_argument("--init_method", help="PySlowFast's process-group address, e.g. tcp://HOST:PORT of shard 0")
    parser.add_argument("--num_shards", type=int, help="machines of the job (sets NUM_SHARDS)")
    parser.add_argument("--shard_id", type=int, help="this machine, 0..num_shards-1 (sets SHARD_ID)")
    parser.add_argument("--dry-run", action="store_true", help="check the config and data and print the plan only")
    parser.add_argument("--opts", nargs=argparse.REMAINDER, default=[], help="KEY VALUE overrides (also positional)")
    cli.add_debug_flag(parser)
    # Positional KEY VALUE pairs as in PySlowFast: whatever is not an option, in order.
    args, positional = parser.parse_known_args(argv)
    flags = [item for item in positional if item.startswith("--")]
    if flags:
        parser.error(f"unrecognized arguments: {' '.join(flags)}")
    if not args.cfg_file and not args.checkpoint:
        parser.error("give --cfg, or --checkpoint to test a checkpoint")
    shards = [*(["NUM_SHARDS", str(args.num_shards)] if args.num_shards is not None else []),
              *(["SHARD_ID", str(args.shard_id)] if args.shard_id is not None else [])]
    args.overrides = [*positional, *args.opts, *shards]
    return args


def load(args: argparse.Namespace):
    """The config to run: --cfg and the overrides, or with --checkpoint its config (TRAIN.ENABLE False)."""
    if not args.checkpoint:
        return load_config(args.cfg_file, args.overrides)
    return checkpoint_config(args.checkpoint, args.cfg_file, ["TRAIN.ENABLE", "False", *args.overrides])[0]


def plan(cfg) -> list:
    """Lines describing what the config asks for."""
    lines = []
    if cfg.TRAIN.ENABLE:
        lines.append(
            f"train {cfg.MODEL.MODEL_NAME} for {cfg.SOLVER.MAX_EPOCH} epochs on {cfg.DATA.PATH_TO_DATA_DIR}/train, "
            f"clips of {cfg.DATA.NUM_FRAMES}x{cfg.DATA.SAMPLING_RATE} at {cfg.DATA.TRAIN_CROP_SIZE} px, "
            f"batch {cfg.TRAIN.BATCH_SIZE}{' per machine' if cfg.NUM_SHARDS > 1 else ''}, "
            f"{cfg.SOLVER.OPTIMIZING_METHOD} lr {cfg.SOLVER.BASE_LR}, "
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


def check_data(cfg) -> None:
    """Prints what the data folder holds.

    Raises:
        FileNotFoundError, AnnotationError: the data cannot be used (see :func:`~mvit_video.data.describe_data`).
    """
    for line in describe_data(cfg):
        print(f"data: {line}")


def check_launch(cfg, init_method) -> None:
    """Prints how the run would start (--dry-run), after the checks the real launch makes before it joins processes.

    Raises:
        ConfigError: NUM_GPUS, NUM_SHARDS, SHARD_ID or --init_method do not describe a possible launch.
    """
    spec = plan_launch(cfg.NUM_GPUS, cfg.NUM_SHARDS, cfg.SHARD_ID, init_method)
    if spec is None:
        world_size, _, per_node = torchrun_world(cfg.NUM_GPUS, cfg.NUM_SHARDS, cfg.SHARD_ID)
        where = "under torchrun" if launched_by_torchrun() else "in this process"
        line = (f"launch: {where}, {_processes(world_size)} in all, {per_node} per machine (NUM_GPUS {cfg.NUM_GPUS}, "
                f"NUM_SHARDS {cfg.NUM_SHARDS})")
    else:
        line = (f"launch: machine {spec.shard_id} of {spec.num_shards}, {_processes(spec.procs_per_shard)} here "
                f"({spec.backend}, {spec.world_size} in all) joined through {spec.init_method}")
    if is_reporting_process(cfg.SHARD_ID):
        print(line)


def _processes(count: int) -> str:
    return f"{count} process{'es' if count > 1 else ''}"


def run(args: argparse.Namespace) -> None:
    """Loads the config, prints the model and plan, then trains and tests (--dry-run: checks the data instead)."""
    cfg = load(args)
    if is_reporting_process(cfg.SHARD_ID):
        describe(cfg, args.cfg_file or args.checkpoint)
    if args.dry_run:
        check_launch(cfg, args.init_method)
        check_data(cfg)
        return
    start = time.perf_counter()
    results = run_job(cfg, args.init_method)
    if results is not None:
        print_summary(cfg, results, time.perf_counter() - start)


def main(argv=None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", datefmt="%H:%M:%S")
    return cli.run(lambda: run(args), args.debug)


if __name__ == "__main__":
    sys.exit(main())
