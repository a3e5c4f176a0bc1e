"""CeiT in 3D: the image-to-tokens stem lands on the cube stem's grid, LeFF mixes each token with its 3x3x3
neighbours only and lets the class token through, LCA reads the class tokens of every block with the last as query."""

from pathlib import Path

import pytest
import torch
from torch import nn

from mvit_video.config import load_config
from mvit_video.models import build_model
from mvit_video.models.i2t import ImageToTokens3d
from mvit_video.models.lca import LCA
from mvit_video.models.leff import LeFF
from mvit_video.models.patch_embed import PatchEmbed3d

CONFIGS = Path(__file__).resolve().parents[2] / "configs"


def _neighbours(centre, thw):
    """Flat grid indices of the 3x3x3 neighbourhood of ``centre`` (all on the grid)."""
    t0, h0, w0 = centre
    return {((t0 + a) * thw[1] + h0 + b) * thw[2] + w0 + c for a in (-1, 0, 1) for b in (-1, 0, 1) for c in (-1, 0, 1)}


def impulse_response(module: nn.Module, dim: int, thw, centre) -> set:
    """Grid positions whose output changes when one token (at ``centre``) changes; the class token is present."""
    x = torch.zeros(1, 1 + thw[0] * thw[1] * thw[2], dim)
    x_impulse = x.clone()
    x_impulse[0, 1 + (centre[0] * thw[1] + centre[1]) * thw[2] + centre[2]] = torch.randn(dim)
    with torch.no_grad():
        diff = (module(x_impulse, thw) - module(x, thw))[0, 1:].abs().amax(dim=-1)
    return set(torch.nonzero(diff > 1e-7).flatten().tolist())


@pytest.mark.parametrize("cfg,clip,grid", [
    ("K400/MVIT_B_16x4_CEIT.yaml", (16, 224, 224), (8, 56, 56)),
    ("synthetic/MVIT_TINY_CEIT.yaml", (8, 112, 112), (4, 14, 14)),
])
def test_i2t_stem_lands_on_the_cube_stem_grid(cfg, clip, grid):
    m = load_config(str(CONFIGS / cfg)).MVIT
    cube = PatchEmbed3d(3, 8, m.PATCH_KERNEL, m.PATCH_STRIDE, m.PATCH_PADDING)
    i2t = ImageToTokens3d(3, 8, m.PATCH_STRIDE, channels=4).eval()
    assert cube.grid_size(clip) == i2t.grid_size(clip) == grid
    with torch.no_grad():
        tokens, thw = i2t(torch.randn(1, 3, *clip))
    assert thw == grid and tokens.shape == (1, grid[0] * grid[1] * grid[2], 8)
    # CeiT's stem: a 7x7 stride-2 conv without bias, batch norm, and a 3x3 stride-2 max pool, all per frame
    assert i2t.conv.kernel_size == (3, 7, 7) and i2t.conv.stride == (1, 2, 2) and i2t.conv.bias is None
    assert isinstance(i2t.bn, nn.BatchNorm3d)
    assert i2t.pool.kernel_size == (1, 3, 3) and i2t.pool.stride == (1, 2, 2)


def test_i2t_grid_size_matches_its_output_at_other_sizes():
    i2t = ImageToTokens3d(3, 8, (2, 4, 4), channels=4).eval()
    for clip in [(4, 64, 96), (6, 50, 70)]:
        with torch.no_grad():
            _, thw = i2t(torch.randn(1, 3, *clip))
        assert thw == i2t.grid_size(clip)


def test_leff_mixes_only_3x3x3_neighbours_in_the_grid_layout():
    leff = LeFF(8, 16, 8).eval()
    with torch.no_grad():  # non-trivial batch-norm statistics: eval mode keeps LeFF pointwise outside the conv
        for bn in (leff.bn1, leff.bn2, leff.bn3):
            bn.running_mean.normal_()
            bn.running_var.uniform_(0.5, 2.0)
    thw, centre = (4, 5, 6), (2, 1, 3)  # not a cube, so a wrong (T, H, W) order spreads elsewhere
    assert impulse_response(leff, 8, thw, centre) == _neighbours(centre, thw)


def test_leff_class_token_bypasses_and_zero_where_the_block_widens():
    x = torch.randn(2, 1 + 2 * 3 * 3, 8)
    leff = LeFF(8, 32, 8)  # training mode: batch statistics over the grid tokens only
    assert torch.equal(leff(x, (2, 3, 3))[:, 0], x[:, 0])
    widening = LeFF(8, 32, 16)
    out = widening(x, (2, 3, 3))
    assert out.shape == (2, 1 + 18, 16)
    assert torch.equal(out[:, 0], torch.zeros(2, 16))  # the block's skip projection carries the class token


def test_lca_queries_with_the_last_class_token_only():
    lca = LCA(widths=[8, 8, 16, 16], dim=16, num_heads=2).eval()
    assert set(lca.project) == {"8"}  # one projection per narrower width, none at the final width
    assert torch.equal(lca.layer_embed, torch.zeros(1, 4, 16))  # zero init
    tokens = [torch.randn(2, 1, w) for w in (8, 8, 16, 16)]
    with torch.no_grad():
        out = lca(tokens)
        # the earlier class tokens are keys and values only: their order does not matter (layer embedding zero)
        assert torch.allclose(lca([tokens[1], tokens[0], tokens[2], tokens[3]]), out, atol=1e-6)
        # but the last one is the query and the residual
        assert not torch.allclose(lca([tokens[0], tokens[1], tokens[3], tokens[2]]), out, atol=1e-4)
    assert out.shape == (2, 1, 16)


def test_ceit_model_uses_i2t_leff_and_lca():
    cfg = load_config(str(CONFIGS / "synthetic/MVIT_TINY_CEIT.yaml"), ["MODEL.NUM_CLASSES", "5"])
    model = build_model(cfg).eval()
    assert isinstance(model.patch_embed, ImageToTokens3d)
    assert all(isinstance(b.mlp, LeFF) for b in model.blocks)
    # MViT widens in the MLP of a stage's last block: LeFF does too
    assert [b.mlp.fc2.out_features for b in model.blocks] == [96, 96, 192, 192, 192, 192]
    assert isinstance(model.readout, LCA)
    assert model.readout.widths == [96, 96, 192, 192, 192, 192] and set(model.readout.project) == {"96"}
    assert "readout.layer_embed" not in model.no_weight_decay()  # the config lets positional tables decay
    with torch.no_grad():
        assert model(torch.randn(2, 3, 8, 112, 112)).shape == (2, 5)
    with pytest.raises(ValueError, match="MVIT.CLS_EMBED_ON"):
        build_model(load_config(str(CONFIGS / "synthetic/MVIT_TINY_CEIT.yaml"), ["MVIT.CLS_EMBED_ON", "False"]))
