"""Fine-tuning to another set of classes: all but the head loaded exactly, the head re-initialised and reported, a
class-count mismatch refused without TRAIN.CHECKPOINT_DROP_HEAD, resume first; and the class-subset tool behind the
worked example."""

import logging
import os

import pytest
import torch

from mvit_video.config import load_config
from mvit_video.data import build_dataset, load_classnames, read_csv_annotations
from mvit_video.data.class_subset import write_class_subset
from mvit_video.engine.stats import read_stats
from mvit_video.engine.trainer import initialise_from, train
from mvit_video.engine.training_state import training_state_path
from mvit_video.models import build_model
from mvit_video.weight_files import CheckpointError, save_checkpoint

from ..tool_modules import load_tool
from .conftest import ROOT, tiny_opts

# Two steps per epoch on the 8 clips of the subset: a modest constant rate keeps the loss falling steadily (0.002 made
# it jump about from epoch to epoch).
CONSTANT_LR = ("SOLVER.LR_POLICY", "constant", "SOLVER.WARMUP_EPOCHS", "0.0", "SOLVER.BASE_LR", "0.0005")
HEAD = ["head.projection.bias", "head.projection.weight"]


@pytest.fixture(scope="module")
def names(tiny_dataset):
    return load_classnames(str(tiny_dataset / "classnames.txt"))


@pytest.fixture(scope="module")
def subset(tiny_dataset, names, tmp_path_factory):
    """Four of the twelve classes (those of the tiny set's val split), relabelled in another order."""
    out = tmp_path_factory.mktemp("subset")
    write_class_subset(str(tiny_dataset), [names[3], names[0], names[2], names[1]], str(out))
    return out


@pytest.fixture(scope="module")
def pretrained(tiny_dataset, tmp_path_factory):
    """A 12-class checkpoint of the tiny model (the stand-in for a Kinetics checkpoint) and its state dict."""
    torch.manual_seed(7)
    opts = tiny_opts(tiny_dataset, tmp_path_factory.mktemp("pre"), "MODEL.NUM_CLASSES", "12")
    model = build_model(load_config(str(ROOT / "configs/synthetic/MVIT_TINY.yaml"), opts))
    path = tmp_path_factory.mktemp("ckpt") / "pretrained.pyth"
    save_checkpoint(path, model.state_dict(), epoch=9)
    return str(path), model.state_dict()


def _finetune_opts(subset, checkpoint, *extra):
    return ("DATA.PATH_TO_DATA_DIR", str(subset), "DATA.CLASSNAMES", str(subset / "classnames.txt"),
            "MODEL.NUM_CLASSES", "4", "TRAIN.CHECKPOINT_FILE_PATH", checkpoint, "TRAIN.CHECKPOINT_DROP_HEAD", "True",
            "TRAIN.EVAL_PERIOD", "10", "TRAIN.CHECKPOINT_PERIOD", "10", *extra)


def test_every_tensor_but_the_head_is_loaded_exactly_and_the_head_is_reported(tiny_cfg, subset, pretrained, caplog):
    path, state = pretrained
    model = build_model(tiny_cfg(*_finetune_opts(subset, path)))
    fresh_head = {k: v.clone() for k, v in model.state_dict().items() if k.startswith("head.")}
    with caplog.at_level(logging.INFO, logger="mvit_video"):
        report = initialise_from(path, model, drop_head=True)
    loaded = model.state_dict()
    assert report.skipped == HEAD and report.num_tensors == len(loaded) - 2
    assert all(torch.equal(loaded[k], state[k]) for k in loaded if not k.startswith("head."))
    assert all(torch.equal(loaded[k], v) for k, v in fresh_head.items())
    assert f"initialised from {path} (mvit_video layout): {len(loaded) - 2} tensors loaded strictly" in caplog.text
    assert "re-initialised head: head.projection.bias, head.projection.weight (12 -> 4 classes)" in caplog.text


def test_finetuning_run_starts_from_the_checkpoint_and_lowers_the_loss(tiny_cfg, subset, pretrained, caplog):
    cfg = tiny_cfg(*_finetune_opts(subset, pretrained[0], "SOLVER.MAX_EPOCH", "8", *CONSTANT_LR))
    with caplog.at_level(logging.INFO, logger="mvit_video"):
        result = train(cfg)
    assert "re-initialised head: head.projection.bias, head.projection.weight (12 -> 4 classes)" in caplog.text
    losses = [r["loss"] for r in read_stats(os.path.join(cfg.OUTPUT_DIR, "stats.jsonl")) if r["type"] == "train_epoch"]
    assert len(losses) == 8 and losses[-1] < losses[0] - 0.3, losses
    assert result["val"]["num_videos"] == 4


