"""Exporting a model for deployment at a fixed clip size, checked against the eager model.

TorchScript is traced; ONNX goes through ``torch.onnx.export`` (needs the ``onnx`` package) and, when onnxruntime is
installed, is run there for the check.
"""

from typing import Sequence, Tuple

import torch
from torch import nn

FORMATS = ("torchscript", "onnx")


class ExportError(RuntimeError):
    """The export failed, or the exported model does not reproduce the eager logits."""


def _torchscript(model: nn.Module, example: torch.Tensor, out: str):
    with torch.no_grad():
        traced = torch.jit.trace(model, example, check_trace=False)
    traced.save(out)
    loaded = torch.jit.load(out)
    return lambda x: loaded(x)


def _onnx(model: nn.Module, example: torch.Tensor, out: str):
    try:
        import onnx  # noqa: F401
    except ImportError as err:
        raise ExportError("ONNX export needs the onnx package: pip install onnx onnxruntime") from err
    with torch.no_grad():
        torch.onnx.export(model, (example,), out, input_names=["clip"], output_names=["logits"], dynamo=False)
    try:
        import onnxruntime
    except ImportError:
        return None
    session = onnxruntime.InferenceSession(out, providers=["CPUExecutionProvider"])
    return lambda x: torch.from_numpy(session.run(None, {"clip": x.numpy()})[0])


def export_model(
    model: nn.Module, input_size: Sequence[int], fmt: str, out: str, tolerance: float = 1e-4, seed: int = 0
) -> Tuple[float, bool]:
    """Exports ``model`` for clips of ``input_size`` (C, T, H, W), batch 1, to ``out``.

    Returns:
        The max absolute logit difference between the exported and the eager model on a random clip (NaN when no
        runtime was available to run the export), and whether the exported model was run.
    Raises:
        ValueError: unknown format. ExportError: export failed, or the difference is above ``tolerance``.
    """
    if fmt not in FORMATS:
        raise ValueError(f"unknown export format {fmt!r} (expected {', '.join(FORMATS)})")
    model = model.eval()
    example = torch.randn(1, *input_size, generator=torch.Generator().manual_seed(seed))
    run = (_torchscript if fmt == "torchscript" else _onnx)(model, example, out)
    if run is None:
        return float("nan"), False
    clip = torch.randn(1, *input_size, generator=torch.Generator().manual_seed(seed + 1))
    with torch.no_grad():
        diff = (run(clip) - model(clip)).abs().max().item()
    if not diff <= tolerance:
        raise ExportError(f"{out}: exported logits differ from the eager model by {diff:.2e} (> {tolerance:.0e})")
    return diff, True
