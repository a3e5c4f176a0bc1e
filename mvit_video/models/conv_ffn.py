"""Convolutional feed-forward network of PVT v2 (Wang et al., "PVT v2: Improved Baselines with Pyramid Vision
Transformer"), in 3D.

A depthwise 3x3x3 convolution between the two Linear layers of the MLP mixes each token with its space-time
neighbours; its zero padding also gives position, which is why PVT v2 drops the positional embedding.
"""

import math

import torch
from torch import nn

from .layers import Grid, join_cls, split_cls, tokens_to_volume, volume_to_tokens


class ConvFFN(nn.Module):
    """fc1 [-> ReLU] -> depthwise Conv3d 3x3x3 on the grid -> GELU -> fc2:
    (B, [1 +] THW, dim) -> (B, [1 +] THW, dim_out).

    ``linear``: PVT v2's linear variant (B2-Li, the one with linear spatial-reduction attention), which puts a ReLU
    after fc1. The class token skips the convolution and takes the pointwise steps (fc1, [ReLU,] GELU, fc2) like
    every token.
    """

    def __init__(
        self,
        dim: int,
        hidden: int,
        dim_out: int,
        has_cls: bool = True,
        dropout: float = 0.0,
        kernel: int = 3,
        linear: bool = False,
    ) -> None:
        super().__init__()
        self.has_cls = has_cls
        self.fc1 = nn.Linear(dim, hidden)
        self.relu = nn.ReLU() if linear else nn.Identity()
        self.dwconv = nn.Conv3d(hidden, hidden, kernel, padding=kernel // 2, groups=hidden)
        # PVT v2's convolution init: normal with std sqrt(2 / fan_out), zero bias.
        nn.init.normal_(self.dwconv.weight, std=math.sqrt(2.0 / kernel**3))
        nn.init.zeros_(self.dwconv.bias)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim_out)
        self.drop = nn.Dropout(dropout) if dropout > 0 else nn.Identity()

    def forward(self, x: torch.Tensor, thw: Grid) -> torch.Tensor:
        cls, grid = split_cls(self.relu(self.fc1(x)), self.has_cls)
        grid = volume_to_tokens(self.dwconv(tokens_to_volume(grid, thw)))  # (B, THW, hidden), mixed on the grid
        x = self.drop(self.act(join_cls(cls, grid)))
        return self.drop(self.fc2(x))
