"""Linear spatial-reduction attention of PVT v2 (Wang et al., "PVT v2: Improved Baselines with Pyramid Vision
Transformer"), in 3D, as an alternative to MViT's key/value pooling.

Keys and values come from the grid average-pooled to a fixed size (T_p, 7, 7), then a 1x1x1 convolution, LayerNorm
and GELU: their number no longer grows with the input, so attention costs O(N) for any clip size. Queries are pooled
as in MHPA, so the stage transitions of MViT are unchanged.
"""

import functools
from typing import Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from .layers import Grid
from .pooling_attention import build_attention_pool, heads_of, pool_tokens


class LinearSpatialReduction(nn.Module):
    """(B, [1 +] THW, C) -> (B, [1 +] T_p * H_p * W_p, C): adaptive average pooling of the grid, then 1x1x1 conv,
    LayerNorm and GELU.

    The pooled size is ``pool_size`` capped by the grid on each axis (pooling never enlarges a grid). The class token
    is not pooled (as in MHPA) but takes the pointwise steps like every token: the 1x1x1 convolution is written as the
    Linear it equals over the tokens.
    """

    def __init__(self, dim: int, pool_size: Sequence[int] = (8, 7, 7), has_cls: bool = True) -> None:
        super().__init__()
        self.pool_size = tuple(int(p) for p in pool_size)
        self.has_cls = has_cls
        self.sr = nn.Linear(dim, dim)
        self.norm = nn.LayerNorm(dim)
        self.act = nn.GELU()

    def reduced_grid(self, thw: Grid) -> Grid:
        return tuple(min(p, n) for p, n in zip(self.pool_size, thw))

    def forward(self, x: torch.Tensor, thw: Grid) -> torch.Tensor:
        pool = functools.partial(F.adaptive_avg_pool3d, output_size=self.reduced_grid(thw))
        x, _ = pool_tokens(x, pool, thw, self.has_cls)
        return self.act(self.norm(self.sr(x)))


class LinearSRAttention(nn.Module):
    """MHPA whose key/value pooling is replaced by :class:`LinearSpatialReduction`.

    Input (B, 1 + THW, dim) with grid ``thw``; output (B, 1 + T'H'W', dim) where T'H'W' is the query-pooled grid.
    """

    def __init__(
        self,
        dim: int,
        num_heads: int,
        pool_size: Sequence[int] = (8, 7, 7),
        qkv_bias: bool = True,
        mode: str = "conv",
        kernel_q: Sequence[int] = (),
        stride_q: Sequence[int] = (),
        has_cls: bool = True,
        proj_drop: float = 0.0,
        pool_norm_eps: float = 1e-6,
    ) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.head_dim = heads_of(dim, num_heads)
        self.has_cls = has_cls
        self.q_proj = nn.Linear(dim, dim, bias=qkv_bias)
        self.kv_proj = nn.Linear(dim, 2 * dim, bias=qkv_bias)
        self.reduce = LinearSpatialReduction(dim, pool_size, has_cls)
        self.pool_q = build_attention_pool(mode, self.head_dim, kernel_q, stride_q, pool_norm_eps)
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(proj_drop) if proj_drop > 0 else nn.Identity()

    def forward(self, x: torch.Tensor, thw: Grid) -> Tuple[torch.Tensor, Grid]:
        batch, length, dim = x.shape
        q = self.q_proj(x).reshape(batch, length, self.num_heads, self.head_dim).transpose(1, 2)  # (B, heads, N, d)
        q_thw = thw
        if self.pool_q is not None:
            q, q_thw = self.pool_q(q, thw, self.has_cls)
        kv = self.kv_proj(self.reduce(x, thw))  # (B, [1 +] T_p H_p W_p, 2C)
        k, v = kv.reshape(batch, -1, 2, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        x = F.scaled_dot_product_attention(q, k, v)
        x = x.transpose(1, 2).reshape(batch, -1, dim)  # (B, heads, N', d) -> (B, N', C)
        return self.proj_drop(self.proj(x)), q_thw
