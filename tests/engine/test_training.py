"""Training end to end on generated videos: the loss falls, checkpoints load, resume is exact, DDP agrees."""

import json
import logging
import os
import socket
import subprocess
import sys

import pytest
import torch

from mvit_video.checkpoint import load_checkpoint
from mvit_video.engine.checkpoints import checkpoint_path, latest_checkpoint
from mvit_video.engine.stats import read_stats
from mvit_video.engine.trainer import test as run_test
from mvit_video.engine.trainer import train
from mvit_video.models import build_model

from .conftest import ROOT, tiny_opts

CONSTANT_LR = ("SOLVER.LR_POLICY", "constant", "SOLVER.WARMUP_EPOCHS", "0.0", "SOLVER.BASE_LR", "0.002")


def _epoch_losses(output_dir) -> dict:
    return {r["epoch"]: r["loss"] for r in read_stats(os.path.join(output_dir, "stats.jsonl"))
            if r["type"] == "train_epoch"}


def test_training_lowers_the_loss_and_writes_loadable_checkpoints(tiny_cfg):
    cfg = tiny_cfg("SOLVER.MAX_EPOCH", "4", "TRAIN.CHECKPOINT_PERIOD", "2", "TRAIN.EVAL_PERIOD", "4", *CONSTANT_LR)
    result = train(cfg)
    losses = _epoch_losses(cfg.OUTPUT_DIR)
    assert sorted(losses) == [1, 2, 3, 4]
    assert losses[4] < losses[1] - 0.1
    assert result["val"]["num_videos"] == 4
    assert sorted(os.listdir(os.path.join(cfg.OUTPUT_DIR, "checkpoints"))) == [
        "checkpoint_epoch_00002.pyth", "checkpoint_epoch_00004.pyth"]
    model = build_model(cfg)
    report = load_checkpoint(checkpoint_path(cfg.OUTPUT_DIR, 3), model)
    assert report.epoch == 3 and report.source_format == "mvit_video"
    assert os.path.getsize(os.path.join(cfg.OUTPUT_DIR, "curves.png")) > 10_000
    summary = run_test(cfg)
    assert summary["num_videos"] == 8 and summary["num_views"] == 2
    saved = json.loads(open(os.path.join(cfg.OUTPUT_DIR, "test_results.json")).read())
    assert {"top1", "top5", "num_videos", "num_views", "failed_videos"} <= set(saved)


def test_resume_repeats_the_uninterrupted_run(tiny_cfg):
    cfg = tiny_cfg("SOLVER.MAX_EPOCH", "3", "TRAIN.CHECKPOINT_PERIOD", "1", "TRAIN.EVAL_PERIOD", "10",
                   "SOLVER.WARMUP_EPOCHS", "1.0")
    train(cfg)
    uninterrupted = _epoch_losses(cfg.OUTPUT_DIR)
    # a crash after epoch 1: the later checkpoints never got written
    for epoch in (1, 2):
        os.remove(checkpoint_path(cfg.OUTPUT_DIR, epoch))
    os.remove(os.path.join(cfg.OUTPUT_DIR, "stats.jsonl"))
    train(cfg)
    resumed = _epoch_losses(cfg.OUTPUT_DIR)
    assert sorted(resumed) == [2, 3]
    for epoch in (2, 3):
        assert resumed[epoch] == pytest.approx(uninterrupted[epoch], abs=1e-5)


