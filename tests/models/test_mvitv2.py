"""MViTv2's parts on the tiny synthetic config: the block layout it builds, and the seed variants composed with it."""

from pathlib import Path

import pytest
import torch

from mvit_video.config import load_config
from mvit_video.models import build_model
from mvit_video.models.conv_ffn import ConvFFN
from mvit_video.models.elsa import ELSA
from mvit_video.models.leff import LeFF
from mvit_video.models.peg import PEG
from mvit_video.models.pooling_attention import MultiScaleAttention

TINY_V2 = str(Path(__file__).resolve().parents[2] / "configs/synthetic/MVITv2_TINY.yaml")


def _model(*opts: str):
    return build_model(load_config(TINY_V2, list(opts))).eval()


def test_tiny_v2_widens_in_the_attention_with_relative_tables_and_query_pooling_everywhere():
    model = _model()
    widths = [(b.norm1.normalized_shape[0], b.attn.dim_out, b.mlp.fc2.out_features) for b in model.blocks]
    # blocks 1 and 3 widen in their attention; the MLP keeps the width it receives
    assert widths == [(48, 48, 48), (48, 96, 96), (96, 96, 96), (96, 192, 192), (192, 192, 192), (192, 192, 192)]
    assert [b.widen_in_attention for b in model.blocks] == [False, True, False, True, False, False]
    assert all(b.attn.pool_q is not None and b.attn.rel_pos_t is not None for b in model.blocks)
    assert all(b.attn.residual_pooling for b in model.blocks) and not list(model.pos_embed.parameters())
    # the relative tables decay as PySlowFast's MViTv2 configs say (ZERO_DECAY_POS_CLS False), or not, when asked
    assert model.no_weight_decay() == []
    kept = set(_model("MVIT.ZERO_DECAY_POS_CLS", "True").no_weight_decay())
    assert {f"blocks.{i}.attn.rel_pos_{a}" for i in range(6) for a in "hwt"} | {"cls_token"} == kept


def test_residual_pooling_adds_the_pooled_query_to_grid_tokens_only():
    attn = MultiScaleAttention(8, 2, kernel_q=(1, 1, 1), stride_q=(1, 1, 1), residual_pooling=True).eval()
    plain = MultiScaleAttention(8, 2, kernel_q=(1, 1, 1), stride_q=(1, 1, 1)).eval()
    plain.load_state_dict(attn.state_dict())
    x, thw = torch.randn(2, 1 + 2 * 3 * 3, 8), (2, 3, 3)
    with torch.no_grad():
        q = attn.qkv(x)[..., :8]  # no Q pooling here: the pooled query is the projected one
        delta = attn.proj.weight @ q[:, 1:].unsqueeze(-1)  # what the residual adds after the output projection
        got, ref = attn(x, thw)[0], plain(x, thw)[0]
    assert torch.allclose(got[:, 0], ref[:, 0], atol=1e-6)  # the class token takes no residual
    assert torch.allclose(got[:, 1:] - ref[:, 1:], delta.squeeze(-1), atol=1e-5)


@pytest.mark.parametrize(
    "opts,layer",
    [
        (["MVIT.POS_EMBED", "peg", "MVIT.REL_POS_SPATIAL", "False", "MVIT.REL_POS_TEMPORAL", "False"], PEG),
        (["MVIT.ELSA_STAGES", "[0]"], ELSA),
        (["MVIT.MLP", "leff"], LeFF),
        (["MVIT.MLP", "convffn"], ConvFFN),
    ],
)
def test_seed_variants_compose_with_v2(opts, layer):
    model = _model(*opts, "MODEL.NUM_CLASSES", "5")
    found = [m for m in model.modules() if isinstance(m, layer)]
    assert found
    with torch.no_grad():
        assert model(torch.randn(2, 3, 8, 112, 112)).shape == (2, 5)


def test_an_attention_that_cannot_widen_is_refused_naming_the_key():
    with pytest.raises(ValueError, match="MVIT.DIM_MUL_IN_ATT"):
        _model("MVIT.ATTENTION", "linear_sra")


def _bias_by_definition(q, q_thw, k_thw, rel_h, rel_w, rel_t):
    """q . R_t[t, t'] + q . R_h[h, h'] + q . R_w[w, w'] for every (query, key) pair, zero for the class token, written
    out pair by pair from the row lookup (no factorisation, no in-place writes)."""
    from mvit_video.models.rel_pos import _rows

    grid = torch.stack(torch.meshgrid(*(torch.arange(n) for n in q_thw), indexing="ij"), -1).reshape(-1, 3)
    keys = torch.stack(torch.meshgrid(*(torch.arange(n) for n in k_thw), indexing="ij"), -1).reshape(-1, 3)
    tables = [_rows(table, a, b) for table, a, b in zip((rel_t, rel_h, rel_w), q_thw, k_thw)]
    rows = sum(table[grid[:, None, axis], keys[None, :, axis]] for axis, table in enumerate(tables))  # (Nq, Nk, d)
    bias = torch.einsum("bnqd,qkd->bnqk", q[:, :, 1:], rows)
    return torch.nn.functional.pad(bias, (1, 0, 1, 0))


@pytest.mark.parametrize("q_thw,k_thw", [((2, 4, 4), (2, 2, 2)), ((2, 2, 2), (2, 4, 4)), ((3, 3, 2), (3, 3, 2))])
def test_relative_position_bias_and_its_gradients_follow_the_definition(q_thw, k_thw):
    from mvit_video.models.rel_pos import rel_pos_bias

    torch.manual_seed(0)
    d = 5
    q = torch.randn(2, 3, 1 + q_thw[0] * q_thw[1] * q_thw[2], d, dtype=torch.float64, requires_grad=True)
    tables = [torch.randn(2 * max(a, b) - 1, d, dtype=torch.float64, requires_grad=True)
              for a, b in zip(q_thw, k_thw)]  # t, h, w
    rel_t, rel_h, rel_w = tables
    ours = rel_pos_bias(q, q_thw, k_thw, True, rel_h, rel_w, rel_t)
    reference = _bias_by_definition(q, q_thw, k_thw, rel_h, rel_w, rel_t)
    assert ours.shape == reference.shape
    assert torch.allclose(ours, reference, atol=1e-12)
    assert ours[:, :, 0].abs().max() == 0 and ours[:, :, :, 0].abs().max() == 0  # the class token: no position term
    weights = torch.randn_like(ours)
    grads = torch.autograd.grad((ours * weights).sum(), [q, *tables])
    expected = torch.autograd.grad((reference * weights).sum(), [q, *tables])
    for got, want in zip(grads, expected):
        assert torch.allclose(got, want, atol=1e-10)


@pytest.mark.parametrize("training, kernel", [(False, "aten::_scaled_dot_product_flash_attention_for_cpu"),
                                              (True, "aten::_scaled_dot_product_attention_math")])
def test_the_attention_kernel_the_readme_names(training, kernel):
    """README: with the relative-position mask, CPU inference takes a fused SDPA kernel; training takes the math one."""
    from torch.profiler import profile

    model = build_model(load_config(TINY_V2)).train(training)
    x = torch.randn(1, 3, 8, 64, 64)
    with profile() as prof, torch.set_grad_enabled(training):
        out = model(x)
        if training:
            out.sum().backward()
    ran = {event.key for event in prof.key_averages() if "attention" in event.key}
    assert kernel in ran, sorted(ran)
    if not training:
        assert "aten::_scaled_dot_product_attention_math" not in ran, sorted(ran)
