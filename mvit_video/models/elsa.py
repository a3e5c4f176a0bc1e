"""ELSA: enhanced local self-attention (Zhou et al., "ELSA: Enhanced Local Self-Attention for Vision Transformer"),
in 3D.

Each grid token aggregates the values of its (k_t, k, k) neighbourhood with weights computed from the token grid:

* Hadamard attention: the elementwise product q * k (scale 1), a grouped Conv3d over the neighbourhood, GELU, and a
  1x1x1 conv to one logit per offset and head, softmaxed over the offsets (border offsets included: the zero-padded
  values there count as zeros, not masked out);
* ghost head: per-channel static filters turn the per-head weights into per-channel ones,
  ``filter[c, o, n] = ghost_mul[c, o] ** lam * attn[head(c), o, n] + gamma * ghost_add[c, o]``.

The attention-weighted sum loops over the offsets of the neighbourhood on the unpadded grid, so its memory is
O(C x N) in the forward and the backward pass; a 3D unfold would hold all k_t * k * k shifted copies of the values
(about 1.4 GB per clip at MViT-B's first stage with a 3x7x7 neighbourhood). The additive ghost term does not depend
on the position, so it is a depthwise Conv3d of the values. ONNX export writes the same sum without in-place
updates (:func:`padded_aggregate`), which the exporter translates faithfully.

The class token has no place on the grid. It takes no part in the local aggregation (grid tokens never attend to it)
and is updated instead by one row of ordinary softmax attention: its query, from the same projection, attends to the
keys and values of every token, itself included, as it would in MHPA. Its output goes through the same final
projection.

ELSA keeps the grid and the width, so in MViT it never replaces the attention of a query-pooling block; the width
change of a stage's last block happens in the MLP and the skip projection, which ELSA leaves as they are.
"""

import itertools
import math
from typing import Iterator, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from .layers import Grid, split_cls, tokens_to_volume, volume_to_tokens

Kernel = Tuple[int, int, int]
Region = Tuple[slice, slice, slice, slice]  # (batch, t, h, w) slices of a (B, T, H, W, ...) tensor


def _axis_overlap(shift: int, size: int) -> Tuple[slice, slice]:
    """Positions i of one axis whose neighbour i + shift is on the grid, and those neighbours."""
    start, stop = max(0, -shift), min(size, size - shift)
    return slice(start, stop), slice(start + shift, stop + shift)


