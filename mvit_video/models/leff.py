"""Locally-enhanced feed-forward (LeFF) of CeiT (Yuan et al., "Incorporating Convolution Designs into Visual
Transformers"), in 3D.

The MLP's expanded tokens are laid back on their (T, H, W) grid and mixed with their neighbours by a depthwise
3x3x3 convolution, with batch normalisation after each step.
"""

import torch
from torch import nn

from .layers import Grid, join_cls, split_cls, tokens_to_volume, volume_to_tokens


class LeFF(nn.Module):
    """Linear -> BN -> GELU -> depthwise Conv3d -> BN -> GELU -> Linear -> BN on the grid tokens.

    (B, [1 +] THW, dim) -> (B, [1 +] THW, dim_out). As in CeiT, the class token bypasses LeFF: it comes out as it
    went in. Where MViT widens (dim_out > dim) it comes out as zeros instead: the block's skip projection already
    carries it to the new width, and a map of its own here would only duplicate that projection.
    """

    def __init__(
        self, dim: int, hidden: int, dim_out: int, has_cls: bool = True, dropout: float = 0.0, kernel: int = 3
    ) -> None:
        super().__init__()
        self.has_cls = has_cls
        self.dim_out = dim_out
        self.fc1 = nn.Linear(dim, hidden)
        self.bn1 = nn.BatchNorm1d(hidden)
        self.dwconv = nn.Conv3d(hidden, hidden, kernel, padding=kernel // 2, groups=hidden)
        self.bn2 = nn.BatchNorm3d(hidden)
        self.fc2 = nn.Linear(hidden, dim_out)
        self.bn3 = nn.BatchNorm1d(dim_out)
        self.act = nn.GELU()
        self.drop = nn.Dropout(dropout) if dropout > 0 else nn.Identity()

    @staticmethod
    def _pointwise(x: torch.Tensor, linear: nn.Linear, norm: nn.BatchNorm1d) -> torch.Tensor:
        # (B, N, C) -> (B, N, C'): the statistics of BatchNorm1d are over every token of the batch
        return norm(linear(x).flatten(0, 1)).unflatten(0, x.shape[:2])

    def forward(self, x: torch.Tensor, thw: Grid) -> torch.Tensor:
        cls, grid = split_cls(x, self.has_cls)
        grid = self.act(self._pointwise(grid, self.fc1, self.bn1))
        volume = self.act(self.bn2(self.dwconv(tokens_to_volume(grid, thw))))  # (B, hidden, T, H, W)
        grid = self.drop(self._pointwise(volume_to_tokens(volume), self.fc2, self.bn3))
        if cls is not None and cls.shape[-1] != self.dim_out:
            cls = cls.new_zeros(*cls.shape[:-1], self.dim_out)
        return join_cls(cls, grid)
