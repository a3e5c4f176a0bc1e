"""Space-time cube patchify: one Conv3d turns a clip into a grid of tokens."""

import math
from typing import Sequence, Tuple

import torch
from torch import nn


class PatchEmbed3d(nn.Module):
    """Conv3d cube embedding; returns the tokens and the (T, H, W) size of their grid."""

    def __init__(
        self,
        in_channels: int,
        embed_dim: int,
        kernel: Sequence[int],
        stride: Sequence[int],
        padding: Sequence[int],
    ) -> None:
        super().__init__()
        self.proj = nn.Conv3d(in_channels, embed_dim, tuple(kernel), stride=tuple(stride), padding=tuple(padding))

    def grid_size(self, input_size: Sequence[int]) -> Tuple[int, int, int]:
        """The token grid (T', H', W') produced for a clip of size (T, H, W)."""
        k, s, p = self.proj.kernel_size, self.proj.stride, self.proj.padding
        return tuple((n + 2 * p[d] - k[d]) // s[d] + 1 for d, n in enumerate(input_size))

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, Tuple[int, int, int]]:
        x = self.proj(x)  # (B, 3, T, H, W) -> (B, C, T', H', W')
        thw = tuple(x.shape[2:])
        return x.flatten(2).transpose(1, 2), thw  # -> (B, T'H'W', C)


class OverlapPatchEmbed3d(PatchEmbed3d):
    """PVT v2's overlapping patch embedding: the cube embedding (its kernel 2S - 1 > stride S already overlaps)
    followed by LayerNorm over the tokens, with PVT v2's convolution init."""

    def __init__(
        self,
        in_channels: int,
        embed_dim: int,
        kernel: Sequence[int],
        stride: Sequence[int],
        padding: Sequence[int],
    ) -> None:
        super().__init__(in_channels, embed_dim, kernel, stride, padding)
        # PVT v2 inits its convolutions with a normal of std sqrt(2 / fan_out), fan_out = k_t * k_h * k_w * embed_dim
        # (not PyTorch's default), and a zero bias.
        fan_out = math.prod(self.proj.kernel_size) * embed_dim
        nn.init.normal_(self.proj.weight, std=math.sqrt(2.0 / fan_out))
        nn.init.zeros_(self.proj.bias)
        self.norm = nn.LayerNorm(embed_dim)

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, Tuple[int, int, int]]:
        tokens, thw = super().forward(x)
        return self.norm(tokens), thw
