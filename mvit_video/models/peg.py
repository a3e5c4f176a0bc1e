"""Positional encoding generator (PEG) of CPVT (Chu et al., "Conditional Positional Encodings for Vision
Transformers"), in 3D.

A depthwise 3x3x3 convolution over the token grid, added to its input. Its zero padding tells each token how far it
is from the clip's borders, so position is encoded from the input itself: no table is learned at a fixed grid, and a
model whose only positional encoding is PEG runs at any T, H, W without interpolation.
"""

import math
from typing import List

import torch
from torch import nn

from .layers import Grid, join_cls, split_cls, tokens_to_volume, volume_to_tokens


class PEG(nn.Module):
    """x + DWConv3d(x) on the (T, H, W) grid; the class token passes unchanged. 28 * dim parameters.

    Input and output (B, [1 +] THW, dim).
    """

    def __init__(self, dim: int, has_cls: bool = True, kernel: int = 3) -> None:
        super().__init__()
        self.has_cls = has_cls
        self.proj = nn.Conv3d(dim, dim, kernel, padding=kernel // 2, groups=dim)
        # CPVT's init: normal with std sqrt(2 / fan_out), fan_out = k^3 * dim / groups; zero bias.
        fan_out = kernel**3 * dim // dim
        nn.init.normal_(self.proj.weight, std=math.sqrt(2.0 / fan_out))
        nn.init.zeros_(self.proj.bias)

    def no_weight_decay(self) -> List[str]:
        """All its parameters: CPVT never decays the PEG."""
        return [name for name, _ in self.named_parameters()]

    def forward(self, x: torch.Tensor, thw: Grid) -> torch.Tensor:
        cls, grid = split_cls(x, self.has_cls)
        volume = tokens_to_volume(grid, thw)  # (B, THW, C) -> (B, C, T, H, W)
        grid = volume_to_tokens(volume + self.proj(volume))
        return join_cls(cls, grid)
