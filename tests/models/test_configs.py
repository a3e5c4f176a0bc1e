"""Every config in configs/ builds, runs a small forward, and has the parameters and fvcore GFLOPs pinned here.

The README's counts table and its variant table quote these numbers; a config added without a pin fails
``test_every_config_is_pinned``. GFLOPs are fvcore's (one fused multiply-add = one flop) at the config's training clip.
MViTv2-L's GFLOPs (40 x 312 x 312) are pinned but not traced here: that one trace takes 2 minutes and about 6 GB on
the 2-core machine (`tools/count_flops.py --cfg configs/K400/MVITv2_L_40x3_test.yaml` printed 2828.10, the paper's
2828); its parameter count equals PySlowFast's own build of the same YAML (the paper's table says 217.6M).
"""

from pathlib import Path

import pytest
import torch

from mvit_video.config import load_config
from mvit_video.flops import count_model
from mvit_video.models import build_model

ROOT = Path(__file__).resolve().parents[2]
CONFIGS = ROOT / "configs"

# config: (params, GFLOPs at its training clip size)
PINNED = {
    "K400/MVIT_B_16x4.yaml": (36_610_672, 70.80),
    "K400/MVIT_B_32x3.yaml": (36_611_440, 170.37),
    "K400/MVIT_B_24_32x3.yaml": (53_115_280, 236.31),
    "K400/MVIT_S_16x4.yaml": (26_038_032, 30.05),
    "K400/VIT_B_16x4.yaml": (86_702_224, 180.64),
    "K400/MVIT_B_16x4_PEG.yaml": (36_351_760, 70.99),
    "K400/MVIT_B_16x4_ELSA.yaml": (38_595_721, 68.03),
    "K400/MVIT_B_16x4_CEIT.yaml": (44_965_584, 77.27),
    "K400/MVIT_B_16x4_PVT.yaml": (39_821_968, 58.68),
    "K400/MVITv2_S_16x4.yaml": (34_537_744, 64.46),
    "K400/MVITv2_B_32x3.yaml": (51_230_128, 225.17),
    "K400/MVITv2_L_40x3_test.yaml": (213_390_112, 2828.10),  # traced by hand, see the module docstring
    "K600/MVIT_B_16x4.yaml": (36_764_472, 70.80),
    "K600/MVIT_B_32x3.yaml": (36_765_240, 170.37),
    "K600/MVIT_B_24_32x3.yaml": (53_269_080, 236.31),
    "synthetic/MVIT_TINY.yaml": (1_715_676, 0.2572),
    "synthetic/MVIT_TINY_FINETUNE.yaml": (1_714_132, 0.2572),
    "synthetic/MVIT_TINY_PEG.yaml": (1_716_780, 0.2600),
    "synthetic/MVIT_TINY_ELSA.yaml": (1_793_853, 0.2817),
    "synthetic/MVIT_TINY_CEIT.yaml": (2_311_964, 0.9800),
    "synthetic/MVIT_TINY_PVT.yaml": (1_914_540, 0.3155),  # linear SRA enlarges stage 3's 4 x 4 grid to 7 x 7
    "synthetic/VIT_TINY.yaml": (1_618_428, 2.3092),
    "synthetic/MVITv2_TINY.yaml": (1_605_276, 0.2248),
}
ALL = sorted(str(p.relative_to(CONFIGS)) for p in CONFIGS.rglob("*.yaml"))
TRACED_BY_HAND = {"K400/MVITv2_L_40x3_test.yaml"}  # too big to trace in the suite


def test_every_config_is_pinned():
    assert sorted(PINNED) == ALL


def _tolerance(gflops: float) -> float:
    return 0.005 if gflops > 10 else 5e-4


@pytest.mark.parametrize("name", ALL)
def test_config_builds_runs_and_matches_its_counts(name):
    cfg = load_config(str(CONFIGS / name))
    model = build_model(cfg).eval()
    params, gflops = PINNED[name]
    assert sum(p.numel() for p in model.parameters()) == params
    # a small forward at a clip smaller than the training one (positional tables are resized)
    with torch.no_grad():
        logits = model(torch.randn(1, 3, 8, 96, 96))
    assert logits.shape == (1, cfg.MODEL.NUM_CLASSES) and torch.isfinite(logits).all()
    if name not in TRACED_BY_HAND:
        size = (3, cfg.DATA.NUM_FRAMES, cfg.DATA.TRAIN_CROP_SIZE, cfg.DATA.TRAIN_CROP_SIZE)
        counts = count_model(model, size, activations=False)
        assert counts.gflops == pytest.approx(gflops, abs=_tolerance(gflops))
        # nothing that multiplies and adds goes uncounted: attention and ELSA's aggregation have rules
        assert not any("attention" in op or "PythonOp" in op for op in counts.unsupported_ops)


# The papers' numbers the README quotes (MViT: Fan et al. 2021, Tables 2-3; MViTv2: Li et al. 2022, Table 5):
# config: (paper params, GFLOPs x views, K400 top-1 / top-5).
PAPER = {
    "K400/MVIT_S_16x4.yaml": ("26.1M", "32.9 x 5", "76.0"),
    "K400/MVIT_B_16x4.yaml": ("36.6M", "70.5 x 5", "78.4 / 93.5"),
    "K400/MVIT_B_32x3.yaml": ("36.6M", "170 x 5", "80.2"),
    "K400/MVIT_B_24_32x3.yaml": ("53.1M", "236 x 5", "-"),
    "K400/VIT_B_16x4.yaml": ("87.2M", "179.6 x 5", "68.5"),
    "K400/MVITv2_S_16x4.yaml": ("34.5M", "64 x 5", "81.0 / 94.6"),
    "K400/MVITv2_B_32x3.yaml": ("51.2M", "225 x 5", "82.9 / 95.7"),
    "K400/MVITv2_L_40x3_test.yaml": ("217.6M", "2828 x 15", "86.1 / 97.0"),
}


def _readme_config_rows() -> dict:
    """{config: [cells after the model name]} of the README's counts table."""
    rows = {}
    for line in (ROOT / "README.md").read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 7 and cells[0].startswith("configs/"):
            rows[cells[0][len("configs/"):]] = cells[2:]
    return rows


def test_the_readme_table_quotes_the_pinned_counts_and_the_papers_numbers():
    rows = _readme_config_rows()
    assert set(PAPER) <= set(rows) and set(rows) <= set(PINNED)
    for name, (params, gflops, *paper) in rows.items():
        assert int(params.replace(",", "")) == PINNED[name][0], name
        pinned = PINNED[name][1]
        assert gflops == f"{pinned:.2f}", name
        assert tuple(paper) == PAPER.get(name, ("", "", "")), name
