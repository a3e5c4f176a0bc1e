"""The learning-rate schedule and the parameter groups of the MViT recipe."""

import math

import pytest
import torch

from mvit_video.config import load_config
from mvit_video.engine.optim import LrSchedule, build_lr_schedule, build_optimizer, layer_id, param_groups, set_lr
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


TINY = str(ROOT / "configs/synthetic/MVIT_TINY.yaml")  # 6 blocks: layers 0 (stem) .. 7 (head)


def _names(model: torch.nn.Module, group: dict) -> set:
    names = {id(p): n for n, p in model.named_parameters()}
    return {names[id(p)] for p in group["params"]}


def test_layer_ids_follow_pyslowfast():
    assert [layer_id(n, 6) for n in ("patch_embed.proj.weight", "cls_token", "pos_embed.spatial")] == [0, 0, 0]
    assert [layer_id(n, 6) for n in ("blocks.0.attn.qkv.weight", "blocks.5.mlp.fc2.bias")] == [1, 6]
    assert [layer_id(n, 6) for n in ("norm.weight", "head.projection.weight")] == [7, 7]
    assert layer_id("blocks.3.pos.proj.weight", 16) == 4  # a PEG is part of the block it follows


def test_layer_decay_scales_each_layer_and_keeps_weight_decay_grouping():
    cfg = load_config(TINY, ["SOLVER.LAYER_DECAY", "0.5"])
    model = build_model(cfg)
    groups = build_optimizer(cfg, model).param_groups
    plain = param_groups(model, cfg.SOLVER.WEIGHT_DECAY, True, model.no_weight_decay())  # without layer decay
    plain_no_decay = _names(model, plain[1])
    scale_of = {}
    for group in groups:
        names = _names(model, group)
        assert len({layer_id(n, 6) for n in names}) == 1  # one layer per group
        assert (names <= plain_no_decay) == (group["weight_decay"] == 0.0)  # and the same weight-decay split
        assert names <= plain_no_decay or not names & plain_no_decay
        scale_of.update({n: group["lr_scale"] for n in names})
    assert len(scale_of) == sum(1 for _ in model.parameters())  # every parameter in exactly one group
    assert sum(len(g["params"]) for g in groups) == len(scale_of)
    assert scale_of["patch_embed.proj.weight"] == scale_of["cls_token"] == 0.5**7
    assert scale_of["blocks.0.attn.qkv.weight"] == scale_of["blocks.0.norm1.bias"] == 0.5**6
    assert scale_of["blocks.5.mlp.fc1.weight"] == 0.5
    assert scale_of["head.projection.weight"] == scale_of["norm.weight"] == 1.0
    assert [g["lr_scale"] for g in groups] == sorted(g["lr_scale"] for g in groups)  # from the stem up


def test_scheduled_lr_is_scaled_per_group_and_moves_layers_accordingly():
    cfg = load_config(TINY, ["SOLVER.LAYER_DECAY", "0.5", "SOLVER.WEIGHT_DECAY", "0.0", "MODEL.DROPOUT_RATE", "0.0"])
    model = build_model(cfg)
    optimizer = build_optimizer(cfg, model)
    schedule = build_lr_schedule(cfg)
    lr = schedule(12.5)  # in the warm-up
    set_lr(optimizer, lr)  # as the training loop does every iteration
    assert all(g["lr"] == pytest.approx(lr * g["lr_scale"]) for g in optimizer.param_groups)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    model(torch.randn(1, 3, 8, 112, 112)).logsumexp(dim=1).sum().backward()
    optimizer.step()
    # Adam's first step moves each weight by about its lr (sign of the gradient): the stem 2^7 times less than the head
    moved = {n: (p.detach() - before[n]).abs().max().item() for n, p in model.named_parameters()}
    assert moved["head.projection.weight"] == pytest.approx(lr, rel=0.01)
    assert moved["blocks.5.mlp.fc2.weight"] == pytest.approx(lr * 0.5, rel=0.01)
    assert moved["patch_embed.proj.weight"] == pytest.approx(lr * 0.5**7, rel=0.01)


def test_layer_decay_one_gives_the_plain_groups_exactly():
    cfg = load_config(TINY)
    assert cfg.SOLVER.LAYER_DECAY == 1.0  # off by default
    model = build_model(cfg)
    groups = build_optimizer(cfg, model).param_groups
    assert len(groups) == 2 and not any("lr_scale" in g for g in groups)
    decay, no_decay = (_names(model, g) for g in groups)
    ndim_or_skip = {n for n, p in model.named_parameters() if p.ndim <= 1 or n in model.no_weight_decay()}
    assert no_decay == ndim_or_skip and decay == {n for n, _ in model.named_parameters()} - ndim_or_skip
    optimizer = build_optimizer(cfg, model)
    set_lr(optimizer, 0.25)  # a plain optimiser (or one restored from a state saved without lr_scale) takes the lr
    assert [g["lr"] for g in optimizer.param_groups] == [0.25, 0.25]


@pytest.mark.parametrize("value", ["0.0", "1.5", "-0.75"])
def test_layer_decay_outside_0_1_is_refused_naming_the_key(value):
    cfg = load_config(TINY, ["SOLVER.LAYER_DECAY", value])
    with pytest.raises(ValueError, match=r"SOLVER.LAYER_DECAY = .* is not in \(0, 1\]"):
        build_optimizer(cfg, build_model(cfg))


def test_layer_decay_needs_numbered_blocks():
    cfg = load_config(TINY, ["SOLVER.LAYER_DECAY", "0.75"])
    with pytest.raises(ValueError, match="SOLVER.LAYER_DECAY = 0.75: .*model.blocks; Sequential has none"):
        build_optimizer(cfg, torch.nn.Sequential(torch.nn.Linear(3, 3)))
