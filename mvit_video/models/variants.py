"""The layers that variants of MViT swap in at its seams, chosen by name.

MViT has five seams: the stem, the positional encoding, the attention, the MLP and the head. ``mvit.py`` builds
the plain layers itself ("cube", "separate"/"joint"/"none", "mhpa", "mlp", "linear") and asks this module for any
other name:

=========== ========================================================================================================
stem        "i2t": CeiT's image-to-tokens; "overlap": PVT v2's overlapping patch embedding (cube + LayerNorm)
position    PEG (CPVT) after chosen blocks; see :class:`~mvit_video.models.peg.PEG`
attention   "elsa": ELSA (no query pooling); "linear_sra": MHPA with PVT v2's linear spatial-reduction K/V
mlp         "leff": CeiT's LeFF; "convffn": PVT v2's ConvFFN
head        "lca": CeiT's layer-wise class-token attention before the classifier
=========== ========================================================================================================
"""

from dataclasses import dataclass
from typing import Sequence, Tuple

from torch import nn

from .conv_ffn import ConvFFN
from .elsa import ELSA
from .i2t import ImageToTokens3d
from .leff import LeFF
from .linear_sra import LinearSRAttention
from .patch_embed import OverlapPatchEmbed3d

STEMS = ("cube", "i2t", "overlap")
ATTENTIONS = ("mhpa", "elsa", "linear_sra")
MLPS = ("mlp", "leff", "convffn")
HEADS = ("linear", "lca")


@dataclass(frozen=True)
class VariantOptions:
    """Settings of the variant layers (unused by plain MViT). The defaults are the papers'."""

    i2t_channels: int = 64
    elsa_kernel: Tuple[int, int, int] = (3, 5, 5)
    elsa_lam: float = 1.0
    elsa_gamma: float = 1.0
    elsa_group_width: int = 8
    sra_pool_size: Tuple[int, int, int] = (8, 7, 7)


def _unknown(seam: str, name: str, names: Sequence[str]) -> ValueError:
    return ValueError(f"unknown {seam} {name!r} (expected one of {', '.join(names)})")


def build_stem(
    name: str,
    in_channels: int,
    embed_dim: int,
    kernel: Sequence[int],
    stride: Sequence[int],
    padding: Sequence[int],
    options: VariantOptions,
) -> nn.Module:
    """A variant stem: clip (B, 3, T, H, W) -> tokens (B, T'H'W', embed_dim) and grid, on the cube stem's grid."""
    if name == "i2t":
        return ImageToTokens3d(in_channels, embed_dim, stride, options.i2t_channels)
    if name == "overlap":
        return OverlapPatchEmbed3d(in_channels, embed_dim, kernel, stride, padding)
    raise _unknown("stem", name, STEMS)


def build_attention(
    name: str,
    dim: int,
    num_heads: int,
    qkv_bias: bool,
    mode: str,
    kernel_q: Sequence[int],
    stride_q: Sequence[int],
    has_cls: bool,
    proj_drop: float,
    pool_norm_eps: float,
    options: VariantOptions,
) -> nn.Module:
    """A variant attention: (B, [1 +] THW, dim) and grid -> (B, [1 +] T'H'W', dim) and the query-pooled grid.

    Raises:
        ValueError: ELSA asked to pool the query (it keeps the grid; MViT keeps MHPA in those blocks).
    """
    if name == "elsa":
        if any(s > 1 for s in stride_q):
            raise ValueError(f"ELSA cannot pool the query (stride {tuple(stride_q)}): keep MHPA in this block")
        return ELSA(
            dim,
            num_heads,
            options.elsa_kernel,
            options.elsa_lam,
            options.elsa_gamma,
            options.elsa_group_width,
            qkv_bias=qkv_bias,
            has_cls=has_cls,
            proj_drop=proj_drop,
        )
    if name == "linear_sra":
        return LinearSRAttention(
            dim, num_heads, options.sra_pool_size, qkv_bias, mode, kernel_q, stride_q, has_cls, proj_drop, pool_norm_eps
        )
    raise _unknown("attention", name, ATTENTIONS)


def build_mlp(name: str, dim: int, hidden: int, dim_out: int, has_cls: bool, dropout: float) -> nn.Module:
    """A variant MLP: (B, [1 +] THW, dim) and grid -> (B, [1 +] THW, dim_out)."""
    if name == "leff":
        return LeFF(dim, hidden, dim_out, has_cls, dropout)
    if name == "convffn":
        return ConvFFN(dim, hidden, dim_out, has_cls, dropout)
    raise _unknown("MLP", name, MLPS)
