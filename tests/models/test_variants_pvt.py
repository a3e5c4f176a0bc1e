"""PVT v2 in 3D: overlapping patch embedding with LayerNorm, ConvFFN mixing each token with its 3x3x3 neighbours,
and linear spatial-reduction attention whose key/value count does not grow with the clip."""

import math
from pathlib import Path

import pytest
import torch
from torch import nn
import torch.nn.functional as F

from mvit_video.config import load_config
from mvit_video.models import build_model
from mvit_video.models.conv_ffn import ConvFFN
from mvit_video.models.linear_sra import LinearSRAttention, LinearSpatialReduction, adaptive_avg_pool_to
from mvit_video.models.patch_embed import OverlapPatchEmbed3d

from .test_variants_ceit import _neighbours, impulse_response

CONFIGS = Path(__file__).resolve().parents[2] / "configs"


def test_overlapping_patch_embedding_is_the_cube_stem_then_layernorm():
    stem = OverlapPatchEmbed3d(3, 16, (3, 7, 7), (2, 4, 4), (1, 3, 3))
    x = torch.randn(2, 3, 4, 32, 32)
    tokens, thw = stem(x)
    assert thw == (2, 8, 8)
    expected = torch.nn.functional.layer_norm(stem.proj(x).flatten(2).transpose(1, 2), (16,), eps=1e-5)
    assert torch.allclose(tokens, expected, atol=1e-6)


def assert_fan_out_normal(weight: torch.Tensor, fan_out: int) -> None:
    """PVT v2's convolution init: normal (not uniform, not truncated), mean 0, std sqrt(2 / fan_out).

    Tolerances are six standard errors of the sample statistics, far below the gaps to PyTorch's default init
    (uniform, std 1 / sqrt(3 fan_in)), to a fan-in init and to a fan-out that omits the temporal kernel.
    """
    w = weight.detach().flatten().double()
    n, std = w.numel(), math.sqrt(2.0 / fan_out)
    assert abs(w.mean().item()) < 6 * std / math.sqrt(n)
    assert w.std().item() == pytest.approx(std, rel=6 / math.sqrt(2 * n))
    kurtosis = ((w - w.mean()) ** 4).mean().item() / w.var(unbiased=False).item() ** 2
    assert kurtosis == pytest.approx(3.0, abs=6 * math.sqrt(24 / n))  # uniform: 1.8; truncated at 2 std: 2.4


def test_overlapping_patch_embedding_has_pvt_v2_fan_out_init():
    stem = OverlapPatchEmbed3d(3, 48, (3, 7, 7), (2, 4, 4), (1, 3, 3))
    assert_fan_out_normal(stem.proj.weight, 3 * 7 * 7 * 48)
    assert torch.equal(stem.proj.bias, torch.zeros(48))


def test_convffn_mixes_only_3x3x3_neighbours_in_the_grid_layout():
    ffn = ConvFFN(8, 16, 8).eval()
    thw, centre = (4, 5, 6), (1, 3, 2)
    assert impulse_response(ffn, 8, thw, centre) == _neighbours(centre, thw)


def test_convffn_class_token_skips_the_convolution():
    ffn = ConvFFN(8, 32, 16)
    x = torch.randn(2, 1 + 2 * 3 * 3, 8)
    out = ffn(x, (2, 3, 3))
    assert out.shape == (2, 19, 16)
    pointwise = ffn.fc2(ffn.act(ffn.fc1(x[:, 0])))  # fc1 -> GELU -> fc2, no convolution
    assert torch.allclose(out[:, 0], pointwise, atol=1e-6)
    changed = x.clone()
    changed[:, 1:] += 1.0  # the grid does not reach the class token
    assert torch.allclose(ffn(changed, (2, 3, 3))[:, 0], out[:, 0], atol=1e-6)


