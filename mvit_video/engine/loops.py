"""One training epoch and one multi-view evaluation pass. Plain arguments; no config below this line."""

import resource
import sys
import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Callable, List, Optional

import torch
from torch import nn
from tqdm import tqdm

from .distributed import DistInfo, all_gather_objects, all_reduce_sum
from .losses import Mixup, one_hot, soft_target_cross_entropy
from .meters import TestMeter, topk_correct
from .optim import LrSchedule, set_lr


@dataclass
class StepConfig:
    """How one training step runs."""

    num_classes: int
    loss: str = "soft_cross_entropy"  # or "cross_entropy"
    label_smoothing: float = 0.0
    clip_grad_norm: Optional[float] = None
    amp_dtype: Optional[torch.dtype] = None  # autocast dtype on CUDA; None = full precision
    log_period: int = 10


@dataclass
class EpochStats:
    loss: float = 0.0
    top1: float = 0.0
    lr: float = 0.0
    clips: int = 0
    seconds: float = 0.0
    data_seconds: float = 0.0
    data_cpu_seconds: float = 0.0  # CPU time of making the clips (decode + transform), in whichever process
    model_cpu_seconds: float = 0.0  # CPU time of the training steps (forward, backward, optimizer), all threads
    peak_mem_mib: float = 0.0
    failures: List = field(default_factory=list)

    def as_dict(self) -> dict:
        return {
            "loss": self.loss,
            "top1": self.top1,
            "lr": self.lr,
            "clips_per_s": self.clips / max(self.seconds, 1e-9),
            "data_time_s": self.data_seconds,
            "epoch_time_s": self.seconds,
            "peak_mem_mib": self.peak_mem_mib,
            "data_cpu_ms_per_clip": 1e3 * self.data_cpu_seconds / max(self.clips, 1),
            "model_cpu_ms_per_clip": 1e3 * self.model_cpu_seconds / max(self.clips, 1),
            "failed_videos": len(self.failures),
        }


