"""MViT structure as the paper describes it, and behaviour a user relies on (sizes, pooling, class token)."""

from pathlib import Path

import pytest
import torch
from torch import nn

from mvit_video.config import load_config
from mvit_video.models import MViT, build_model, mvit_block_specs
from mvit_video.models.pooling_attention import AttentionPool, MultiScaleAttention
from mvit_video.models.pos_embed import SeparatePosEmbed

CONFIGS = Path(__file__).resolve().parents[2] / "configs"


def _tiny(**overrides) -> MViT:
    specs = mvit_block_specs(
        depth=4,
        embed_dim=16,
        num_heads=1,
        dim_mul=[[1, 2.0], [3, 2.0]],
        head_mul=[[1, 2.0], [3, 2.0]],
        pool_q_stride=[[1, 1, 2, 2], [3, 1, 2, 2]],
        pool_kv_stride_adaptive=[1, 4, 4],
        pool_kvq_kernel=[3, 3, 3],
    )
    kwargs = dict(num_classes=5, input_size=(8, 64, 64), patch_stride=(2, 4, 4), head_dropout=0.0)
    kwargs.update(overrides)
    return MViT(specs, **kwargs).eval()


def test_mvit_b_stages_match_the_paper():
    cfg = load_config(str(CONFIGS / "K400/MVIT_B_16x4.yaml"))
    specs = build_model(cfg).blocks
    dims = [b.attn.qkv.in_features for b in specs]
    heads = [b.attn.num_heads for b in specs]
    assert dims == [96] + [192] * 2 + [384] * 11 + [768] * 2
    assert heads == [1] + [2] * 2 + [4] * 11 + [8] * 2
    # the width grows in the last block of a stage: its MLP and skip projection output the next width
    widened = [i for i, b in enumerate(specs) if b.proj is not None]
    assert widened == [0, 2, 13]
    assert [b.mlp.fc2.out_features for b in specs][:3] == [192, 192, 384]
    # query pooling (and the pooled skip path) at the first block of stages 2-4
    assert [i for i, b in enumerate(specs) if b.attn.pool_q is not None] == [1, 3, 14]
    assert [i for i, b in enumerate(specs) if b.pool_skip is not None] == [1, 3, 14]
    skip = specs[1].pool_skip
    assert isinstance(skip, nn.MaxPool3d) and tuple(skip.kernel_size) == (1, 3, 3)


def test_adaptive_kv_stride_halves_at_each_query_pooling():
    cfg = load_config(str(CONFIGS / "K400/MVIT_B_16x4.yaml"))
    strides = [b.attn.pool_k.pool.stride for b in build_model(cfg).blocks]
    assert strides == [(1, 8, 8)] + [(1, 4, 4)] * 2 + [(1, 2, 2)] * 11 + [(1, 1, 1)] * 2
    # a 3x3x3 kernel at stride 1 still pools (as in the released checkpoints)
    assert build_model(cfg).blocks[15].attn.pool_v.pool.kernel_size == (3, 3, 3)


def test_token_grid_per_stage():
    model = _tiny()
    x, thw = model.patch_embed(torch.zeros(1, 3, 8, 64, 64))
    sizes = []
    x = torch.cat([model.cls_token.expand(1, -1, -1), x], dim=1)
    for block in model.blocks:
        x, thw = block(x, thw)
        sizes.append((tuple(thw), x.shape[1], x.shape[2]))
    assert sizes == [
        ((4, 16, 16), 1 + 4 * 16 * 16, 32),
        ((4, 8, 8), 1 + 4 * 8 * 8, 32),
        ((4, 8, 8), 1 + 4 * 8 * 8, 64),
        ((4, 4, 4), 1 + 4 * 4 * 4, 64),
    ]


def test_class_token_is_never_pooled():
    pool = AttentionPool("max", head_dim=4, kernel=(3, 3, 3), stride=(1, 2, 2), num_heads=3)
    x = torch.randn(2, 1 + 2 * 4 * 4, 3 * 4)  # (B, 1 + THW, heads * d): the projection's layout
    out, thw = pool(x, (2, 4, 4), has_cls=True)
    assert thw == (2, 2, 2)
    assert out.shape == (2, 3, 1 + 8, 4)  # (B, heads, 1 + T'H'W', d)
    assert torch.equal(out[:, :, 0], x[:, 0].unflatten(-1, (3, 4)))


def test_conv_pooling_weights_are_shared_across_heads():
    attn = MultiScaleAttention(dim=8, num_heads=2, kernel_q=(3, 3, 3), stride_q=(1, 2, 2))
    assert attn.pool_q.pool.weight.shape == (4, 1, 3, 3, 3)  # one depthwise kernel over head_dim channels
    x = torch.randn(1, 1 + 2 * 4 * 4, 8)
    x[..., 4:] = x[..., :4]  # two identical heads pool to identical outputs
    out, _ = attn.pool_q(x, (2, 4, 4), has_cls=True)
    assert torch.allclose(out[:, 0], out[:, 1])