def test_truncated_newest_checkpoint_is_skipped(tiny_cfg, caplog):
    cfg = tiny_cfg("SOLVER.MAX_EPOCH", "2", "TRAIN.CHECKPOINT_PERIOD", "1", "TRAIN.EVAL_PERIOD", "10", "TEST.ENABLE",
                   "False")
    train(cfg)
    newest = checkpoint_path(cfg.OUTPUT_DIR, 1)
    with open(newest, "r+b") as f:
        f.truncate(os.path.getsize(newest) // 2)
    with caplog.at_level(logging.WARNING):
        ckpt = latest_checkpoint(cfg.OUTPUT_DIR)
    assert ckpt["epoch"] == 0 and ckpt["path"] == checkpoint_path(cfg.OUTPUT_DIR, 0)
    assert "skipping unreadable checkpoint" in caplog.text and "checkpoint_epoch_00002" in caplog.text


def test_a_test_without_checkpoint_is_an_error(tiny_cfg):
    with pytest.raises(FileNotFoundError, match="nothing to test"):
        run_test(tiny_cfg())


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_process_gloo_run_matches_one_process(tiny_dataset, tmp_path, tiny_cfg):
    out = tmp_path / "ddp"
    opts = tiny_opts(tiny_dataset, out, "SOLVER.MAX_EPOCH", "1", "TRAIN.EVAL_PERIOD", "1", *CONSTANT_LR)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
           "--master_port", str(_free_port()), str(ROOT / "tools/run_net.py"),
           "--cfg", str(ROOT / "configs/synthetic/MVIT_TINY.yaml"), "--opts", *opts]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    two = json.loads((out / "test_results.json").read_text())
    # the same checkpoint, tested by one process
    one = run_test(tiny_cfg("OUTPUT_DIR", str(tmp_path / "single"), "TRAIN.ENABLE", "False",
                        "TEST.CHECKPOINT_FILE_PATH", str(checkpoint_path(str(out), 0))))
    assert two["num_videos"] == one["num_videos"] == 8
    assert two["top1"] == one["top1"] and two["top5"] == one["top5"]
    assert two["per_class_top1"] == one["per_class_top1"]


def test_two_shards_joined_by_init_method_match_one_process(tiny_dataset, tmp_path, tiny_cfg):
    """PySlowFast's launch: one run_net per machine ("shard"), positional overrides, joined through --init_method."""
    out = tmp_path / "shards"
    opts = tiny_opts(tiny_dataset, out, "SOLVER.MAX_EPOCH", "1", "TRAIN.EVAL_PERIOD", "1", *CONSTANT_LR)
    init = f"tcp://127.0.0.1:{_free_port()}"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    for name in ("WORLD_SIZE", "RANK", "LOCAL_RANK", "LOCAL_WORLD_SIZE"):
        env.pop(name, None)
    shards = [subprocess.Popen([sys.executable, str(ROOT / "tools/run_net.py"), "--cfg",
                                str(ROOT / "configs/synthetic/MVIT_TINY.yaml"), *opts, "--init_method", init,
                                "--num_shards", "2", "--shard_id", str(i)],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env) for i in (0, 1)]
    outputs = [shard.communicate(timeout=300) for shard in shards]
    assert [shard.returncode for shard in shards] == [0, 0], outputs[0][1][-3000:] + outputs[1][1][-3000:]
    assert "== summary ==" in outputs[0][0] and "== summary ==" not in outputs[1][0]  # shard 0 reports
    two = json.loads((out / "test_results.json").read_text())
    one = run_test(tiny_cfg("OUTPUT_DIR", str(tmp_path / "single"), "TRAIN.ENABLE", "False",
                            "TEST.CHECKPOINT_FILE_PATH", str(checkpoint_path(str(out), 0))))
    assert two["num_videos"] == one["num_videos"] == 8
    assert two["top1"] == one["top1"] and two["per_class_top1"] == one["per_class_top1"]
    # each of the 2 processes took half of the global batch of 4: 16 videos, 4 steps, as one process would
    first_epoch = [r for r in read_stats(os.path.join(out, "stats.jsonl")) if r["type"] == "train_epoch"][0]
    assert first_epoch["clips_per_s"] > 0 and first_epoch["epoch"] == 1


def test_activation_checkpointing_gives_the_same_gradients(tiny_cfg):
    from mvit_video.engine.trainer import enable_activation_checkpointing

    cfg = tiny_cfg("MVIT.DROPPATH_RATE", "0.0")
    plain, ckpt = build_model(cfg), build_model(cfg)
    ckpt.load_state_dict(plain.state_dict())
    enable_activation_checkpointing(ckpt)
    x = torch.randn(2, 3, 8, 64, 64)
    for model in (plain, ckpt):
        model(x).logsumexp(-1).sum().backward()
    assert set(ckpt.state_dict()) == set(plain.state_dict())
    for (name, a), (_, b) in zip(plain.named_parameters(), ckpt.named_parameters()):
        assert torch.allclose(a.grad, b.grad, atol=1e-6), name
