"""Analysis tools: the frame-shuffle probe of temporal sensitivity."""

from .frame_shuffle import FrameShuffle, non_identity_permutation

__all__ = ["FrameShuffle", "non_identity_permutation"]
