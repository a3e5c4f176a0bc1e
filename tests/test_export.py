"""Export: the TorchScript model reproduces the eager logits; a mismatch or a missing dependency is an error."""

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from mvit_video.checkpoint import save_checkpoint
from mvit_video.config import load_config
from mvit_video.export import ExportError, export_model
from mvit_video.models import build_model

ROOT = Path(__file__).resolve().parents[1]
TINY = str(ROOT / "configs/synthetic/MVIT_TINY.yaml")


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
    traced = export._torchscript

    def trace_then_drift(m, example, out):
        run = traced(m, example, out)
        with torch.no_grad():
            m.head.projection.bias.add_(1.0)  # the eager model changes after export
        return run

    monkeypatch.setattr(export, "_torchscript", trace_then_drift)
    with pytest.raises(ExportError, match="differ from the eager model"):
        export_model(model, (3, 8, 112, 112), "torchscript", str(tmp_path / "x.pt"))


def test_unknown_format():
    with pytest.raises(ValueError, match="tflite"):
        export_model(torch.nn.Identity(), (3, 1, 2, 2), "tflite", "x")


def test_onnx_without_the_package_is_a_clear_error(tmp_path):
    pytest.importorskip("torch.onnx")
    try:
        import onnx  # noqa: F401
    except ImportError:
        with pytest.raises(ExportError, match="pip install onnx"):
            export_model(build_model(load_config(TINY)), (3, 8, 112, 112), "onnx", str(tmp_path / "x.onnx"))
        return
    pytest.skip("onnx is installed here; this test covers machines without it")
