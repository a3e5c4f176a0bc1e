"""Config: PySlowFast key names, unknown keys and unsupported values refused by name, overrides applied."""

from pathlib import Path

import pytest

from mvit_video.config import ConfigError, get_cfg, load_config

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
# The settings of PySlowFast's configs/Kinetics/MVIT_B_16x4_CONV.yaml, dataset path renamed as a user would.
PYSLOWFAST_MVIT_B = Path(__file__).with_name("pyslowfast_MVIT_B_16x4_CONV.yaml")


def test_defaults_are_fresh_copies():
    cfg = get_cfg()
    cfg.MVIT.DEPTH = 3
    assert get_cfg().MVIT.DEPTH == 16


def test_pyslowfast_file_loads_and_matches_ours():
    theirs = load_config(str(PYSLOWFAST_MVIT_B))
    ours = load_config(str(CONFIGS / "K400/MVIT_B_16x4.yaml"))
    assert theirs.MVIT == ours.MVIT
    assert theirs.MODEL == ours.MODEL
    assert list(theirs.MVIT.PATCH_KERNEL) == [3, 7, 7]  # "(3, 7, 7)" in YAML is parsed as a tuple


def test_unknown_yaml_key_is_named(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("MVIT:\n  DEPTH: 4\n  POOL_FIRST: True\n")
    with pytest.raises(ConfigError, match="MVIT.POOL_FIRST"):
        load_config(str(path))


def test_unknown_opts_key_is_named():
    with pytest.raises(ConfigError, match="MVIT.NOT_A_KEY"):
        load_config(str(CONFIGS / "K400/MVIT_B_16x4.yaml"), ["MVIT.NOT_A_KEY", "1"])


def test_opts_override_yaml():
    cfg = load_config(str(CONFIGS / "K400/MVIT_B_16x4.yaml"), ["MVIT.DEPTH", "4", "MODEL.NUM_CLASSES", "7"])
    assert cfg.MVIT.DEPTH == 4 and cfg.MODEL.NUM_CLASSES == 7
    assert cfg.is_frozen()


def test_odd_opts_refused():
    with pytest.raises(ConfigError, match="odd number"):
        load_config(None, ["MVIT.DEPTH"])


@pytest.mark.parametrize(
    "key, value",
    [("MVIT.NORM", "batchnorm"), ("MVIT.MODE", "lstm"), ("BN.USE_PRECISE_STATS", "True"), ("MVIT.PATCH_2D", "True")],
)
def test_unimplemented_pyslowfast_values_fail_loudly(key, value):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        load_config(None, [key, value])


def test_duplicated_key_refused_with_lines(tmp_path):
    path = tmp_path / "dup.yaml"
    path.write_text("MVIT:\n  DEPTH: 16\n  EMBED_DIM: 96\n  DEPTH: 24\n")
    with pytest.raises(ConfigError, match=r"'DEPTH' appears twice.*lines 2 and 4"):
        load_config(str(path))


def test_duplicated_key_in_base_refused(tmp_path):
    (tmp_path / "base.yaml").write_text("MVIT:\n  DEPTH: 16\n  DEPTH: 24\n")
    (tmp_path / "child.yaml").write_text("_BASE_: base.yaml\nMODEL:\n  NUM_CLASSES: 3\n")
    with pytest.raises(ConfigError, match="base.yaml"):
        load_config(str(tmp_path / "child.yaml"))


def test_missing_file():
    with pytest.raises(FileNotFoundError, match="nope.yaml"):
        load_config("nope.yaml")


def test_every_shipped_config_loads():
    files = sorted(CONFIGS.rglob("*.yaml"))
    assert len(files) >= 8
    for path in files:
        load_config(str(path))


def test_32x3_is_the_papers_16_block_model():
    assert load_config(str(CONFIGS / "K400/MVIT_B_32x3.yaml")).MVIT.DEPTH == 16
    assert load_config(str(CONFIGS / "K400/MVIT_B_24_32x3.yaml")).MVIT.DEPTH == 24
