"""Multiscale Vision Transformer (MViT v1, Fan et al., ICCV 2021; MViTv2, Li et al., CVPR 2022).

The network is a list of blocks, each described by a :class:`BlockSpec`. Channel width and head count grow by stage
while the token grid shrinks by query pooling. As in the reference implementation, the grid shrinks in the first block
of a stage (its query and skip path are pooled), and the width grows in the last block of the previous stage (MViT:
its MLP outputs the new width) or in the first block of the new stage (MViTv2: its attention does).

The network takes its layers at five seams, as classes or factories with one constructor signature each, and never
asks what they are:

=========== ========================================================================================================
stem        ``stem_layer(in_channels, embed_dim, kernel, stride, padding)``: clip -> tokens and grid
position    ``pos_layer(embed_dim, grid, has_cls)`` after the stem; a block's ``BlockSpec.pos_layer(dim, has_cls)``
            after that block
attention   ``attn_layer(dim, num_heads, *, dim_out, input_size, qkv_bias, mode, kernel_q, stride_q, kernel_kv,
            stride_kv, has_cls, proj_drop, pool_norm_eps)``; a block's ``BlockSpec.attn_layer`` overrides it
mlp         ``mlp_layer(dim, hidden, dim_out, *, has_cls, dropout)``; a block's ``BlockSpec.mlp_layer`` overrides it
head        ``readout_layer(widths)``, given the width of every block, reads the class tokens of all blocks before
            the final norm; ``head_layer(dim, num_classes, dropout)`` classifies the pooled feature
=========== ========================================================================================================

The defaults build MViT v1; ``models/build.py`` is the one table from config names to layers.
"""

import math
from dataclasses import dataclass
from typing import Callable, List, Optional, Sequence, Tuple

import torch
from torch import nn

from .layers import DropPath, Grid, Mlp, init_transformer_weights, round_width
from .patch_embed import PatchEmbed3d
from .pooling_attention import MultiScaleAttention, pool_tokens
from .pos_embed import SeparatePosEmbed

_LN_EPS = 1e-6

LayerFactory = Callable[..., nn.Module]


@dataclass(frozen=True)
class BlockSpec:
    """One block: input and output width, heads, the pooling kernels and strides of Q and K/V (empty = none), and
    the layers that replace the network's own in this block (None: the network's attention and MLP, no positional
    layer after it)."""

    dim: int
    dim_out: int
    num_heads: int
    kernel_q: Tuple[int, ...] = ()
    stride_q: Tuple[int, ...] = ()
    kernel_kv: Tuple[int, ...] = ()
    stride_kv: Tuple[int, ...] = ()
    attn_layer: Optional[LayerFactory] = None
    mlp_layer: Optional[LayerFactory] = None
    pos_layer: Optional[LayerFactory] = None


def _per_block(depth: int, table: Sequence[Sequence[float]]) -> List[Optional[Tuple[int, ...]]]:
    """[[block, v1, v2, ...], ...] -> a list indexed by block of (v1, v2, ...) or None."""
    out: List[Optional[Tuple[int, ...]]] = [None] * depth
    for row in table:
        index = int(row[0])
        if not 0 <= index < depth:
            raise ValueError(f"block index {index} in {list(table)} is outside 0..{depth - 1}")
        out[index] = tuple(int(v) for v in row[1:])
    return out


def _multipliers(depth: int, table: Sequence[Sequence[float]]) -> List[float]:
    mul = [1.0] * (depth + 1)
    for index, value in table:
        mul[int(index)] = float(value)
    return mul


def _default_kernel(stride: Sequence[int]) -> Tuple[int, ...]:
    return tuple(s + 1 if s > 1 else s for s in stride)


