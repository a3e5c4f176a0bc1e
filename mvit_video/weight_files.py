"""Checkpoint files on disk, read and written safely: the bytes, not what the tensors are called.

Files are read with ``torch.load(weights_only=True)`` (:func:`read_checkpoint`), so a checkpoint can never run code
while it loads; a file that needs arbitrary unpickling, that is not a checkpoint at all, or that is truncated or
damaged is refused in one line naming it (:class:`CheckpointError`).

Every file this project writes (:func:`write_checkpoint_file`, :func:`save_checkpoint`) is written atomically and has
its SHA-256 beside it, in ``NAME.sha256`` (the format of ``sha256sum``, so ``sha256sum -c NAME.sha256`` checks it too).
A file with such a sidecar is verified before it is unpickled and refused when it differs; a file without one
(PySlowFast's, torchvision's) loads unverified, as there is nothing to compare.

What the tensors inside are called, and how they are loaded into a model, is :mod:`mvit_video.weight_layouts`.
"""

import glob
import hashlib
import os
import pickle
import re
from typing import BinaryIO, Callable, Mapping, Optional, Union

import torch

FORMAT_VERSION = 1


class CheckpointError(RuntimeError):
    """A checkpoint cannot be read safely or does not fit the model."""


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


# ---------------------------------------------------------------------------------------------------------------------
# Writing
# ---------------------------------------------------------------------------------------------------------------------


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
