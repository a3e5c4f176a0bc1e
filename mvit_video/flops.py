"""Parameters, FLOPs and activations counted with fvcore, the way the MViT paper counts them.

fvcore counts one fused multiply-add as one flop. It has no rule for ``scaled_dot_product_attention``, which it would
skip silently; the rule below counts it as the two matrix products it replaces (Q K^T and A V), so the totals equal
those of the reference implementation that writes the products out. ELSA's local aggregation (a custom autograd
function, which fvcore sees as an opaque Python op) is counted likewise as its weighted sum over the neighbourhood.
"""

import logging
import math
import warnings
from dataclasses import asdict, dataclass
from typing import Any, Counter as CounterT, List, Optional, Sequence

import torch
from torch import nn

with warnings.catch_warnings():
    # fvcore.nn scripts its focal loss at import time, which current torch reports as deprecated: not our concern.
    warnings.filterwarnings("ignore", message=".*torch.jit.script.*", category=FutureWarning)
    from fvcore.nn import ActivationCountAnalysis, FlopCountAnalysis
    from fvcore.nn.jit_handles import get_shape


def _sdpa_shapes(inputs: List[Any]):
    q, k, v = (get_shape(t) for t in inputs[:3])
    batch = 1
    for n in q[:-2]:
        batch *= n
    return batch, q[-2], k[-2], q[-1], v[-1]


def sdpa_flop_jit(inputs: List[Any], outputs: List[Any]) -> CounterT[str]:
    """Multiply-adds of attention: (Nq x d) @ (d x Nk) and (Nq x Nk) @ (Nk x dv) per batch and head."""
    batch, n_q, n_k, d, d_v = _sdpa_shapes(inputs)
    return CounterT({"matmul": batch * n_q * n_k * (d + d_v)})


def sdpa_activation_jit(inputs: List[Any], outputs: List[Any]) -> CounterT[str]:
    """Outputs of the two products: the attention map (Nq x Nk) and the result (Nq x dv)."""
    batch, n_q, n_k, _, d_v = _sdpa_shapes(inputs)
    return CounterT({"matmul": batch * n_q * (n_k + d_v)})


def local_aggregation_flop_jit(inputs: List[Any], outputs: List[Any]) -> CounterT[str]:
    """ELSA's aggregation: one multiply-add per value and neighbourhood offset, as A V in attention.

    Inputs v (B, T, H, W, G, Cg) and attn (B, T, H, W, G, K); offsets off the grid count too, as a padded conv's do.
    """
    v, attn = get_shape(inputs[0]), get_shape(inputs[1])
    return CounterT({"local_aggregation": math.prod(v) * attn[-1]})


def local_aggregation_activation_jit(inputs: List[Any], outputs: List[Any]) -> CounterT[str]:
    return CounterT({"local_aggregation": math.prod(get_shape(inputs[0]))})


_SDPA = "aten::scaled_dot_product_attention"
# How fvcore names ELSA's autograd function (mvit_video.models.elsa.LocalAggregation) in a traced graph.
LOCAL_AGGREGATION_OP = "prim::PythonOp.LocalAggregation"


@dataclass
class ModelCounts:
    """Counts for one input size. ``gflops`` is 1e9 fused multiply-adds, as fvcore and the paper count."""

    params: int
    gflops: float
    activations: Optional[int]
    input_size: Sequence[int]
    unsupported_ops: dict

    def as_dict(self) -> dict:
        return asdict(self)


def _quiet(analysis):
    return analysis.unsupported_ops_warnings(False).uncalled_modules_warnings(False).tracer_warnings("none")


def count_model(
    model: nn.Module, input_size: Sequence[int], batch_size: int = 1, activations: bool = True
) -> ModelCounts:
    """Counts parameters, fvcore FLOPs and activations of ``model`` for one clip of ``input_size`` (C, T, H, W).

    Each count traces the model once on the CPU; ``activations=False`` skips the second trace (``activations`` is
    then None).

    Ops fvcore has no rule for (normalisation-free element-wise ops, pooling, softmax) are not counted, as in the
    paper; those seen are returned in ``unsupported_ops`` so that a real omission is visible.
    """
    model = model.eval()
    x = torch.zeros(batch_size, *input_size)
    logging.getLogger("fvcore.nn.jit_analysis").setLevel(logging.ERROR)
    with torch.no_grad():
        flops = FlopCountAnalysis(model, x).set_op_handle(_SDPA, sdpa_flop_jit)
        flops = _quiet(flops.set_op_handle(LOCAL_AGGREGATION_OP, local_aggregation_flop_jit))
        total_flops = flops.total()
        total_acts = None
        if activations:
            acts = ActivationCountAnalysis(model, x).set_op_handle(_SDPA, sdpa_activation_jit)
            total_acts = _quiet(acts.set_op_handle(LOCAL_AGGREGATION_OP, local_aggregation_activation_jit)).total()
    return ModelCounts(
        params=sum(p.numel() for p in model.parameters()),
        gflops=total_flops / batch_size / 1e9,
        activations=None if total_acts is None else int(total_acts / batch_size),
        input_size=list(input_size),
        unsupported_ops=dict(flops.unsupported_ops()),
    )
