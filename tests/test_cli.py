"""One-line errors in every tool, from mvit_video.cli: `error: ...` and status 1 for the project's own errors, a
traceback for bugs and with --debug."""

import sys
from pathlib import Path

import pytest

from mvit_video import cli
from mvit_video.config import ConfigError, load_config
from mvit_video.models import build_model
from mvit_video.weight_files import save_checkpoint

from .engine.conftest import tiny_dataset  # noqa: F401  (session fixture shared with the engine tests)
from .engine.conftest import tiny_opts
from .tool_modules import load_tool

ROOT = Path(__file__).resolve().parents[1]
TINY = str(ROOT / "configs/synthetic/MVIT_TINY.yaml")


def test_a_user_error_is_one_line_and_status_1(capsys):
    def body():
        raise ConfigError("cfg.yaml: MVIT.NOPE is not a key")

    assert cli.run(body) == 1
    assert capsys.readouterr().err == "error: cfg.yaml: MVIT.NOPE is not a key\n"
    assert cli.run(lambda: 3) == 3 and cli.run(lambda: None) == 0


def test_a_bug_keeps_its_traceback_and_debug_shows_every_traceback():
    def bug():
        return {}["missing"]

    with pytest.raises(KeyError):
        cli.run(bug)
    with pytest.raises(ConfigError):
        cli.run(lambda: load_config(None, ["MVIT.NOPE", "1"]), debug=True)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    path = tmp_path_factory.mktemp("cli") / "tiny.pyth"
    save_checkpoint(path, build_model(load_config(TINY)).state_dict())
    return str(path)


# Every tool that reads a config, with the arguments that make it read ``cfg`` first.
TOOLS_WITH_CONFIG = {
    "run_net": lambda cfg, ckpt, out: ["--cfg", cfg],
    "count_flops": lambda cfg, ckpt, out: ["--cfg", cfg],
    "export": lambda cfg, ckpt, out: ["--cfg", cfg, "--checkpoint", ckpt, "--format", "torchscript", "--out", out],
    "convert_checkpoint": lambda cfg, ckpt, out: [ckpt, out, "--cfg", cfg],
    "predict": lambda cfg, ckpt, out: ["video.mp4", "--cfg", cfg, "--checkpoint", ckpt],
    "frame_shuffle_eval": lambda cfg, ckpt, out: ["--cfg", cfg],
    "benchmark": lambda cfg, ckpt, out: ["model", "--cfg", cfg],
    "compare_variants": lambda cfg, ckpt, out: ["--configs", cfg, "--out-dir", str(Path(out).parent)],
}
BAD_YAML = {
    "syntax": ("MVIT:\n  DEPTH: [1, 2\n", "not valid YAML at line"),
    "tab": ("MVIT:\n\tDEPTH: 4\n", "not valid YAML at line 2"),
    "empty": ("", "the file is empty"),
    "unknown key": ("MVIT:\n  NOT_A_KEY: 1\n", "MVIT.NOT_A_KEY"),
}


@pytest.mark.parametrize("problem", sorted(BAD_YAML))
@pytest.mark.parametrize("tool_name", sorted(TOOLS_WITH_CONFIG))
def test_every_tool_answers_a_bad_config_in_one_line(tool_name, problem, checkpoint, tmp_path, capsys):
    text, message = BAD_YAML[problem]
    cfg = tmp_path / "bad.yaml"
    cfg.write_text(text)
    tool = load_tool(tool_name)
    assert tool.main(TOOLS_WITH_CONFIG[tool_name](str(cfg), checkpoint, str(tmp_path / "out.bin"))) == 1
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if not line.endswith("running on the CPU (NUM_GPUS 0 says so)")]
    assert len(lines) == 1 and lines[0].startswith(f"error: {cfg}") and message in lines[0], err


def test_count_flops_names_a_wrong_path_and_a_wrong_key(capsys):
    tool = load_tool("count_flops")
    assert tool.main(["--cfg", "configs/nope.yaml"]) == 1
    assert capsys.readouterr().err == "error: config file not found: configs/nope.yaml\n"
    assert tool.main(["--cfg", TINY, "--opts", "MVIT.DEPHT", "4"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: ") and "MVIT.DEPHT" in err
    assert tool.main(["--all", "--root", "no_such_folder"]) == 1
    assert capsys.readouterr().err == "error: --root no_such_folder: no such folder\n"


def test_export_given_a_text_file_says_it_is_not_a_checkpoint(tmp_path, capsys):
    text = tmp_path / "notes.txt"
    text.write_text("these are notes, not weights\n")
    code = load_tool("export").main(["--cfg", TINY, "--checkpoint", str(text), "--format", "torchscript", "--out",
                                     str(tmp_path / "x.pt")])
    assert code == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"error: {text}: not a checkpoint" in err
    assert not (tmp_path / "x.pt").exists()


def test_tensorboard_missing_names_the_extra(tiny_dataset, tmp_path, monkeypatch, capsys):  # noqa: F811
    monkeypatch.setitem(sys.modules, "tensorboard", None)  # as on a machine without it
    opts = tiny_opts(tiny_dataset, tmp_path, "TENSORBOARD.ENABLE", "True", "TEST.ENABLE", "False")
    assert load_tool("run_net").main(["--cfg", TINY, *opts]) == 1
    err = capsys.readouterr().err.splitlines()
    assert err[-1] == ("error: TENSORBOARD.ENABLE needs the tensorboard package, which is not installed: pip install "
                       "mvit_video[tensorboard] (in a source checkout: pip install -e \".[tensorboard]\")")
    assert not any(line.startswith("Traceback") for line in err)


def test_debug_gives_the_traceback(tmp_path, capsys):
    cfg = tmp_path / "empty.yaml"
    cfg.write_text("")
    with pytest.raises(ConfigError, match="the file is empty"):
        load_tool("count_flops").main(["--cfg", str(cfg), "--debug"])