def peak_memory_mib(device: torch.device) -> float:
    """Peak allocated GPU memory, or the process's peak resident memory on the CPU."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _autocast(device: torch.device, dtype: Optional[torch.dtype]):
    if dtype is None or device.type != "cuda":
        return nullcontext()
    return torch.autocast("cuda", dtype=dtype)


def _progress(iterable, total: int, desc: str, dist: DistInfo):
    # quiet when not a terminal (logs, CI) and on every process but the first
    return tqdm(iterable, total=total, desc=desc, dynamic_ncols=True, disable=not (dist.is_main and sys.stderr.isatty()))


def _loss(logits, labels, targets, cfg: StepConfig) -> torch.Tensor:
    if targets is not None:
        return soft_target_cross_entropy(logits, targets)
    if cfg.loss == "soft_cross_entropy":
        return soft_target_cross_entropy(logits, one_hot(labels, cfg.num_classes, cfg.label_smoothing))
    return nn.functional.cross_entropy(logits.float(), labels)


def _log_iteration(log, loss_sum: float, count: int, epoch: int, it: int, n_iter: int, lr: float, dist: DistInfo):
    """Logs the iteration's loss over the global batch; ``step`` counts optimiser steps from the start of training.

    Every process takes part in the sum, also those that do not log.
    """
    loss_sum, count = all_reduce_sum([loss_sum, count], dist.device)
    if log is not None:
        step = epoch * n_iter + it + 1
        log({"type": "train_iter", "epoch": epoch + 1, "iter": it + 1, "step": step, "loss": loss_sum / count,
             "lr": lr}, step=step)


def train_epoch(
    model: nn.Module,
    loader,
    optimizer: torch.optim.Optimizer,
    schedule: LrSchedule,
    epoch: int,
    cfg: StepConfig,
    dist: DistInfo,
    scaler: Optional[torch.amp.GradScaler] = None,
    mixup: Optional[Mixup] = None,
    log: Optional[Callable[[dict], None]] = None,
) -> EpochStats:
    """Trains one epoch with a per-iteration learning rate; returns the epoch's statistics (averaged over ranks).

    Raises:
        FloatingPointError: the loss became NaN or infinite.
    """
    model.train()
    stats = EpochStats()
    loss_sum, correct, seen = 0.0, 0, 0
    n_iter = len(loader)
    start = tick = time.perf_counter()
    bar = _progress(loader, n_iter, f"epoch {epoch + 1}", dist)
    for it, batch in enumerate(bar):
        stats.data_seconds += time.perf_counter() - tick
        stats.failures.extend(batch["failures"])
        stats.data_cpu_seconds += batch["data_cpu_s"]
        step_start = time.process_time()
        stats.lr = schedule(epoch + it / n_iter)
        set_lr(optimizer, stats.lr)
        clips = batch["frames"].to(dist.device, non_blocking=True)
        labels = batch["labels"].to(dist.device, non_blocking=True)
        targets = None
        if mixup is not None:
            clips, targets = mixup(clips, labels)
        with _autocast(dist.device, cfg.amp_dtype):
            logits = model(clips)
        loss = _loss(logits, labels, targets, cfg)
        if not torch.isfinite(loss):
            raise FloatingPointError(f"loss is {loss.item()} at epoch {epoch + 1}, iteration {it + 1}")
        optimizer.zero_grad(set_to_none=True)
        if scaler is not None:
            scaler.scale(loss).backward()
            scaler.unscale_(optimizer)
        else:
            loss.backward()
        if cfg.clip_grad_norm:
            nn.utils.clip_grad_norm_(model.parameters(), cfg.clip_grad_norm)
        if scaler is not None:
            scaler.step(optimizer)
            scaler.update()
        else:
            optimizer.step()
        batch_size = labels.shape[0]
        loss_sum += loss.item() * batch_size  # .item() waits for the step, so the CPU time below covers it
        stats.model_cpu_seconds += time.process_time() - step_start
        correct += topk_correct(logits.detach(), labels, 1)
        seen += batch_size
        bar.set_postfix(loss=f"{loss_sum / seen:.4f}", lr=f"{stats.lr:.2e}")
        if (it + 1) % cfg.log_period == 0:
            _log_iteration(log, loss.item() * batch_size, batch_size, epoch, it, n_iter, stats.lr, dist)
        tick = time.perf_counter()
    loss_sum, correct, seen, stats.data_cpu_seconds, stats.model_cpu_seconds = all_reduce_sum(
        [loss_sum, correct, seen, stats.data_cpu_seconds, stats.model_cpu_seconds], dist.device)
    stats.loss = loss_sum / max(seen, 1)
    stats.top1 = 100.0 * correct / max(seen, 1)
    stats.clips = int(seen)
    stats.seconds = time.perf_counter() - start
    stats.peak_mem_mib = peak_memory_mib(dist.device)
    stats.failures = [f for part in all_gather_objects(stats.failures) for f in part]
    return stats


@torch.no_grad()
def evaluate(
    model: nn.Module,
    loader,
    meter: TestMeter,
    dist: DistInfo,
    amp_dtype: Optional[torch.dtype] = None,
    desc: str = "test",
    view_transform: Optional[Callable[[torch.Tensor], torch.Tensor]] = None,
) -> TestMeter:
    """Runs every view of every video through ``model`` and fills ``meter``; gathers all ranks into rank 0's meter.

    ``view_transform``, if given, is applied to the (N, 3, T, H, W) view batch before the model (the frame-shuffle
    probe uses it).
    """
    model.eval()
    for batch in _progress(loader, len(loader), desc, dist):
        views = batch["views"]  # (B, V, 3, T, H, W)
        b, v = views.shape[:2]
        flat = views.flatten(0, 1).to(dist.device, non_blocking=True)
        if view_transform is not None:
            flat = view_transform(flat)
        with _autocast(dist.device, amp_dtype):
            logits = model(flat).float()
        meter.add(batch["indices"], batch["paths"], batch["labels"], logits.view(b, v, -1).cpu(), batch["failed"])
    parts = all_gather_objects(meter.videos)
    meter.merge([TestMeter(meter.num_classes, meter.ensemble, meter.classnames, videos) for videos in parts])
    return meter
