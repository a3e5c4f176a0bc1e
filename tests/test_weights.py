"""The weights registry: every entry is complete and consistent with the project's configs and class lists."""

from pathlib import Path

import pytest

from mvit_video.config import load_config
from mvit_video.data import load_classnames
from mvit_video.hub import hash_prefix
from mvit_video.weights import REGISTRY, get_weights, main

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_an_entry_fits_its_config_and_class_list(name):
    entry = REGISTRY[name]
    assert entry.url.startswith("https://") and entry.layout in ("pyslowfast", "torchvision", "pytorchvideo")
    assert 0 < entry.top5 and entry.top1 < entry.top5 <= 100 and "clip" in entry.views
    names = load_classnames(entry.classnames)
    config = ROOT / entry.config
    assert config.is_file(), entry.config
    assert load_config(str(config), list(entry.opts)).MODEL.NUM_CLASSES == len(names)


def test_the_issue_names_are_there_and_torchvision_files_carry_their_hash():
    for name in ("mvit_b_16x4_k400", "mvit_b_32x3_k400", "mvitv2_s_16x4_k400", "mvitv2_b_32x3_k400",
                 "mvitv2_l_40x3_k400", "torchvision_mvit_v1_b_k400", "torchvision_mvit_v2_s_k400",
                 "pytorchvideo_mvit_base_16x4_k400"):
        assert get_weights(name) is not None, name
    assert hash_prefix(REGISTRY["torchvision_mvit_v1_b_k400"].url) == "dbeb1030"
    assert hash_prefix(REGISTRY["torchvision_mvit_v2_s_k400"].url) == "ae3be167"
    # PySlowFast's "_f302660347" is a job id, not a hash: it is not checked as one.
    assert hash_prefix(REGISTRY["mvitv2_s_16x4_k400"].url) == ""


def test_the_list_command(capsys):
    assert main([]) == 0
    table = capsys.readouterr().out
    assert all(name in table for name in REGISTRY)
    assert main(["torchvision_mvit_v2_s_k400"]) == 0
    shown = capsys.readouterr().out
    assert "sha256 starting ae3be167" in shown and "cache path: " in shown
    assert main(["nope"]) == 1 and "no checkpoint called 'nope'" in capsys.readouterr().err
