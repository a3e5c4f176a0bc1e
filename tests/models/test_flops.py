"""tools/count_flops.py prints the pinned counts of MViTv2-S (every config's counts are pinned in test_configs.py)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from .test_configs import PINNED

ROOT = Path(__file__).resolve().parents[2]


def test_count_flops_tool_prints_mvitv2_s_counts():
    name = "K400/MVITv2_S_16x4.yaml"
    tool, cfg = ROOT / "tools/count_flops.py", ROOT / "configs" / name
    out = subprocess.run([sys.executable, str(tool), "--cfg", str(cfg), "--json"], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    line = json.loads(out.stdout.strip().splitlines()[-1])
    params, gflops = PINNED[name]
    assert line["params"] == params == 34_537_744
    # fvcore's count of PySlowFast's own MViTv2-S build is 64.46
    assert line["gflops"] == pytest.approx(gflops, abs=0.005) and abs(line["gflops"] - 64.46) < 0.1
    assert line["activations"] > 0
