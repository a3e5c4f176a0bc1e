"""tools/compare_variants.py: plain tiny MViT and a variant trained on one budget, tested and frame-shuffle probed."""

import json
from pathlib import Path

import pytest

from mvit_video.analysis.variant_comparison import describe
from mvit_video.config import load_config
from mvit_video.models import build_model

from .engine.conftest import tiny_dataset  # noqa: F401  (session fixture shared with the engine tests)
from .engine.conftest import tiny_opts
from .tool_modules import load_tool


ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ["configs/synthetic/MVIT_TINY.yaml", "configs/synthetic/MVIT_TINY_PEG.yaml"]


@pytest.fixture(scope="module")
def tool():
    """tools/compare_variants.py as a module, run in this process."""
    return load_tool("compare_variants")


def test_compares_two_configs_end_to_end(tool, tiny_dataset, tmp_path, capsys):  # noqa: F811
    out = tmp_path / "variants"
    opts = tiny_opts(tiny_dataset, out, "SOLVER.MAX_EPOCH", "1", "TEST.NUM_ENSEMBLE_VIEWS", "1")
    assert tool.main(["--configs", *CONFIGS, "--repeats", "1", "--opts", *opts]) == 0
    printed = capsys.readouterr().out
    summary = json.loads((out / "compare_variants.json").read_text())
    assert [r["name"] for r in summary["rows"]] == ["MVIT_TINY", "MVIT_TINY_PEG"]
    assert summary["machine"]["torch_num_threads"] >= 1 and summary["machine"]["torch"]
    for row, config in zip(summary["rows"], CONFIGS):
        run_dir = out / Path(config).stem.lower()
        assert row["output_dir"] == str(run_dir) and row["epochs"] == 1
        cfg = load_config(str(ROOT / config), [*opts, "OUTPUT_DIR", str(run_dir)])
        assert row["params"] == sum(p.numel() for p in build_model(cfg).parameters())
        assert row["top1"] == json.loads((run_dir / "test_results.json").read_text())["top1"]
        probed = json.loads((run_dir / "frame_shuffle.json").read_text())
        assert row["shuffled_top1_mean"] == probed["shuffled_top1"]["mean"]
        assert row["drop"] == pytest.approx(row["top1_ordered"] - row["shuffled_top1_mean"])
        assert row["train_wall_time_s"] > 0 and row["train_time_s_from_stats_epoch_time_s"] > 0
        assert row["num_views"] == 1 and row["num_videos"] == 8
    assert summary["rows"][0]["description"] == "plain MViT" and "PEG" in summary["rows"][1]["description"]
    assert summary["rows"][0]["params"] != summary["rows"][1]["params"]
    table = printed[printed.index("== MViT variants"):]
    assert "\n| MVIT_TINY | plain MViT |" in table and "\n| MVIT_TINY_PEG | " in table
    assert table.count(f"; {summary['machine']['description']}\n") == 1  # the footer names the machine

    # --skip-train reuses the checkpoints and takes the time from stats.jsonl
    assert tool.main(["--configs", CONFIGS[0], "--skip-train", "--opts", *opts]) == 0
    row = json.loads((out / "compare_variants.json").read_text())["rows"][0]
    assert row["train_wall_time_s"] is None and row["train_time_s_from_stats_epoch_time_s"] > 0
    assert "* sum of the training epochs' epoch_time_s" in capsys.readouterr().out


def test_unknown_config_is_named(tool, tmp_path, capsys):
    missing = "configs/synthetic/NO_SUCH_VARIANT.yaml"
    assert tool.main(["--configs", CONFIGS[0], missing, "--out-dir", str(tmp_path)]) != 0
    assert missing in capsys.readouterr().err
    assert not (tmp_path / "compare_variants.json").exists()


def test_missing_dataset_says_how_to_generate_it(tool, tmp_path, capsys):
    code = tool.main(["--configs", CONFIGS[0], "--out-dir", str(tmp_path),
                      "--opts", "DATA.PATH_TO_DATA_DIR", str(tmp_path / "nowhere")])
    assert code == 1 and "make_synthetic_dataset.py" in capsys.readouterr().err


@pytest.mark.parametrize("config, description", [
    ("configs/synthetic/MVIT_TINY.yaml", "plain MViT"),
    ("configs/synthetic/MVITv2_TINY.yaml", "relative pos (space, time), residual pooling, width grows in attention"),
    ("configs/synthetic/MVIT_TINY_PVT.yaml",
     "stem overlap, pos none, attn linear_sra, mlp convffn, no cls token"),
])
def test_the_table_names_what_each_model_changes(config, description):
    assert describe(load_config(str(ROOT / config), [])) == description
