"""Loading and saving checkpoints, strictly and safely.

Three published layouts of MViT v1 weights are recognised from their key names, with no flag from the user:

* PySlowFast ``.pyth`` files (``{"model_state": ..., "epoch": ..., "cfg": ...}``), with fused ``attn.qkv`` or
  separate ``attn.q/k/v`` projections; this project's own files use the same container;
* torchvision ``mvit_v1_b`` state dicts (``conv_proj``, ``pos_encoding.*``, ``attn.project.0``, ``mlp.0/3``);
* pytorchvideo ``mvit_base_16x4`` state dicts (``patch_embed.patch_model``, ``cls_positional_encoding.*``).

Each is renamed to this project's layout and then loaded strictly: every tensor of the model must be filled, or the
call fails naming the missing, unexpected and mis-shaped tensors. Files are read with ``weights_only=True``, so a
checkpoint can never run code while it loads.

Every file this project writes has its SHA-256 beside it, in ``NAME.sha256`` (the format of ``sha256sum``, so
``sha256sum -c NAME.sha256`` checks it too). A file with such a sidecar is verified before it is unpickled and refused
when it differs; a file without one (PySlowFast's, torchvision's) loads unverified, as there is nothing to compare.
"""

import glob
import hashlib
import os
import pickle
import re
from dataclasses import dataclass, field
from typing import BinaryIO, Callable, Dict, List, Mapping, Optional, Tuple, Union

import torch
from torch import nn

StateDict = Dict[str, torch.Tensor]
Source = Union[str, os.PathLike, Mapping]

FORMAT_VERSION = 1


class CheckpointError(RuntimeError):
    """A checkpoint cannot be read safely or does not fit the model."""


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


# ---------------------------------------------------------------------------------------------------------------------
# Reading
# ---------------------------------------------------------------------------------------------------------------------


def sidecar_path(path: str) -> str:
    """Where the SHA-256 of checkpoint ``path`` is recorded."""
    return f"{path}.sha256"


def file_sha256(path: str) -> str:
    """The hex SHA-256 of a file's bytes. Raises OSError when the file cannot be read."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _recorded_sha256(path: str) -> Optional[str]:
    """The SHA-256 recorded for ``path`` when it was written, or None when it has no sidecar."""
    sidecar = sidecar_path(path)
    try:
        with open(sidecar, encoding="ascii", errors="replace") as f:
            fields = f.read().split()
    except FileNotFoundError:
        return None
    except OSError as err:
        raise CheckpointError(f"{sidecar}: cannot be read ({err.strerror})") from err
    if not fields or not re.fullmatch(r"[0-9a-fA-F]{64}", fields[0]):
        raise CheckpointError(f"{sidecar}: not a SHA-256 record (expected 64 hex digits, then the file name)")
    return fields[0].lower()


def verify_checkpoint_file(path: str) -> bool:
    """Compares the file's SHA-256 with the one recorded beside it when it was written.

    Returns:
        True when it matches, False when there is no record to compare with.
    Raises:
        CheckpointError: the file differs from its record (corrupt), or it or its record cannot be read.
    """
    expected = _recorded_sha256(path)
    if expected is None:
        return False
    try:
        actual = file_sha256(path)
    except OSError as err:
        raise CheckpointError(f"{path}: cannot be read ({err.strerror})") from err
    if actual != expected:
        raise CheckpointError(
            f"{path}: corrupt: its SHA-256 {actual[:12]}... differs from {expected[:12]}..., recorded in "
            f"{sidecar_path(path)} when it was written"
        )
    return True


def _first_line(err: BaseException) -> str:
    """The informative line of an error: after torch's long weights_only preamble, the unpickler's own reason."""
    text = str(err)
    marker = "WeightsUnpickler error:"
    if marker in text:
        text = text[text.index(marker) + len(marker) :]
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return (lines[0] if lines else type(err).__name__)[:200]


def _unreadable(path: str, err: BaseException) -> CheckpointError:
    """A refusal naming ``path``: code-needing pickles, files that are no checkpoint at all, and damaged ones."""
    if isinstance(err, pickle.UnpicklingError) and "Unsupported global" in str(err):
        return CheckpointError(
            f"{path}: refused: this file needs arbitrary unpickling, which could run code from it. mvit_video loads "
            f"checkpoints with torch.load(weights_only=True) only; re-save the weights as a plain state dict of "
            f"tensors from a trusted environment. ({_first_line(err)})"
        )
    with open(path, "rb") as f:
        head = f.read(4)
    # torch.save writes a zip archive; its legacy format, and plain pickles, start with the PROTO opcode.
    if not head.startswith((b"PK\x03\x04", b"\x80")):
        found = "an empty file" if not head else f"it starts with {head!r}"
        return CheckpointError(f"{path}: not a checkpoint: neither a PyTorch zip archive nor a pickle ({found})")
    return CheckpointError(
        f"{path}: not a readable PyTorch checkpoint: truncated, damaged or not written by torch.save "
        f"({_first_line(err)})"
    )


def read_checkpoint(path: Union[str, os.PathLike]) -> dict:
    """Reads a checkpoint file with ``torch.load(weights_only=True)``, after checking its SHA-256 if it has a record.

    Raises:
        FileNotFoundError: no such file.
        CheckpointError: one line naming the file: it differs from its recorded SHA-256, cannot be read, is not a
            checkpoint, is truncated or damaged, or needs arbitrary unpickling (refused).
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"checkpoint not found: {path}")
    verify_checkpoint_file(path)
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except OSError as err:
        raise CheckpointError(f"{path}: cannot be read ({err.strerror or _first_line(err)})") from err
    except Exception as err:  # a damaged file makes torch.load raise almost any type; weights_only ran no code
        raise _unreadable(path, err) from err
    if not isinstance(obj, Mapping):
        raise CheckpointError(f"{path}: not a checkpoint: expected a dict of tensors or a dict with 'model_state', got "
                              f"{type(obj).__name__}")
    return dict(obj)


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


