"""Published layouts of MViT weights: recognised, renamed to this project's, and loaded strictly into a model.

Three published layouts of MViT v1 weights are recognised from their key names, with no flag from the user:

* PySlowFast ``.pyth`` files (``{"model_state": ..., "epoch": ..., "cfg": ...}``), with fused ``attn.qkv`` or
  separate ``attn.q/k/v`` projections; this project's own files use the same container;
* torchvision ``mvit_v1_b`` state dicts (``conv_proj``, ``pos_encoding.*``, ``attn.project.0``, ``mlp.0/3``);
* pytorchvideo ``mvit_base_16x4`` state dicts (``patch_embed.patch_model``, ``cls_positional_encoding.*``).

Each is renamed to this project's layout (:func:`convert_state_dict`) and then loaded strictly
(:func:`load_checkpoint`): every tensor of the model must be filled, or the call fails naming the missing, unexpected
and mis-shaped tensors. :func:`convert_checkpoint` re-writes a file of any of them in this project's layout.

Files are read and written through :mod:`mvit_video.weight_files`: ``weights_only=True``, SHA-256 sidecars, atomic
writes.
"""

import os
import re
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Mapping, Optional, Tuple, Union

import torch
from torch import nn

from .weight_files import CheckpointError, read_checkpoint, save_checkpoint

StateDict = Dict[str, torch.Tensor]
Source = Union[str, os.PathLike, Mapping]


@dataclass
class LoadReport:
    """What :func:`load_checkpoint` did: the layout it recognised and the tensors it left out on request.

    ``skipped_shapes`` gives, for each skipped tensor that the checkpoint has, its shape there and in the model.
    """

    source_format: str
    num_tensors: int
    skipped: List[str] = field(default_factory=list)
    epoch: int = -1
    skipped_shapes: Dict[str, Tuple[Tuple[int, ...], Tuple[int, ...]]] = field(default_factory=dict)

    def describe_skipped(self) -> str:
        """``"head.projection.bias, head.projection.weight (400 -> 4 classes)"``; "" when nothing was skipped."""
        if not self.skipped:
            return ""
        classes = self.skipped_shapes.get("head.projection.weight")
        change = f" ({classes[0][0]} -> {classes[1][0]} classes)" if classes else " (not in the checkpoint)"
        return ", ".join(self.skipped) + change


def _unwrap(obj: Mapping, origin: str) -> Tuple[StateDict, int]:
    """The state dict inside a checkpoint container, and its epoch (-1 if none)."""
    for key in ("model_state", "state_dict", "model"):
        if key in obj and isinstance(obj[key], Mapping):
            return dict(obj[key]), int(obj.get("epoch", -1))
    if obj and all(isinstance(v, torch.Tensor) for v in obj.values()):
        return dict(obj), -1
    raise CheckpointError(
        f"{origin}: no state dict found (looked for 'model_state', 'state_dict', 'model' or a flat dict of tensors; "
        f"top-level keys: {sorted(obj)[:10]})"
    )


# ---------------------------------------------------------------------------------------------------------------------
# Layout conversion
# ---------------------------------------------------------------------------------------------------------------------

# (pattern, replacement) applied in order to every key; shared by PySlowFast and pytorchvideo layouts.
_SLOWFAST_RULES = [
    (r"^pos_embed_spatial$", "pos_embed.spatial"),
    (r"^pos_embed_temporal$", "pos_embed.temporal"),
    (r"^pos_embed_class$", "pos_embed.cls"),
    (r"^pos_embed$", "pos_embed.joint"),
    (r"\.attn\.pool_([qkv])\.weight$", r".attn.pool_\1.pool.weight"),
    (r"\.attn\.norm_([qkv])\.", r".attn.pool_\1.norm."),
]

_PYTORCHVIDEO_RULES = [
    (r"^patch_embed\.patch_model\.", "patch_embed.proj."),
    (r"^cls_positional_encoding\.", ""),
    (r"^norm_patch_embed\.", "norm_stem."),
    (r"^norm_embed\.", "norm."),
    (r"^head\.proj\.", "head.projection."),
] + _SLOWFAST_RULES

_TORCHVISION_RULES = [
    (r"^conv_proj\.", "patch_embed.proj."),
    (r"^pos_encoding\.class_token$", "cls_token"),
    (r"^pos_encoding\.spatial_pos$", "pos_embed.spatial"),
    (r"^pos_encoding\.temporal_pos$", "pos_embed.temporal"),
    (r"^pos_encoding\.class_pos$", "pos_embed.cls"),
    (r"\.attn\.project\.0\.", ".attn.proj."),
    (r"\.attn\.pool_([qkv])\.norm_act\.0\.", r".attn.pool_\1.norm."),
    (r"\.mlp\.0\.", ".mlp.fc1."),
    (r"\.mlp\.3\.", ".mlp.fc2."),
    (r"^(blocks\.\d+)\.project\.", r"\1.proj."),
    (r"^head\.1\.", "head.projection."),
]

