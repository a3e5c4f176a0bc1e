"""Training state in PySlowFast's layout: OUTPUT_DIR/checkpoints/checkpoint_epoch_NNNNN.pyth, saved after an epoch and
read back to resume the run.

Each file holds ``model_state``, ``optimizer_state``, ``scaler_state``, ``epoch`` (0-based index of the last finished
epoch), ``cfg`` (YAML) and ``classnames`` (the dataset's class names, or None for label indices): a training-state
file also carries what is needed to predict with it. Each has its SHA-256 in ``checkpoint_epoch_NNNNN.pyth.sha256``.
Writes are atomic (temporary file, fsync, rename; see :mod:`mvit_video.weight_files`), so a crash leaves either the
old file set or the new one. When resuming, a file damaged some other way (its SHA-256 differs, it is truncated, it is
not a checkpoint) is skipped with a warning, and the run resumes from the newest valid one.
"""

import glob
import logging
import os
from typing import List, Optional

import torch

from ..weight_files import CheckpointError, read_checkpoint, save_checkpoint

logger = logging.getLogger(__name__)


def training_state_dir(output_dir: str) -> str:
    """The folder of a run's training-state files, ``OUTPUT_DIR/checkpoints`` as in PySlowFast."""
    return os.path.join(output_dir, "checkpoints")


def training_state_path(output_dir: str, epoch: int) -> str:
    """The file of 0-based ``epoch``, ``checkpoint_epoch_NNNNN.pyth`` named by its 1-based number as PySlowFast does."""
    return os.path.join(training_state_dir(output_dir), f"checkpoint_epoch_{epoch + 1:05d}.pyth")


def save_training_state(output_dir, epoch, model, optimizer, scaler=None, cfg_yaml: str = "",
                        classnames: Optional[List[str]] = None) -> str:
    """Writes the training state after 0-based ``epoch`` (what the module docstring lists); returns its path."""
    model = getattr(model, "module", model)
    path = training_state_path(output_dir, epoch)
    save_checkpoint(
        path,
        model.state_dict(),
        optimizer_state=optimizer.state_dict(),
        scaler_state=scaler.state_dict() if scaler is not None else {},
        epoch=epoch,
        cfg=cfg_yaml,
        classnames=list(classnames) if classnames else None,
    )
    return path


def latest_training_state(output_dir: str) -> Optional[dict]:
    """The newest valid training state under ``output_dir`` (with its ``path`` added), or None.

    Files that are corrupt, unreadable or not training checkpoints are skipped, each with a warning that says so.
    """
    pattern = os.path.join(training_state_dir(output_dir), "checkpoint_epoch_*.pyth")
    for path in sorted(glob.glob(pattern), reverse=True):
        try:
            ckpt = read_checkpoint(path)
        except (CheckpointError, FileNotFoundError) as err:  # FileNotFoundError: removed since the listing
            logger.warning("skipping checkpoint %s, trying the one before it: %s", path, err)
            continue
        if "model_state" not in ckpt or "epoch" not in ckpt:
            logger.warning("skipping checkpoint %s, trying the one before it: not a training checkpoint (no "
                           "model_state/epoch)", path)
            continue
        ckpt["path"] = path
        return ckpt
    return None


def restore_training_state(ckpt: dict, optimizer: torch.optim.Optimizer, scaler=None) -> int:
    """Restores the optimiser (and scaler) of a training state; returns the next epoch to run."""
    optimizer.load_state_dict(ckpt["optimizer_state"])
    if scaler is not None and ckpt.get("scaler_state"):
        scaler.load_state_dict(ckpt["scaler_state"])
    return int(ckpt["epoch"]) + 1
