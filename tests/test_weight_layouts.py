"""Weight layouts: every released layout loads to the same tensors, strictly, and converts to this project's."""

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from mvit_video.config import load_config
from mvit_video.models import build_model
from mvit_video.weight_files import CheckpointError, read_checkpoint, verify_checkpoint_file
from mvit_video.weight_layouts import detect_format, load_checkpoint

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


TINY_V2 = str(ROOT / "configs/synthetic/MVITv2_TINY.yaml")


@pytest.mark.parametrize("config", [str(ROOT / "configs/synthetic/MVIT_TINY.yaml"), TINY_V2])
def test_a_model_with_separate_qkv_loads_its_own_and_fused_checkpoints(tmp_path, config):
    """MVIT.SEPARATE_QKV keeps three projections: the model reloads its own checkpoint, and a fused-layout
    checkpoint of the same weights (this project's or PySlowFast's) fills it with the same outputs."""
    torch.manual_seed(0)
    separate = build_model(load_config(config, ["MVIT.SEPARATE_QKV", "True"])).eval()
    assert "blocks.0.attn.q.weight" in separate.state_dict() and "blocks.0.attn.qkv.weight" not in separate.state_dict()
    path = tmp_path / "separate.pyth"
    torch.save({"model_state": separate.state_dict()}, path)
    torch.manual_seed(1)
    reloaded = build_model(load_config(config, ["MVIT.SEPARATE_QKV", "True"])).eval()
    load_checkpoint(path, reloaded)
    for key, value in separate.state_dict().items():
        assert torch.equal(reloaded.state_dict()[key], value), key

    fused = build_model(load_config(config, [])).eval()
    load_checkpoint(separate.state_dict(), fused)  # separate -> fused (PySlowFast's separate-qkv layout)
    torch.manual_seed(2)
    refilled = build_model(load_config(config, ["MVIT.SEPARATE_QKV", "True"])).eval()
    load_checkpoint(_to_pyslowfast(fused.state_dict(), fused=True), refilled)  # fused -> separate
    x = torch.randn(1, 3, 8, 112, 112)
    with torch.no_grad():
        expected = separate(x)
        assert torch.allclose(fused(x), expected, atol=1e-5)
        assert torch.equal(refilled(x), expected)
