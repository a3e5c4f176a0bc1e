"""Losses and label mixing: soft-target cross-entropy, label smoothing, mixup and cutmix on video clips."""

from typing import Optional, Tuple

import numpy as np
import torch
import torch.nn.functional as F


def one_hot(labels: torch.Tensor, num_classes: int, smoothing: float = 0.0) -> torch.Tensor:
    """(B,) int labels -> (B, K) targets with ``smoothing`` spread evenly over all classes."""
    off = smoothing / num_classes
    targets = torch.full((labels.shape[0], num_classes), off, device=labels.device)
    return targets.scatter_(1, labels[:, None], 1.0 - smoothing + off)


def soft_target_cross_entropy(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean over the batch of -sum_k target_k log softmax(logits)_k; targets (B, K) sum to one per row."""
    return torch.sum(-targets * F.log_softmax(logits.float(), dim=-1), dim=-1).mean()


class Mixup:
    """Mixup (a blend of two clips) or CutMix (a box of one clip, the same box in every frame, pasted on another).

    Each batch is mixed with probability ``prob``; CutMix is chosen with ``switch_prob`` when both are enabled. The
    batch is paired with itself reversed; the targets mix in proportion to the mixed area.
    """

    def __init__(
        self,
        num_classes: int,
        mixup_alpha: float = 0.8,
        cutmix_alpha: float = 1.0,
        prob: float = 1.0,
        switch_prob: float = 0.5,
        label_smoothing: float = 0.1,
        rng: Optional[np.random.Generator] = None,
    ) -> None:
        if mixup_alpha <= 0 and cutmix_alpha <= 0:
            raise ValueError("Mixup needs MIXUP.ALPHA > 0 or MIXUP.CUTMIX_ALPHA > 0")
        self.num_classes = num_classes
        self.mixup_alpha, self.cutmix_alpha = mixup_alpha, cutmix_alpha
        self.prob, self.switch_prob = prob, switch_prob
        self.label_smoothing = label_smoothing
        self.rng = rng or np.random.default_rng()

    def _box(self, lam: float, height: int, width: int) -> Tuple[int, int, int, int]:
        ratio = np.sqrt(1.0 - lam)
        cut_h, cut_w = int(height * ratio), int(width * ratio)
        cy, cx = self.rng.integers(height), self.rng.integers(width)
        y0, y1 = np.clip([cy - cut_h // 2, cy + cut_h // 2], 0, height)
        x0, x1 = np.clip([cx - cut_w // 2, cx + cut_w // 2], 0, width)
        return int(y0), int(y1), int(x0), int(x1)

    def __call__(self, clips: torch.Tensor, labels: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """clips (B, C, T, H, W), labels (B,) -> mixed clips (in place) and soft targets (B, K)."""
        targets = one_hot(labels, self.num_classes, self.label_smoothing)
        if self.rng.random() >= self.prob:
            return clips, targets
        use_cutmix = self.cutmix_alpha > 0 and (self.mixup_alpha <= 0 or self.rng.random() < self.switch_prob)
        if use_cutmix:
            lam = float(self.rng.beta(self.cutmix_alpha, self.cutmix_alpha))
            y0, y1, x0, x1 = self._box(lam, clips.shape[-2], clips.shape[-1])
            clips[..., y0:y1, x0:x1] = clips.flip(0)[..., y0:y1, x0:x1]
            lam = 1.0 - (y1 - y0) * (x1 - x0) / (clips.shape[-2] * clips.shape[-1])
        else:
            lam = float(self.rng.beta(self.mixup_alpha, self.mixup_alpha))
            partner = clips.flip(0)  # a copy, taken before clips is changed in place
            clips.mul_(lam).add_(partner, alpha=1.0 - lam)
        return clips, targets * lam + targets.flip(0) * (1.0 - lam)