def _convffn_reference(ffn: ConvFFN, x: torch.Tensor, relu: bool) -> torch.Tensor:
    """ConvFFN by hand on a 1 x 1 x 2 grid whose depthwise kernel is ``a`` at the centre and ``b`` at both W
    neighbours (zero elsewhere): each token's convolution is a * itself + b * the other token + bias."""
    hidden = x @ ffn.fc1.weight.T + ffn.fc1.bias  # (B, 2, hidden)
    if relu:
        hidden = hidden.clamp(min=0)
    a, b = ffn.dwconv.weight[:, 0, 1, 1, 1], ffn.dwconv.weight[:, 0, 1, 1, 0]
    mixed = a * hidden + b * hidden.flip(1) + ffn.dwconv.bias
    gelu = 0.5 * mixed * (1 + torch.erf(mixed / math.sqrt(2)))
    return gelu @ ffn.fc2.weight.T + ffn.fc2.bias


@pytest.mark.parametrize("linear", [False, True])
def test_convffn_relu_after_fc1_only_in_the_linear_variant(linear):
    # PVT v2's linear variant (B2-Li) rectifies fc1's output before the convolution; the other variants do not
    ffn = ConvFFN(4, 6, 3, has_cls=False, linear=linear).eval()
    with torch.no_grad():
        ffn.dwconv.weight.zero_()
        ffn.dwconv.weight[:, 0, 1, 1, 1] = torch.randn(6)
        ffn.dwconv.weight[:, 0, 1, 1, 0] = ffn.dwconv.weight[:, 0, 1, 1, 2] = torch.randn(6)
        ffn.dwconv.bias.normal_()
        x = torch.randn(2, 2, 4)
        out = ffn(x, (1, 1, 2))
        assert (x @ ffn.fc1.weight.T + ffn.fc1.bias < 0).any()  # some of fc1's outputs are negative: ReLU matters
        assert torch.allclose(out, _convffn_reference(ffn, x, relu=linear), atol=1e-6)
        assert not torch.allclose(out, _convffn_reference(ffn, x, relu=not linear), atol=1e-3)


def test_convffn_class_token_takes_the_relu_of_the_linear_variant():
    ffn = ConvFFN(8, 32, 16, linear=True)
    x = torch.randn(2, 1 + 2 * 3 * 3, 8)
    pointwise = ffn.fc2(ffn.act(ffn.fc1(x[:, 0]).clamp(min=0)))  # fc1 -> ReLU -> GELU -> fc2, no convolution
    assert torch.allclose(ffn(x, (2, 3, 3))[:, 0], pointwise, atol=1e-6)


@pytest.mark.parametrize("size", [56, 28, 4])
@pytest.mark.parametrize("has_cls", [True, False])
def test_linear_sra_key_value_length_is_fixed(size, has_cls):
    thw = (4, size, size)
    attn = LinearSRAttention(16, num_heads=2, pool_size=(4, 7, 7), has_cls=has_cls).eval()
    x = torch.randn(1, int(has_cls) + 4 * size * size, 16)
    with torch.no_grad():
        kv_tokens = attn.reduce(x, thw)
        out, out_thw = attn(x, thw)
    # T_p * 7 * 7 (+ the class token), whatever the size: a 4 x 4 grid is enlarged to 7 x 7, as in PVT v2
    assert kv_tokens.shape == (1, int(has_cls) + 4 * 7 * 7, 16)
    assert out.shape == x.shape and out_thw == thw


# Adaptive average pooling from 3 cells to 7, by hand: bin i spans cells floor(3i / 7) .. ceil(3(i + 1) / 7) - 1
ENLARGE_3_TO_7 = torch.tensor([
    [1, 0, 0], [1, 0, 0], [0.5, 0.5, 0], [0, 1, 0], [0, 0.5, 0.5], [0, 0, 1], [0, 0, 1],
])
ENLARGE_2_TO_4 = torch.tensor([[1.0, 0], [1, 0], [0, 1], [0, 1]])