def test_conv_pooling_equals_the_reference_per_head_pooling():
    # The reference reshapes to (B * heads, d, T, H, W) and pools with the shared kernel, then LayerNorms each head's
    # d channels; pooling all heads' channels at once in the projection's layout must give the same numbers.
    torch.manual_seed(0)
    batch, heads, d, thw = 2, 3, 4, (2, 4, 6)
    pool = AttentionPool("conv", head_dim=d, kernel=(3, 3, 3), stride=(1, 2, 2), num_heads=heads).double()
    torch.nn.init.normal_(pool.norm.weight)
    torch.nn.init.normal_(pool.norm.bias)
    x = torch.randn(batch, 1 + 2 * 4 * 6, heads * d, dtype=torch.float64)
    out, out_thw = pool(x, thw, has_cls=True)
    per_head = x.unflatten(-1, (heads, d)).transpose(1, 2)  # (B, heads, N, d)
    grid = per_head[:, :, 1:].reshape(batch * heads, *thw, d).permute(0, 4, 1, 2, 3)
    pooled = pool.pool(grid)  # the module's own Conv3d over d channels
    tokens = pooled.flatten(2).transpose(1, 2).reshape(batch, heads, -1, d)
    expected = pool.norm(torch.cat([per_head[:, :, :1], tokens], dim=2))
    assert out_thw == tuple(pooled.shape[2:]) == (2, 2, 3)
    assert torch.allclose(out, expected, atol=1e-12)


def test_attention_matches_explicit_softmax():
    attn = MultiScaleAttention(dim=8, num_heads=2, kernel_kv=(3, 3, 3), stride_kv=(1, 2, 2)).eval()
    x = torch.randn(2, 1 + 2 * 4 * 4, 8)
    out, thw = attn(x, (2, 4, 4))
    assert thw == (2, 4, 4) and out.shape == x.shape
    q, k, v = attn.qkv(x).chunk(3, dim=-1)  # each (B, N, heads * d)
    q = q.reshape(2, -1, 2, 4).transpose(1, 2)
    k, _ = attn.pool_k(k, (2, 4, 4), True)
    v, _ = attn.pool_v(v, (2, 4, 4), True)
    weights = (q @ k.transpose(-2, -1) / 2.0).softmax(-1)  # scale 1/sqrt(head_dim = 4)
    expected = attn.proj((weights @ v).transpose(1, 2).reshape(2, -1, 8))
    assert torch.allclose(out, expected, atol=1e-6)


@pytest.mark.parametrize("size", [(16, 64, 64), (4, 96, 96), (8, 48, 80)])
def test_other_input_sizes_run_by_interpolating_positions(size):
    model = _tiny()
    assert model(torch.randn(1, 3, *size)).shape == (1, 5)


def test_interpolation_is_identity_at_the_training_size():
    embed = SeparatePosEmbed(8, (4, 6, 6), cls_token=True)
    x = torch.zeros(1, 1 + 4 * 36, 8)
    pos = embed(x, (4, 6, 6))
    expected = embed.temporal[0][:, None, :] + embed.spatial[0].reshape(1, 36, 8)
    assert torch.equal(pos[0, 1:], expected.reshape(-1, 8))
    assert torch.equal(pos[0, 0], embed.cls[0, 0])


def test_mvit_b_runs_at_32_frames_and_256_pixels():
    model = build_model(load_config(str(CONFIGS / "K400/MVIT_B_16x4.yaml"))).eval()
    with torch.no_grad():
        assert model(torch.randn(1, 3, 32, 256, 256)).shape == (1, 400)


def test_global_average_pooling_without_class_token():
    model = _tiny(cls_embed_on=False)
    assert model.cls_token is None
    assert model(torch.randn(2, 3, 8, 64, 64)).shape == (2, 5)


@pytest.mark.parametrize("mode", ["max", "avg"])
def test_max_and_avg_pooling_have_no_parameters(mode):
    model = _tiny(mode=mode)
    assert not any("pool_" in name for name, _ in model.named_parameters())
    assert model(torch.randn(1, 3, 8, 64, 64)).shape == (1, 5)


def test_stochastic_depth_is_linear_and_off_in_eval():
    model = _tiny(drop_path_rate=0.3)
    rates = [getattr(b.drop_path, "drop_prob", 0.0) for b in model.blocks]
    assert rates == pytest.approx([0.0, 0.1, 0.2, 0.3])
    x = torch.randn(1, 3, 8, 64, 64)
    assert torch.equal(model(x), model(x))


def test_no_weight_decay_names_positions_and_class_token():
    names = set(_tiny().no_weight_decay())
    assert names == {"pos_embed.spatial", "pos_embed.temporal", "pos_embed.cls", "cls_token"}
    params = dict(_tiny().named_parameters())
    assert names <= set(params)
    assert _tiny(zero_decay_pos_cls=False).no_weight_decay() == []


def test_vit_baseline_has_no_pooling():
    cfg = load_config(str(CONFIGS / "K400/VIT_B_16x4.yaml"), ["MVIT.DEPTH", "2"])
    model = build_model(cfg)
    assert all(b.attn.pool_q is None and b.attn.pool_k is None and b.pool_skip is None for b in model.blocks)
    assert model.patch_embed.grid_size((16, 224, 224)) == (8, 14, 14)


def test_rejects_non_video_input():
    with pytest.raises(ValueError, match=r"\(B, C, T, H, W\)"):
        _tiny()(torch.randn(1, 3, 64, 64))