def mvit_block_specs(
    depth: int,
    embed_dim: int,
    num_heads: int,
    dim_mul: Sequence[Sequence[float]] = (),
    head_mul: Sequence[Sequence[float]] = (),
    pool_q_stride: Sequence[Sequence[int]] = (),
    pool_kv_stride: Sequence[Sequence[int]] = (),
    pool_kv_stride_adaptive: Optional[Sequence[int]] = None,
    pool_kvq_kernel: Optional[Sequence[int]] = None,
    dim_mul_in_att: bool = False,
) -> List[BlockSpec]:
    """Expands PySlowFast's compact MViT settings into one :class:`BlockSpec` per block.

    ``dim_mul``/``head_mul`` rows are [block, multiplier]; ``pool_q_stride``/``pool_kv_stride`` rows are
    [block, s_t, s_h, s_w]. With ``pool_kv_stride_adaptive``, block 0 pools K/V with that stride and every block with a
    query stride divides it (at least 1), which overrides ``pool_kv_stride``. With ``dim_mul_in_att`` (MViTv2) the
    block named in ``dim_mul`` widens itself, in its attention; otherwise the block before it widens, in its MLP.
    """
    stride_q = _per_block(depth, pool_q_stride)
    if pool_kv_stride_adaptive is not None:
        current = [int(s) for s in pool_kv_stride_adaptive]
        pool_kv_stride = []
        for i in range(depth):
            if stride_q[i] is not None:
                current = [max(c // q, 1) for c, q in zip(current, stride_q[i])]
            pool_kv_stride.append([i, *current])
    stride_kv = _per_block(depth, pool_kv_stride)

    def kernel(stride: Optional[Tuple[int, ...]]) -> Tuple[int, ...]:
        if stride is None:
            return ()
        return tuple(int(k) for k in pool_kvq_kernel) if pool_kvq_kernel is not None else _default_kernel(stride)

    dim_m, head_m = _multipliers(depth, dim_mul), _multipliers(depth, head_mul)
    specs = []
    for i in range(depth):
        if dim_mul_in_att:
            # PySlowFast's rounding, which applies block i's head multiplier to the divisor a second time
            num_heads = round_width(num_heads, head_m[i])
            dim_out = round_width(embed_dim, dim_m[i], divisor=round_width(num_heads, head_m[i]))
        else:
            num_heads = round_width(num_heads, head_m[i])
            embed_dim = round_width(embed_dim, dim_m[i], divisor=num_heads)
            dim_out = round_width(embed_dim, dim_m[i + 1], divisor=round_width(num_heads, head_m[i + 1]))
        specs.append(
            BlockSpec(
                dim=embed_dim,
                dim_out=dim_out,
                num_heads=num_heads,
                kernel_q=kernel(stride_q[i]),
                stride_q=stride_q[i] or (),
                kernel_kv=kernel(stride_kv[i]),
                stride_kv=stride_kv[i] or (),
            )
        )
        if dim_mul_in_att:
            embed_dim = dim_out
    return specs


def stage_indices(blocks: Sequence[BlockSpec]) -> List[int]:
    """The stage of each block, from 0: a stage starts at block 0 and at every block that pools the query."""
    stages, stage = [], 0
    for i, spec in enumerate(blocks):
        if i > 0 and math.prod(spec.stride_q or (1,)) > 1:
            stage += 1
        stages.append(stage)
    return stages


class MultiScaleBlock(nn.Module):
    """Pre-norm transformer block with pooling attention; may pool the grid and widen the channels.

    With ``dim_mul_in_att`` (MViTv2) a widening block widens in its attention, and its skip path is projected from the
    output of the first norm; otherwise (MViT) it widens in its MLP, and the skip path is projected from the output of
    the second norm. ``input_size`` is the grid the block receives at the training clip size.
    """

    def __init__(
        self,
        spec: BlockSpec,
        input_size: Grid,
        attn_layer: LayerFactory = MultiScaleAttention,
        mlp_layer: LayerFactory = Mlp,
        mlp_ratio: float = 4.0,
        qkv_bias: bool = True,
        mode: str = "conv",
        has_cls: bool = True,
        drop_path: float = 0.0,
        dropout: float = 0.0,
        pool_norm_eps: float = _LN_EPS,
        dim_mul_in_att: bool = False,
    ) -> None:
        super().__init__()
        self.has_cls = has_cls
        self.widen_in_attention = dim_mul_in_att and spec.dim != spec.dim_out
        attn_dim = spec.dim_out if dim_mul_in_att else spec.dim
        self.norm1 = nn.LayerNorm(spec.dim, eps=_LN_EPS)
        self.attn = (spec.attn_layer or attn_layer)(
            spec.dim,
            spec.num_heads,
            dim_out=attn_dim,
            input_size=tuple(input_size),
            qkv_bias=qkv_bias,
            mode=mode,
            kernel_q=spec.kernel_q,
            stride_q=spec.stride_q,
            kernel_kv=spec.kernel_kv,
            stride_kv=spec.stride_kv,
            has_cls=has_cls,
            proj_drop=dropout,
            pool_norm_eps=pool_norm_eps,
        )
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()
        self.norm2 = nn.LayerNorm(attn_dim, eps=_LN_EPS)
        self.mlp = (spec.mlp_layer or mlp_layer)(
            attn_dim, int(attn_dim * mlp_ratio), spec.dim_out, has_cls=has_cls, dropout=dropout
        )
        self.proj = nn.Linear(spec.dim, spec.dim_out) if spec.dim != spec.dim_out else None
        # The skip path follows the query pooling: max pool with kernel s + 1 on strided axes.
        if math.prod(spec.stride_q or (1,)) > 1:
            kernel_skip = _default_kernel(spec.stride_q)
            padding_skip = tuple(k // 2 for k in kernel_skip)
            self.pool_skip = nn.MaxPool3d(kernel_skip, stride=spec.stride_q, padding=padding_skip, ceil_mode=False)
        else:
            self.pool_skip = None
        self.pos = spec.pos_layer(spec.dim_out, has_cls) if spec.pos_layer is not None else None

    def forward(self, x: torch.Tensor, thw: Grid) -> Tuple[torch.Tensor, Grid]:
        # (B, 1 + THW, C) -> (B, 1 + T'H'W', C_out)
        x_norm = self.norm1(x)
        x_attn, new_thw = self.attn(x_norm, thw)
        if self.widen_in_attention:
            x = self.proj(x_norm)
        if self.pool_skip is not None:
            x, _ = pool_tokens(x, self.pool_skip, thw, self.has_cls)
        x = x + self.drop_path(x_attn)
        x_norm = self.norm2(x)
        if self.proj is not None and not self.widen_in_attention:
            x = self.proj(x_norm)
        x = x + self.drop_path(self.mlp(x_norm, new_thw))
        if self.pos is not None:
            x = self.pos(x, new_thw)
        return x, new_thw


class TransformerHead(nn.Module):
    """Dropout and a linear classifier over the pooled feature. Returns logits (no softmax)."""

    def __init__(self, dim: int, num_classes: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.projection = nn.Linear(dim, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.projection(self.dropout(x))


def block_input_sizes(blocks: Sequence[BlockSpec], grid: Grid) -> List[Grid]:
    """The grid each block receives when the stem outputs ``grid``: each query stride divides it (floor), as in the
    reference."""
    sizes = []
    for spec in blocks:
        sizes.append(tuple(grid))
        if spec.stride_q:
            grid = tuple(g // s for g, s in zip(grid, spec.stride_q))
    return sizes


class MViT(nn.Module):
    """MViT for video: (B, 3, T, H, W) float clips -> (B, num_classes) logits.

    ``input_size`` (T, H, W) is the training clip size: it fixes the size of the positional tables. Other sizes are
    accepted at run time and served by interpolating the tables.

    The layers at the seams (see the module docstring) default to MViT's. ``use_mean_pooling`` classifies from the
    mean of the grid tokens, normalised after pooling; otherwise from the normalised class token, or the mean of the
    normalised tokens when there is none (``cls_embed_on=False``).
    """

    def __init__(
        self,
        blocks: Sequence[BlockSpec],
        num_classes: int,
        input_size: Sequence[int] = (16, 224, 224),
        in_channels: int = 3,
        patch_kernel: Sequence[int] = (3, 7, 7),
        patch_stride: Sequence[int] = (2, 4, 4),
        patch_padding: Sequence[int] = (1, 3, 3),
        mlp_ratio: float = 4.0,
        qkv_bias: bool = True,
        mode: str = "conv",
        cls_embed_on: bool = True,
        norm_stem: bool = False,
        drop_path_rate: float = 0.0,
        dropout: float = 0.0,
        head_dropout: float = 0.5,
        pool_norm_eps: float = _LN_EPS,
        zero_decay_pos_cls: bool = True,
        dim_mul_in_att: bool = False,
        use_mean_pooling: bool = False,
        stem_layer: LayerFactory = PatchEmbed3d,
        pos_layer: LayerFactory = SeparatePosEmbed,
        attn_layer: LayerFactory = MultiScaleAttention,
        mlp_layer: LayerFactory = Mlp,
        readout_layer: Optional[LayerFactory] = None,
        head_layer: LayerFactory = TransformerHead,
    ) -> None:
        super().__init__()
        embed_dim = blocks[0].dim
        self.cls_embed_on = cls_embed_on
        self.use_mean_pooling = use_mean_pooling
        self.zero_decay_pos_cls = zero_decay_pos_cls
        self.patch_embed = stem_layer(in_channels, embed_dim, patch_kernel, patch_stride, patch_padding)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim)) if cls_embed_on else None
        grid = self.patch_embed.grid_size(input_size)
        self.pos_embed = pos_layer(embed_dim, grid, cls_embed_on)
        self.pos_drop = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.norm_stem = nn.LayerNorm(embed_dim, eps=_LN_EPS) if norm_stem else None
        rates = torch.linspace(0, drop_path_rate, len(blocks)).tolist()
        sizes = block_input_sizes(blocks, grid)
        self.blocks = nn.ModuleList(
            MultiScaleBlock(
                spec, size, attn_layer, mlp_layer, mlp_ratio, qkv_bias, mode, cls_embed_on, rate, dropout,
                pool_norm_eps, dim_mul_in_att,
            )
            for spec, size, rate in zip(blocks, sizes, rates)
        )
        self.num_features = blocks[-1].dim_out
        # reads the class tokens of every block; None reads the last block's tokens
        self.readout = readout_layer([spec.dim_out for spec in blocks]) if readout_layer is not None else None
        self.norm = nn.LayerNorm(self.num_features, eps=_LN_EPS)
        self.head = head_layer(self.num_features, num_classes, head_dropout)
        self.apply(init_transformer_weights)
        if self.cls_token is not None:
            nn.init.trunc_normal_(self.cls_token, std=0.02)

    def no_weight_decay(self) -> List[str]:
        """Names of the parameters that must not decay: those its layers name in ``no_weight_decay()`` always; with
        ``zero_decay_pos_cls``, also those they name in ``position_parameters()`` (position tables, position or layer
        embeddings) and the class token."""
        names = []
        for prefix, module in self.named_modules():
            if module is self:
                continue
            names += [f"{prefix}.{n}" for n in getattr(module, "no_weight_decay", list)()]
            if self.zero_decay_pos_cls:
                names += [f"{prefix}.{n}" for n in getattr(module, "position_parameters", list)()]
        if self.zero_decay_pos_cls and self.cls_token is not None:
            names.append("cls_token")
        return names

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, T, H, W) -> the normalised feature (B, C) that the head classifies."""
        x, thw = self.patch_embed(x)
        if self.cls_token is not None:
            x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1)
        x = self.pos_drop(self.pos_embed(x, thw))
        if self.norm_stem is not None:
            x = self.norm_stem(x)
        class_tokens = []
        for block in self.blocks:
            x, thw = block(x, thw)
            if self.readout is not None:
                class_tokens.append(x[:, :1])
        if self.readout is not None:
            return self.norm(self.readout(class_tokens))[:, 0]
        if self.use_mean_pooling:
            return self.norm((x[:, 1:] if self.cls_embed_on else x).mean(dim=1))
        # every token is normalised before the class token is taken, as in the reference (and in its FLOP count)
        x = self.norm(x)
        return x[:, 0] if self.cls_embed_on else x.mean(dim=1)

    def forward_head(self, x: torch.Tensor) -> torch.Tensor:
        """Feature (B, C) -> logits (B, num_classes)."""
        return self.head(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 5:
            raise ValueError(f"MViT expects a clip batch (B, C, T, H, W), got a tensor of shape {tuple(x.shape)}")
        return self.forward_head(self.forward_features(x))
