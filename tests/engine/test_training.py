"""Training end to end on generated videos: the loss falls, checkpoints load, resume is exact, DDP agrees."""

import csv
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

from mvit_video.config import load_config
from mvit_video.data import read_csv_annotations
from mvit_video.engine.stats import read_stats
from mvit_video.engine.trainer import test as run_test
from mvit_video.engine.trainer import train
from mvit_video.engine.training_state import latest_training_state, save_training_state, training_state_path
from mvit_video.models import build_model
from mvit_video.weight_files import save_checkpoint
from mvit_video.weight_layouts import load_checkpoint

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
        "checkpoint_epoch_00002.pyth", "checkpoint_epoch_00002.pyth.sha256",
        "checkpoint_epoch_00004.pyth", "checkpoint_epoch_00004.pyth.sha256"]
    model = build_model(cfg)
    report = load_checkpoint(training_state_path(cfg.OUTPUT_DIR, 3), model)
    assert report.epoch == 3 and report.source_format == "mvit_video"
    assert os.path.getsize(os.path.join(cfg.OUTPUT_DIR, "curves.png")) > 10_000
    summary = run_test(cfg)
    assert summary["num_videos"] == 8 and summary["num_views"] == 2
    saved = json.loads(open(os.path.join(cfg.OUTPUT_DIR, "test_results.json")).read())
    assert {"top1", "top5", "num_videos", "num_views", "failed_videos"} <= set(saved)


# The regularisers of configs/K400/MVIT_B_16x4.yaml, with a warm-up then cosine learning rate.
K400_REGULARISERS = (
    "AUG.ENABLE", "True", "AUG.NUM_SAMPLE", "2", "AUG.AA_TYPE", "rand-m7-n4-mstd0.5-inc1", "AUG.RE_PROB", "0.25",
    "MIXUP.ENABLE", "True", "MIXUP.ALPHA", "0.8", "MIXUP.CUTMIX_ALPHA", "1.0", "MIXUP.SWITCH_PROB", "0.5",
    "MVIT.DROPPATH_RATE", "0.2", "MODEL.DROPOUT_RATE", "0.5",
    "SOLVER.LR_POLICY", "cosine", "SOLVER.WARMUP_EPOCHS", "1.0", "SOLVER.BASE_LR", "0.001",
)

# Trains in a child process that stops for good after the second step of epoch 2, so that the parent can kill it
# there: in the middle of an epoch, after the checkpoint of epoch 1 was written.
_STOPPING_CHILD = """
import sys, time
from mvit_video.config import load_config
from mvit_video.data import read_csv_annotations
from mvit_video.engine import stats, trainer
write = stats.StatsWriter.write
def write_then_stop(self, record, step=None):
    write(self, record, step)
    if record["type"] == "train_iter" and (record["epoch"], record["iter"]) == (2, 2):
        time.sleep(600)
stats.StatsWriter.write = write_then_stop
trainer.train(load_config(sys.argv[1], sys.argv[2:]))
"""


def _iterations(output_dir) -> list:
    return [r for r in read_stats(os.path.join(output_dir, "stats.jsonl")) if r["type"] == "train_iter"]


def _train_until_killed(opts: list, stats_path: str) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": str(torch.get_num_threads()), "PYTHONPATH": str(ROOT)}
    child = subprocess.Popen([sys.executable, "-c", _STOPPING_CHILD, str(ROOT / "configs/synthetic/MVIT_TINY.yaml"),
                              *opts], env=env, stderr=subprocess.PIPE, text=True)
    try:
        while child.poll() is None:
            records = read_stats(stats_path) if os.path.exists(stats_path) else []
            if any((r["epoch"], r.get("iter")) == (2, 2) for r in records):
                break
            time.sleep(0.1)
        assert child.poll() is None, child.stderr.read()[-3000:]
    finally:
        child.send_signal(signal.SIGKILL)
        child.communicate()


