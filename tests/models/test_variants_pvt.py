"""PVT v2 in 3D: overlapping patch embedding with LayerNorm, ConvFFN mixing each token with its 3x3x3 neighbours,
and linear spatial-reduction attention whose key/value count does not grow with the clip."""

from pathlib import Path

import pytest
import torch

from mvit_video.config import load_config
from mvit_video.models import build_model
from mvit_video.models.conv_ffn import ConvFFN
from mvit_video.models.linear_sra import LinearSRAttention, LinearSpatialReduction
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


@pytest.mark.parametrize("size", [56, 28])
@pytest.mark.parametrize("has_cls", [True, False])
def test_linear_sra_key_value_length_is_fixed(size, has_cls):
    thw = (4, size, size)
    attn = LinearSRAttention(16, num_heads=2, pool_size=(4, 7, 7), has_cls=has_cls).eval()
    x = torch.randn(1, int(has_cls) + 4 * size * size, 16)
    with torch.no_grad():
        kv_tokens = attn.reduce(x, thw)
        out, out_thw = attn(x, thw)
    assert kv_tokens.shape == (1, int(has_cls) + 4 * 7 * 7, 16)  # T_p * 7 * 7 (+ the class token), whatever the size
    assert out.shape == x.shape and out_thw == thw


def test_linear_sra_keeps_query_pooling_and_matches_mvit_kv_at_the_training_size():
    attn = LinearSRAttention(16, num_heads=2, kernel_q=(3, 3, 3), stride_q=(1, 2, 2))
    x = torch.randn(1, 1 + 4 * 14 * 14, 16)
    out, thw = attn(x, (4, 14, 14))
    assert thw == (4, 7, 7) and out.shape == (1, 1 + 4 * 7 * 7, 16)
    # MViT-B's adaptive K/V strides (1, 8, 8), (1, 4, 4), (1, 2, 2), (1, 1, 1) give 7 x 7 at every stage at 224 px:
    # linear SRA keeps that count there, and keeps it at other sizes
    reduce = LinearSpatialReduction(16, (8, 7, 7))
    assert {reduce.reduced_grid((8, n, n)) for n in (56, 28, 14, 7)} == {(8, 7, 7)}
    assert reduce.reduced_grid((16, 80, 80)) == (8, 7, 7) and reduce.reduced_grid((4, 5, 5)) == (4, 5, 5)


def test_pvt_model_structure():
    model = build_model(load_config(str(CONFIGS / "synthetic/MVIT_TINY_PVT.yaml"), ["MODEL.NUM_CLASSES", "5"]))
    assert isinstance(model.patch_embed, OverlapPatchEmbed3d)
    assert all(isinstance(b.attn, LinearSRAttention) and isinstance(b.mlp, ConvFFN) for b in model.blocks)
    assert [i for i, b in enumerate(model.blocks) if b.attn.pool_q is not None] == [1, 3]
    assert model.cls_token is None and not list(model.pos_embed.parameters())  # as PVT v2: no table, no class token
    with torch.no_grad():
        assert model.eval()(torch.randn(2, 3, 8, 112, 112)).shape == (2, 5)
