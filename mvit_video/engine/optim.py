"""The MViT training recipe's optimiser and learning-rate schedule.

AdamW with no weight decay on 1-D parameters, biases, positional tables and the class token; linear warm-up then
cosine decay, evaluated per iteration at a fractional epoch.
"""

import math
from dataclasses import dataclass
from typing import Dict, Iterable, List, Set

import torch
from fvcore.common.config import CfgNode
from torch import nn


def param_groups(model: nn.Module, weight_decay: float, zero_wd_1d: bool, skip: Iterable[str] = ()) -> List[Dict]:
    """Two parameter groups: with ``weight_decay``, and without it.

    Without decay: the names in ``skip`` (the model's ``no_weight_decay()``) and, when ``zero_wd_1d``, every 1-D
    tensor (LayerNorm and BatchNorm gains, biases). Frozen parameters are left out.
    """
    skip: Set[str] = set(skip)
    decay, no_decay = [], []
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        if name in skip or (zero_wd_1d and (param.ndim <= 1 or name.endswith(".bias"))):
            no_decay.append(param)
        else:
            decay.append(param)
    groups = [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return [g for g in groups if g["params"]]


def _skip_names(model: nn.Module) -> List[str]:
    model = getattr(model, "module", model)
    return list(model.no_weight_decay()) if hasattr(model, "no_weight_decay") else []


def build_optimizer(cfg: CfgNode, model: nn.Module) -> torch.optim.Optimizer:
    """SOLVER.OPTIMIZING_METHOD ("adamw" or "sgd") over :func:`param_groups`; lr is set per step by the schedule.

    Raises:
        ValueError: an unknown optimiser, naming SOLVER.OPTIMIZING_METHOD.
    """
    s = cfg.SOLVER
    groups = param_groups(model, s.WEIGHT_DECAY, s.ZERO_WD_1D_PARAM, _skip_names(model))
    if s.OPTIMIZING_METHOD == "adamw":
        return torch.optim.AdamW(groups, lr=s.BASE_LR, betas=tuple(s.BETAS))
    if s.OPTIMIZING_METHOD == "sgd":
        return torch.optim.SGD(groups, lr=s.BASE_LR, momentum=s.MOMENTUM, nesterov=s.NESTEROV)
    raise ValueError(f"SOLVER.OPTIMIZING_METHOD = {s.OPTIMIZING_METHOD!r} is not supported (adamw, sgd)")


@dataclass(frozen=True)
class LrSchedule:
    """Linear warm-up from ``warmup_start_lr`` to the cosine curve, which ends at ``end_lr`` at ``max_epoch``.

    With ``cosine_after_warmup`` the cosine starts at the end of the warm-up (as PySlowFast's MViT recipe); without,
    it spans the whole run and the warm-up joins it where it is.
    """

    base_lr: float
    max_epoch: float
    warmup_epochs: float = 0.0
    warmup_start_lr: float = 0.0
    end_lr: float = 0.0
    cosine_after_warmup: bool = True
    policy: str = "cosine"

    def _cosine(self, epoch: float) -> float:
        if self.policy == "constant":
            return self.base_lr
        start = self.warmup_epochs if self.cosine_after_warmup else 0.0
        progress = (epoch - start) / max(self.max_epoch - start, 1e-12)
        return self.end_lr + (self.base_lr - self.end_lr) * 0.5 * (1.0 + math.cos(math.pi * progress))

    def __call__(self, epoch: float) -> float:
        """The learning rate at fractional ``epoch`` (epoch + iteration / iterations per epoch)."""
        if epoch < self.warmup_epochs:
            target = self._cosine(self.warmup_epochs)
            return self.warmup_start_lr + (target - self.warmup_start_lr) * epoch / self.warmup_epochs
        return self._cosine(epoch)


def build_lr_schedule(cfg: CfgNode) -> LrSchedule:
    """The schedule of SOLVER.*. With SOLVER.BASE_LR_SCALE_NUM_SHARDS its learning rates (base, warm-up start, cosine
    end) are multiplied by NUM_SHARDS, the number of machines, as PySlowFast does (not by the number of processes).

    Raises:
        ValueError: an unknown SOLVER.LR_POLICY.
    """
    s = cfg.SOLVER
    if s.LR_POLICY not in ("cosine", "constant"):
        raise ValueError(f"SOLVER.LR_POLICY = {s.LR_POLICY!r} is not supported (cosine, constant)")
    scale = cfg.NUM_SHARDS if s.BASE_LR_SCALE_NUM_SHARDS else 1
    return LrSchedule(
        base_lr=s.BASE_LR * scale,
        max_epoch=float(s.MAX_EPOCH),
        warmup_epochs=float(s.WARMUP_EPOCHS),
        warmup_start_lr=s.WARMUP_START_LR * scale,
        end_lr=s.COSINE_END_LR * scale,
        cosine_after_warmup=s.COSINE_AFTER_WARMUP,
        policy=s.LR_POLICY,
    )


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr
