"""Small layers shared by every model: token-grid helpers, stochastic depth, the transformer MLP, width rounding,
weight init."""

from typing import Optional, Tuple

import torch
from torch import nn

Grid = Tuple[int, int, int]


def split_cls(x: torch.Tensor, has_cls: bool) -> Tuple[Optional[torch.Tensor], torch.Tensor]:
    """Splits (..., 1 + N, C) into the class token (..., 1, C) and the grid tokens (..., N, C)."""
    if not has_cls:
        return None, x
    return x[..., :1, :], x[..., 1:, :]


def join_cls(cls: Optional[torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`split_cls`."""
    return x if cls is None else torch.cat([cls, x], dim=-2)


def tokens_to_volume(x: torch.Tensor, thw: Grid) -> torch.Tensor:
    """Grid tokens (..., THW, C) -> (B', C, T, H, W), a view with channels last, which CPU convolutions take without
    a copy."""
    return x.reshape(-1, *thw, x.shape[-1]).permute(0, 4, 1, 2, 3)


def volume_to_tokens(x: torch.Tensor) -> torch.Tensor:
    """(B, C, T, H, W) -> grid tokens (B, THW, C), time-major like the patch embedding."""
    return x.flatten(2).transpose(1, 2)


def round_width(width: float, multiplier: float, min_width: int = 1, divisor: int = 1) -> int:
    """Returns ``width * multiplier`` rounded to a multiple of ``divisor``, as PySlowFast rounds channel widths.

    The rounding rule decides the width of every MViT block, so it must match the reference to load its checkpoints.
    """
    if not multiplier:
        return int(width)
    width *= multiplier
    min_width = min_width or divisor
    width_out = max(min_width, int(width + divisor / 2) // divisor * divisor)
    if width_out < 0.9 * width:
        width_out += divisor
    return int(width_out)


class DropPath(nn.Module):
    """Stochastic depth: zeroes the whole residual branch of a sample with probability ``drop_prob`` in training."""

    def __init__(self, drop_prob: float = 0.0) -> None:
        super().__init__()
        self.drop_prob = drop_prob

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.drop_prob == 0.0 or not self.training:
            return x
        keep = 1.0 - self.drop_prob
        mask = x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(keep)
        return x * mask / keep

    def extra_repr(self) -> str:
        return f"drop_prob={self.drop_prob}"


class Mlp(nn.Module):
    """Linear -> GELU -> Linear; the output width may differ from the input (MViT widens in the MLP)."""

    def __init__(
        self, in_features: int, hidden_features: int, out_features: int, has_cls: bool = True, dropout: float = 0.0
    ) -> None:
        # ``has_cls`` is part of the MLP seam (LeFF and ConvFFN keep the class token out of their convolution); an
        # MLP that treats each token alone has no use for it.
        super().__init__()
        self.fc1 = nn.Linear(in_features, hidden_features)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden_features, out_features)
        self.drop = nn.Dropout(dropout) if dropout > 0 else nn.Identity()

    def forward(self, x: torch.Tensor, thw: Optional[Grid] = None) -> torch.Tensor:
        # ``thw`` is part of the MLP seam (LeFF and ConvFFN need the grid); this MLP treats each token alone.
        return self.drop(self.fc2(self.drop(self.act(self.fc1(x)))))


def init_transformer_weights(module: nn.Module) -> None:
    """Truncated-normal (std 0.02) Linear weights and zero biases; unit LayerNorm; as in the MViT reference."""
    if isinstance(module, nn.Linear):
        nn.init.trunc_normal_(module.weight, std=0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.LayerNorm):
        if module.weight is not None:
            nn.init.ones_(module.weight)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
