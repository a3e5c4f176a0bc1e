"""Exporting a model for deployment at a fixed clip size, checked against the eager model.

TorchScript is traced; ONNX goes through ``torch.onnx.export`` (needs the ``onnx`` package, ``pip install
mvit_video[onnx]``) and is run in onnxruntime on the CPU for the check. An export that cannot be checked is refused
unless the check is turned off.
"""

from typing import Sequence, Tuple

import torch
from torch import nn

from .errors import import_optional

FORMATS = ("torchscript", "onnx")
# Fixed rather than torch's default, so that the file does not change with the torch version; 17 is the first opset
# with a LayerNormalization operator.
ONNX_OPSET = 17


class ExportError(RuntimeError):
    """The export failed, or the exported model does not reproduce the eager logits."""


def _torchscript(model: nn.Module, example: torch.Tensor, out: str):
    with torch.no_grad():
        traced = torch.jit.trace(model, example, check_trace=False)
    traced.save(out)
    loaded = torch.jit.load(out)
    return lambda x: loaded(x)


def _onnx(model: nn.Module, example: torch.Tensor, out: str, check: bool = True):
    import_optional("onnx", "onnx", "ONNX export")
    # Before exporting, so that an export that cannot be checked leaves no file behind.
    runtime = import_optional("onnxruntime", "onnx", "Checking the ONNX export (skip it with --no-check)") \
        if check else None
    # The TorchScript-based exporter (dynamo=False, deprecated since torch 2.9 but still shipped): on the synthetic
    # tiny configs it exports plain MViT and the PEG, ELSA, CEIT and PVT variants with logits within 4e-7 of eager in
    # onnxruntime, in 2-7 s. The torch.export-based default gives the same logits where it works, but needs onnxscript,
    # fails on PVT's adaptive average pooling (aten::_adaptive_avg_pool3d) and takes 15 s (plain) to 390 s (ELSA).
    try:
        with torch.no_grad():
            torch.onnx.export(model, (example,), out, input_names=["clip"], output_names=["logits"],
                              opset_version=ONNX_OPSET, dynamo=False)
    except torch.onnx.errors.OnnxExporterError as err:
        raise ExportError(
            f"ONNX export of {type(model).__name__} to {out} failed: {str(err).splitlines()[0]} (export to TorchScript "
            f"instead, or replace that operator in the model)"
        ) from err
    if runtime is None:
        return None
    session = runtime.InferenceSession(out, providers=["CPUExecutionProvider"])
    return lambda x: torch.from_numpy(session.run(None, {"clip": x.numpy()})[0])


def export_model(
    model: nn.Module, input_size: Sequence[int], fmt: str, out: str, tolerance: float = 1e-4, seed: int = 0,
    check: bool = True,
) -> Tuple[float, bool]:
    """Exports ``model`` for clips of ``input_size`` (C, T, H, W), batch 1, to ``out``; with ``check``, runs the
    export and compares its logits with the eager model's.

    Returns:
        The max absolute logit difference between the exported and the eager model on a random clip (NaN without
        ``check``), and whether the exported model was run.
    Raises:
        ValueError: unknown format. ExportError: export failed, or the difference is above ``tolerance``.
        MissingPackageError: onnx is not installed, or ``check`` and onnxruntime is not installed (nothing written).
    """
    if fmt not in FORMATS:
        raise ValueError(f"unknown export format {fmt!r} (expected {', '.join(FORMATS)})")
    model = model.eval()
    example = torch.randn(1, *input_size, generator=torch.Generator().manual_seed(seed))
    run = _torchscript(model, example, out) if fmt == "torchscript" else _onnx(model, example, out, check)
    if not check:
        return float("nan"), False
    clip = torch.randn(1, *input_size, generator=torch.Generator().manual_seed(seed + 1))
    with torch.no_grad():
        diff = (run(clip) - model(clip)).abs().max().item()
    if not diff <= tolerance:
        raise ExportError(f"{out}: exported logits differ from the eager model by {diff:.2e} (> {tolerance:.0e})")
    return diff, True
