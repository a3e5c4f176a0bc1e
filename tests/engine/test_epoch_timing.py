"""The CPU cost of a training clip, split into data (decode + transform) and model step, in stats.jsonl."""

import itertools
import os
import time

from mvit_video.engine.stats import read_stats
from mvit_video.engine.trainer import train


def _epoch_record(cfg) -> dict:
    return next(r for r in read_stats(os.path.join(cfg.OUTPUT_DIR, "stats.jsonl")) if r["type"] == "train_epoch")


def test_cpu_time_is_split_between_data_and_model_step(tiny_cfg, monkeypatch):
    # A clock that advances one second per reading: making an item reads it twice, a training step twice, so each
    # clip costs exactly 1 s of data and each step of 4 clips 1 s of model time.
    ticks = itertools.count()
    monkeypatch.setattr(time, "process_time", lambda: float(next(ticks)))
    cfg = tiny_cfg("SOLVER.MAX_EPOCH", "1", "TRAIN.EVAL_PERIOD", "10")
    train(cfg)
    record = _epoch_record(cfg)
    assert record["clips_per_s"] > 0 and record["epoch_time_s"] > 0
    assert (record["data_cpu_ms_per_clip"], record["model_cpu_ms_per_clip"]) == (1000.0, 250.0)


def test_data_cpu_time_comes_back_from_loader_workers(tiny_cfg):
    cfg = tiny_cfg("SOLVER.MAX_EPOCH", "1", "TRAIN.EVAL_PERIOD", "10", "DATA_LOADER.NUM_WORKERS", "1")
    train(cfg)
    record = _epoch_record(cfg)
    assert record["data_cpu_ms_per_clip"] > 0 and record["model_cpu_ms_per_clip"] > 0
