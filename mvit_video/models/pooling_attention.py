"""Multi Head Pooling Attention (MHPA), the core of MViT.

Queries, keys and values are each pooled over the (T, H, W) token grid before attention. Pooling the query shrinks
the output sequence (the stage transitions); pooling keys and values shrinks only the cost of attention. The class
token is never pooled: it is split off, the grid is pooled, and the token is put back.

MViTv2 is the same attention with three options: decomposed relative positions (``rel_pos.py``), residual pooling
(the pooled query is added to the attention output) and an output width other than the input's (the block widens in
its attention instead of its MLP).
"""

import math
from typing import Callable, List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from .layers import Grid, join_cls, split_cls, tokens_to_volume, volume_to_tokens
from .rel_pos import new_rel_table, rel_pos_bias, rel_table_length


def pool_tokens(
    x: torch.Tensor, pool: Callable[[torch.Tensor], torch.Tensor], thw: Grid, has_cls: bool
) -> Tuple[torch.Tensor, Grid]:
    """Applies a 3D pooling module to the grid tokens of ``x``, leaving the class token untouched.

    ``x`` is (B, N, C) or (B, heads, N, C); returns the pooled tokens in the same layout and the new grid size.
    """
    cls, grid = split_cls(x, has_cls)
    lead = grid.shape[:-2]
    channels = grid.shape[-1]
    volume = pool(tokens_to_volume(grid, thw))  # (..., THW, C) -> (B', C, T', H', W')
    new_thw = tuple(volume.shape[2:])
    grid = volume_to_tokens(volume).reshape(*lead, -1, channels)
    return join_cls(cls, grid), new_thw