def neighbourhood_offsets(kernel: Kernel, thw: Grid) -> Iterator[Tuple[int, Region, Region]]:
    """For each offset o of a ``kernel`` neighbourhood (row-major over t, h, w, centre in the middle): o, the output
    positions n whose neighbour n + o lies on the ``thw`` grid, and those neighbours. Offsets that miss the grid
    entirely are skipped."""
    index = 0
    for dt in range(kernel[0]):
        for dh in range(kernel[1]):
            for dw in range(kernel[2]):
                shifts = (dt - kernel[0] // 2, dh - kernel[1] // 2, dw - kernel[2] // 2)
                pairs = [_axis_overlap(s, n) for s, n in zip(shifts, thw)]
                if all(dst.start < dst.stop for dst, _ in pairs):
                    everything = slice(None)
                    yield index, (everything, *(p[0] for p in pairs)), (everything, *(p[1] for p in pairs))
                index += 1


def _weight(attn: torch.Tensor, mul: Optional[torch.Tensor], o: int, dst: Region) -> torch.Tensor:
    # Offset o's weights on the output region: (B, T', H', W', G, 1), or (..., G, Cg) with the ghost factors.
    weight = attn[dst][..., o : o + 1]
    return weight if mul is None else weight * mul[:, :, o]


class LocalAggregation(torch.autograd.Function):
    """``out[n, c] = sum_o v[n + o, c] * mul[c, o] * attn[n, head(c), o]``, with v zero off the grid.

    Channels last, as the tokens are: v (B, T, H, W, G, Cg); attn (B, T, H, W, G, K); mul (G, Cg, K), or None for a
    factor of 1. Both passes loop over the K offsets and hold O(C x N) memory; the backward recomputes products
    instead of keeping one per offset.
    """

    @staticmethod
    def forward(ctx, v, attn, mul, kernel):
        ctx.kernel = kernel
        ctx.save_for_backward(v, attn, mul)
        out = torch.zeros(v.shape, dtype=v.dtype, device=v.device)
        for o, dst, src in neighbourhood_offsets(kernel, v.shape[1:4]):
            out[dst].addcmul_(v[src], _weight(attn, mul, o, dst))
        return out

    @staticmethod
    def backward(ctx, grad):
        v, attn, mul = ctx.saved_tensors
        grad_v = torch.zeros(v.shape, dtype=v.dtype, device=v.device)
        grad_attn = torch.zeros(attn.shape, dtype=attn.dtype, device=attn.device)
        grad_mul = None if mul is None else torch.zeros_like(mul)
        for o, dst, src in neighbourhood_offsets(ctx.kernel, v.shape[1:4]):
            g = grad[dst]
            grad_v[src].addcmul_(g, _weight(attn, mul, o, dst))
            g_source = g * v[src]  # (B, T', H', W', G, Cg)
            if mul is not None:
                # one ghost factor per channel and offset, shared by the batch and the grid
                grad_mul[:, :, o] = (g_source * attn[dst][..., o : o + 1]).sum(dim=(0, 1, 2, 3))
                g_source = g_source * mul[:, :, o]
            grad_attn[dst][..., o] = g_source.sum(dim=-1)
        return grad_v, grad_attn, grad_mul, None


def padded_aggregate(v: torch.Tensor, attn: torch.Tensor, mul: Optional[torch.Tensor], kernel: Kernel) -> torch.Tensor:
    """The sum of :class:`LocalAggregation` without in-place updates: the values are zero-padded once and every
    offset's shifted window is weighted and added. Forward only; returns (B, T, H, W, G, Cg)."""
    grid = v.shape[1:4]
    padding = [p for k in reversed(kernel) for p in (k // 2, k // 2)]
    padded = F.pad(v, [0, 0, 0, 0, *padding])  # (B, T, H, W, G, Cg) -> (B, T + k_t - 1, H + k - 1, W + k - 1, G, Cg)
    everywhere = (slice(None),) * 4
    out = torch.zeros_like(v)
    for o, start in enumerate(itertools.product(*(range(k) for k in kernel))):
        window = padded[(slice(None), *(slice(s, s + n) for s, n in zip(start, grid)))]
        out = out + window * _weight(attn, mul, o, everywhere)
    return out


def local_aggregate(
    v: torch.Tensor, attn: torch.Tensor, mul: Optional[torch.Tensor], kernel: Sequence[int]
) -> torch.Tensor:
    """ELSA's attention-weighted aggregation (see :class:`LocalAggregation`); returns (B, T, H, W, G, Cg)."""
    kernel = tuple(int(k) for k in kernel)
    if torch.onnx.is_in_onnx_export():
        # The TorchScript-based ONNX exporter drops the in-place slice updates inside LocalAggregation.forward and
        # writes its output as a constant (wrong logits on any other clip); the padded sum exports as it computes.
        return padded_aggregate(v, attn, mul, kernel)
    return LocalAggregation.apply(v, attn, mul, kernel)


def _qk_width(dim: int, group_width: int) -> int:
    # The official rule: two thirds of the width, rounded up to a multiple of the group width.
    return math.ceil((dim // 3 * 2) / group_width) * group_width


class ELSA(nn.Module):
    """Enhanced local self-attention over a (T, H, W) grid: (B, [1 +] THW, dim) -> the same shape and grid.

    A 1x1x1 projection (a Linear over the tokens) gives q and k of width ``C_qk`` (about 2/3 of ``dim``, a multiple
    of ``group_width``) and v of width ``dim``; a final Linear maps v's width back to ``dim``. ``lam = 0`` drops the
    multiplicative ghost filters and ``gamma = 0`` the additive ones (their parameters are then not created).
    """

    def __init__(
        self,
        dim: int,
        num_heads: int,
        kernel: Sequence[int] = (3, 5, 5),
        lam: float = 1.0,
        gamma: float = 1.0,
        group_width: int = 8,
        qkv_bias: bool = True,
        has_cls: bool = True,
        proj_drop: float = 0.0,
    ) -> None:
        super().__init__()
        kernel = tuple(int(k) for k in kernel)
        dim_qk = _qk_width(dim, group_width)
        if len(kernel) != 3 or any(k % 2 == 0 for k in kernel):
            raise ValueError(f"ELSA kernel must be three odd sizes (k_t, k, k), got {kernel}")
        if dim % num_heads or dim_qk % num_heads:
            raise ValueError(f"ELSA widths {dim} (v) and {dim_qk} (q, k) must both divide into {num_heads} heads")
        self.num_heads, self.kernel, self.dim_qk, self.has_cls = num_heads, kernel, dim_qk, has_cls
        self.lam, self.gamma = lam, gamma
        self.padding = tuple(k // 2 for k in kernel)
        self.pre_proj = nn.Linear(dim, 2 * dim_qk + dim, bias=qkv_bias)
        self.hadamard_attn = nn.Sequential(
            nn.Conv3d(dim_qk, dim_qk, kernel, padding=self.padding, groups=dim_qk // group_width),
            nn.GELU(),
            nn.Conv3d(dim_qk, math.prod(kernel) * num_heads, 1),
        )
        self.ghost_mul = nn.Parameter(torch.randn(dim, *kernel)) if lam != 0 else None
        self.ghost_add = None
        if gamma != 0:
            self.ghost_add = nn.Parameter(nn.init.trunc_normal_(torch.zeros(dim, *kernel), std=0.02))
        self.post_proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(proj_drop) if proj_drop > 0 else nn.Identity()

    def class_attention(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """The class token's query against every token: q (B, 1, C_qk), k (B, L, C_qk), v (B, L, C) -> (B, 1, C)."""

        def heads(t: torch.Tensor) -> torch.Tensor:
            return t.unflatten(-1, (self.num_heads, -1)).transpose(1, 2)  # (B, L, C) -> (B, G, L, C / G)

        return F.scaled_dot_product_attention(heads(q), heads(k), heads(v)).transpose(1, 2).flatten(2)

    def _project(self, x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor, Optional[torch.Tensor]]:
        """(B, [1 +] N, C) -> q * k of the grid (B, N, C_qk), v (B, [1 +] N, C), and the class token's output.

        The projection is applied in two parts so that q and k are freed before the values are aggregated.
        """
        weight, bias = self.pre_proj.weight, self.pre_proj.bias
        split = 2 * self.dim_qk
        v = F.linear(x, weight[split:], None if bias is None else bias[split:])
        q, k = F.linear(x, weight[:split], None if bias is None else bias[:split]).chunk(2, dim=-1)
        cls = self.class_attention(q[:, :1], k, v) if self.has_cls else None
        return split_cls(q, self.has_cls)[1] * split_cls(k, self.has_cls)[1], v, cls

    def _attention_weights(self, hadamard: torch.Tensor, thw: Grid) -> torch.Tensor:
        # (B, N, C_qk) -> softmax over the neighbourhood, (B, T, H, W, G, K)
        logits = volume_to_tokens(self.hadamard_attn(tokens_to_volume(hadamard, thw)))  # (B, N, G * K)
        return logits.unflatten(-1, (self.num_heads, -1)).softmax(dim=-1).unflatten(1, thw)

    def local_attention(self, attn: torch.Tensor, v: torch.Tensor, thw: Grid) -> torch.Tensor:
        """Attention weights (B, T, H, W, G, K) and grid values (B, N, C) -> aggregated values (B, N, C)."""
        mul = None
        if self.ghost_mul is not None:
            mul = (self.ghost_mul**self.lam).reshape(self.num_heads, -1, attn.shape[-1])  # (G, C / G, K)
        values = v.unflatten(-1, (self.num_heads, -1)).unflatten(1, thw)  # (B, T, H, W, G, C / G)
        out = local_aggregate(values, attn, mul, self.kernel).flatten(-2).flatten(1, 3)  # (B, N, C)
        if self.ghost_add is not None:
            # The additive ghost filters do not depend on the position: a depthwise convolution of v.
            weight = (self.ghost_add * self.gamma).unsqueeze(1)  # (C, 1, kt, k, k)
            volume = tokens_to_volume(v, thw)
            out.add_(volume_to_tokens(F.conv3d(volume, weight, padding=self.padding, groups=volume.shape[1])))
        return out

    def forward(self, x: torch.Tensor, thw: Grid) -> Tuple[torch.Tensor, Grid]:
        # (B, [1 +] THW, C) -> (B, [1 +] THW, C)
        hadamard, v, cls = self._project(x)
        attn = self._attention_weights(hadamard, thw)
        del hadamard  # the aggregation's memory peak need not hold it
        out = self.local_attention(attn, split_cls(v, self.has_cls)[1], thw)
        if cls is not None:
            out = torch.cat([cls, out], dim=1)
        return self.proj_drop(self.post_proj(out)), thw
