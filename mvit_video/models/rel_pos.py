"""Decomposed relative positions of MViTv2 (Li et al., CVPR 2022).

The position term between a query at (t, h, w) and a key at (t', h', w') is the sum of three learned terms, one per
axis, each a dot product of the query with a table row chosen by the offset along that axis: ``q . R_t[t - t'] +
q . R_h[h - h'] + q . R_w[w - w']``. When the query and key grids differ (pooled keys), offsets are measured on the
finer grid's scale, and a table trained for another size is linearly resized, as in the reference implementation.

The reference builds the full score matrix and adds these terms to it in place. Here the terms are returned as one
additive bias, written in a single pass from the per-axis terms, which ``scaled_dot_product_attention`` takes as its
mask, so that the softmax and both products run in one fused kernel. The class token neither gives nor receives a position term.
"""

from typing import Optional, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .layers import Grid


def rel_table_length(size: int, stride_q: Sequence[int], stride_kv: Sequence[int], axis: int) -> int:
    """Rows of the table for one axis of a block whose input grid is ``size`` long on that axis:
    2 * max(query length, key length) - 1, the lengths being ``size`` divided by each pooling stride."""
    q_size = size // stride_q[axis] if len(stride_q) else size
    kv_size = size // stride_kv[axis] if len(stride_kv) else size
    return 2 * max(q_size, kv_size) - 1


def new_rel_table(length: int, head_dim: int, zero_init: bool) -> nn.Parameter:
    table = nn.Parameter(torch.zeros(length, head_dim))
    if not zero_init:
        nn.init.trunc_normal_(table, std=0.02)
    return table


def _resized(table: torch.Tensor, length: int) -> torch.Tensor:
    # (L, d) -> (length, d), linear interpolation along L
    if table.shape[0] == length:
        return table
    return F.interpolate(table.t().unsqueeze(0), size=length, mode="linear").squeeze(0).t()


def _rows(table: torch.Tensor, q_len: int, k_len: int) -> torch.Tensor:
    """The table row of every (query, key) pair along one axis: (q_len, k_len, d)."""
    q_ratio = max(k_len / q_len, 1.0)
    k_ratio = max(q_len / k_len, 1.0)
    offset = torch.arange(q_len)[:, None] * q_ratio - torch.arange(k_len)[None, :] * k_ratio + (k_len - 1) * k_ratio
    return _resized(table, 2 * max(q_len, k_len) - 1)[offset.long()]


def rel_pos_bias(
    q: torch.Tensor,
    q_thw: Grid,
    k_thw: Grid,
    has_cls: bool,
    rel_h: Optional[torch.Tensor],
    rel_w: Optional[torch.Tensor],
    rel_t: Optional[torch.Tensor],
) -> torch.Tensor:
    """The additive attention bias of the decomposed relative positions.

    ``q`` is (B, heads, [1 +] q_t q_h q_w, d), unscaled; ``rel_h``/``rel_w`` (spatial) and ``rel_t`` (temporal) are
    the tables, None when that part is off. Returns (B, heads, [1 +] Nq, [1 +] Nk), zero in the class token's row and
    column.
    """
    (qt, qh, qw), (kt, kh, kw) = q_thw, k_thw
    batch, heads, _, dim = q.shape
    grid_q = q[:, :, 1:] if has_cls else q
    grid_q = grid_q.reshape(batch, heads, qt, qh, qw, dim)
    # the small per-axis terms first: (B, n, qt, qh, qw, kh * kw) and (B, n, qt, qh, qw, kt)
    spatial = grid_q.new_zeros(1, 1, 1, 1, 1, 1)
    if rel_h is not None and rel_w is not None:
        # (B, n, qt, qh, qw, d) x (qh, kh, d) -> (B, n, qt, qh, qw, kh)
        along_h = torch.einsum("bythwc,hkc->bythwk", grid_q, _rows(rel_h, qh, kh))
        along_w = torch.einsum("bythwc,wkc->bythwk", grid_q, _rows(rel_w, qw, kw))
        spatial = (along_h[..., :, None] + along_w[..., None, :]).flatten(-2)
    temporal = grid_q.new_zeros(1, 1, 1, 1, 1, 1)
    if rel_t is not None:
        temporal = torch.einsum("bythwc,tkc->bythwk", grid_q, _rows(rel_t, qt, kt))
    # The (Nq x Nk) bias is written once, in place, into the grid part of the mask; the class token's row and column
    # are zeroed. A sum, a reshape and a pad would write it three times.
    cls = 1 if has_cls else 0
    if torch.onnx.is_in_onnx_export():
        # The TorchScript-based ONNX exporter mistranslates in-place writes into views: the same values, out of place.
        bias = (spatial[..., None, :] + temporal[..., :, None]).reshape(batch, heads, qt * qh * qw, kt * kh * kw)
        return F.pad(bias, (cls, 0, cls, 0))
    bias = grid_q.new_empty(batch, heads, cls + qt * qh * qw, cls + kt * kh * kw)
    if has_cls:
        bias[:, :, 0].zero_()
        bias[:, :, 1:, 0].zero_()
    grid = bias[:, :, cls:, cls:].unflatten(3, (kt, kh * kw)).unflatten(2, (qt, qh, qw))
    grid.copy_(spatial[..., None, :].expand_as(grid)).add_(temporal[..., :, None])
    return bias