def _remove(path: str) -> None:
    try:
        os.remove(path)
    except FileNotFoundError:
        pass


def _fsync_folder(folder: str) -> None:
    """Makes the renames in ``folder`` durable (a crash could otherwise undo them)."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_checkpoint_file(path: Union[str, os.PathLike], write: Callable[[BinaryIO], None]) -> None:
    """Writes ``path`` through ``write(file)``, atomically, and records its SHA-256 in ``sidecar_path(path)``.

    The bytes go to a temporary file in the same folder, are synced to disk and hashed, then renamed over ``path``,
    and the folder is synced. A save that fails leaves the previous file as it was and removes its temporary files:
    at once when it raises, and at the next save of ``path`` when its process was killed.

    Raises:
        OSError, and whatever ``write`` raises.
    """
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    for leftover in glob.glob(glob.escape(path) + ".tmp.*"):  # of a save that was killed
        _remove(leftover)
    tmp, sidecar_tmp = f"{path}.tmp.{os.getpid()}", f"{sidecar_path(path)}.tmp.{os.getpid()}"
    try:
        with open(tmp, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        with open(sidecar_tmp, "w", encoding="ascii") as f:
            f.write(f"{file_sha256(tmp)}  {os.path.basename(path)}\n")
            f.flush()
            os.fsync(f.fileno())
        # The old record goes first: a crash between the renames leaves a whole file without a record (loaded
        # unverified), never a good file beside a wrong record.
        _remove(sidecar_path(path))
        os.replace(tmp, path)
        os.replace(sidecar_tmp, sidecar_path(path))
        _fsync_folder(folder)
    finally:
        _remove(tmp)
        _remove(sidecar_tmp)


def save_checkpoint(path: Union[str, os.PathLike], model_state: Mapping[str, torch.Tensor], **extra) -> None:
    """Writes ``{"model_state": ..., **extra}`` in this project's layout, atomically and with its SHA-256 recorded.

    See :func:`write_checkpoint_file`. Raises OSError when the file cannot be written.
    """
    payload = {"model_state": dict(model_state), "format_version": FORMAT_VERSION, **extra}
    write_checkpoint_file(path, lambda f: torch.save(payload, f))


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
