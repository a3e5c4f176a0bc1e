"""What a user reads before running anything: the installed version, and the file names the quick start promises."""

import re
from importlib.metadata import version
from pathlib import Path

import mvit_video
from mvit_video.config import load_config

ROOT = Path(__file__).resolve().parents[1]


def test_the_installed_version_is_the_package_version():
    assert re.fullmatch(r"\d+\.\d+\.\d+", mvit_video.__version__)
    assert version("mvit_video") == mvit_video.__version__


def test_the_checkpoint_the_quick_start_names_is_the_one_training_writes():
    """README and predict's help name the newest checkpoint of a run of the tiny config: its last epoch's file."""
    cfg = load_config(str(ROOT / "configs/synthetic/MVIT_TINY.yaml"), [])
    last = f"checkpoint_epoch_{cfg.SOLVER.MAX_EPOCH:05d}.pyth"
    for doc in (ROOT / "README.md", ROOT / "tools/predict.py"):
        named = set(re.findall(r"checkpoint_epoch_\d{5}\.pyth", doc.read_text()))
        assert named == {last}, f"{doc.name} names {sorted(named)}; MVIT_TINY.yaml trains {cfg.SOLVER.MAX_EPOCH} epochs"
