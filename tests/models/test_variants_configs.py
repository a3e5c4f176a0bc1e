"""The variant configs load, build the layers they name, and are counted by fvcore (tools/count_flops.py)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from mvit_video.config import load_config
from mvit_video.flops import count_model
from mvit_video.models import build_model

from .test_variants_training import _one_thread  # noqa: F401  (autouse: small models run faster on one thread)

ROOT = Path(__file__).resolve().parents[2]
MVIT_B_PARAMS = 36_610_672
# variant: (params of MViT-B 16x4, params of the tiny synthetic model, tiny fvcore GFLOPs at 8 x 112 x 112)
COUNTS = {
    "PEG": (36_351_760, 1_716_780, 0.2600),
    "ELSA": (38_595_721, 1_793_853, 0.2817),
    "CEIT": (44_965_584, 2_311_964, 0.9800),
    "PVT": (39_821_968, 1_914_540, 0.3155),  # linear SRA enlarges the 4 x 4 grid of stage 3 to 7 x 7, as PVT v2
}


@pytest.mark.parametrize("variant", sorted(COUNTS))
def test_k400_variant_config_builds(variant):
    cfg = load_config(str(ROOT / f"configs/K400/MVIT_B_16x4_{variant}.yaml"))
    model = build_model(cfg)
    assert sum(p.numel() for p in model.parameters()) == COUNTS[variant][0]
    assert len(model.blocks) == 16 and model.head.projection.out_features == 400


def test_peg_parameters_are_the_tables_traded_for_four_pegs():
    tables = 56 * 56 * 96 + 8 * 96 + 96  # separate space-time tables and the class entry of MViT-B
    assert COUNTS["PEG"][0] == MVIT_B_PARAMS - tables + 28 * (192 + 192 + 384 + 768)


@pytest.mark.parametrize("variant", sorted(COUNTS))
def test_tiny_variant_is_counted_by_fvcore(variant):
    cfg = load_config(str(ROOT / f"configs/synthetic/MVIT_TINY_{variant}.yaml"))
    counts = count_model(build_model(cfg), (3, 8, 112, 112), activations=False)
    assert counts.params == COUNTS[variant][1]
    assert counts.gflops == pytest.approx(COUNTS[variant][2], abs=5e-4)
    # nothing that multiplies and adds goes uncounted: attention and ELSA's aggregation have rules
    assert not any("attention" in op or "PythonOp" in op for op in counts.unsupported_ops)


def test_count_flops_tool_runs_on_a_variant_config():
    variant = "ELSA"  # the one with a custom autograd function for fvcore to trace
    cfg = ROOT / f"configs/synthetic/MVIT_TINY_{variant}.yaml"
    tool = ROOT / "tools/count_flops.py"
    out = subprocess.run([sys.executable, str(tool), "--cfg", str(cfg), "--json"], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    line = json.loads(out.stdout.strip().splitlines()[-1])
    assert line["params"] == COUNTS[variant][1]
    assert line["gflops"] == pytest.approx(COUNTS[variant][2], abs=5e-4)
    assert line["activations"] > 0
