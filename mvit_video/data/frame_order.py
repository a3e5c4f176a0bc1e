"""Frame-order transforms of test views: the frames of every view shuffled or reversed.

The frame-shuffle probe of temporal sensitivity (MViT paper, Table 9; mvit_video.analysis) runs the same multi-view
test with the frames in order, permuted and reversed, and TEST.SHUFFLE_FRAMES tests shuffled views. A model that reads
motion loses accuracy when the order is destroyed; one that only sees appearance does not. The permutation is applied
after sampling and before the model, independently for each view, from a seeded generator.
"""

from typing import Optional

import torch


def non_identity_permutation(length: int, chunk: int, generator: torch.Generator) -> torch.Tensor:
    """A random order of ``length`` frames that moves whole chunks of ``chunk`` frames and is never the identity
    (unless there is only one chunk). Returns the frame indices in their new order."""
    num_chunks = -(-length // chunk)
    identity = torch.arange(num_chunks)
    order = identity
    while num_chunks > 1 and torch.equal(order, identity):
        order = torch.randperm(num_chunks, generator=generator)
    frames = torch.arange(length)
    return torch.cat([frames[i * chunk : (i + 1) * chunk] for i in order.tolist()])


class FrameShuffle:
    """Reorders the frames of each view of a (N, C, T, H, W) batch: "shuffle" (seeded random order per view) or
    "reverse". ``chunk`` > 1 moves groups of frames together (one temporal token of the cube embedding)."""

    def __init__(self, mode: str = "shuffle", seed: int = 0, chunk: int = 1) -> None:
        if mode not in ("shuffle", "reverse"):
            raise ValueError(f"unknown frame order {mode!r} (expected shuffle or reverse)")
        self.mode = mode
        self.chunk = chunk
        self.generator: Optional[torch.Generator] = torch.Generator().manual_seed(seed)

    def __call__(self, views: torch.Tensor) -> torch.Tensor:
        num_frames = views.shape[2]
        if self.mode == "reverse":
            return views.flip(2)
        orders = [non_identity_permutation(num_frames, self.chunk, self.generator) for _ in range(views.shape[0])]
        index = torch.stack(orders).to(views.device)  # (N, T)
        index = index.view(views.shape[0], 1, num_frames, 1, 1).expand(-1, views.shape[1], -1, *views.shape[3:])
        return views.gather(2, index)
