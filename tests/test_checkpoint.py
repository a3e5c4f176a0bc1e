"""Checkpoints: every released layout loads to the same tensors; loading is strict and never runs code."""

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

from mvit_video.checkpoint import (
    CheckpointError,
    detect_format,
    load_checkpoint,
    read_checkpoint,
    save_checkpoint,
    verify_checkpoint_file,
    write_checkpoint_file,
)
from mvit_video.config import load_config
from mvit_video.models import build_model

ROOT = Path(__file__).resolve().parents[1]
MVIT_B = str(ROOT / "configs/K400/MVIT_B_16x4.yaml")


def _model(num_classes: int = 400) -> torch.nn.Module:
    return build_model(load_config(MVIT_B, ["MODEL.NUM_CLASSES", str(num_classes)])).eval()


@pytest.fixture(scope="module")
def torchvision_state():
    from torchvision.models.video import mvit_v1_b

    model = mvit_v1_b()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.02)
    return model.state_dict()


def _to_pyslowfast(state, fused: bool):
    """Writes our tensors in PySlowFast's key layout, independently of the loader's own renaming rules."""
    out = {}
    for key, value in state.items():
        key = key.replace("pos_embed.spatial", "pos_embed_spatial").replace("pos_embed.temporal", "pos_embed_temporal")
        key = key.replace("pos_embed.cls", "pos_embed_class")
        for x in "qkv":
            key = key.replace(f"attn.pool_{x}.pool.weight", f"attn.pool_{x}.weight")
            key = key.replace(f"attn.pool_{x}.norm.", f"attn.norm_{x}.")
        if not fused and ".attn.qkv." in key:
            for name, part in zip("qkv", value.chunk(3, dim=0)):
                out[key.replace(".qkv.", f".{name}.")] = part.clone()
            continue
        out[key] = value.clone()
    return out


@pytest.fixture(scope="module")
def reference(torchvision_state):
    model = _model()
    load_checkpoint(torchvision_state, model)
    return model


@pytest.mark.parametrize("fused", [True, False])
def test_pyslowfast_pyth_loads_to_identical_tensors_and_logits(tmp_path, reference, fused):
    state = _to_pyslowfast(reference.state_dict(), fused)
    assert ("blocks.0.attn.qkv.weight" in state) == fused
    path = tmp_path / "MVIT_B_16x4.pyth"
    torch.save({"model_state": state, "epoch": 200, "cfg": "MVIT:\n  DEPTH: 16\n", "optimizer_state": {}}, path)
    model = _model()
    report = load_checkpoint(path, model)
    assert report.source_format == "pyslowfast" and report.epoch == 200
    for key, value in reference.state_dict().items():
        assert torch.equal(model.state_dict()[key], value), key
    x = torch.randn(1, 3, 8, 96, 96)
    with torch.no_grad():
        assert torch.equal(model(x), reference(x))


def test_formats_are_told_apart(torchvision_state, reference):
    assert detect_format(torchvision_state) == "torchvision"
    assert detect_format(reference.state_dict()) == "mvit_video"
    assert detect_format(_to_pyslowfast(reference.state_dict(), fused=True)) == "pyslowfast"


def test_missing_tensor_is_named(reference):
    state = dict(reference.state_dict())
    del state["blocks.5.attn.pool_k.norm.weight"]
    with pytest.raises(CheckpointError, match=r"missing from the checkpoint \(1\): blocks\.5\.attn\.pool_k\.norm\.weight"):
        load_checkpoint(state, _model())


def test_unexpected_and_misshaped_tensors_are_named(reference):
    state = dict(reference.state_dict())
    state["blocks.0.attn.rel_pos_h"] = torch.zeros(3)
    state["pos_embed.temporal"] = torch.zeros(1, 16, 96)
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(state, _model())
    assert "unexpected in the checkpoint (1): blocks.0.attn.rel_pos_h" in str(err.value)
    assert "shape of pos_embed.temporal: checkpoint (1, 16, 96) vs model (1, 8, 96)" in str(err.value)


def test_nothing_is_loaded_when_the_check_fails(reference):
    model = _model()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    state = dict(reference.state_dict())
    del state["norm.bias"]
    with pytest.raises(CheckpointError):
        load_checkpoint(state, model)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_other_class_count_needs_drop_head(reference):
    # both counts are named with where they come from, and both ways out: set the count, or drop the head
    with pytest.raises(CheckpointError, match=r"classifier has 400 classes, the model \(MODEL.NUM_CLASSES\) 10: .*"
                                              r"set MODEL.NUM_CLASSES 400; .*drop_head=True"):
        load_checkpoint(reference.state_dict(), _model(num_classes=10))
    model = _model(num_classes=10)
    head_before = model.head.projection.weight.clone()
    report = load_checkpoint(reference.state_dict(), model, drop_head=True)
    assert report.skipped == ["head.projection.bias", "head.projection.weight"]
    assert torch.equal(model.head.projection.weight, head_before)
    assert torch.equal(model.blocks[3].mlp.fc1.weight, reference.blocks[3].mlp.fc1.weight)


def test_ddp_prefix_is_accepted(reference):
    state = {f"module.{k}": v for k, v in reference.state_dict().items()}
    model = _model()
    load_checkpoint({"model_state": state}, model)
    assert torch.equal(model.norm.weight, reference.norm.weight)


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
from mvit_video import checkpoint
def slow_save(obj, f):
    f.write(b"PK\\x03\\x04" + bytes(4096))
    f.flush()
    print("writing", flush=True)
    time.sleep(600)
checkpoint.torch.save = slow_save
checkpoint.save_checkpoint(sys.argv[1], {"w": torch.zeros(3)}, epoch=2)
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


def test_convert_checkpoint_tool(tmp_path, torchvision_state, reference):
    src, dst = tmp_path / "tv.pth", tmp_path / "ours.pyth"
    torch.save(torchvision_state, src)
    result = subprocess.run(
        [sys.executable, str(ROOT / "tools/convert_checkpoint.py"), str(src), str(dst)],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "torchvision" in result.stdout
    assert verify_checkpoint_file(str(dst)) is True
    converted = read_checkpoint(dst)
    assert converted["source_format"] == "torchvision"
    assert detect_format(converted["model_state"]) == "mvit_video"
    model = _model()
    assert load_checkpoint(dst, model).source_format == "mvit_video"
    assert torch.equal(model.pos_embed.spatial, reference.pos_embed.spatial)


def test_convert_tool_writes_nothing_when_the_weights_do_not_fit(tmp_path):
    tiny = str(ROOT / "configs/synthetic/MVIT_TINY.yaml")
    src, out = tmp_path / "tiny.pth", tmp_path / "out"
    torch.save(build_model(load_config(tiny)).state_dict(), src)
    result = subprocess.run(
        [sys.executable, str(ROOT / "tools/convert_checkpoint.py"), str(src), str(out / "converted.pyth"), "--cfg",
         tiny, "--opts", "MODEL.NUM_CLASSES", "5"],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 1
    assert result.stderr.startswith("error: ") and "shape of head.projection.weight" in result.stderr
    assert not out.exists() or os.listdir(out) == []