# torchvision stores the class token and positional tables without their leading batch dimensions.
_TORCHVISION_RESHAPE = {"cls_token": 3, "pos_embed.cls": 3, "pos_embed.spatial": 3, "pos_embed.temporal": 3}


def _rename(state: StateDict, rules: List[Tuple[str, str]]) -> StateDict:
    out = {}
    for key, value in state.items():
        for pattern, repl in rules:
            key = re.sub(pattern, repl, key)
        out[key] = value
    return out


def _fuse_qkv(state: StateDict) -> StateDict:
    """Separate ``attn.q/k/v`` projections (one released layout) -> one fused ``attn.qkv`` projection."""
    out = dict(state)
    for key in [k for k in state if re.search(r"\.attn\.q\.(weight|bias)$", k)]:
        prefix, kind = key.rsplit(".q.", 1)
        parts = [f"{prefix}.{p}.{kind}" for p in "qkv"]
        if not all(p in state for p in parts):
            continue  # left as it is: the strict check names what is missing
        out[f"{prefix}.qkv.{kind}"] = torch.cat([state[p] for p in parts], dim=0)
        for p in parts:
            del out[p]
    return out


def _split_qkv_for(state: StateDict, target: Mapping[str, torch.Tensor]) -> StateDict:
    """Fused ``attn.qkv`` tensors -> ``attn.q/k/v`` where the model keeps three projections (MVIT.SEPARATE_QKV).

    Layouts are converted to the fused projection first, so a model with separate projections is filled by splitting
    them back along the output dimension.
    """
    out = dict(state)
    for key in [k for k in state if re.search(r"\.attn\.qkv\.(weight|bias)$", k) and k not in target]:
        prefix, kind = key.rsplit(".qkv.", 1)
        parts = [f"{prefix}.{p}.{kind}" for p in "qkv"]
        if all(p in target for p in parts) and state[key].shape[0] % 3 == 0:
            for part, value in zip(parts, state[key].chunk(3, dim=0)):
                out[part] = value.clone()
            del out[key]
    return out


def _from_torchvision(state: StateDict) -> StateDict:
    state = _rename(state, _TORCHVISION_RULES)
    for key, ndim in _TORCHVISION_RESHAPE.items():
        if key in state:
            value = state[key]
            state[key] = value.reshape((1,) * (ndim - value.ndim) + tuple(value.shape))
    return state


def _from_pytorchvideo(state: StateDict) -> StateDict:
    return _fuse_qkv(_rename(state, _PYTORCHVIDEO_RULES))


def _from_slowfast(state: StateDict) -> StateDict:
    return _fuse_qkv(_rename(state, _SLOWFAST_RULES))


_CONVERTERS: Dict[str, Callable[[StateDict], StateDict]] = {
    "torchvision": _from_torchvision,
    "pytorchvideo": _from_pytorchvideo,
    "pyslowfast": _from_slowfast,
}


def detect_format(state: Mapping[str, torch.Tensor]) -> str:
    """Names the layout of a state dict: "torchvision", "pytorchvideo", "pyslowfast" or "mvit_video"."""
    keys = list(state)
    if any(k.startswith(("conv_proj.", "pos_encoding.")) for k in keys):
        return "torchvision"
    if any(k.startswith(("patch_embed.patch_model.", "cls_positional_encoding.", "norm_embed.")) for k in keys):
        return "pytorchvideo"
    slowfast_only = (r"^pos_embed(_spatial|_temporal|_class)?$", r"\.attn\.(q\.|pool_[qkv]\.weight$|norm_[qkv]\.)")
    if any(re.search(p, k) for p in slowfast_only for k in keys):
        return "pyslowfast"
    return "mvit_video"


def convert_state_dict(state: Mapping[str, torch.Tensor]) -> Tuple[StateDict, str]:
    """Renames a state dict of any recognised layout to this project's; returns it and the layout's name."""
    state = {k[len("module.") :] if k.startswith("module.") else k: v for k, v in state.items()}
    fmt = detect_format(state)
    converter = _CONVERTERS.get(fmt)
    return (converter(state) if converter else dict(state)), fmt


# ---------------------------------------------------------------------------------------------------------------------
# Strict loading
# ---------------------------------------------------------------------------------------------------------------------