def test_a_run_killed_mid_epoch_resumes_exactly_with_every_regulariser_on(tiny_dataset, tiny_cfg, tmp_path, caplog):
    run = ("SOLVER.MAX_EPOCH", "3", "TRAIN.CHECKPOINT_PERIOD", "1", "TRAIN.EVAL_PERIOD", "10", "LOG_PERIOD", "1",
           *K400_REGULARISERS)
    uninterrupted = tiny_cfg(*run, "OUTPUT_DIR", str(tmp_path / "uninterrupted"))
    train(uninterrupted)
    # The interrupted run reads with two DataLoader workers: the clips depend on the seed alone.
    out = tmp_path / "interrupted"
    opts = tiny_opts(tiny_dataset, out, *run, "DATA_LOADER.NUM_WORKERS", "2")
    _train_until_killed(opts, str(out / "stats.jsonl"))
    assert sorted(os.listdir(out / "checkpoints")) == ["checkpoint_epoch_00001.pyth",
                                                        "checkpoint_epoch_00001.pyth.sha256"]
    # A newer checkpoint, damaged on disk after it was written (one byte changed), must be passed over.
    damaged = training_state_path(str(out), 1)
    for suffix in ("", ".sha256"):
        shutil.copyfile(training_state_path(str(out), 0) + suffix, damaged + suffix)
    with open(damaged, "r+b") as f:
        f.seek(os.path.getsize(damaged) // 2)
        byte = f.read(1)
        f.seek(-1, os.SEEK_CUR)
        f.write(bytes([byte[0] ^ 0x5A]))
    with caplog.at_level(logging.INFO, logger="mvit_video"):
        train(load_config(str(ROOT / "configs/synthetic/MVIT_TINY.yaml"), opts))
    assert f"skipping checkpoint {damaged}, trying the one before it: {damaged}: corrupt" in caplog.text
    assert "checkpoint_epoch_00001.pyth: continuing at epoch 2" in caplog.text
    expected, resumed = _epoch_losses(uninterrupted.OUTPUT_DIR), _epoch_losses(out)
    assert sorted(resumed) == [1, 2, 3]
    for epoch in (2, 3):
        assert resumed[epoch] == pytest.approx(expected[epoch], abs=1e-5)
    # Each step is reported once, numbered from the start of training, with the uninterrupted run's learning rate.
    expected_iters, resumed_iters = _iterations(uninterrupted.OUTPUT_DIR), _iterations(out)
    assert [r["step"] for r in resumed_iters] == list(range(1, 13))
    assert [(r["epoch"], r["iter"]) for r in resumed_iters] == [(e, i) for e in (1, 2, 3) for i in (1, 2, 3, 4)]
    assert [r["lr"] for r in resumed_iters] == [r["lr"] for r in expected_iters]
    assert len({r["lr"] for r in resumed_iters}) > 10  # warm-up, then cosine: a new rate at (nearly) every step
    assert [r["loss"] for r in resumed_iters] == pytest.approx([r["loss"] for r in expected_iters], abs=1e-5)


def _truncate(path: str) -> None:
    with open(path, "r+b") as f:
        f.truncate(os.path.getsize(path) // 2)


def _text_file(path: str) -> None:
    with open(path, "w") as f:
        f.write("not a checkpoint\n")


@pytest.mark.parametrize("damage, keep_record, reason", [
    (_truncate, True, "corrupt: its SHA-256"),
    (_truncate, False, "not a readable PyTorch checkpoint: truncated, damaged or not written by torch.save"),
    (_text_file, False, "not a checkpoint: neither a PyTorch zip archive nor a pickle"),
])
def test_a_damaged_newest_checkpoint_is_skipped_with_a_warning(tmp_path, caplog, damage, keep_record, reason):
    model = torch.nn.Linear(3, 2)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    for epoch in (0, 1):
        save_training_state(str(tmp_path), epoch, model, optimizer)
    newest = training_state_path(str(tmp_path), 1)
    damage(newest)
    if not keep_record:
        os.remove(newest + ".sha256")
    with caplog.at_level(logging.WARNING):
        ckpt = latest_training_state(str(tmp_path))
    assert ckpt["epoch"] == 0 and ckpt["path"] == training_state_path(str(tmp_path), 0)
    assert f"skipping checkpoint {newest}, trying the one before it: {newest}: {reason}" in caplog.text
    assert "arbitrary unpickling" not in caplog.text


def test_a_test_without_checkpoint_is_an_error(tiny_cfg):
    with pytest.raises(FileNotFoundError, match="nothing to test"):
        run_test(tiny_cfg())


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _odd_dataset(tiny_dataset, folder, num_test: int = 7):
    """The tiny training set and an odd number of its test videos, so that two processes get uneven shards."""
    folder.mkdir()
    for split, count in (("train", None), ("test", num_test)):
        records = read_csv_annotations(str(tiny_dataset / f"{split}.csv"))[:count]
        (folder / f"{split}.csv").write_text("".join(f"{r.path} {r.label}\n" for r in records))
    shutil.copy(tiny_dataset / "classnames.txt", folder)
    return folder


def _spread_checkpoint(cfg, path) -> None:
    """Writes a tiny model with noisy weights and a steep classifier: unlike a briefly trained one, which predicts one
    class for every video, it tells videos apart."""
    torch.manual_seed(1)
    model = build_model(cfg)
    with torch.no_grad():
        for param in model.parameters():
            param.add_(torch.randn_like(param) * 0.1)
        model.head.projection.weight.mul_(30.0)
    save_checkpoint(str(path), model.state_dict(), epoch=0)


def test_two_gloo_processes_train_and_test_as_one_process(tiny_dataset, tmp_path):
    data = _odd_dataset(tiny_dataset, tmp_path / "odd")
    spread = tmp_path / "spread.pyth"

    def opts(out):  # a global batch of 4 clips: 2 per process; no random draw that depends on the process
        return tiny_opts(data, out, "SOLVER.MAX_EPOCH", "2", "LOG_PERIOD", "1",
                         "TEST.CHECKPOINT_FILE_PATH", str(spread),
                         "MODEL.DROPOUT_RATE", "0.0", "MVIT.DROPPATH_RATE", "0.0", "MIXUP.ENABLE", "False",
                         "SOLVER.BASE_LR_SCALE_NUM_SHARDS", "False", *CONSTANT_LR)

    one = load_config(str(ROOT / "configs/synthetic/MVIT_TINY.yaml"), opts(tmp_path / "one"))
    _spread_checkpoint(one, spread)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
           "--master_port", str(_free_port()), str(ROOT / "tools/run_net.py"),
           "--cfg", str(ROOT / "configs/synthetic/MVIT_TINY.yaml"), "--opts", *opts(tmp_path / "two")]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    train(one)
    run_test(one)
    # Training: the same steps, learning rates and global-batch losses as one process.
    one_iters, two_iters = _iterations(tmp_path / "one"), _iterations(tmp_path / "two")
    assert [(r["step"], r["lr"]) for r in two_iters] == [(r["step"], r["lr"]) for r in one_iters]
    assert len(one_iters) == 8
    assert [r["loss"] for r in two_iters] == pytest.approx([r["loss"] for r in one_iters], abs=1e-5)
    one_losses, two_losses = _epoch_losses(tmp_path / "one"), _epoch_losses(tmp_path / "two")
    assert sorted(two_losses) == [1, 2]
    assert [two_losses[e] for e in (1, 2)] == pytest.approx([one_losses[e] for e in (1, 2)], abs=1e-5)
    # Testing: each of the 7 videos once (the padding of the shorter shard removed), with the same scores.
    one_scores, two_scores = np.load(tmp_path / "one/test_scores.npy"), np.load(tmp_path / "two/test_scores.npy")
    assert one_scores.shape == two_scores.shape == (7, 12)
    np.testing.assert_allclose(two_scores, one_scores, atol=1e-6)
    assert len(set(one_scores.argmax(1).tolist())) >= 3  # not a degenerate model
    rows = list(csv.DictReader(open(tmp_path / "two/test_predictions.csv")))
    assert [int(r["index"]) for r in rows] == list(range(7))
    one_results = json.loads((tmp_path / "one/test_results.json").read_text())
    two_results = json.loads((tmp_path / "two/test_results.json").read_text())
    for key in ("num_videos", "top1", "top5", "per_class_top1"):
        assert two_results[key] == one_results[key], key


def test_two_shards_joined_by_init_method_match_one_process(tiny_dataset, tmp_path, tiny_cfg):
    """PySlowFast's launch: one run_net per machine ("shard"), positional overrides, joined through --init_method."""
    out = tmp_path / "shards"
    opts = tiny_opts(tiny_dataset, out, "SOLVER.MAX_EPOCH", "1", "TRAIN.EVAL_PERIOD", "1", *CONSTANT_LR,
                     "LOG_PERIOD", "1", "SOLVER.BASE_LR_SCALE_NUM_SHARDS", "True")
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
                            "TEST.CHECKPOINT_FILE_PATH", str(training_state_path(str(out), 0))))
    assert two["num_videos"] == one["num_videos"] == 8
    assert two["top1"] == one["top1"] and two["per_class_top1"] == one["per_class_top1"]
    # As in PySlowFast, TRAIN.BATCH_SIZE (4) is each machine's batch: 2 machines step on 8 clips, so the 16 training
    # videos take 2 steps, at the learning rate scaled by NUM_SHARDS (2 x 0.002)
    records = read_stats(os.path.join(out, "stats.jsonl"))
    first_epoch = [r for r in records if r["type"] == "train_epoch"][0]
    assert first_epoch["clips_per_s"] > 0 and first_epoch["epoch"] == 1
    steps = [r for r in records if r["type"] == "train_iter"]
    assert [r["step"] for r in steps] == [1, 2]
    assert all(r["lr"] == pytest.approx(0.004) for r in steps)


def test_recomputed_block_activations_give_the_same_gradients(tiny_cfg):
    from mvit_video.engine.trainer import recompute_block_activations

    cfg = tiny_cfg("MVIT.DROPPATH_RATE", "0.0")
    plain, recomputing = build_model(cfg), build_model(cfg)
    recomputing.load_state_dict(plain.state_dict())
    recompute_block_activations(recomputing)
    x = torch.randn(2, 3, 8, 64, 64)
    for model in (plain, recomputing):
        model(x).logsumexp(-1).sum().backward()
    assert set(recomputing.state_dict()) == set(plain.state_dict())
    for (name, a), (_, b) in zip(plain.named_parameters(), recomputing.named_parameters()):
        assert torch.allclose(a.grad, b.grad, atol=1e-6), name
