"""A handful of generated videos and a tiny config that trains on them in seconds."""

from pathlib import Path

import pytest

from mvit_video.config import load_config
from mvit_video.data.synthetic import make_synthetic_dataset

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("synthetic")
    make_synthetic_dataset(str(root), seed=3, num_train=16, num_val=4, num_test=8, size=64, num_frames=24,
                           workers=1, progress=False)
    return root


def tiny_opts(data_dir: Path, output_dir: Path, *extra: str) -> list:
    """Overrides of configs/synthetic/MVIT_TINY.yaml for 64 px clips of 8 frames, on the CPU, deterministic."""
    return [
        "DATA.PATH_TO_DATA_DIR", str(data_dir),
        "DATA.CLASSNAMES", str(data_dir / "classnames.txt"),
        "DATA.TRAIN_CROP_SIZE", "64", "DATA.TEST_CROP_SIZE", "64", "DATA.TRAIN_JITTER_SCALES", "[64, 80]",
        "DATA.SAMPLING_RATE", "2",
        "DATA_LOADER.NUM_WORKERS", "0",
        "TRAIN.BATCH_SIZE", "4", "TEST.BATCH_SIZE", "4",
        "OUTPUT_DIR", str(output_dir),
        *extra,
    ]


@pytest.fixture
def tiny_cfg(tiny_dataset, tmp_path):
    def make(*extra: str):
        return load_config(str(ROOT / "configs/synthetic/MVIT_TINY.yaml"), tiny_opts(tiny_dataset, tmp_path, *extra))

    return make