def _head_keys(keys) -> List[str]:
    return sorted(k for k in keys if k.startswith("head."))


def _mismatch_message(origin: str, fmt: str, missing, unexpected, shapes) -> str:
    lines = [f"{origin} ({fmt} layout) does not fit the model:"]
    if missing:
        lines.append(f"  missing from the checkpoint ({len(missing)}): {', '.join(missing)}")
    if unexpected:
        lines.append(f"  unexpected in the checkpoint ({len(unexpected)}): {', '.join(unexpected)}")
    for key, (got, want) in shapes.items():
        lines.append(f"  shape of {key}: checkpoint {tuple(got)} vs model {tuple(want)}")
    head = shapes.get("head.projection.weight")
    if head is not None:
        got, want = head
        lines.append(
            f"  the checkpoint's classifier has {got[0]} classes, the model (MODEL.NUM_CLASSES) {want[0]}: to test or "
            f"predict with it, set MODEL.NUM_CLASSES {got[0]}; to fine-tune it to {want[0]} classes, load with "
            "drop_head=True (TRAIN.CHECKPOINT_DROP_HEAD True in a training config)"
        )
    elif any(k.startswith("head.") for k in list(missing) + list(shapes)):
        lines.append(
            "  to fine-tune to another number of classes, load with drop_head=True (TRAIN.CHECKPOINT_DROP_HEAD True "
            "in a training config): the head is then re-initialised"
        )
    return "\n".join(lines)


def load_checkpoint(source: Source, model: nn.Module, drop_head: bool = False) -> LoadReport:
    """Loads a checkpoint of any recognised layout into ``model``, strictly.

    Args:
        source: a checkpoint file, a checkpoint container dict, or a state dict.
        model: the model to fill (a DistributedDataParallel wrapper is unwrapped).
        drop_head: leave the classifier (``head.*``) as initialised, to fine-tune to another number of classes.
    Returns:
        A :class:`LoadReport` with the recognised layout and the tensors left out.
    Raises:
        FileNotFoundError, CheckpointError: unreadable or unsafe file; or any model tensor not filled, any
        checkpoint tensor unused, or any shape different (all of them are named).
    """
    origin = os.fspath(source) if isinstance(source, (str, os.PathLike)) else "state dict"
    container = read_checkpoint(source) if isinstance(source, (str, os.PathLike)) else dict(source)
    state, epoch = _unwrap(container, origin)
    state, fmt = convert_state_dict(state)
    model = getattr(model, "module", model)
    target = model.state_dict()
    state = _split_qkv_for(state, target)
    skipped = []
    skipped_shapes = {}
    if drop_head:
        skipped = _head_keys(target)
        skipped_shapes = {k: (tuple(state[k].shape), tuple(target[k].shape)) for k in skipped if k in state}
        state = {k: v for k, v in state.items() if not k.startswith("head.")}
        target = {k: v for k, v in target.items() if not k.startswith("head.")}
    missing = sorted(set(target) - set(state))
    unexpected = sorted(set(state) - set(target))
    shapes = {k: (state[k].shape, target[k].shape) for k in sorted(set(state) & set(target))}
    shapes = {k: s for k, s in shapes.items() if s[0] != s[1]}
    if missing or unexpected or shapes:
        raise CheckpointError(_mismatch_message(origin, fmt, missing, unexpected, shapes))
    model.load_state_dict(state, strict=not drop_head)
    return LoadReport(
        source_format=fmt, num_tensors=len(state), skipped=skipped, epoch=epoch, skipped_shapes=skipped_shapes
    )


def convert_checkpoint(
    src: Union[str, os.PathLike], dst: Union[str, os.PathLike], model: Optional[nn.Module] = None
) -> str:
    """Re-writes a checkpoint of any recognised layout in this project's layout; returns the source layout.

    The tensors are renamed only. With ``model``, they are first loaded into it strictly, and nothing is written
    when they do not fit. ``dst`` is written as :func:`save_checkpoint` writes: whole or not at all.

    Raises:
        FileNotFoundError, CheckpointError: see :func:`read_checkpoint` and :func:`load_checkpoint`.
        OSError: ``dst`` cannot be written.
    """
    container = read_checkpoint(src)
    state, epoch = _unwrap(container, os.fspath(src))
    state, fmt = convert_state_dict(state)
    if model is not None:
        load_checkpoint(state, model)
    extra = {"epoch": epoch, "source_format": fmt}
    if isinstance(container.get("cfg"), str):
        extra["cfg"] = container["cfg"]
    if isinstance(container.get("classnames"), list):
        extra["classnames"] = container["classnames"]
    save_checkpoint(dst, state, **extra)
    return fmt
