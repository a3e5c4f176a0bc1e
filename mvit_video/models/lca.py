"""Layer-wise class-token attention (LCA) of CeiT (Yuan et al., "Incorporating Convolution Designs into Visual
Transformers"), adapted to MViT.

The class tokens that every block outputs form a sequence over depth. One pre-norm transformer block attends over it
with the last class token as the only query, so the final representation can draw on features of every depth. MViT's
class token widens from stage to stage: the tokens of narrower stages are first projected to the final width (one
Linear per width), and a learned per-layer embedding (zero at init) tells the depths apart.
"""

from typing import List, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .layers import Mlp

_LN_EPS = 1e-6


class LastTokenAttention(nn.Module):
    """Multi-head attention in which only the last token of the sequence queries: (B, L, C) -> (B, 1, C)."""

    def __init__(self, dim: int, num_heads: int, qkv_bias: bool = True) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"LCA width {dim} is not divisible by {num_heads} heads")
        self.num_heads = num_heads
        self.q_proj = nn.Linear(dim, dim, bias=qkv_bias)
        self.kv_proj = nn.Linear(dim, 2 * dim, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        def heads(t: torch.Tensor) -> torch.Tensor:
            return t.unflatten(-1, (self.num_heads, -1)).transpose(1, 2)  # (B, L, C) -> (B, heads, L, d)

        k, v = self.kv_proj(x).chunk(2, dim=-1)
        out = F.scaled_dot_product_attention(heads(self.q_proj(x[:, -1:])), heads(k), heads(v))
        return self.proj(out.transpose(1, 2).flatten(2))


class LCA(nn.Module):
    """The class tokens of all blocks, [(B, 1, widths[i])], -> one class token (B, 1, dim).

    Projection to ``dim`` and layer embedding, then ``last + attn(norm1(tokens))`` and ``x + mlp(norm2(x))``
    (MLP ratio ``mlp_ratio``). The caller applies the final LayerNorm and the classifier.
    """

    def __init__(
        self, widths: Sequence[int], dim: int, num_heads: int, mlp_ratio: float = 4.0, qkv_bias: bool = True
    ) -> None:
        super().__init__()
        self.widths = list(widths)
        self.project = nn.ModuleDict({str(w): nn.Linear(w, dim) for w in sorted(set(widths)) if w != dim})
        self.layer_embed = nn.Parameter(torch.zeros(1, len(self.widths), dim))
        self.norm1 = nn.LayerNorm(dim, eps=_LN_EPS)
        self.attn = LastTokenAttention(dim, num_heads, qkv_bias)
        self.norm2 = nn.LayerNorm(dim, eps=_LN_EPS)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), dim)

    def _to_final_width(self, token: torch.Tensor, width: int) -> torch.Tensor:
        # widths come from the constructor, not token.shape: a traced shape is a tensor, not a key
        return self.project[str(width)](token) if str(width) in self.project else token

    def position_parameters(self) -> List[str]:
        """The layer embedding, a positional table over depth."""
        return ["layer_embed"]

    def forward(self, class_tokens: List[torch.Tensor]) -> torch.Tensor:
        if len(class_tokens) != len(self.widths):
            raise ValueError(f"LCA was built for {len(self.widths)} blocks, got {len(class_tokens)} class tokens")
        tokens = [self._to_final_width(t, w) for t, w in zip(class_tokens, self.widths)]
        x = torch.cat(tokens, dim=1) + self.layer_embed  # (B, L, dim)
        x = x[:, -1:] + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))
