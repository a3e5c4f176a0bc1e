"""Adapters that give the variant layers MViT's seam signatures (see ``mvit.py``).

The variant classes keep the constructors of their papers; the functions here take the seam's arguments, check that
the variant can honour them, and build the layer. ``models/build.py`` maps config names to these.

=========== ========================================================================================================
stem        :func:`i2t_stem`: CeiT's image-to-tokens; PVT v2's overlapping embedding takes the seam as it is
attention   :func:`elsa_attention`: ELSA (no query pooling); :func:`linear_sra_attention`: MHPA with PVT v2's
            linear spatial-reduction K/V
=========== ========================================================================================================
"""

from dataclasses import dataclass
from typing import Sequence, Tuple

from torch import nn

from .elsa import ELSA
from .i2t import ImageToTokens3d
from .layers import Grid
from .linear_sra import LinearSRAttention


@dataclass(frozen=True)
class VariantOptions:
    """Settings of the variant layers (unused by plain MViT). The defaults are the papers'."""

    i2t_channels: int = 64
    elsa_kernel: Tuple[int, int, int] = (3, 5, 5)
    elsa_lam: float = 1.0
    elsa_gamma: float = 1.0
    elsa_group_width: int = 8
    sra_pool_size: Tuple[int, int, int] = (8, 7, 7)
    # PVT v2's "linear" switch: with linear SRA, its ConvFFN also rectifies fc1's output (B2-Li)
    pvt_linear: bool = False


def _check_width(name: str, dim: int, dim_out: int) -> None:
    if dim_out != dim:
        raise ValueError(
            f"{name} keeps the width of its input ({dim}) but the block widens in its attention to {dim_out}: "
            "set MVIT.DIM_MUL_IN_ATT False with this attention"
        )


def i2t_stem(
    in_channels: int, embed_dim: int, kernel: Sequence[int], stride: Sequence[int], padding: Sequence[int], *,
    channels: int = 64,
) -> nn.Module:
    """CeiT's I2T stem on the cube stem's grid (the cube's kernel and padding do not apply)."""
    return ImageToTokens3d(in_channels, embed_dim, stride, channels)


def elsa_attention(
    dim: int, num_heads: int, *, dim_out: int, input_size: Grid, qkv_bias: bool, mode: str,
    kernel_q: Sequence[int], stride_q: Sequence[int], kernel_kv: Sequence[int], stride_kv: Sequence[int],
    has_cls: bool, proj_drop: float, pool_norm_eps: float, options: VariantOptions = VariantOptions(),
) -> nn.Module:
    """ELSA in place of MHPA (K/V pooling has no part in it).

    Raises:
        ValueError: the block pools the query (ELSA keeps the grid; MViT keeps MHPA in those blocks) or widens in
            its attention.
    """
    if any(s > 1 for s in stride_q):
        raise ValueError(f"ELSA cannot pool the query (stride {tuple(stride_q)}): keep MHPA in this block")
    _check_width("ELSA", dim, dim_out)
    return ELSA(
        dim, num_heads, options.elsa_kernel, options.elsa_lam, options.elsa_gamma, options.elsa_group_width,
        qkv_bias=qkv_bias, has_cls=has_cls, proj_drop=proj_drop,
    )


def linear_sra_attention(
    dim: int, num_heads: int, *, dim_out: int, input_size: Grid, qkv_bias: bool, mode: str,
    kernel_q: Sequence[int], stride_q: Sequence[int], kernel_kv: Sequence[int], stride_kv: Sequence[int],
    has_cls: bool, proj_drop: float, pool_norm_eps: float, options: VariantOptions = VariantOptions(),
) -> nn.Module:
    """MHPA whose K/V pooling is PVT v2's linear spatial reduction to ``options.sra_pool_size``.

    Raises:
        ValueError: the block widens in its attention.
    """
    _check_width("linear SRA", dim, dim_out)
    return LinearSRAttention(
        dim, num_heads, options.sra_pool_size, qkv_bias, mode, kernel_q, stride_q, has_cls, proj_drop, pool_norm_eps
    )
