"""Export: TorchScript and ONNX (in onnxruntime) reproduce the eager logits of MViT and its variants; a mismatch, an
operator ONNX cannot express or a missing dependency is an error that says so."""

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from mvit_video.config import load_config
from mvit_video.errors import MissingPackageError
from mvit_video.export import ExportError, export_model
from mvit_video.models import build_model
from mvit_video.weight_files import save_checkpoint

from .tool_modules import load_tool

ROOT = Path(__file__).resolve().parents[1]
TINY = str(ROOT / "configs/synthetic/MVIT_TINY.yaml")
CLIP = (3, 8, 112, 112)


def _onnxruntime():
    return pytest.importorskip("onnxruntime", reason="ONNX checks need onnxruntime: pip install -e '.[onnx]'")


@pytest.fixture
def export_tool():
    """tools/export.py as a module, run in this process."""
    return load_tool("export")


def _drifting(export_fn):
    """``export_fn``, followed by a change of the eager model: the export and the model must then disagree."""

    def export_then_drift(m, example, out, *check):
        run = export_fn(m, example, out, *check)
        with torch.no_grad():
            m.head.projection.bias.add_(1.0)
        return run

    return export_then_drift


def test_torchscript_tool_matches_eager(tmp_path):
    model = build_model(load_config(TINY))
    ckpt = tmp_path / "tiny.pyth"
    save_checkpoint(ckpt, model.state_dict())
    out = tmp_path / "tiny.pt"
    done = subprocess.run(
        [sys.executable, str(ROOT / "tools/export.py"), "--cfg", TINY, "--checkpoint", str(ckpt), "--format",
         "torchscript", "--out", str(out)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "max |logit diff| vs eager" in done.stdout
    loaded = torch.jit.load(str(out))
    clip = torch.randn(1, 3, 8, 112, 112)
    with torch.no_grad():
        assert (loaded(clip) - model.eval()(clip)).abs().max().item() < 1e-4


def test_a_mismatch_fails(tmp_path, monkeypatch):
    import mvit_video.export as export

    model = build_model(load_config(TINY))
    monkeypatch.setattr(export, "_torchscript", _drifting(export._torchscript))
    with pytest.raises(ExportError, match="differ from the eager model"):
        export_model(model, (3, 8, 112, 112), "torchscript", str(tmp_path / "x.pt"))


def test_unknown_format():
    with pytest.raises(ValueError, match="tflite"):
        export_model(torch.nn.Identity(), (3, 1, 2, 2), "tflite", "x")


def test_onnx_without_the_package_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnx", None)  # as on a machine without it: `import onnx` raises ImportError
    with pytest.raises(MissingPackageError, match=r"ONNX export needs the onnx package.*mvit_video\[onnx\]"):
        export_model(build_model(load_config(TINY)), CLIP, "onnx", str(tmp_path / "x.onnx"))
    assert not (tmp_path / "x.onnx").exists()


def test_an_export_that_cannot_be_checked_fails_unless_no_check(tiny_checkpoint, tmp_path, monkeypatch, capsys,
                                                               export_tool):
    pytest.importorskip("onnx", reason="ONNX export needs onnx: pip install -e '.[onnx]'")
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # as on a machine without onnxruntime
    out = tmp_path / "tiny.onnx"
    args = ["--cfg", TINY, "--checkpoint", tiny_checkpoint[1], "--format", "onnx", "--out", str(out)]
    assert export_tool.main(args) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "onnxruntime" in err and "--no-check" in err and "mvit_video[onnx]" in err
    assert not out.exists()
    assert export_tool.main([*args, "--no-check"]) == 0
    assert "written; not checked (--no-check)" in capsys.readouterr().out
    assert out.stat().st_size > 100_000


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory):
    """The tiny model and its checkpoint file."""
    model = build_model(load_config(TINY))
    path = tmp_path_factory.mktemp("export") / "tiny.pyth"
    save_checkpoint(path, model.state_dict())
    return model, str(path)


def test_onnx_tool_matches_eager_in_onnxruntime(tiny_checkpoint, tmp_path, capsys, export_tool):
    onnxruntime = _onnxruntime()
    model, ckpt = tiny_checkpoint
    out = tmp_path / "tiny.onnx"
    assert export_tool.main(["--cfg", TINY, "--checkpoint", ckpt, "--format", "onnx", "--out", str(out)]) == 0
    assert "onnx, clip 1x3x8x112x112; max |logit diff| vs eager" in capsys.readouterr().out
    session = onnxruntime.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    clip = torch.randn(1, *CLIP)
    with torch.no_grad():
        logits = torch.from_numpy(session.run(None, {"clip": clip.numpy()})[0])
        assert (logits - model.eval()(clip)).abs().max().item() < 1e-4


@pytest.mark.parametrize("variant", ["PEG", "ELSA", "CEIT", "PVT"])
def test_onnx_export_of_each_variant_matches_eager(variant, tmp_path):
    _onnxruntime()
    model = build_model(load_config(str(ROOT / f"configs/synthetic/MVIT_TINY_{variant}.yaml")))
    diff, ran = export_model(model, CLIP, "onnx", str(tmp_path / f"{variant}.onnx"))
    assert ran and diff < 1e-4


@pytest.mark.parametrize("fmt", ["torchscript", "onnx"])
def test_mvitv2_exports_match_eager(fmt, tmp_path):
    # relative positions (the attention bias), residual pooling and widening in the attention, exported
    if fmt == "onnx":
        _onnxruntime()
    model = build_model(load_config(str(ROOT / "configs/synthetic/MVITv2_TINY.yaml")))
    assert model.blocks[0].attn.rel_pos_t is not None
    diff, ran = export_model(model, CLIP, fmt, str(tmp_path / f"v2.{fmt}"))
    assert ran and diff < 1e-4


def test_a_variant_onnx_cannot_express_fails_naming_the_config_and_operator(tmp_path, capsys, export_tool):
    pytest.importorskip("onnx", reason="ONNX export needs onnx: pip install -e '.[onnx]'")
    pvt = str(ROOT / "configs/synthetic/MVIT_TINY_PVT.yaml")
    model = build_model(load_config(pvt, ["DATA.TRAIN_CROP_SIZE", "64"]))
    ckpt = tmp_path / "pvt.pyth"
    save_checkpoint(ckpt, model.state_dict())
    # at 64 px the 4 x 8 x 8 grid is pooled to 4 x 7 x 7: an adaptive pooling ONNX has no operator for
    code = export_tool.main(["--cfg", pvt, "--checkpoint", str(ckpt), "--format", "onnx", "--out",
                             str(tmp_path / "pvt.onnx"), "--opts", "DATA.TRAIN_CROP_SIZE", "64"])
    assert code == 1
    err = capsys.readouterr().err
    assert f"{pvt}: ONNX export of MViT" in err and "adaptive_avg_pool3d" in err


def test_onnx_tool_fails_when_the_logits_differ(tiny_checkpoint, tmp_path, monkeypatch, capsys, export_tool):
    _onnxruntime()
    import mvit_video.export as export

    monkeypatch.setattr(export, "_onnx", _drifting(export._onnx))
    code = export_tool.main(["--cfg", TINY, "--checkpoint", tiny_checkpoint[1], "--format", "onnx", "--out",
                             str(tmp_path / "x.onnx")])
    assert code == 1
    err = capsys.readouterr().err
    assert TINY in err and "differ from the eager model by 1.00e+00 (> 1e-04)" in err