def _padding(kernel: Sequence[int]) -> Tuple[int, ...]:
    return tuple(k // 2 for k in kernel)


class AttentionPool(nn.Module):
    """Pools one of Q, K, V per head: conv (depthwise Conv3d shared by the heads, then LayerNorm), max or avg.

    It takes the projection's own layout, (B, [1 +] THW, num_heads * head_dim): the grid tokens of one clip are then a dense
    channels-last volume over all heads' channels, which the CPU convolution reads without a copy (a (B * heads, d,
    T, H, W) volume cut from a fused projection needs one), and the one kernel is applied to every head's channels.
    """

    def __init__(
        self,
        mode: str,
        head_dim: int,
        kernel: Sequence[int],
        stride: Sequence[int],
        norm_eps: float = 1e-6,
        num_heads: int = 1,
    ) -> None:
        super().__init__()
        kernel, stride = tuple(kernel), tuple(stride)
        self.head_dim = head_dim
        self.num_heads = num_heads
        if mode == "conv":
            self.pool = nn.Conv3d(
                head_dim, head_dim, kernel, stride=stride, padding=_padding(kernel), groups=head_dim, bias=False
            )
            self.norm = nn.LayerNorm(head_dim, eps=norm_eps)
        elif mode == "max":
            self.pool = nn.MaxPool3d(kernel, stride=stride, padding=_padding(kernel), ceil_mode=False)
            self.norm = None
        elif mode == "avg":
            self.pool = nn.AvgPool3d(kernel, stride=stride, padding=_padding(kernel), ceil_mode=False)
            self.norm = None
        else:
            raise ValueError(f"unknown pooling mode {mode!r} (expected conv, max or avg)")

    def _pool_all_heads(self, volume: torch.Tensor) -> torch.Tensor:
        # (B, heads * d, T, H, W) -> (B, heads * d, T', H', W')
        if not isinstance(self.pool, nn.Conv3d):
            return self.pool(volume)
        conv = self.pool
        # a fixed head count, not one read off the input, so that exporters see a kernel of known shape
        weight = conv.weight if self.num_heads == 1 else conv.weight.repeat(self.num_heads, 1, 1, 1, 1)
        return F.conv3d(volume, weight, None, conv.stride, conv.padding, groups=self.num_heads * self.head_dim)

    def forward(self, x: torch.Tensor, thw: Grid, has_cls: bool) -> Tuple[torch.Tensor, Grid]:
        # (B, [1 +] THW, heads * d) -> (B, heads, [1 +] T'H'W', d)
        x, thw = pool_tokens(x, self._pool_all_heads, thw, has_cls)
        x = x.unflatten(-1, (self.num_heads, self.head_dim))
        if self.norm is not None:
            x = self.norm(x)
        return x.transpose(1, 2), thw


def needs_pool(kernel: Sequence[int], stride: Sequence[int]) -> bool:
    # The reference skips pooling only when both kernel and stride are all ones; a 3x3x3 kernel at stride 1 still pools.
    return len(kernel) > 0 and (math.prod(kernel) > 1 or math.prod(stride) > 1)


def build_attention_pool(
    mode: str,
    head_dim: int,
    kernel: Sequence[int],
    stride: Sequence[int],
    norm_eps: float = 1e-6,
    num_heads: int = 1,
) -> Optional[AttentionPool]:
    """The pooling of one of Q, K, V, or None where the reference does not pool (an empty stride means 1)."""
    if not needs_pool(kernel, stride):
        return None
    return AttentionPool(mode, head_dim, kernel, tuple(stride) or (1,) * len(kernel), norm_eps, num_heads)


def heads_of(dim: int, num_heads: int) -> int:
    """The width of one head. Raises ValueError when ``dim`` does not split evenly."""
    if dim % num_heads:
        raise ValueError(f"attention width {dim} is not divisible by {num_heads} heads")
    return dim // num_heads


class MultiScaleAttention(nn.Module):
    """Multi Head Pooling Attention over ``dim`` channels with ``num_heads`` heads.

    Input (B, 1 + THW, dim) with grid ``thw``; output (B, 1 + T'H'W', dim_out) where T'H'W' is the query-pooled grid
    and ``dim_out`` defaults to ``dim``.

    MViTv2's options: ``rel_pos_spatial``/``rel_pos_temporal`` add decomposed relative positions, with tables sized
    for ``input_size``, the (T, H, W) grid the block receives at the training clip size (other sizes are served by
    resizing the tables); ``rel_pos_zero_init`` starts them at zero; ``residual_pooling`` adds the pooled query to
    the output of every grid token. ``separate_qkv`` keeps three projections ``q``, ``k``, ``v`` instead of one
    fused ``qkv``.
    """

    def __init__(
        self,
        dim: int,
        num_heads: int,
        qkv_bias: bool = True,
        mode: str = "conv",
        kernel_q: Sequence[int] = (),
        stride_q: Sequence[int] = (),
        kernel_kv: Sequence[int] = (),
        stride_kv: Sequence[int] = (),
        has_cls: bool = True,
        proj_drop: float = 0.0,
        pool_norm_eps: float = 1e-6,
        dim_out: Optional[int] = None,
        input_size: Optional[Grid] = None,
        rel_pos_spatial: bool = False,
        rel_pos_temporal: bool = False,
        rel_pos_zero_init: bool = False,
        residual_pooling: bool = False,
        separate_qkv: bool = False,
    ) -> None:
        super().__init__()
        dim_out = dim if dim_out is None else dim_out
        self.num_heads = num_heads
        self.head_dim = heads_of(dim_out, num_heads)
        self.dim_out = dim_out
        self.has_cls = has_cls
        self.residual_pooling = residual_pooling
        self.separate_qkv = separate_qkv
        if separate_qkv:
            self.q = nn.Linear(dim, dim_out, bias=qkv_bias)
            self.k = nn.Linear(dim, dim_out, bias=qkv_bias)
            self.v = nn.Linear(dim, dim_out, bias=qkv_bias)
        else:
            self.qkv = nn.Linear(dim, dim_out * 3, bias=qkv_bias)
        self.proj = nn.Linear(dim_out, dim_out)
        self.proj_drop = nn.Dropout(proj_drop) if proj_drop > 0 else nn.Identity()
        pool_args = (mode, self.head_dim)
        self.pool_q = build_attention_pool(*pool_args, kernel_q, stride_q, pool_norm_eps, num_heads)
        self.pool_k = build_attention_pool(*pool_args, kernel_kv, stride_kv, pool_norm_eps, num_heads)
        self.pool_v = build_attention_pool(*pool_args, kernel_kv, stride_kv, pool_norm_eps, num_heads)
        self.rel_pos_h = self.rel_pos_w = self.rel_pos_t = None
        if (rel_pos_spatial or rel_pos_temporal) and input_size is None:
            raise ValueError("relative positions need input_size, the (T, H, W) grid the block receives")
        if rel_pos_spatial:
            # one length for both spatial tables, from the height, as the reference (square grids)
            length = rel_table_length(input_size[1], stride_q, stride_kv, axis=1)
            self.rel_pos_h = new_rel_table(length, self.head_dim, rel_pos_zero_init)
            self.rel_pos_w = new_rel_table(length, self.head_dim, rel_pos_zero_init)
        if rel_pos_temporal:
            self.rel_pos_t = new_rel_table(2 * input_size[0] - 1, self.head_dim, rel_pos_zero_init)

    def position_parameters(self) -> List[str]:
        """The relative-position tables it has."""
        return [name for name, _ in self.named_parameters(recurse=False)]

    def _pool(self, pool: Optional[AttentionPool], x: torch.Tensor, thw: Grid) -> Tuple[torch.Tensor, Grid]:
        # (B, N, C) -> (B, heads, N', d)
        if pool is None:
            return x.unflatten(-1, (self.num_heads, self.head_dim)).transpose(1, 2), thw
        return pool(x, thw, self.has_cls)

    def _project_qkv(self, x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        # (B, N, C) -> 3 x (B, N, C_out), each dense: the fused weight is applied in its three row blocks, so that each
        # of Q, K, V is pooled without a copy (one fused product would interleave them token by token)
        if self.separate_qkv:
            return self.q(x), self.k(x), self.v(x)
        weights = self.qkv.weight.chunk(3)
        biases = self.qkv.bias.chunk(3) if self.qkv.bias is not None else (None,) * 3
        q, k, v = (F.linear(x, weight, bias) for weight, bias in zip(weights, biases))
        return q, k, v

    def forward(self, x: torch.Tensor, thw: Grid) -> Tuple[torch.Tensor, Grid]:
        batch = x.shape[0]
        q, k, v = self._project_qkv(x)
        q, q_thw = self._pool(self.pool_q, q, thw)
        k, k_thw = self._pool(self.pool_k, k, thw)
        v, _ = self._pool(self.pool_v, v, thw)
        bias = None
        if self.rel_pos_t is not None or self.rel_pos_h is not None:
            bias = rel_pos_bias(q, q_thw, k_thw, self.has_cls, self.rel_pos_h, self.rel_pos_w, self.rel_pos_t)
        x = F.scaled_dot_product_attention(q, k, v, attn_mask=bias)
        if self.residual_pooling:
            # the class token takes no residual, as in the reference
            x = x + (F.pad(q[:, :, 1:], (0, 0, 1, 0)) if self.has_cls else q)
        x = x.transpose(1, 2).reshape(batch, -1, self.dim_out)  # (B, heads, N', d) -> (B, N', C)
        return self.proj_drop(self.proj(x)), q_thw
