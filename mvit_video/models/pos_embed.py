"""Absolute positional embeddings for a (T, H, W) token grid, with an optional class-token entry.

The tables are learned at the training grid; other grids (more frames, larger crops) are served by interpolating them,
so a model trained at 16x224 runs at 32x256 without retraining.
"""

from typing import List, Tuple

import torch
import torch.nn.functional as F
from torch import nn

Grid = Tuple[int, int, int]


def _resize_1d(table: torch.Tensor, length: int) -> torch.Tensor:
    # (1, L, C) -> (1, length, C)
    if table.shape[1] == length:
        return table
    return F.interpolate(table.transpose(1, 2), size=length, mode="linear", align_corners=False).transpose(1, 2)


def _resize_grid(table: torch.Tensor, src: Tuple[int, ...], dst: Tuple[int, ...]) -> torch.Tensor:
    # (1, prod(src), C) -> (1, prod(dst), C); bicubic for 2D grids, trilinear for 3D.
    if tuple(src) == tuple(dst):
        return table
    channels = table.shape[-1]
    grid = table.transpose(1, 2).reshape(1, channels, *src)
    mode = "bicubic" if len(src) == 2 else "trilinear"
    grid = F.interpolate(grid, size=tuple(dst), mode=mode, align_corners=False)
    return grid.flatten(2).transpose(1, 2)


class SeparatePosEmbed(nn.Module):
    """Space and time tables added as spatial[h, w] + temporal[t], plus a class entry (the MViT default)."""

    def __init__(self, embed_dim: int, grid: Grid, cls_token: bool) -> None:
        super().__init__()
        self.grid = tuple(grid)
        self.spatial = nn.Parameter(torch.zeros(1, grid[1] * grid[2], embed_dim))
        self.temporal = nn.Parameter(torch.zeros(1, grid[0], embed_dim))
        self.cls = nn.Parameter(torch.zeros(1, 1, embed_dim)) if cls_token else None
        for table in self.parameters():
            nn.init.trunc_normal_(table, std=0.02)

    def position_parameters(self) -> List[str]:
        """Its parameters, all positional tables (kept from weight decay when the model says so)."""
        return [name for name, _ in self.named_parameters()]

    def forward(self, x: torch.Tensor, thw: Grid) -> torch.Tensor:
        t, h, w = thw
        spatial = _resize_grid(self.spatial, self.grid[1:], (h, w))
        temporal = _resize_1d(self.temporal, t)
        # (1, HW, C) + (1, T, C) -> (1, THW, C), time-major like the flattened token grid
        pos = (temporal.unsqueeze(2) + spatial.unsqueeze(1)).flatten(1, 2)
        if self.cls is not None:
            pos = torch.cat([self.cls, pos], dim=1)
        return x + pos


class JointPosEmbed(nn.Module):
    """One learned table over the whole (T, H, W) grid, plus a class entry."""

    def __init__(self, embed_dim: int, grid: Grid, cls_token: bool) -> None:
        super().__init__()
        self.grid = tuple(grid)
        self.has_cls = cls_token
        self.joint = nn.Parameter(torch.zeros(1, int(cls_token) + grid[0] * grid[1] * grid[2], embed_dim))
        nn.init.trunc_normal_(self.joint, std=0.02)

    def position_parameters(self) -> List[str]:
        """Its parameters, all positional tables (kept from weight decay when the model says so)."""
        return [name for name, _ in self.named_parameters()]

    def forward(self, x: torch.Tensor, thw: Grid) -> torch.Tensor:
        cls, grid = self.joint[:, : int(self.has_cls)], self.joint[:, int(self.has_cls) :]
        pos = torch.cat([cls, _resize_grid(grid, self.grid, thw)], dim=1)
        return x + pos


class NoPosEmbed(nn.Module):
    """No absolute position: tokens are left as they are (Table 11's "none"; MViTv2, whose positions are relative)."""

    def __init__(self, embed_dim: int = 0, grid: Grid = (0, 0, 0), cls_token: bool = False) -> None:
        # the positional seam's signature; nothing to learn
        super().__init__()

    def forward(self, x: torch.Tensor, thw: Grid) -> torch.Tensor:
        return x
