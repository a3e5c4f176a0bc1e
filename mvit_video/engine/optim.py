"""The MViT training recipe's optimiser and learning-rate schedule.

AdamW with no weight decay on 1-D parameters, biases, positional tables and the class token; linear warm-up then
cosine decay, evaluated per iteration at a fractional epoch. For fine-tuning, layer-wise learning-rate decay (as
PySlowFast's MViTv2 fine-tuning recipes): the deeper a layer, the closer its learning rate to the scheduled one.
"""

import math
from dataclasses import dataclass
from typing import Dict, Iterable, List, Set, Tuple

import torch
from fvcore.common.config import CfgNode
from torch import nn


# The parameters before the first block (PySlowFast's layer 0): the stem, its norm, the class token and the
# positional tables.
_STEM_PREFIXES = ("patch_embed", "norm_stem", "cls_token", "pos_embed")


def layer_id(name: str, num_layers: int) -> int:
    """The layer of parameter ``name`` for layer-wise learning-rate decay, as PySlowFast numbers them: 0 for the
    stem, the class token and the positional tables; i + 1 for ``blocks.i``; ``num_layers`` + 1 for the rest (final
    norm, head, LCA).

    One name PySlowFast's MViT does not put there: ``norm_stem`` is in layer 0 with the stem (PySlowFast leaves it at
    the top; no MViT config enables it). A positional layer after a block (PEG) is part of that block.
    """
    parts = name.split(".")
    if parts[0] in _STEM_PREFIXES:
        return 0
    if parts[0] == "blocks":
        return int(parts[1]) + 1
    return num_layers + 1


def _decays(name: str, param: nn.Parameter, skip: Set[str], zero_wd_1d: bool) -> bool:
    return not (name in skip or (zero_wd_1d and (param.ndim <= 1 or name.endswith(".bias"))))


def param_groups(
    model: nn.Module, weight_decay: float, zero_wd_1d: bool, skip: Iterable[str] = (), layer_decay: float = 1.0
) -> List[Dict]:
    """Parameter groups: with ``weight_decay``, and without it; with ``layer_decay`` < 1, those two per layer.

    Without decay: the names in ``skip`` (the model's ``no_weight_decay()``) and, when ``zero_wd_1d``, every 1-D
    tensor (LayerNorm and BatchNorm gains, biases). Frozen parameters are left out. With ``layer_decay`` in (0, 1),
    the model must have ``blocks``; each group of layer l (:func:`layer_id`) has an ``lr_scale`` of
    ``layer_decay ** (num_layers + 1 - l)``, which :func:`set_lr` multiplies into the scheduled learning rate. At
    1.0 there are no layers and no ``lr_scale``: the two groups of plain training.

    Raises:
        ValueError: ``layer_decay`` < 1 on a model with no ``blocks``.
    """
    skip: Set[str] = set(skip)
    layered = layer_decay != 1.0
    num_layers = _num_layers(model) if layered else 0
    groups: Dict[Tuple[int, bool], Dict] = {}
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        decays = _decays(name, param, skip, zero_wd_1d)
        layer = layer_id(name, num_layers) if layered else 0
        key = (layer, not decays)  # sorts the layers from the stem up, and in each the decayed group first
        if key not in groups:
            groups[key] = {"params": [], "weight_decay": weight_decay if decays else 0.0}
            if layered:
                groups[key]["lr_scale"] = layer_decay ** (num_layers + 1 - layer)
        groups[key]["params"].append(param)
    return [groups[key] for key in sorted(groups)]


def _num_layers(model: nn.Module) -> int:
    blocks = getattr(model, "blocks", None)
    if not isinstance(blocks, (nn.ModuleList, nn.Sequential)):
        raise ValueError(f"layer-wise learning-rate decay numbers layers by model.blocks; {type(model).__name__} "
                         f"has none")
    return len(blocks)


def _skip_names(model: nn.Module) -> List[str]:
    model = getattr(model, "module", model)
    return list(model.no_weight_decay()) if hasattr(model, "no_weight_decay") else []


def build_optimizer(cfg: CfgNode, model: nn.Module) -> torch.optim.Optimizer:
    """SOLVER.OPTIMIZING_METHOD ("adamw" or "sgd") over :func:`param_groups`, with SOLVER.LAYER_DECAY; lr is set per
    step by the schedule (:func:`set_lr`).

    Raises:
        ValueError: an unknown optimiser, naming SOLVER.OPTIMIZING_METHOD; SOLVER.LAYER_DECAY outside (0, 1], or
        below 1 for a model without blocks.
    """
    s = cfg.SOLVER
    if not 0.0 < s.LAYER_DECAY <= 1.0:
        raise ValueError(f"SOLVER.LAYER_DECAY = {s.LAYER_DECAY} is not in (0, 1] (1.0 turns it off)")
    try:
        groups = param_groups(model, s.WEIGHT_DECAY, s.ZERO_WD_1D_PARAM, _skip_names(model), s.LAYER_DECAY)
    except ValueError as err:
        raise ValueError(f"SOLVER.LAYER_DECAY = {s.LAYER_DECAY}: {err}") from err
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
    """Sets every group's learning rate to the scheduled ``lr`` times the group's ``lr_scale`` (layer decay; 1 when
    the group has none, as in plain training and in the optimiser states it saved)."""
    for group in optimizer.param_groups:
        group["lr"] = lr * group.get("lr_scale", 1.0)
