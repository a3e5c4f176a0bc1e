"""Numerical equivalence with the public MViT implementations (torchvision's v1 and v2, pytorchvideo's v1), through
load_checkpoint, in float64."""

from pathlib import Path

import pytest
import torch

from mvit_video.config import load_config
from mvit_video.models import build_model
from mvit_video.weight_layouts import load_checkpoint

CONFIGS = Path(__file__).resolve().parents[2] / "configs"


def _perturbed(model: torch.nn.Module) -> torch.nn.Module:
    """Random weights everywhere, LayerNorm gains and zero-initialised biases included, so no tensor is trivial."""
    model = model.double().eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.02)
    return model


def _ours(*opts: str, config: str = "K400/MVIT_B_16x4.yaml") -> torch.nn.Module:
    return build_model(load_config(str(CONFIGS / config), list(opts))).double().eval()


@pytest.fixture(scope="module")
def clip():
    return torch.randn(1, 3, 16, 224, 224, generator=torch.Generator().manual_seed(1), dtype=torch.float64)


def test_torchvision_mvit_v1_b(clip):
    from torchvision.models.video import mvit_v1_b

    reference = _perturbed(mvit_v1_b())
    ours = _ours()
    report = load_checkpoint(reference.state_dict(), ours)
    assert report.source_format == "torchvision"
    with torch.no_grad():
        diff = (reference(clip) - ours(clip)).abs().max().item()
    assert diff < 1e-6


def test_pytorchvideo_mvit_base_16x4(clip):
    from pytorchvideo.models.vision_transformers import create_multiscale_vision_transformers

    reference = _perturbed(
        create_multiscale_vision_transformers(
            spatial_size=224,
            temporal_size=16,
            embed_dim_mul=[[1, 2.0], [3, 2.0], [14, 2.0]],
            atten_head_mul=[[1, 2.0], [3, 2.0], [14, 2.0]],
            pool_q_stride_size=[[1, 1, 2, 2], [3, 1, 2, 2], [14, 1, 2, 2]],
            pool_kv_stride_adaptive=[1, 8, 8],
            pool_kvq_kernel=[3, 3, 3],
        )
    )
    # pytorchvideo normalises pooled Q/K/V with LayerNorm's default eps (1e-5); PySlowFast and torchvision use 1e-6.
    ours = _ours("MVIT.POOL_NORM_EPS", "1e-5")
    report = load_checkpoint(reference.state_dict(), ours)
    assert report.source_format == "pytorchvideo"
    with torch.no_grad():
        diff = (reference(clip) - ours(clip)).abs().max().item()
    assert diff < 1e-6


def test_torchvision_mvit_v2_s(clip):
    from torchvision.models.video import mvit_v2_s

    reference = _perturbed(mvit_v2_s())
    assert reference.blocks[0].attn.rel_pos_h.abs().min() > 0  # the relative tables are not trivial
    ours = _ours(config="K400/MVITv2_S_16x4.yaml")
    report = load_checkpoint(reference.state_dict(), ours)
    assert report.source_format == "torchvision"
    with torch.no_grad():
        expected, got = reference(clip), ours(clip)
    assert expected.std() > 0.1  # logits spread, not a constant the two could share by accident
    assert (expected - got).abs().max().item() < 1e-6
