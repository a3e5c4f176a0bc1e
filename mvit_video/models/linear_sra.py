"""Linear spatial-reduction attention of PVT v2 (Wang et al., "PVT v2: Improved Baselines with Pyramid Vision
Transformer"), in 3D, as an alternative to MViT's key/value pooling.

Keys and values come from the grid average-pooled to a fixed size (T_p, 7, 7), then a 1x1x1 convolution, LayerNorm
and GELU: their number does not depend on the input (a smaller grid is enlarged to it, as in the official code), so
attention costs O(N) for any clip size. Queries are pooled as in MHPA, so the stage transitions of MViT are
unchanged.
"""

import functools
import math
from typing import List, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from .layers import Grid
from .pooling_attention import build_attention_pool, heads_of, pool_tokens


def _enlarging_bins(size: int, target: int) -> Tuple[List[int], List[int]]:
    """The first and last input cell of each adaptive-average bin when ``target`` > ``size``: every bin then holds
    one or two cells."""
    first = [i * size // target for i in range(target)]
    last = [-(-(i + 1) * size // target) - 1 for i in range(target)]
    return first, last


def adaptive_avg_pool_to(volume: torch.Tensor, size: Grid) -> torch.Tensor:
    """(B, C, T, H, W) -> (B, C, *size): adaptive average pooling to a fixed size, which enlarges the axes shorter
    than ``size`` (as PVT v2's AdaptiveAvgPool2d(7) does on a grid smaller than 7 x 7).

    Adaptive pooling is separable, so the enlarged axes are done first, each bin as the mean of its first and last
    cell: ONNX has no adaptive pooling that enlarges, but exports this gather.
    """
    for axis, (n, target) in enumerate(zip(volume.shape[2:], size)):
        if target > n:
            first, last = (torch.tensor(cells, device=volume.device) for cells in _enlarging_bins(n, target))
            volume = (volume.index_select(2 + axis, first) + volume.index_select(2 + axis, last)) / 2
    return F.adaptive_avg_pool3d(volume, size)


class LinearSpatialReduction(nn.Module):
    """(B, [1 +] THW, C) -> (B, [1 +] T_p * H_p * W_p, C): adaptive average pooling of the grid to ``pool_size``,
    then 1x1x1 conv, LayerNorm and GELU.

    As in PVT v2, the pooled size is fixed whatever the grid, so a grid smaller than ``pool_size`` is enlarged. The
    class token is not pooled (as in MHPA) but takes the pointwise steps like every token: the 1x1x1 convolution
    is applied to the tokens as the Linear it equals.
    """

    def __init__(self, dim: int, pool_size: Sequence[int] = (8, 7, 7), has_cls: bool = True) -> None:
        super().__init__()
        self.pool_size = tuple(int(p) for p in pool_size)
        self.has_cls = has_cls
        # A convolution, not a Linear, so that it takes PVT v2's convolution init (normal, std sqrt(2 / fan_out),
        # fan_out = dim for a 1x1x1 kernel; zero bias), which MViT's Linear init would otherwise overwrite.
        self.sr = nn.Conv3d(dim, dim, 1)
        nn.init.normal_(self.sr.weight, std=math.sqrt(2.0 / dim))
        nn.init.zeros_(self.sr.bias)
        self.norm = nn.LayerNorm(dim)
        self.act = nn.GELU()

    def forward(self, x: torch.Tensor, thw: Grid) -> torch.Tensor:
        pool = functools.partial(adaptive_avg_pool_to, size=self.pool_size)
        x, _ = pool_tokens(x, pool, thw, self.has_cls)
        x = F.linear(x, self.sr.weight.flatten(1), self.sr.bias)  # the 1x1x1 conv on (B, [1 +] T_p H_p W_p, C)
        return self.act(self.norm(x))


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
        self.pool_q = build_attention_pool(mode, self.head_dim, kernel_q, stride_q, pool_norm_eps, num_heads)
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(proj_drop) if proj_drop > 0 else nn.Identity()

    def forward(self, x: torch.Tensor, thw: Grid) -> Tuple[torch.Tensor, Grid]:
        batch, length, dim = x.shape
        q, q_thw = self.q_proj(x), thw  # (B, N, C) -> (B, heads, N', d), pooled or not
        if self.pool_q is not None:
            q, q_thw = self.pool_q(q, thw, self.has_cls)
        else:
            q = q.reshape(batch, length, self.num_heads, self.head_dim).transpose(1, 2)
        kv = self.kv_proj(self.reduce(x, thw))  # (B, [1 +] T_p H_p W_p, 2C)
        k, v = kv.reshape(batch, -1, 2, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        x = F.scaled_dot_product_attention(q, k, v)
        x = x.transpose(1, 2).reshape(batch, -1, dim)  # (B, heads, N', d) -> (B, N', C)
        return self.proj_drop(self.proj(x)), q_thw
