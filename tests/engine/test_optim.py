"""The learning-rate schedule and the parameter groups of the MViT recipe."""

import math

import pytest
import torch

from mvit_video.config import load_config
from mvit_video.engine.optim import LrSchedule, build_lr_schedule, build_optimizer, param_groups
from mvit_video.models import build_model

from .conftest import ROOT


def test_warmup_then_cosine_values():
    s = LrSchedule(base_lr=1e-3, max_epoch=10, warmup_epochs=2, warmup_start_lr=1e-5, end_lr=1e-6)
    assert s(0.0) == pytest.approx(1e-5)
    assert s(1.0) == pytest.approx(1e-5 + (1e-3 - 1e-5) / 2)  # half-way up a linear warm-up
    assert s(2.0) == pytest.approx(1e-3)  # the cosine starts at the end of the warm-up
    assert s(6.0) == pytest.approx(1e-6 + (1e-3 - 1e-6) * 0.5)  # half-way down the cosine
    assert s(10.0) == pytest.approx(1e-6)
    assert s(2.5) > s(3.0) > s(9.0)


def test_cosine_over_the_whole_run():
    s = LrSchedule(base_lr=1.0, max_epoch=4, warmup_epochs=1, warmup_start_lr=0.0, cosine_after_warmup=False)
    assert s(1.0) == pytest.approx(0.5 * (1 + math.cos(math.pi / 4)))
    assert s(0.5) == pytest.approx(s(1.0) / 2)


def test_lr_scales_with_num_shards_as_pyslowfast_not_with_processes():
    path = str(ROOT / "configs/K400/MVIT_B_16x4.yaml")  # BASE_LR_SCALE_NUM_SHARDS True, NUM_GPUS 8, NUM_SHARDS 1
    one = build_lr_schedule(load_config(path))
    assert one.base_lr == pytest.approx(load_config(path).SOLVER.BASE_LR)  # 8 GPUs on one machine: not scaled
    four = build_lr_schedule(load_config(path, ["NUM_SHARDS", "4"]))
    assert (four.base_lr, four.warmup_start_lr, four.end_lr) == pytest.approx(
        (4 * one.base_lr, 4 * one.warmup_start_lr, 4 * one.end_lr))
    assert four(0.0) == pytest.approx(4 * one(0.0)) and four(100.0) == pytest.approx(4 * one(100.0))
    off = build_lr_schedule(load_config(path, ["NUM_SHARDS", "4", "SOLVER.BASE_LR_SCALE_NUM_SHARDS", "False"]))
    assert off.base_lr == pytest.approx(one.base_lr)


def test_param_groups_exclude_norms_biases_positions_and_class_token():
    cfg = load_config(str(ROOT / "configs/synthetic/MVIT_TINY.yaml"), ["MVIT.ZERO_DECAY_POS_CLS", "True"])
    model = build_model(cfg)
    optimizer = build_optimizer(cfg, model)
    decay, no_decay = optimizer.param_groups
    assert decay["weight_decay"] == cfg.SOLVER.WEIGHT_DECAY and no_decay["weight_decay"] == 0.0
    names = {id(p): n for n, p in model.named_parameters()}
    no_decay_names = {names[id(p)] for p in no_decay["params"]}
    decay_names = {names[id(p)] for p in decay["params"]}
    assert {"cls_token", "pos_embed.spatial", "pos_embed.temporal", "blocks.0.norm1.weight"} <= no_decay_names
    assert "blocks.0.attn.qkv.bias" in no_decay_names
    assert {"blocks.0.attn.qkv.weight", "patch_embed.proj.weight", "head.projection.weight"} <= decay_names
    assert len(decay_names) + len(no_decay_names) == len(names)


def test_without_zero_wd_everything_decays():
    model = torch.nn.Sequential(torch.nn.Linear(3, 3), torch.nn.LayerNorm(3))
    groups = param_groups(model, 0.05, zero_wd_1d=False)
    assert len(groups) == 1 and len(groups[0]["params"]) == 4
