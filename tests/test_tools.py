"""The command-line entry points: run_net's PySlowFast interface and its honest refusal to train today."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TINY = str(ROOT / "configs/synthetic/MVIT_TINY.yaml")


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "tools/run_net.py"), *args], capture_output=True, text=True)


def test_run_net_dry_run_prints_model_and_plan():
    out = _run("--cfg", TINY, "--dry-run", "--opts", "SOLVER.MAX_EPOCH", "3")
    assert out.returncode == 0, out.stderr
    assert "1,715,676 params" in out.stdout
    assert "train MViT for 3 epochs" in out.stdout


def test_run_net_refuses_to_pretend_training():
    out = _run("--cfg", TINY)
    assert out.returncode == 3
    assert "not implemented yet" in out.stderr


def test_run_net_names_unknown_key():
    out = _run("--cfg", TINY, "--opts", "MVIT.NOT_A_KEY", "1")
    assert out.returncode == 2
    assert "MVIT.NOT_A_KEY" in out.stderr
