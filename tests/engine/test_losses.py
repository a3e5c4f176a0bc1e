"""Soft-target cross-entropy, label smoothing, and mixup / cutmix on clips."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from mvit_video.engine.losses import Mixup, one_hot, soft_target_cross_entropy


def test_soft_target_ce_equals_ce_on_one_hot_targets():
    logits, labels = torch.randn(5, 7), torch.randint(7, (5,))
    assert soft_target_cross_entropy(logits, one_hot(labels, 7)) == pytest.approx(F.cross_entropy(logits, labels).item())


def test_label_smoothing_matches_torch():
    logits, labels = torch.randn(5, 7), torch.randint(7, (5,))
    ours = soft_target_cross_entropy(logits, one_hot(labels, 7, smoothing=0.1))
    assert ours == pytest.approx(F.cross_entropy(logits, labels, label_smoothing=0.1).item(), rel=1e-6)


def test_mixup_blends_clips_and_targets_alike():
    clips = torch.stack([torch.full((3, 4, 8, 8), float(i)) for i in range(4)])
    labels = torch.tensor([0, 1, 2, 3])
    mixup = Mixup(4, mixup_alpha=0.8, cutmix_alpha=0.0, label_smoothing=0.0, rng=np.random.default_rng(0))
    mixed, targets = mixup(clips.clone(), labels)
    lam = targets[0, 0].item()  # clip 0 is mixed with clip 3 (the batch reversed)
    assert targets[0, 3].item() == pytest.approx(1 - lam)
    assert torch.allclose(mixed[0], torch.full_like(mixed[0], 3 * (1 - lam)))
    assert torch.allclose(targets.sum(1), torch.ones(4))


def test_cutmix_pastes_the_same_box_in_every_frame():
    clips = torch.stack([torch.full((3, 4, 16, 16), float(i)) for i in range(2)])
    mixup = Mixup(2, mixup_alpha=0.0, cutmix_alpha=1.0, label_smoothing=0.0, rng=np.random.default_rng(1))
    mixed, targets = mixup(clips.clone(), torch.tensor([0, 1]))
    pasted = mixed[0, 0] == 1.0  # (T, H, W): where clip 1 shows through in clip 0
    assert pasted.any()
    assert all(torch.equal(pasted[t], pasted[0]) for t in range(4))
    area = pasted[0].float().mean().item()
    assert targets[0, 1].item() == pytest.approx(area) and targets[0, 0].item() == pytest.approx(1 - area)


def test_prob_zero_leaves_the_batch_alone():
    clips = torch.randn(2, 3, 2, 4, 4)
    mixup = Mixup(3, prob=0.0, label_smoothing=0.3)
    out, targets = mixup(clips.clone(), torch.tensor([0, 2]))
    assert torch.equal(out, clips)
    assert targets[0].tolist() == pytest.approx([0.8, 0.1, 0.1])
