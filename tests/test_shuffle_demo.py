"""tools/shuffle_demo.py and configs/synthetic/VIT_TINY.yaml: the tiny MViT vs the tiny ViT under frame shuffling."""

import json
from pathlib import Path

import pytest
import torch

from mvit_video.analysis.experiments import budget_warnings
from mvit_video.config import load_config
from mvit_video.models import build_model

from .engine.conftest import tiny_dataset  # noqa: F401  (session fixture shared with the engine tests)
from .engine.conftest import tiny_opts
from .tool_modules import load_tool


ROOT = Path(__file__).resolve().parents[1]
MVIT_TINY = str(ROOT / "configs/synthetic/MVIT_TINY.yaml")
VIT_TINY = str(ROOT / "configs/synthetic/VIT_TINY.yaml")


@pytest.fixture(scope="module")
def tool():
    """tools/shuffle_demo.py as a module, run in this process."""
    return load_tool("shuffle_demo")


def test_demo_trains_and_probes_both_models(tool, tiny_dataset, tmp_path, capsys):  # noqa: F811
    out = tmp_path / "demo"
    # OUTPUT_DIR among the opts is the root of both runs; one epoch, one view, two shuffle seeds
    opts = tiny_opts(tiny_dataset, out, "SOLVER.MAX_EPOCH", "1", "TEST.NUM_ENSEMBLE_VIEWS", "1")
    assert tool.main(["--repeats", "2", "--opts", *opts]) == 0
    printed = capsys.readouterr().out
    summary = json.loads((out / "shuffle_demo.json").read_text())
    assert list(summary["models"]) == ["MViT", "ViT"]
    for name, folder in (("MViT", "mvit_tiny"), ("ViT", "vit_tiny")):
        entry = summary["models"][name]
        probed = json.loads((out / folder / "frame_shuffle.json").read_text())
        assert entry["frame_shuffle_json"] == str(out / folder / "frame_shuffle.json")
        assert entry["epochs"] == 1 and entry["checkpoint"].startswith(str(out / folder / "checkpoints"))
        for key in ("ordered_top1", "shuffled_top1", "reversed_top1", "drop", "num_videos"):
            assert entry[key] == probed[key], (name, key)
        assert entry["drop"] == pytest.approx(entry["ordered_top1"] - entry["shuffled_top1"]["mean"])
        assert len(entry["shuffled_top1"]["per_seed"]) == 2 and entry["num_videos"] == 8
    assert summary["models"]["MViT"]["params"] != summary["models"]["ViT"]["params"]
    assert summary["warnings"] == []
    # the 8 test videos are the first 8 classes: four complete time-reversed pairs, appear/disappear absent
    assert [p["pair"] for p in summary["pairs"]] == [
        "move_left/move_right", "move_up/move_down", "rotate_clockwise/rotate_anticlockwise", "grow/shrink"]
    probed = json.loads((out / "mvit_tiny" / "frame_shuffle.json").read_text())["per_class"]
    assert summary["pairs"][0]["MViT"]["shuffled"] == pytest.approx(
        (probed["move_left"]["shuffled"] + probed["move_right"]["shuffled"]) / 2)
    table = printed[printed.index("== frame shuffle"):]
    assert "\nMViT " in table and "\nViT " in table and "move_left/move_right" in table
    assert Path(summary["png"]) == out / "shuffle_demo.png" and (out / "shuffle_demo.png").stat().st_size > 10_000


def test_skip_train_without_checkpoints_names_the_missing_one(tool, tiny_dataset, tmp_path, capsys):  # noqa: F811
    assert tool.main(["--skip-train", "--opts", *tiny_opts(tiny_dataset, tmp_path / "empty")]) == 1
    err = capsys.readouterr().err
    assert str(tmp_path / "empty" / "mvit_tiny" / "checkpoints") in err
    assert "--skip-train" in err and "MVIT_TINY.yaml" in err
    assert not (tmp_path / "empty" / "shuffle_demo.json").exists()


def test_missing_dataset_says_how_to_generate_it(tool, tmp_path, capsys):
    assert tool.main(["--out-dir", str(tmp_path), "--opts", "DATA.PATH_TO_DATA_DIR", str(tmp_path / "nowhere")]) == 1
    err = capsys.readouterr().err
    assert str(tmp_path / "nowhere" / "train.csv") in err
    assert "make_synthetic_dataset.py" in err and "make demo" in err


def test_disagreeing_output_dirs_are_refused(tool, tmp_path, capsys):
    assert tool.main(["--out-dir", str(tmp_path / "a"), "--opts", "OUTPUT_DIR", str(tmp_path / "b")]) == 1
    err = capsys.readouterr().err
    assert "--out-dir" in err and "OUTPUT_DIR" in err


def _widths(model):
    return [(block.norm1.normalized_shape[0], block.mlp.fc2.out_features) for block in model.blocks]


def test_vit_tiny_is_the_tiny_mvit_without_pooling():
    mvit, vit = build_model(load_config(MVIT_TINY)), build_model(load_config(VIT_TINY))
    assert len(vit.blocks) == len(mvit.blocks) == 6
    a, b = mvit.patch_embed.proj, vit.patch_embed.proj
    assert (a.kernel_size, a.stride, a.padding) == (b.kernel_size, b.stride, b.padding)
    for i, block in enumerate(vit.blocks):
        attn = block.attn
        assert attn.pool_q is None and attn.pool_k is None and attn.pool_v is None, i
        assert block.pool_skip is None and block.proj is None, i
    assert len({w for pair in _widths(vit) for w in pair}) == 1  # one width in and out of every block
    # the inspection sees pooling and widening where they are
    assert any(b.attn.pool_q is not None for b in mvit.blocks) and all(b.attn.pool_k is not None for b in mvit.blocks)
    assert len({w for pair in _widths(mvit) for w in pair}) == 3
    grids = []
    for block in vit.blocks:
        block.register_forward_hook(lambda module, args, out: grids.append((tuple(out[0].shape), tuple(out[1]))))
    with torch.no_grad():  # every block keeps the full 4 x 14 x 14 grid and the class token
        vit(torch.zeros(1, 3, 8, 112, 112))
    assert grids == [((1, 1 + 4 * 14 * 14, 144), (4, 14, 14))] * len(vit.blocks)
    n_mvit, n_vit = (sum(p.numel() for p in m.parameters()) for m in (mvit, vit))
    assert 0.8 < n_vit / n_mvit < 1.2  # comparable parameter counts (widths 48-192 vs 144)


def test_budget_warnings_name_the_stale_checkpoint():
    entry = {"epochs": 10, "checkpoint": "a/checkpoints/checkpoint_epoch_00010.pyth", "output_dir": "a"}
    assert budget_warnings({"MViT": entry, "ViT": {**entry, "output_dir": "b"}}, 10) == []
    lines = budget_warnings({"MViT": entry, "ViT": {**entry, "epochs": 3, "output_dir": "b"}}, 3)
    assert "not from the same budget (MViT 10 epochs, ViT 3 epochs)" in lines[0]
    assert len(lines) == 2 and "MViT checkpoint probed is from epoch 10" in lines[1] and "remove a" in lines[1]
