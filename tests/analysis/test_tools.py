"""count_flops --all and plot_stats."""

import subprocess
import sys
from pathlib import Path

import simplejson

ROOT = Path(__file__).resolve().parents[2]


def _tool(name, *args):
    return subprocess.run([sys.executable, str(ROOT / "tools" / name), *args], capture_output=True, text=True)


def test_count_flops_all_prints_a_row_per_config():
    out = _tool("count_flops.py", "--all", "--root", str(ROOT / "configs/synthetic"))
    assert out.returncode == 0, out.stderr
    rows = [line for line in out.stdout.splitlines() if line.startswith("| ") and "yaml" in line]
    assert len(rows) == len(list((ROOT / "configs/synthetic").glob("*.yaml")))
    tiny = next(r for r in rows if r.split("|")[1].strip().endswith("MVIT_TINY.yaml"))
    assert "| 1,715,676 | 0.26 |" in tiny


def _stats(folder: Path, losses):
    folder.mkdir()
    with open(folder / "stats.jsonl", "w") as f:
        for epoch, loss in enumerate(losses, 1):
            f.write(simplejson.dumps({"type": "train_epoch", "epoch": epoch, "loss": loss, "top1": 10.0 * epoch}) + "\n")
            f.write(simplejson.dumps({"type": "val", "epoch": epoch, "top1": 9.0 * epoch}) + "\n")


def test_plot_stats_draws_several_runs(tmp_path):
    _stats(tmp_path / "mvit", [2.0, 1.5, 1.0])
    _stats(tmp_path / "mvit_peg", [2.1, 1.4, 0.9])
    png = tmp_path / "both.png"
    out = _tool("plot_stats.py", str(tmp_path / "mvit"), str(tmp_path / "mvit_peg"), "--out", str(png))
    assert out.returncode == 0, out.stderr
    assert png.stat().st_size > 10_000


def test_plot_stats_names_a_folder_without_stats(tmp_path):
    out = _tool("plot_stats.py", str(tmp_path))
    assert out.returncode == 1 and "stats.jsonl" in out.stderr
