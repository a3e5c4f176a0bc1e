"""PEG (CPVT) in 3D: a translation-equivariant, light positional encoding that frees MViT from a fixed grid."""

from itertools import product
from pathlib import Path

import pytest
import torch

from mvit_video.config import load_config
from mvit_video.models import build_model
from mvit_video.models.peg import PEG
from mvit_video.models.pos_embed import NoPosEmbed

CONFIGS = Path(__file__).resolve().parents[2] / "configs"


def _interior_grid(channels: int, thw) -> torch.Tensor:
    """(1, THW, C) tokens, zero within two cells of every border, so a one-cell shift keeps the content inside."""
    grid = torch.zeros(1, channels, *thw)
    grid[:, :, 2:-2, 2:-2, 2:-2] = torch.randn(1, channels, *(n - 4 for n in thw))
    return grid.flatten(2).transpose(1, 2)


@pytest.mark.parametrize("axis", [0, 1, 2])
def test_peg_is_translation_equivariant(axis):
    peg = PEG(8, has_cls=True).eval()
    with torch.no_grad():
        peg.proj.bias.normal_()  # a non-zero bias is equivariant too: it adds the same vector everywhere
    thw = (6, 7, 8)
    tokens = _interior_grid(8, thw)
    cls = torch.randn(1, 1, 8)

    def shifted(x: torch.Tensor) -> torch.Tensor:  # move the grid content by one cell along ``axis``
        return x.transpose(1, 2).reshape(1, 8, *thw).roll(1, dims=2 + axis).flatten(2).transpose(1, 2)

    with torch.no_grad():
        out = peg(torch.cat([cls, tokens], dim=1), thw)
        out_shifted = peg(torch.cat([cls, shifted(tokens)], dim=1), thw)
    assert torch.allclose(out_shifted[:, 1:], shifted(out[:, 1:]), atol=1e-6)
    assert not torch.allclose(out[:, 1:], shifted(out[:, 1:]), atol=1e-3)  # the shift did move the output
    assert torch.equal(out[:, 0], cls[:, 0])  # the class token bypasses PEG


def _constant_grid_reference(peg: PEG, value: torch.Tensor, thw) -> torch.Tensor:
    """PEG of a grid whose every token is ``value`` (C,), by hand, with zero padding: at each cell, value + bias +
    value * (the sum of the kernel taps that land inside the grid). Returns (THW, C), time-major."""
    kernel, bias = peg.proj.weight[:, 0], peg.proj.bias  # (C, 3, 3, 3), (C,)
    out = []
    for cell in product(*(range(n) for n in thw)):
        # taps 0, 1, 2 look at cell - 1, cell, cell + 1: drop the ones that fall off the grid on each axis
        inside = tuple(slice(0 if i > 0 else 1, 3 if i < n - 1 else 2) for i, n in zip(cell, thw))
        out.append(value + bias + value * kernel[(slice(None),) + inside].sum(dim=(1, 2, 3)))
    return torch.stack(out)


def _peg_of_constant_grid(peg: PEG, value: torch.Tensor, thw) -> torch.Tensor:
    cls = torch.randn(1, 1, value.numel())
    x = torch.cat([cls, value.expand(1, thw[0] * thw[1] * thw[2], -1)], dim=1)
    with torch.no_grad():
        out = peg(x, thw)
    assert torch.equal(out[:, 0], cls[:, 0])
    return out[0, 1:]


def test_peg_zero_padding_tells_the_border_from_the_interior():
    # CPVT: zero padding is where PEG's absolute position cue comes from; a constant clip shows it alone
    peg = PEG(4).eval()
    with torch.no_grad():
        peg.proj.bias.normal_()
    thw, value = (3, 4, 5), torch.randn(4)
    out = _peg_of_constant_grid(peg, value, thw)
    with torch.no_grad():
        assert torch.allclose(out, _constant_grid_reference(peg, value, thw), atol=1e-6)
    grid = out.reshape(*thw, 4)
    assert torch.allclose(grid[1, 1, 1], grid[1, 2, 3], atol=1e-6)  # the interior cells are all alike
    assert (grid[0, 0, 0] - grid[1, 1, 1]).abs().max() > 1e-2  # a corner is not


@pytest.mark.parametrize("mode", ["circular", "replicate"])
def test_peg_border_test_fails_without_zero_padding(mode):
    peg = PEG(4).eval()
    peg.proj.padding_mode = mode  # a PEG that wraps or repeats the grid at its borders sees no border
    thw, value = (3, 4, 5), torch.randn(4)
    with torch.no_grad():
        reference = _constant_grid_reference(peg, value, thw)
    assert not torch.allclose(_peg_of_constant_grid(peg, value, thw), reference, atol=1e-3)


@pytest.mark.parametrize("dim", [8, 96])
def test_peg_has_28c_parameters_and_cpvt_init(dim):
    peg = PEG(dim)
    assert sum(p.numel() for p in peg.parameters()) == 28 * dim
    assert peg.proj.groups == dim and peg.proj.kernel_size == (3, 3, 3) and peg.proj.padding == (1, 1, 1)
    assert torch.equal(peg.proj.bias, torch.zeros(dim))
    std = peg.proj.weight.std().item()
    assert std == pytest.approx((2 / 27) ** 0.5, rel=0.25 if dim == 8 else 0.1)


def test_peg_placement_and_no_weight_decay():
    cfg = load_config(str(CONFIGS / "K400/MVIT_B_16x4_PEG.yaml"))
    model = build_model(cfg)
    # after the first block of every stage; MViT-B's stages start at blocks 0, 1, 3 and 14
    pegs = {i: b.pos for i, b in enumerate(model.blocks) if b.pos is not None}
    assert sorted(pegs) == [0, 1, 3, 14] and all(isinstance(p, PEG) for p in pegs.values())
    assert isinstance(model.pos_embed, NoPosEmbed)
    widths = [pegs[i].proj.in_channels for i in (0, 1, 3, 14)]
    assert widths == [192, 192, 384, 768]  # the output width of the block each follows
    assert sum(p.numel() for peg in pegs.values() for p in peg.parameters()) == 28 * sum(widths)
    # PEG never decays, even where the config lets positional tables decay (ZERO_DECAY_POS_CLS: False)
    assert not cfg.MVIT.ZERO_DECAY_POS_CLS
    expected = {f"blocks.{i}.pos.proj.{p}" for i in (0, 1, 3, 14) for p in ("weight", "bias")}
    assert set(model.no_weight_decay()) == expected
    first = build_model(load_config(str(CONFIGS / "synthetic/MVIT_TINY_PEG.yaml"), ["MVIT.PEG_PLACEMENT", "first"]))
    assert [i for i, b in enumerate(first.blocks) if b.pos is not None] == [0]


@pytest.mark.parametrize("frames,size", [(8, 112), (32, 112), (8, 224), (32, 224)])
def test_peg_model_runs_at_any_size_without_tables(frames, size):
    cfg = load_config(
        str(CONFIGS / "synthetic/MVIT_TINY_PEG.yaml"), ["MVIT.EMBED_DIM", "16", "MODEL.NUM_CLASSES", "5"]
    )
    model = build_model(cfg).eval()
    assert not list(model.pos_embed.parameters())  # nothing learned at a fixed grid: nothing to interpolate
    with torch.no_grad():
        logits = model(torch.randn(1, 3, frames, size, size))
    assert logits.shape == (1, 5) and torch.isfinite(logits).all()
