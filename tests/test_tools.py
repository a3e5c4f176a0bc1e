"""The command-line entry point run_net: PySlowFast's interface, the plan, and clear errors."""

import os
import subprocess
import sys
from pathlib import Path

from mvit_video.config import load_config
from mvit_video.models import build_model
from mvit_video.weight_files import save_checkpoint

ROOT = Path(__file__).resolve().parents[1]
TINY = str(ROOT / "configs/synthetic/MVIT_TINY.yaml")


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "tools/run_net.py"), *args], capture_output=True, text=True)


def test_run_net_dry_run_prints_model_and_plan(tmp_path):
    # --dry-run also reads the annotation files: two listed videos (not there) and the data folder's class names.
    for split in ("train", "test"):
        (tmp_path / f"{split}.csv").write_text(f"{split}/a.mp4 0\n{split}/b.mp4 11\n")
    (tmp_path / "classnames.txt").write_text("".join(f"c{i}\n" for i in range(12)))
    out = _run("--cfg", TINY, "--dry-run", "--opts", "SOLVER.MAX_EPOCH", "3", "DATA.PATH_TO_DATA_DIR", str(tmp_path))
    assert out.returncode == 0, out.stderr
    assert "1,715,676 params" in out.stdout
    assert "train MViT for 3 epochs" in out.stdout
    assert f"data: 12 classes (c0, c1, c2, c3, c4, c5, c6, c7, ...) from {tmp_path / 'classnames.txt'}" in out.stdout
    assert "data: train: 2 videos of 2 classes; 2 listed files do not exist" in out.stdout
    assert "data: val: none" in out.stdout


def test_run_net_names_a_missing_dataset(tmp_path):
    out = _run("--cfg", TINY, "--opts", "DATA.PATH_TO_DATA_DIR", str(tmp_path / "nowhere"), "OUTPUT_DIR", str(tmp_path))
    assert out.returncode == 1
    assert str(tmp_path / "nowhere") in out.stderr and "train.csv" in out.stderr


def test_run_net_names_unknown_key():
    out = _run("--cfg", TINY, "--opts", "MVIT.NOT_A_KEY", "1")
    assert out.returncode == 1
    assert "MVIT.NOT_A_KEY" in out.stderr


def test_run_net_refuses_a_checkpoint_of_other_classes_without_drop_head(tmp_path):
    ckpt = tmp_path / "twelve_classes.pyth"
    save_checkpoint(ckpt, build_model(load_config(TINY)).state_dict())
    out = _run("--cfg", TINY, "--opts", "MODEL.NUM_CLASSES", "4", "TRAIN.CHECKPOINT_FILE_PATH", str(ckpt),
               "OUTPUT_DIR", str(tmp_path / "run"), "DATA.PATH_TO_DATA_DIR", str(tmp_path / "no_data"))
    assert out.returncode == 1
    assert "shape of head.projection.weight: checkpoint (12, 192) vs model (4, 192)" in out.stderr
    assert "TRAIN.CHECKPOINT_DROP_HEAD True" in out.stderr


def test_run_net_takes_pyslowfast_positional_overrides_and_opts_alike(tmp_path):
    for split in ("train", "test"):
        (tmp_path / f"{split}.csv").write_text(f"{split}/a.mp4 0\n")
    out = _run("--cfg", TINY, "SOLVER.MAX_EPOCH", "3", "DATA.PATH_TO_DATA_DIR", str(tmp_path), "TRAIN.BATCH_SIZE", "2",
               "--dry-run", "--opts", "SOLVER.OPTIMIZING_METHOD", "sgd")
    assert out.returncode == 0, out.stderr
    assert "train MViT for 3 epochs" in out.stdout and "batch 2, sgd" in out.stdout


def test_run_net_refuses_an_unknown_flag_among_the_overrides():
    out = _run("--cfg", TINY, "SOLVER.MAX_EPOCH", "3", "--dry_run")
    assert out.returncode == 2 and "unrecognized arguments: --dry_run" in out.stderr


def test_run_net_more_gpus_than_present_is_one_line(tmp_path):
    import torch

    wanted = max(2, torch.cuda.device_count() + 1)  # NUM_GPUS 1 on a CPU-only machine runs on the CPU
    out = _run("--cfg", TINY, "NUM_GPUS", str(wanted), "OUTPUT_DIR", str(tmp_path))
    assert out.returncode == 1
    assert out.stderr.startswith(f"error: NUM_GPUS = {wanted} but ") and out.stderr.count("\n") == 1
    assert not (tmp_path / "checkpoints").exists()


def test_run_net_several_shards_without_init_method_is_one_line(tmp_path):
    out = _run("--cfg", TINY, "--num_shards", "2", "--shard_id", "1", "OUTPUT_DIR", str(tmp_path))
    assert out.returncode == 1
    assert out.stderr == "error: NUM_SHARDS = 2: give --init_method tcp://HOST:PORT (the same on every shard, HOST " \
                         "being shard 0), or launch with torchrun\n"


def test_run_net_dry_run_makes_the_launch_checks(tmp_path):
    """--dry-run refuses what the real launch would refuse, in one line, and says how the run would start."""
    for split in ("train", "test"):
        (tmp_path / f"{split}.csv").write_text(f"{split}/a.mp4 0\n")
    data = ["DATA.PATH_TO_DATA_DIR", str(tmp_path)]
    out = _run("--cfg", TINY, *data, "NUM_SHARDS", "2", "--init_method", "tcp://127.0.0.1:29999", "--dry-run")
    assert out.returncode == 0, out.stderr
    assert "launch: machine 0 of 2, 1 process here (gloo, 2 in all) joined through tcp://127.0.0.1:29999" in out.stdout
    assert ", batch 8 per machine, " in out.stdout
    for bad, message in ((["SHARD_ID", "3", "NUM_SHARDS", "2"], "SHARD_ID = 3 with NUM_SHARDS = 2"),
                         (["NUM_SHARDS", "2"], "NUM_SHARDS = 2: give --init_method"),
                         (["NUM_GPUS", "64"], "NUM_GPUS = 64")):
        out = _run("--cfg", TINY, *data, *bad, "--dry-run")
        assert out.returncode == 1 and out.stderr.count("\n") == 1 and message in out.stderr, out.stderr
    # under torchrun (its environment, as torchrun sets it for rank 0 of 2 nodes of 1 process each)
    torchrun = {**os.environ, "WORLD_SIZE": "2", "RANK": "0", "LOCAL_RANK": "0", "LOCAL_WORLD_SIZE": "1",
                "GROUP_RANK": "0"}
    args = [sys.executable, str(ROOT / "tools/run_net.py"), "--cfg", TINY, *data, "NUM_GPUS", "0", "--dry-run"]
    out = subprocess.run(args, capture_output=True, text=True, env=torchrun)
    assert out.returncode == 1 and "torchrun started 2 node(s) of 1 processes" in out.stderr, out.stderr
    out = subprocess.run([*args, "NUM_SHARDS", "2"], capture_output=True, text=True, env=torchrun)
    assert out.returncode == 0, out.stderr
    assert "launch: under torchrun, 2 processes in all, 1 per machine (NUM_GPUS 0, NUM_SHARDS 2)" in out.stdout