def test_without_drop_head_the_other_class_count_is_refused_by_name(tiny_cfg, subset, pretrained):
    cfg = tiny_cfg(*_finetune_opts(subset, pretrained[0], "TRAIN.CHECKPOINT_DROP_HEAD", "False"))
    with pytest.raises(CheckpointError) as failure:
        train(cfg)
    message = str(failure.value)
    assert "shape of head.projection.weight: checkpoint (12, 192) vs model (4, 192)" in message
    assert "shape of head.projection.bias: checkpoint (12,) vs model (4,)" in message
    assert "TRAIN.CHECKPOINT_DROP_HEAD True" in message and "missing" not in message


def test_a_checkpoint_of_the_run_itself_wins_over_the_initial_one(tiny_cfg, subset, tmp_path, caplog):
    never_read = str(tmp_path / "no_such_checkpoint.pyth")
    cfg = tiny_cfg(*_finetune_opts(subset, "", "SOLVER.MAX_EPOCH", "1"))
    train(cfg)  # the first epoch, from scratch, then a stop
    assert os.path.isfile(training_state_path(cfg.OUTPUT_DIR, 0))
    os.remove(os.path.join(cfg.OUTPUT_DIR, "stats.jsonl"))
    with caplog.at_level(logging.INFO, logger="mvit_video"):
        train(tiny_cfg(*_finetune_opts(subset, never_read, "SOLVER.MAX_EPOCH", "2")))
    assert f"continuing at epoch 2 (TRAIN.CHECKPOINT_FILE_PATH {never_read} not used)" in caplog.text
    assert [r["epoch"] for r in read_stats(os.path.join(cfg.OUTPUT_DIR, "stats.jsonl"))
            if r["type"] == "train_epoch"] == [2]


# ---------------------------------------------------------------------------------------------------------------------
# The class-subset tool
# ---------------------------------------------------------------------------------------------------------------------


def test_subset_relabels_in_the_given_order_and_lists_the_same_videos(tiny_dataset, names, subset, tiny_cfg):
    order = [names[3], names[0], names[2], names[1]]
    assert load_classnames(str(subset / "classnames.txt")) == order
    for split in ("train", "val", "test"):
        source = read_csv_annotations(str(tiny_dataset / f"{split}.csv"))
        kept = [(r.path, names[r.label]) for r in source if names[r.label] in order]
        written = read_csv_annotations(str(subset / f"{split}.csv"), num_classes=4)
        assert [(os.path.normpath(r.path), order[r.label]) for r in written] == kept
        assert all(os.path.isfile(r.path) for r in written)
        assert not os.path.isabs((subset / f"{split}.csv").read_text().split(" ")[0])
    cfg = tiny_cfg("DATA.PATH_TO_DATA_DIR", str(subset), "MODEL.NUM_CLASSES", "4")
    assert len(build_dataset(cfg, "train")) == 8 and len(build_dataset(cfg, "test")) == 4


def test_subset_paths_honour_the_prefix_and_can_be_absolute(tiny_dataset, names, tmp_path):
    source = tmp_path / "moved"
    source.mkdir()
    (source / "classnames.txt").write_text("\n".join(names) + "\n")
    lines = (tiny_dataset / "train.csv").read_text()
    (source / "train.csv").write_text(lines)  # paths relative to tiny_dataset, found through the prefix
    counts = write_class_subset(str(source), [names[0]], str(tmp_path / "sub"), prefix=str(tiny_dataset),
                                absolute=True)
    assert counts == {"train": 2}
    written = read_csv_annotations(str(tmp_path / "sub/train.csv"))
    assert all(os.path.isabs(r.path) and os.path.isfile(r.path) and r.label == 0 for r in written)


def _subset_tool():
    return load_tool("subset_classes")


def test_subset_tool_rejects_unknown_and_repeated_classes(tiny_dataset, names, tmp_path, capsys):
    tool = _subset_tool()
    out = str(tmp_path / "sub")
    assert tool.main(["--src", str(tiny_dataset), "--classes", f"{names[0]},jump,fly", "--out", out]) == 1
    err = capsys.readouterr().err
    assert "classes not in" in err and "jump, fly" in err and names[5] in err
    assert tool.main(["--src", str(tiny_dataset), "--classes", f"{names[0]},{names[0]}", "--out", out]) == 1
    assert f"classes given more than once: {names[0]}" in capsys.readouterr().err
    assert not os.path.exists(out)
    assert tool.main(["--src", str(tiny_dataset), "--classes", f"{names[1]},{names[0]}", "--out", out]) == 0
    printed = capsys.readouterr().out
    assert f"  0 {names[1]}" in printed and "train: 4 videos" in printed and "MODEL.NUM_CLASSES 2" in printed
