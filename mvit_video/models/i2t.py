"""Image-to-tokens (I2T) stem of CeiT (Yuan et al., "Incorporating Convolution Designs into Visual Transformers"),
in 3D.

A small convolutional stem (conv, batch norm, max pooling) extracts low-level features before patchifying, in place
of the single cube convolution over raw pixels. The stem reduces space by 4; the patchify convolution takes the rest
of MViT's cube stride, so the token grid equals the cube stem's.
"""

from typing import Sequence, Tuple

import torch
from torch import nn

_STEM_STRIDE = (1, 4, 4)  # conv stride (1, 2, 2) times max-pool stride (1, 2, 2)


def _out(size: int, kernel: int, stride: int, padding: int) -> int:
    return (size + 2 * padding - kernel) // stride + 1


class ImageToTokens3d(nn.Module):
    """Conv3d (3, 7, 7) / (1, 2, 2) without bias -> BatchNorm3d -> MaxPool3d (1, 3, 3) / (1, 2, 2) -> patchify.

    (B, 3, T, H, W) -> tokens (B, T'H'W', embed_dim) and their grid (T', H', W'); ``patch_stride`` is the stride of
    the cube stem whose grid it reproduces, and must be a multiple of (1, 4, 4).
    """

    def __init__(self, in_channels: int, embed_dim: int, patch_stride: Sequence[int], channels: int = 64) -> None:
        super().__init__()
        if any(s % r for s, r in zip(patch_stride, _STEM_STRIDE)):
            raise ValueError(
                f"the I2T stem needs a patch stride that is a multiple of {_STEM_STRIDE}, got {tuple(patch_stride)}"
            )
        patchify = tuple(s // r for s, r in zip(patch_stride, _STEM_STRIDE))
        self.conv = nn.Conv3d(in_channels, channels, (3, 7, 7), stride=(1, 2, 2), padding=(1, 3, 3), bias=False)
        self.bn = nn.BatchNorm3d(channels)
        self.pool = nn.MaxPool3d((1, 3, 3), stride=(1, 2, 2), padding=(0, 1, 1))
        self.proj = nn.Conv3d(channels, embed_dim, patchify, stride=patchify)

    def grid_size(self, input_size: Sequence[int]) -> Tuple[int, int, int]:
        """The token grid (T', H', W') produced for a clip of size (T, H, W)."""
        grid = []
        for d, n in enumerate(input_size):
            n = _out(n, self.conv.kernel_size[d], self.conv.stride[d], self.conv.padding[d])
            n = _out(n, self.pool.kernel_size[d], self.pool.stride[d], self.pool.padding[d])
            grid.append(n // self.proj.stride[d])
        return tuple(grid)

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, Tuple[int, int, int]]:
        x = self.proj(self.pool(self.bn(self.conv(x))))  # (B, 3, T, H, W) -> (B, C, T', H', W')
        thw = tuple(x.shape[2:])
        return x.flatten(2).transpose(1, 2), thw  # -> (B, T'H'W', C)