def test_linear_sra_enlarges_a_small_grid_to_the_fixed_pool_size():
    reduce = LinearSpatialReduction(8, (4, 7, 7), has_cls=True)
    x = torch.randn(2, 1 + 2 * 3 * 3, 8)
    volume = x[:, 1:].reshape(2, 2, 3, 3, 8).permute(0, 4, 1, 2, 3)  # (B, C, T, H, W)
    pooled = torch.einsum("ti,hj,wk,bcijk->bcthw", ENLARGE_2_TO_4, ENLARGE_3_TO_7, ENLARGE_3_TO_7, volume)
    assert torch.allclose(adaptive_avg_pool_to(volume, (4, 7, 7)), pooled, atol=1e-6)
    assert torch.allclose(F.adaptive_avg_pool3d(volume, (4, 7, 7)), pooled, atol=1e-6)  # PyTorch's, as the official
    tokens = torch.cat([x[:, :1], pooled.flatten(2).transpose(1, 2)], dim=1)  # the class token is not pooled
    conv1x1 = tokens @ reduce.sr.weight.flatten(1).T + reduce.sr.bias
    with torch.no_grad():
        assert torch.allclose(reduce(x, (2, 3, 3)), reduce.act(reduce.norm(conv1x1)), atol=1e-5)


@pytest.mark.parametrize("thw", [(2, 14, 3), (8, 7, 21), (3, 5, 9)])
def test_linear_sra_pooling_shrinks_and_enlarges_axes_as_pytorch_adaptive_pooling(thw):
    volume = torch.randn(2, 8, *thw)
    assert torch.allclose(adaptive_avg_pool_to(volume, (4, 7, 7)), F.adaptive_avg_pool3d(volume, (4, 7, 7)),
                          atol=1e-6)


def test_linear_sra_reduction_conv_has_pvt_v2_fan_out_init():
    reduce = LinearSpatialReduction(96)
    assert reduce.sr.kernel_size == (1, 1, 1)
    assert_fan_out_normal(reduce.sr.weight, 96)
    assert torch.equal(reduce.sr.bias, torch.zeros(96))


def test_linear_sra_keeps_query_pooling():
    attn = LinearSRAttention(16, num_heads=2, kernel_q=(3, 3, 3), stride_q=(1, 2, 2))
    x = torch.randn(1, 1 + 4 * 14 * 14, 16)
    out, thw = attn(x, (4, 14, 14))
    assert thw == (4, 7, 7) and out.shape == (1, 1 + 4 * 7 * 7, 16)


def test_pvt_model_structure():
    model = build_model(load_config(str(CONFIGS / "synthetic/MVIT_TINY_PVT.yaml"), ["MODEL.NUM_CLASSES", "5"]))
    assert isinstance(model.patch_embed, OverlapPatchEmbed3d)
    assert all(isinstance(b.attn, LinearSRAttention) and isinstance(b.mlp, ConvFFN) for b in model.blocks)
    assert [i for i, b in enumerate(model.blocks) if b.attn.pool_q is not None] == [1, 3]
    assert model.cls_token is None and not list(model.pos_embed.parameters())  # as PVT v2: no table, no class token
    with torch.no_grad():
        assert model.eval()(torch.randn(2, 3, 8, 112, 112)).shape == (2, 5)
    # PVT v2's one "linear" switch: with linear SRA its ConvFFN rectifies fc1's output; with MHPA it does not
    assert all(isinstance(b.mlp.relu, nn.ReLU) for b in model.blocks)
    mhpa = build_model(load_config(str(CONFIGS / "synthetic/MVIT_TINY_PVT.yaml"), ["MVIT.ATTENTION", "mhpa"]))
    assert all(isinstance(b.mlp.relu, nn.Identity) for b in mhpa.blocks)


def test_pvt_model_keeps_the_fan_out_init_of_its_convolutions():
    # MViT re-initialises its Linear and LayerNorm layers after building: the convolutions must keep PVT v2's init
    model = build_model(load_config(str(CONFIGS / "synthetic/MVIT_TINY_PVT.yaml")))
    assert_fan_out_normal(model.patch_embed.proj.weight, 3 * 8 * 8 * 48)
    for block in (model.blocks[0], model.blocks[5]):
        dim = block.attn.proj.in_features
        assert_fan_out_normal(block.attn.reduce.sr.weight, dim)
        assert_fan_out_normal(block.mlp.dwconv.weight, 27)
