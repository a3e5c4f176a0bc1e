"""ELSA in 3D: equal to its definition written with a full unfold, local, reducible to plain local attention, and
O(C x N) in memory."""

import math
import weakref
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

from mvit_video.config import load_config
from mvit_video.flops import LOCAL_AGGREGATION_OP, FlopCountAnalysis, count_model, local_aggregation_flop_jit
from mvit_video.models import build_model
from mvit_video.models.elsa import ELSA, LocalAggregation, local_aggregate, padded_aggregate
from mvit_video.models.pooling_attention import MultiScaleAttention

CONFIGS = Path(__file__).resolve().parents[2] / "configs"


def unfold_reference(m: ELSA, x: torch.Tensor, thw) -> torch.Tensor:
    """ELSA as the paper writes it, with every (k_t, k, k) neighbourhood unfolded explicitly (slow, O(K C N))."""
    batch, channels, heads = x.shape[0], x.shape[-1], m.num_heads
    q, k, v = m.pre_proj(x).split([m.dim_qk, m.dim_qk, channels], dim=-1)
    volume = (q[:, 1:] * k[:, 1:]).transpose(1, 2).reshape(batch, m.dim_qk, *thw)
    offsets = math.prod(m.kernel)
    attn = m.hadamard_attn(volume).reshape(batch, heads, 1, offsets, *thw).softmax(dim=3)
    kt, kh, kw = m.kernel
    padding = (kw // 2,) * 2 + (kh // 2,) * 2 + (kt // 2,) * 2
    padded = F.pad(v[:, 1:].transpose(1, 2).reshape(batch, channels, *thw), padding)
    windows = padded.unfold(2, kt, 1).unfold(3, kh, 1).unfold(4, kw, 1).reshape(batch, channels, *thw, offsets)
    windows = windows.reshape(batch, heads, channels // heads, *thw, offsets).permute(0, 1, 2, 6, 3, 4, 5)
    mul = 1.0 if m.ghost_mul is None else (m.ghost_mul**m.lam).reshape(heads, channels // heads, offsets, 1, 1, 1)
    add = 0.0 if m.ghost_add is None else (m.ghost_add * m.gamma).reshape(heads, channels // heads, offsets, 1, 1, 1)
    grid = (windows * (mul * attn + add)).sum(dim=3).reshape(batch, channels, -1).transpose(1, 2)
    d = m.dim_qk // heads
    q_cls = q[:, :1].reshape(batch, 1, heads, d).transpose(1, 2)
    keys = k.reshape(batch, -1, heads, d).transpose(1, 2)
    values = v.reshape(batch, -1, heads, channels // heads).transpose(1, 2)
    weights = (q_cls @ keys.transpose(-1, -2) / math.sqrt(d)).softmax(dim=-1)
    cls = (weights @ values).transpose(1, 2).reshape(batch, 1, channels)
    return m.post_proj(torch.cat([cls, grid], dim=1))


@pytest.mark.parametrize("lam,gamma", [(1.0, 1.0), (0.0, 1.0), (2.0, 0.0), (0.0, 0.0)])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_elsa_equals_the_unfold_definition(lam, gamma, dtype):
    m = ELSA(16, num_heads=2, kernel=(3, 3, 5), lam=lam, gamma=gamma, group_width=4).to(dtype).eval()
    thw = (3, 4, 6)
    x = torch.randn(2, 1 + math.prod(thw), 16, dtype=dtype)
    with torch.no_grad():
        out, out_thw = m(x, thw)
        expected = unfold_reference(m, x, thw)
    assert out_thw == thw
    assert torch.allclose(out, expected, atol=1e-5 if dtype == torch.float32 else 1e-12)


def test_aggregation_backward_matches_numerical_gradients():
    kernel = (3, 1, 3)
    v = torch.randn(1, 2, 3, 3, 2, 2, dtype=torch.float64, requires_grad=True)  # (B, T, H, W, G, Cg)
    attn = torch.randn(1, 2, 3, 3, 2, 9, dtype=torch.float64).softmax(-1).requires_grad_()
    mul = torch.randn(2, 2, 9, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda *t: LocalAggregation.apply(*t, kernel), (v, attn, mul), fast_mode=True)
    assert torch.autograd.gradcheck(lambda *t: LocalAggregation.apply(*t, None, kernel), (v, attn), fast_mode=True)


def test_elsa_gradients_equal_those_of_the_unfold_definition():
    m = ELSA(16, num_heads=2, kernel=(3, 3, 3), group_width=4).double()
    thw = (3, 4, 5)
    x = torch.randn(2, 1 + math.prod(thw), 16, dtype=torch.float64, requires_grad=True)
    target = torch.randn(2, 1 + math.prod(thw), 16, dtype=torch.float64)
    grads = []
    for forward in (lambda: m(x, thw)[0], lambda: unfold_reference(m, x, thw)):
        loss = (forward() * target).sum()
        grads.append(torch.autograd.grad(loss, [x, *m.parameters()]))
    for ours, reference in zip(*grads):
        assert torch.allclose(ours, reference, atol=1e-10)


def test_elsa_output_depends_only_on_the_neighbourhood():
    m = ELSA(16, num_heads=2, kernel=(3, 5, 5), group_width=4).eval()
    thw, centre = (5, 7, 7), (2, 3, 3)
    x = torch.randn(1, 1 + math.prod(thw), 16)

    def index(t, h, w):
        return 1 + (t * thw[1] + h) * thw[2] + w

    def output_at_centre_after_changing(*cell):
        changed = x.clone()
        changed[0, index(*cell)] += 10.0
        with torch.no_grad():
            return m(changed, thw)[0][0, index(*centre)]

    with torch.no_grad():
        reference = m(x, thw)[0][0, index(*centre)]
    for outside in [(4, 3, 3), (0, 3, 3), (2, 6, 3), (2, 0, 0), (2, 3, 6), (4, 6, 6)]:  # beyond (1, 2, 2)
        assert torch.allclose(output_at_centre_after_changing(*outside), reference, atol=1e-6), outside
    for inside in [(3, 5, 5), (1, 1, 1), (2, 3, 3)]:  # corners and centre of the 3 x 5 x 5 neighbourhood
        assert not torch.allclose(output_at_centre_after_changing(*inside), reference, atol=1e-4), inside
    changed = x.clone()
    changed[0, 0] += 10.0  # grid tokens never attend to the class token
    with torch.no_grad():
        assert torch.allclose(m(changed, thw)[0][0, 1:], m(x, thw)[0][0, 1:], atol=1e-6)


def test_lam_and_gamma_zero_reduce_the_ghost_head_to_local_attention():
    plain = ELSA(16, num_heads=2, kernel=(3, 3, 3), lam=0.0, gamma=0.0, group_width=4).eval()
    assert plain.ghost_mul is None and plain.ghost_add is None
    ghost = ELSA(16, num_heads=2, kernel=(3, 3, 3), lam=1.0, gamma=1.0, group_width=4).eval()
    assert ghost.ghost_mul.shape == ghost.ghost_add.shape == (16, 3, 3, 3)
    ghost.load_state_dict(plain.state_dict(), strict=False)
    thw = (3, 4, 5)
    x = torch.randn(2, 1 + math.prod(thw), 16)
    with torch.no_grad():
        assert not torch.allclose(ghost(x, thw)[0], plain(x, thw)[0], atol=1e-4)
        ghost.ghost_mul.fill_(1.0)  # a multiplicative ghost of ones and an additive ghost of zeros change nothing
        ghost.ghost_add.zero_()
        assert torch.allclose(ghost(x, thw)[0], plain(x, thw)[0], atol=1e-6)


def test_plain_local_attention_is_a_weighted_sum_of_the_neighbours():
    v = torch.randn(2, 3, 4, 5, 2, 8)  # (B, T, H, W, heads, C / heads)
    attn = torch.rand(2, 3, 4, 5, 2, 27).softmax(-1)  # one weight per offset and head
    out = local_aggregate(v, attn, None, (3, 3, 3))
    offsets = [(a - 1, b - 1, c - 1) for a in range(3) for b in range(3) for c in range(3)]  # row-major
    t, h, w = 1, 2, 3
    inside = sum(attn[:, t, h, w, :, o, None] * v[:, t + a, h + b, w + c] for o, (a, b, c) in enumerate(offsets))
    assert torch.allclose(out[:, t, h, w], inside, atol=1e-6)
    # at a corner the neighbours off the grid count as zeros: their weights are not renormalised away
    corner = sum(
        attn[:, 0, 0, 0, :, o, None] * v[:, a, b, c] for o, (a, b, c) in enumerate(offsets) if min(a, b, c) >= 0
    )
    assert torch.allclose(out[:, 0, 0, 0], corner, atol=1e-6)


@pytest.mark.parametrize("ghost", [False, True])
def test_the_padded_sum_used_for_onnx_export_equals_the_in_place_one(ghost):
    v = torch.randn(2, 3, 4, 5, 2, 8)
    attn = torch.rand(2, 3, 4, 5, 2, 45).softmax(-1)
    mul = torch.randn(2, 8, 45) if ghost else None
    expected = local_aggregate(v, attn, mul, (3, 3, 5))
    assert torch.allclose(padded_aggregate(v, attn, mul, (3, 3, 5)), expected, atol=1e-6)


class TensorMemory(TorchDispatchMode):
    """Live and peak bytes of the tensor storages created by the ops run under it (views and inputs excluded)."""

    def __init__(self) -> None:
        super().__init__()
        self.live = self.peak = 0
        self._tracked = set()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        inputs = {t.untyped_storage().data_ptr() for t in tree_leaves((args, kwargs)) if isinstance(t, torch.Tensor)}
        out = func(*args, **kwargs)
        for t in tree_leaves(out):
            if isinstance(t, torch.Tensor):
                storage = t.untyped_storage()
                ptr, size = storage.data_ptr(), storage.nbytes()
                if size and ptr not in inputs and ptr not in self._tracked:
                    self._tracked.add(ptr)
                    self.live += size
                    self.peak = max(self.peak, self.live)
                    weakref.finalize(storage, self._free, ptr, size)
        return out

    def _free(self, ptr: int, size: int) -> None:
        self._tracked.discard(ptr)
        self.live -= size


def test_elsa_memory_stays_linear_in_the_grid():
    """One ELSA layer at MViT-B's first stage (8 x 56 x 56 tokens of width 96, one head, 3x7x7 neighbourhood, full
    ghost head), in inference mode, with every tensor allocation of its ops accounted."""
    thw, dim, kernel = (8, 56, 56), 96, (3, 7, 7)
    m = ELSA(dim, num_heads=1, kernel=kernel, lam=1.0, gamma=1.0).eval()
    x = torch.randn(1, 1 + math.prod(thw), dim)
    input_bytes = x.numel() * x.element_size()  # one input-sized activation: 9.6 MB
    offsets = math.prod(kernel)
    with torch.inference_mode():
        with TensorMemory() as layer:
            out, _ = m(x, thw)
        v = torch.randn(1, *thw, 1, dim)
        attn = torch.rand(1, *thw, 1, offsets)
        mul = torch.randn(1, dim, offsets)
        with TensorMemory() as aggregation:
            local_aggregate(v, attn, mul, kernel)
    assert out.shape == x.shape
    # The layer must hold its input-sized activations (the values and the output) and the attention weights
    # (K logits per token and head: 1.5 input-sized); its peak stays below twice those.
    necessary = 2 * input_bytes + attn.numel() * attn.element_size()
    assert layer.peak < 2 * necessary, (layer.peak / input_bytes, necessary / input_bytes)
    # The aggregation itself holds its output and at most one offset's per-channel weights, two tensors the size
    # of its values, where a full unfold of the values would hold K = 147 of them (1.4 GB).
    value_bytes = v.numel() * v.element_size()
    assert aggregation.peak <= 2 * value_bytes, aggregation.peak / value_bytes
    assert offsets * value_bytes > 1.4e9


def test_elsa_replaces_mhpa_in_the_chosen_stages_except_query_pooling():
    model = build_model(load_config(str(CONFIGS / "K400/MVIT_B_16x4_ELSA.yaml")))
    elsa = [i for i, b in enumerate(model.blocks) if isinstance(b.attn, ELSA)]
    mhpa = [i for i, b in enumerate(model.blocks) if isinstance(b.attn, MultiScaleAttention)]
    assert elsa == [0, 2] + list(range(4, 14))  # stages 0-2 ...
    assert mhpa == [1, 3, 14, 15]  # ... but the query-pooling blocks and the last stage keep MHPA
    assert [model.blocks[i].attn.dim_qk for i in (0, 2, 4)] == [64, 128, 256]  # 2/3 of 96, 192, 384
    assert model.blocks[0].attn.kernel == (3, 5, 5) and model.blocks[4].attn.num_heads == 4
    with pytest.raises(ValueError, match="MVIT.ELSA_STAGES"):
        build_model(load_config(str(CONFIGS / "K400/MVIT_B_16x4_ELSA.yaml"), ["MVIT.ELSA_STAGES", "[4]"]))


class _OneLayer(torch.nn.Module):
    def __init__(self, layer: ELSA, thw) -> None:
        super().__init__()
        self.layer, self.thw = layer, thw

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layer(x, self.thw)[0]


def test_fvcore_counts_the_aggregation_as_one_multiply_add_per_value_and_offset():
    thw, dim, kernel = (2, 4, 4), 16, (3, 3, 3)
    layer = _OneLayer(ELSA(dim, num_heads=2, kernel=kernel, lam=1.0, gamma=0.0, group_width=4), thw)
    x = torch.zeros(1, 1 + 32, dim)
    flops = FlopCountAnalysis(layer, x).set_op_handle(LOCAL_AGGREGATION_OP, local_aggregation_flop_jit)
    assert flops.by_operator()["local_aggregation"] == 32 * dim * 27
    assert not any("PythonOp" in op for op in count_model(layer, (1 + 32, dim), activations=False).unsupported_ops)
