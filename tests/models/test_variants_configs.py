"""The variant configs: the PEG trade in parameters, and tools/count_flops.py on the variant with a custom autograd
function (every config's counts are pinned in test_configs.py)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from .test_configs import PINNED

ROOT = Path(__file__).resolve().parents[2]
MVIT_B_PARAMS = PINNED["K400/MVIT_B_16x4.yaml"][0]


def test_peg_parameters_are_the_tables_traded_for_four_pegs():
    tables = 56 * 56 * 96 + 8 * 96 + 96  # separate space-time tables and the class entry of MViT-B
    assert PINNED["K400/MVIT_B_16x4_PEG.yaml"][0] == MVIT_B_PARAMS - tables + 28 * (192 + 192 + 384 + 768)


def test_count_flops_tool_runs_on_a_variant_config():
    variant = "ELSA"  # the one with a custom autograd function for fvcore to trace
    cfg = ROOT / f"configs/synthetic/MVIT_TINY_{variant}.yaml"
    tool = ROOT / "tools/count_flops.py"
    out = subprocess.run([sys.executable, str(tool), "--cfg", str(cfg), "--json"], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    line = json.loads(out.stdout.strip().splitlines()[-1])
    params, gflops = PINNED[f"synthetic/MVIT_TINY_{variant}.yaml"]
    assert line["params"] == params
    assert line["gflops"] == pytest.approx(gflops, abs=5e-4)
    assert line["activations"] > 0
