"""mvit_video.load_model: a checkpoint that carries its config and class names is all a notebook needs."""

from pathlib import Path

import pytest
import torch

import mvit_video
from mvit_video.config import ConfigError, load_config
from mvit_video.data.transforms import EvalTransform
from mvit_video.models import build_model
from mvit_video.pretrained import checkpoint_config
from mvit_video.weight_files import save_checkpoint

from .data.video_files import write_clip

ROOT = Path(__file__).resolve().parents[1]
TINY = str(ROOT / "configs/synthetic/MVIT_TINY.yaml")
SMALL = ["DATA.TRAIN_CROP_SIZE", "64", "DATA.TEST_CROP_SIZE", "64", "DATA.TRAIN_JITTER_SCALES", "[64, 80]",
         "DATA.SAMPLING_RATE", "2", "MODEL.NUM_CLASSES", "3", "DATA.PATH_TO_DATA_DIR", "nowhere"]
NAMES = ["walk", "run", "jump"]


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """A checkpoint written as training writes them (weights, config, class names) and the model it holds."""
    folder = tmp_path_factory.mktemp("pretrained")
    cfg = load_config(TINY, SMALL)
    torch.manual_seed(0)
    model = build_model(cfg).eval()
    save_checkpoint(folder / "run.pyth", model.state_dict(), epoch=0, cfg=cfg.dump(), classnames=NAMES)
    save_checkpoint(folder / "weights_only.pyth", model.state_dict())
    write_clip(folder / "clip.mp4", "grow", num_frames=24)
    return folder, model


def test_load_model_brings_config_names_transform_and_predicts(saved):
    folder, model = saved
    loaded = mvit_video.load_model(str(folder / "run.pyth"), device="cpu")
    assert loaded.classnames == NAMES and loaded.cfg.MODEL.NUM_CLASSES == 3 and loaded.cfg.DATA.TEST_CROP_SIZE == 64
    assert not loaded.model.training and isinstance(loaded.transform, EvalTransform)
    assert loaded.config_source == f"the config stored in {folder / 'run.pyth'}"
    for key, value in model.state_dict().items():
        assert torch.equal(loaded.model.state_dict()[key], value), key
    prediction = mvit_video.predict(str(folder / "clip.mp4"), loaded, topk=3)
    assert sorted(prediction.labels) == sorted(NAMES)
    explicit = mvit_video.predict(str(folder / "clip.mp4"), model, load_config(TINY, SMALL), topk=3, classnames=NAMES)
    assert prediction.labels == explicit.labels and prediction.scores == pytest.approx(explicit.scores, abs=1e-6)


def test_opts_override_the_stored_config(saved):
    folder, _ = saved
    loaded = mvit_video.load_model(str(folder / "run.pyth"), opts=["TEST.NUM_ENSEMBLE_VIEWS", "1"], device="cpu")
    assert loaded.cfg.TEST.NUM_ENSEMBLE_VIEWS == 1


def test_a_weights_only_file_needs_a_config(saved):
    folder, _ = saved
    with pytest.raises(ConfigError, match="stores no config .* give its config file"):
        mvit_video.load_model(str(folder / "weights_only.pyth"))
    loaded = mvit_video.load_model(str(folder / "weights_only.pyth"), TINY, SMALL, device="cpu")
    assert loaded.classnames == ["class_0", "class_1", "class_2"]


def test_class_names_of_another_count_are_refused_naming_both_sources(saved):
    folder, _ = saved
    with pytest.raises(ValueError, match=r"the class-name list: 2 names, but the model predicts 3 classes "
                                         r"\(MODEL.NUM_CLASSES from the config stored in"):
        mvit_video.load_model(str(folder / "run.pyth"), classnames=["a", "b"])


def test_testing_a_checkpoint_of_another_class_count_names_both_counts(saved):
    # tools/run_net.py --checkpoint goes through checkpoint_config: the refusal names the key, its source and the head
    folder, _ = saved
    path = str(folder / "run.pyth")
    with pytest.raises(ValueError, match=r"MODEL.NUM_CLASSES = 5 \(from the config stored in .*3-class head"):
        checkpoint_config(path, None, ["MODEL.NUM_CLASSES", "5"])
    cfg, source = checkpoint_config(path)
    assert cfg.MODEL.NUM_CLASSES == 3 and cfg.TEST.CHECKPOINT_FILE_PATH == path
