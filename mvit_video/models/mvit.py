"""Multiscale Vision Transformer (MViT v1, Fan et al., ICCV 2021).

The network is a list of blocks, each described by a :class:`BlockSpec`. Channel width and head count grow by stage
while the token grid shrinks by query pooling. As in the reference implementation, the width grows in the last block
of a stage (its MLP outputs the new width and its skip path is projected), and the grid shrinks in the first block of
the next stage (its query and skip path are pooled).

Variants swap layers in at five seams, by name: the stem, the positional encoding (PEG after chosen blocks), each
block's attention and MLP (``BlockSpec.attention``/``mlp``), and the head (LCA). The plain names build MViT as the
paper describes it; every other name is resolved in ``variants.py``.
"""

import math
from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple

import torch
from torch import nn

from .layers import DropPath, Grid, Mlp, init_transformer_weights, round_width
from .lca import LCA
from .patch_embed import PatchEmbed3d
from .peg import PEG
from .pooling_attention import MultiScaleAttention, pool_tokens
from .pos_embed import build_pos_embed
from .variants import VariantOptions, build_attention, build_mlp, build_stem

_LN_EPS = 1e-6


@dataclass(frozen=True)
class BlockSpec:
    """One block: input and output width, heads, the pooling kernels and strides of Q and K/V (empty = none), and
    the names of its attention and MLP ("mhpa" and "mlp" in MViT)."""

    dim: int
    dim_out: int
    num_heads: int
    kernel_q: Tuple[int, ...] = ()
    stride_q: Tuple[int, ...] = ()
    kernel_kv: Tuple[int, ...] = ()
    stride_kv: Tuple[int, ...] = ()
    attention: str = "mhpa"
    mlp: str = "mlp"


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
) -> List[BlockSpec]:
    """Expands PySlowFast's compact MViT settings into one :class:`BlockSpec` per block.

    ``dim_mul``/``head_mul`` rows are [block, multiplier]; ``pool_q_stride``/``pool_kv_stride`` rows are
    [block, s_t, s_h, s_w]. With ``pool_kv_stride_adaptive``, block 0 pools K/V with that stride and every block with a
    query stride divides it (at least 1), which overrides ``pool_kv_stride``.
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
    """Pre-norm transformer block with pooling attention; may pool the grid and widen the channels."""

    def __init__(
        self,
        spec: BlockSpec,
        mlp_ratio: float = 4.0,
        qkv_bias: bool = True,
        mode: str = "conv",
        has_cls: bool = True,
        drop_path: float = 0.0,
        dropout: float = 0.0,
        pool_norm_eps: float = _LN_EPS,
        options: VariantOptions = VariantOptions(),
    ) -> None:
        super().__init__()
        self.has_cls = has_cls
        self.norm1 = nn.LayerNorm(spec.dim, eps=_LN_EPS)
        attention = dict(
            qkv_bias=qkv_bias,
            mode=mode,
            kernel_q=spec.kernel_q,
            stride_q=spec.stride_q,
            has_cls=has_cls,
            proj_drop=dropout,
            pool_norm_eps=pool_norm_eps,
        )
        if spec.attention == "mhpa":
            self.attn = MultiScaleAttention(
                spec.dim, spec.num_heads, kernel_kv=spec.kernel_kv, stride_kv=spec.stride_kv, **attention
            )
        else:
            self.attn = build_attention(spec.attention, spec.dim, spec.num_heads, options=options, **attention)
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()
        self.norm2 = nn.LayerNorm(spec.dim, eps=_LN_EPS)
        hidden = int(spec.dim * mlp_ratio)
        if spec.mlp == "mlp":
            self.mlp = Mlp(spec.dim, hidden, spec.dim_out, dropout=dropout)
        else:
            self.mlp = build_mlp(spec.mlp, spec.dim, hidden, spec.dim_out, has_cls, dropout)
        self.proj = nn.Linear(spec.dim, spec.dim_out) if spec.dim != spec.dim_out else None
        # The skip path follows the query pooling: max pool with kernel s + 1 on strided axes.
        if math.prod(spec.stride_q or (1,)) > 1:
            kernel_skip = _default_kernel(spec.stride_q)
            padding_skip = tuple(k // 2 for k in kernel_skip)
            self.pool_skip = nn.MaxPool3d(kernel_skip, stride=spec.stride_q, padding=padding_skip, ceil_mode=False)
        else:
            self.pool_skip = None

    def forward(self, x: torch.Tensor, thw: Grid) -> Tuple[torch.Tensor, Grid]:
        # (B, 1 + THW, C) -> (B, 1 + T'H'W', C_out)
        x_attn, new_thw = self.attn(self.norm1(x), thw)
        if self.pool_skip is not None:
            x, _ = pool_tokens(x, self.pool_skip, thw, self.has_cls)
        x = x + self.drop_path(x_attn)
        x_norm = self.norm2(x)
        if self.proj is not None:
            x = self.proj(x_norm)
        return x + self.drop_path(self.mlp(x_norm, new_thw)), new_thw


class TransformerHead(nn.Module):
    """Dropout and a linear classifier over the pooled feature. Returns logits (no softmax)."""

    def __init__(self, dim: int, num_classes: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.projection = nn.Linear(dim, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.projection(self.dropout(x))


class MViT(nn.Module):
    """MViT for video: (B, 3, T, H, W) float clips -> (B, num_classes) logits.

    ``input_size`` (T, H, W) is the training clip size: it fixes the size of the positional tables. Other sizes are
    accepted at run time and served by interpolating the tables.

    Variants (see ``variants.py``): ``stem`` "cube" (MViT), "i2t" or "overlap"; ``peg_blocks``, the blocks after which
    a PEG encodes position (CPVT; usually with ``pos_embed="none"``); ``head`` "linear" (MViT) or "lca", which
    classifies from the class tokens of every block (needs ``cls_embed_on``); ``variant_options``, the settings of
    the variant layers. The attention and MLP of each block are named in its :class:`BlockSpec`.
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
        pos_embed: str = "separate",
        norm_stem: bool = False,
        drop_path_rate: float = 0.0,
        dropout: float = 0.0,
        head_dropout: float = 0.5,
        pool_norm_eps: float = _LN_EPS,
        zero_decay_pos_cls: bool = True,
        stem: str = "cube",
        peg_blocks: Sequence[int] = (),
        head: str = "linear",
        variant_options: VariantOptions = VariantOptions(),
    ) -> None:
        super().__init__()
        embed_dim = blocks[0].dim
        self.cls_embed_on = cls_embed_on
        self.zero_decay_pos_cls = zero_decay_pos_cls
        if stem == "cube":
            self.patch_embed = PatchEmbed3d(in_channels, embed_dim, patch_kernel, patch_stride, patch_padding)
        else:
            self.patch_embed = build_stem(
                stem, in_channels, embed_dim, patch_kernel, patch_stride, patch_padding, variant_options
            )
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim)) if cls_embed_on else None
        grid = self.patch_embed.grid_size(input_size)
        self.pos_embed = build_pos_embed(pos_embed, embed_dim, grid, cls_embed_on)
        self.pos_drop = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.norm_stem = nn.LayerNorm(embed_dim, eps=_LN_EPS) if norm_stem else None
        rates = torch.linspace(0, drop_path_rate, len(blocks)).tolist()
        self.blocks = nn.ModuleList(
            MultiScaleBlock(
                spec, mlp_ratio, qkv_bias, mode, cls_embed_on, rate, dropout, pool_norm_eps, options=variant_options
            )
            for spec, rate in zip(blocks, rates)
        )
        # PEGs after the blocks named by their index (keys "0", "1", ...); none in MViT
        self.peg = None
        if peg_blocks:
            self.peg = nn.ModuleDict({str(i): PEG(blocks[i].dim_out, cls_embed_on) for i in sorted(set(peg_blocks))})
        self.num_features = blocks[-1].dim_out
        self.lca = self._build_lca(head, blocks, qkv_bias, cls_embed_on)
        self.norm = nn.LayerNorm(self.num_features, eps=_LN_EPS)
        self.head = TransformerHead(self.num_features, num_classes, head_dropout)
        self.apply(init_transformer_weights)
        if self.cls_token is not None:
            nn.init.trunc_normal_(self.cls_token, std=0.02)

    @staticmethod
    def _build_lca(head: str, blocks: Sequence[BlockSpec], qkv_bias: bool, cls_embed_on: bool) -> Optional[LCA]:
        if head == "linear":
            return None
        if head != "lca":
            raise ValueError(f"unknown head {head!r} (expected linear or lca)")
        if not cls_embed_on:
            raise ValueError("the LCA head attends over class tokens: it needs cls_embed_on=True")
        return LCA([spec.dim_out for spec in blocks], blocks[-1].dim_out, blocks[-1].num_heads, qkv_bias=qkv_bias)

    def no_weight_decay(self) -> List[str]:
        """Names of the parameters that must not decay: PEGs always (CPVT); with ``zero_decay_pos_cls``, also the
        positional tables, the class token and LCA's layer embedding."""
        names = [f"peg.{name}" for name, _ in self.peg.named_parameters()] if self.peg is not None else []
        if not self.zero_decay_pos_cls:
            return names
        names += [f"pos_embed.{name}" for name, _ in self.pos_embed.named_parameters()]
        names += ["lca.layer_embed"] if self.lca is not None else []
        return names + (["cls_token"] if self.cls_token is not None else [])

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, T, H, W) -> normalised tokens (B, 1 + T'H'W', C) of the last stage; with LCA, its class token
        (B, 1, C)."""
        x, thw = self.patch_embed(x)
        if self.cls_token is not None:
            x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1)
        x = self.pos_drop(self.pos_embed(x, thw))
        if self.norm_stem is not None:
            x = self.norm_stem(x)
        class_tokens = []
        for i, block in enumerate(self.blocks):
            x, thw = block(x, thw)
            if self.peg is not None and str(i) in self.peg:
                x = self.peg[str(i)](x, thw)
            if self.lca is not None:
                class_tokens.append(x[:, :1])
        if self.lca is not None:
            x = self.lca(class_tokens)
        return self.norm(x)

    def forward_head(self, x: torch.Tensor) -> torch.Tensor:
        """Tokens (B, N, C) -> logits (B, num_classes), from the class token or the mean of the tokens."""
        x = x[:, 0] if self.cls_embed_on else x.mean(dim=1)
        return self.head(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 5:
            raise ValueError(f"MViT expects a clip batch (B, C, T, H, W), got a tensor of shape {tuple(x.shape)}")
        return self.forward_head(self.forward_features(x))
