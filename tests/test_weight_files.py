"""Weight files: reading never runs code, damage is named in one line, writes are atomic with a SHA-256 record."""

import hashlib
import os
import pickle
import random
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from mvit_video.weight_files import (
    CheckpointError,
    read_checkpoint,
    save_checkpoint,
    verify_checkpoint_file,
    write_checkpoint_file,
)
from mvit_video.weight_layouts import load_checkpoint

ROOT = Path(__file__).resolve().parents[1]


class _Payload:
    def __reduce__(self):
        return (print, ("this ran while loading",))


@pytest.mark.parametrize("write", [
    lambda obj, path: torch.save(obj, path),
    lambda obj, path: torch.save(obj, path, _use_new_zipfile_serialization=False),
    lambda obj, path: pickle.dump(obj, open(path, "wb"), protocol=2),
], ids=["zip", "legacy", "pickle"])
def test_pickle_needing_code_execution_is_refused(tmp_path, capsys, write):
    path = tmp_path / "evil.pyth"
    write({"model_state": {}, "extra": _Payload()}, path)
    with pytest.raises(CheckpointError, match=r"evil\.pyth: refused: this file needs arbitrary unpickling") as err:
        load_checkpoint(path, torch.nn.Linear(2, 2))
    assert "\n" not in str(err.value)
    assert "this ran" not in capsys.readouterr().out


def _small_state() -> dict:
    torch.manual_seed(0)
    return {"blocks.0.weight": torch.randn(16, 8), "blocks.0.bias": torch.randn(16), "norm.weight": torch.ones(16)}


@pytest.mark.parametrize("content, reason", [
    (b"not a checkpoint at all", "not a checkpoint: neither a PyTorch zip archive nor a pickle (it starts with b'not"),
    (b"path,label\nvideo.mp4,3\n", "not a checkpoint: neither a PyTorch zip archive nor a pickle"),
    (b"", "not a checkpoint: neither a PyTorch zip archive nor a pickle (an empty file)"),
])
def test_files_that_are_no_checkpoint_are_called_so_in_one_line(tmp_path, content, reason):
    path = tmp_path / "garbage.pyth"
    path.write_bytes(content)
    with pytest.raises(CheckpointError) as err:
        read_checkpoint(path)
    assert str(err.value).startswith(f"{path}: {reason}")
    assert "\n" not in str(err.value) and "unpickling" not in str(err.value)


def test_missing_file_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere.pyth"):
        read_checkpoint(tmp_path / "nowhere.pyth")


def test_a_truncated_file_without_a_record_is_called_damaged(tmp_path):
    path = tmp_path / "cut.pyth"
    torch.save({"model_state": _small_state()}, path)
    path.write_bytes(path.read_bytes()[:300])
    with pytest.raises(CheckpointError) as err:
        read_checkpoint(path)
    assert str(err.value).startswith(f"{path}: not a readable PyTorch checkpoint: truncated, damaged")
    assert "\n" not in str(err.value)


def test_a_saved_checkpoint_has_its_sha256_beside_it(tmp_path):
    path = tmp_path / "ckpt.pyth"
    save_checkpoint(path, _small_state(), epoch=3)
    record = (tmp_path / "ckpt.pyth.sha256").read_text()
    assert record == f"{hashlib.sha256(path.read_bytes()).hexdigest()}  ckpt.pyth\n"  # sha256sum -c reads this
    assert verify_checkpoint_file(str(path)) is True
    assert sorted(os.listdir(tmp_path)) == ["ckpt.pyth", "ckpt.pyth.sha256"]


def test_a_file_without_a_record_loads_unverified(tmp_path):
    path = tmp_path / "pyslowfast.pyth"
    torch.save({"model_state": _small_state(), "epoch": 7}, path)
    assert verify_checkpoint_file(str(path)) is False
    assert read_checkpoint(path)["epoch"] == 7


def test_every_single_byte_corruption_is_refused(tmp_path):
    path = tmp_path / "ckpt.pyth"
    save_checkpoint(path, _small_state(), epoch=3)
    original = path.read_bytes()
    rng = random.Random(0)
    for position in rng.sample(range(len(original)), 50):
        damaged = bytearray(original)
        damaged[position] ^= rng.randrange(1, 256)
        path.write_bytes(bytes(damaged))
        with pytest.raises(CheckpointError) as err:
            read_checkpoint(path)
        assert str(err.value).startswith(f"{path}: corrupt: its SHA-256"), position
    path.write_bytes(original)
    assert torch.equal(read_checkpoint(path)["model_state"]["norm.weight"], torch.ones(16))


def test_a_malformed_record_is_named(tmp_path):
    path = tmp_path / "ckpt.pyth"
    save_checkpoint(path, _small_state())
    (tmp_path / "ckpt.pyth.sha256").write_text("deadbeef  ckpt.pyth\n")
    with pytest.raises(CheckpointError, match=r"ckpt\.pyth\.sha256: not a SHA-256 record"):
        read_checkpoint(path)


def test_a_save_that_raises_keeps_the_previous_file_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "ckpt.pyth"
    save_checkpoint(path, _small_state(), epoch=1)
    with pytest.raises(Exception):
        save_checkpoint(path, _small_state(), epoch=2, hook=lambda: None)  # a lambda cannot be pickled
    assert sorted(os.listdir(tmp_path)) == ["ckpt.pyth", "ckpt.pyth.sha256"]
    assert read_checkpoint(path)["epoch"] == 1


def test_a_write_failing_midway_keeps_the_previous_file_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "ckpt.pyth"
    save_checkpoint(path, _small_state(), epoch=1)

    def half_then_disk_full(f):
        f.write(b"PK\x03\x04 half of a checkpoint")
        raise OSError(28, "No space left on device")

    with pytest.raises(OSError, match="No space left"):
        write_checkpoint_file(path, half_then_disk_full)
    assert sorted(os.listdir(tmp_path)) == ["ckpt.pyth", "ckpt.pyth.sha256"]
    assert read_checkpoint(path)["epoch"] == 1


# Saves a checkpoint whose writing stops halfway for good, so that the parent can kill the process there.
_KILLED_SAVE = """
import sys, time, torch
from mvit_video import weight_files
def slow_save(obj, f):
    f.write(b"PK\\x03\\x04" + bytes(4096))
    f.flush()
    print("writing", flush=True)
    time.sleep(600)
weight_files.torch.save = slow_save
weight_files.save_checkpoint(sys.argv[1], {"w": torch.zeros(3)}, epoch=2)
"""


def test_a_save_killed_while_writing_keeps_the_previous_file(tmp_path):
    path = tmp_path / "ckpt.pyth"
    save_checkpoint(path, _small_state(), epoch=1)
    child = subprocess.Popen([sys.executable, "-c", _KILLED_SAVE, str(path)], stdout=subprocess.PIPE, text=True,
                             env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        assert child.stdout.readline() == "writing\n"
    finally:
        child.send_signal(signal.SIGKILL)
        child.communicate()
    assert read_checkpoint(path)["epoch"] == 1  # whole, and its record still matches
    leftovers = [name for name in os.listdir(tmp_path) if ".tmp." in name]
    assert leftovers == [f"ckpt.pyth.tmp.{child.pid}"]  # nothing can remove it inside a killed process...
    save_checkpoint(path, _small_state(), epoch=3)
    assert sorted(os.listdir(tmp_path)) == ["ckpt.pyth", "ckpt.pyth.sha256"]  # ...the next save does
    assert read_checkpoint(path)["epoch"] == 3
