"""Models: MViT v1 and the single-scale ViT baseline (the same network without pooling)."""

from .build import build_model, mvit_kwargs, register_model
from .mvit import MViT, BlockSpec, mvit_block_specs

__all__ = ["BlockSpec", "MViT", "build_model", "mvit_block_specs", "mvit_kwargs", "register_model"]
