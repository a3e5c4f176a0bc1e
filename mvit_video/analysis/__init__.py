"""Analysis built on the engine: the frame-shuffle probe of temporal sensitivity and the train-then-probe experiments
of tools/shuffle_demo.py and tools/compare_variants.py. The engine never imports this package."""

from ..data.frame_order import FrameShuffle, non_identity_permutation

__all__ = ["FrameShuffle", "non_identity_permutation"]
