"""No config key is accepted and ignored: every key of the defaults is read by the code a run goes through, or locked
to one value in SUPPORTED_VALUES (refused at any other)."""

from typing import Dict, Set

import pytest
import torch
from fvcore.common.config import CfgNode

from mvit_video.config import _check_vit as check_vit
from mvit_video.config import get_cfg, load_config
from mvit_video.config.defaults import SUPPORTED_VALUES
from mvit_video.data import build_train_transform
from mvit_video.engine.launch import train_and_test
from mvit_video.engine.optim import build_optimizer
from mvit_video.engine.trainer import amp_dtype
from mvit_video.models import build_model
from mvit_video.weight_files import save_checkpoint

from ..engine.conftest import ROOT, tiny_opts
from ..engine.conftest import tiny_dataset  # noqa: F401  (session fixture shared with the engine tests)

VARIANTS = ["VIT_TINY", "MVIT_TINY_PEG", "MVIT_TINY_ELSA", "MVIT_TINY_CEIT", "MVIT_TINY_PVT"]


def leaf_keys(node: CfgNode, prefix: str = "") -> Set[str]:
    keys = set()
    for name, value in node.items():
        key = f"{prefix}{name}"
        keys |= leaf_keys(value, f"{key}.") if isinstance(value, CfgNode) else {key}
    return keys


class KeyReads:
    """Records every key read from the configs it is given (attribute or item access), while active."""

    def __init__(self, monkeypatch, *cfgs: CfgNode):
        self.read: Set[str] = set()
        self.prefix: Dict[int, str] = {}
        for cfg in cfgs:
            self._index(cfg, "")
        reads, original = self, CfgNode.__getitem__

        def getitem(node, name):
            if id(node) in reads.prefix:
                reads.read.add(reads.prefix[id(node)] + name)
            return original(node, name)

        # CfgNode.__getattr__ reads through __getitem__, so attribute access is recorded too
        monkeypatch.setattr(CfgNode, "__getitem__", getitem)
        monkeypatch.setattr(CfgNode, "get", lambda node, name, default=None: node[name] if name in node else default)

    def _index(self, node: CfgNode, prefix: str) -> None:
        self.prefix[id(node)] = prefix
        for name, value in dict.items(node):
            if isinstance(value, CfgNode):
                self._index(value, f"{prefix}{name}.")


def test_every_key_is_read_by_a_run_or_locked(tiny_dataset, tmp_path, monkeypatch):  # noqa: F811
    tiny = str(ROOT / "configs/synthetic/MVIT_TINY.yaml")
    # one short run with every optional step on: augmentation, mixup, an initial checkpoint, shuffled test frames
    opts = tiny_opts(tiny_dataset, tmp_path / "run", "SOLVER.MAX_EPOCH", "1", "AUG.ENABLE", "True", "AUG.AA_TYPE",
                     "rand-m9-n1-inc1", "AUG.RE_PROB", "0.5", "MIXUP.ENABLE", "True", "TEST.SHUFFLE_FRAMES", "True",
                     "TEST.NUM_ENSEMBLE_VIEWS", "1")
    init = tmp_path / "init.pyth"
    save_checkpoint(init, build_model(load_config(tiny, opts)).state_dict())
    run = load_config(tiny, [*opts, "TRAIN.CHECKPOINT_FILE_PATH", str(init)])
    jitter = load_config(tiny, ["AUG.ENABLE", "True", "AUG.AA_TYPE", "", "DATA.TRAIN_CROP_SIZE", "64"])
    sgd = load_config(tiny, ["SOLVER.OPTIMIZING_METHOD", "sgd"])
    variants = [load_config(str(ROOT / f"configs/synthetic/{name}.yaml")) for name in VARIANTS]
    reads = KeyReads(monkeypatch, run, jitter, sgd, *variants)

    train_and_test(run)
    build_train_transform(jitter)
    build_optimizer(sgd, build_model(sgd))
    amp_dtype(run, torch.device("cuda"))  # the autocast dtype is read on CUDA only
    check_vit(variants[0], "VIT_TINY")  # MODEL.ARCH: "vit" is checked single-scale when the config loads
    for cfg in variants:
        build_model(cfg)

    locked = {key for key, allowed in SUPPORTED_VALUES.items() if len(allowed) == 1}
    ignored = sorted(leaf_keys(get_cfg()) - reads.read - locked)
    assert ignored == [], f"keys neither read nor locked to one value: {ignored}"
    assert len(reads.read) > 100


def test_the_recorder_sees_attribute_and_item_reads(monkeypatch):
    cfg = load_config(None)
    reads = KeyReads(monkeypatch, cfg)
    assert cfg.MVIT.DEPTH == 16 and cfg["SOLVER"]["BASE_LR"] > 0
    assert {"MVIT", "MVIT.DEPTH", "SOLVER", "SOLVER.BASE_LR"} <= reads.read
    assert "MVIT.EMBED_DIM" not in reads.read


@pytest.mark.parametrize("key", sorted(k for k, v in SUPPORTED_VALUES.items() if len(v) == 1))
def test_a_locked_key_refuses_any_other_value(key):
    value = get_cfg()
    for part in key.split("."):
        value = value[part]
    if isinstance(value, bool):
        other = str(not value)
    elif isinstance(value, int):
        other = str(value + 1)
    else:
        other = "something_else" if isinstance(value, str) else "[9]"
    with pytest.raises(ValueError, match=key.replace(".", "[.]")):
        load_config(None, [key, other])
