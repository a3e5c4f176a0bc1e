"""``train(cfg)`` and ``test(cfg)``: what tools/run_net.py runs. The engine's only readers of the configuration."""

import functools
import logging
import os
import random
import time
from typing import Optional

import numpy as np
import torch
from fvcore.common.config import CfgNode
from torch.nn.parallel import DistributedDataParallel
from torch.utils.checkpoint import checkpoint as recompute_in_backward
from torch.utils.data import DataLoader, DistributedSampler, SequentialSampler

from ..data import build_classnames, build_dataset, check_num_classes, has_split
from ..data.frame_order import FrameShuffle
from ..hub import resolve_checkpoint
from ..models import build_model
from ..weight_layouts import LoadReport, load_checkpoint
from .distributed import DistInfo, barrier, init_distributed
from .loops import StepConfig, evaluate, train_epoch
from .losses import Mixup
from .meters import TestMeter
from .optim import build_lr_schedule, build_optimizer
from .stats import StatsWriter, plot_curves
from .training_state import latest_training_state, restore_training_state, save_training_state

logger = logging.getLogger("mvit_video")

_AMP_DTYPES = {"bfloat16": torch.bfloat16, "float16": torch.float16}


def seed_everything(seed: int) -> None:
    """Seeds Python, NumPy and torch: every epoch starts from a seed of its own, so a resumed run repeats it."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _seed_worker(_: int) -> None:
    seed = torch.initial_seed() % 2**32
    random.seed(seed)
    np.random.seed(seed)


def epoch_seed(cfg: CfgNode, epoch: int, rank: int = 0) -> int:
    """The seed of 0-based ``epoch`` on process ``rank``: a function of RNG_SEED, the epoch and the rank alone."""
    return cfg.RNG_SEED + 1000 * epoch + rank


def recompute_block_activations(model: torch.nn.Module) -> None:
    """Makes each transformer block recompute its activations in the backward pass instead of storing them.

    Less memory for one more forward pass of every block per step (``torch.utils.checkpoint``; PySlowFast calls this
    activation checkpointing, MODEL.ACT_CHECKPOINT). The blocks' state-dict keys are unchanged, so weights load either
    way.
    """
    for block in model.blocks:
        block.forward = functools.partial(recompute_in_backward, block.forward, use_reentrant=False)


def amp_dtype(cfg: CfgNode, device: torch.device) -> Optional[torch.dtype]:
    """The autocast dtype: TRAIN.MIXED_PRECISION on CUDA only (bf16 by default); None on the CPU."""
    if not cfg.TRAIN.MIXED_PRECISION or device.type != "cuda":
        return None
    return _AMP_DTYPES[cfg.TRAIN.AMP_DTYPE]


def make_loader(cfg: CfgNode, dataset, dist: DistInfo, batch_size: int, train: bool, epoch: int = 0) -> DataLoader:
    """A DataLoader over ``dataset``, sharded by rank: for training, shuffled by (RNG_SEED, ``epoch``); else in order.

    Training always shuffles with a DistributedSampler, also in a world of one process: rank r of N takes every N-th
    video of one permutation, so N processes with batches of B / N see together the videos one process sees in
    batches of B. Evaluation pads the last shard by repeating videos; the test meter counts each video once.
    """
    if train or dist.world_size > 1:
        sampler = DistributedSampler(dataset, dist.world_size, dist.rank, shuffle=train, seed=cfg.RNG_SEED)
        sampler.set_epoch(epoch)
    else:
        sampler = SequentialSampler(dataset)
    return DataLoader(
        dataset,
        batch_size=batch_size,
        sampler=sampler,
        num_workers=cfg.DATA_LOADER.NUM_WORKERS,
        pin_memory=cfg.DATA_LOADER.PIN_MEMORY and dist.device.type == "cuda",
        collate_fn=dataset.collate_fn,
        drop_last=train and len(dataset) >= batch_size * dist.world_size,
        worker_init_fn=_seed_worker,
        # the workers' seeds; the training dataset seeds its items itself (TrainClipDataset.set_seed)
        generator=torch.Generator().manual_seed(epoch_seed(cfg, epoch, dist.rank)),
    )


def _per_process_batch(total: int, dist: DistInfo, num_shards: int, name: str) -> int:
    """PySlowFast's split: ``total`` is one machine's batch, divided among that machine's processes (its NUM_GPUS),
    so NUM_SHARDS machines train with a global batch of ``total`` x NUM_SHARDS (the reason
    SOLVER.BASE_LR_SCALE_NUM_SHARDS scales the learning rate by NUM_SHARDS)."""
    per_machine = max(1, dist.world_size // max(1, num_shards))
    if total % per_machine:
        raise ValueError(f"{name} = {total} is not divisible by the {per_machine} processes of a machine")
    return total // per_machine


def _step_config(cfg: CfgNode, device: torch.device) -> StepConfig:
    return StepConfig(
        num_classes=cfg.MODEL.NUM_CLASSES,
        loss=cfg.MODEL.LOSS_FUNC,
        label_smoothing=cfg.MIXUP.LABEL_SMOOTH_VALUE if cfg.MODEL.LOSS_FUNC == "soft_cross_entropy" else 0.0,
        clip_grad_norm=cfg.SOLVER.CLIP_GRAD_L2NORM,
        amp_dtype=amp_dtype(cfg, device),
        log_period=cfg.LOG_PERIOD,
    )


def _mixup(cfg: CfgNode, epoch: int, rank: int) -> Optional[Mixup]:
    """The epoch's Mixup/CutMix, with a generator of its own seeded by the epoch (a resumed run draws the same)."""
    if not cfg.MIXUP.ENABLE:
        return None
    m = cfg.MIXUP
    rng = np.random.default_rng(epoch_seed(cfg, epoch, rank))
    return Mixup(cfg.MODEL.NUM_CLASSES, m.ALPHA, m.CUTMIX_ALPHA, m.PROB, m.SWITCH_PROB, m.LABEL_SMOOTH_VALUE, rng)


def _classnames(cfg: CfgNode):
    return build_classnames(cfg)[0]


def _build_training(cfg: CfgNode, dist: DistInfo):
    model = build_model(cfg).to(dist.device)
    if cfg.MODEL.ACT_CHECKPOINT:
        recompute_block_activations(model)
    optimizer = build_optimizer(cfg, model)
    use_scaler = dist.device.type == "cuda" and amp_dtype(cfg, dist.device) == torch.float16
    scaler = torch.amp.GradScaler("cuda") if use_scaler else None
    start_epoch = 0
    resume = latest_training_state(cfg.OUTPUT_DIR) if cfg.TRAIN.AUTO_RESUME else None
    if resume is not None:
        # As in PySlowFast, a run's own checkpoint wins over the one it was initialised from.
        load_checkpoint(resume, model)
        start_epoch = restore_training_state(resume, optimizer, scaler)
        logger.info("resumed from %s: continuing at epoch %d%s", resume["path"], start_epoch + 1,
                    f" (TRAIN.CHECKPOINT_FILE_PATH {cfg.TRAIN.CHECKPOINT_FILE_PATH} not used)"
                    if cfg.TRAIN.CHECKPOINT_FILE_PATH else "")
    elif cfg.TRAIN.CHECKPOINT_FILE_PATH:
        initialise_from(cfg.TRAIN.CHECKPOINT_FILE_PATH, model, cfg.TRAIN.CHECKPOINT_DROP_HEAD)
    return model, optimizer, scaler, start_epoch


def initialise_from(path: str, model: torch.nn.Module, drop_head: bool) -> LoadReport:
    """Loads the weights to start training from (strictly; all but the head with ``drop_head``) and logs what it did.

    ``path`` is a file, an http(s) URL or a registry name (:func:`~mvit_video.hub.resolve_checkpoint`).

    Raises:
        FileNotFoundError, CheckpointError: see :func:`~mvit_video.weight_layouts.load_checkpoint`; DownloadError.
    """
    report = load_checkpoint(resolve_checkpoint(path)[0], model, drop_head=drop_head)
    logger.info("initialised from %s (%s layout): %d tensors loaded strictly", path, report.source_format,
                report.num_tensors)
    if report.skipped:
        logger.info("re-initialised head: %s", report.describe_skipped())
    return report


def train(cfg: CfgNode) -> dict:
    """Trains MODEL on DATA.PATH_TO_DATA_DIR/train, validating every TRAIN.EVAL_PERIOD epochs.

    Returns:
        The last epoch's training statistics and the last validation summary (on rank 0).
    """
    classnames = check_num_classes(cfg)
    dist = init_distributed(cfg.NUM_GPUS, cfg.NUM_SHARDS, cfg.SHARD_ID)
    seed_everything(cfg.RNG_SEED + dist.rank)
    model, optimizer, scaler, start_epoch = _build_training(cfg, dist)
    net = DistributedDataParallel(model, device_ids=[dist.device] if dist.device.type == "cuda" else None) \
        if dist.world_size > 1 else model
    train_set = build_dataset(cfg, "train")
    val_set = build_dataset(cfg, "val") if has_split(cfg.DATA.PATH_TO_DATA_DIR, "val") else None
    schedule = build_lr_schedule(cfg)
    step_cfg = _step_config(cfg, dist.device)
    batch = _per_process_batch(cfg.TRAIN.BATCH_SIZE, dist, cfg.NUM_SHARDS, "TRAIN.BATCH_SIZE")
    tb_dir = os.path.join(cfg.OUTPUT_DIR, "tensorboard") if cfg.TENSORBOARD.ENABLE and dist.is_main else None
    stats = StatsWriter(cfg.OUTPUT_DIR, tb_dir, keep_epochs=start_epoch) if dist.is_main else None
    log = stats.write if stats else None
    result = {}
    for epoch in range(start_epoch, cfg.SOLVER.MAX_EPOCH):
        # Every random draw of the epoch comes from its seed: the model's (drop path, dropout) from the global
        # generators, the clips' from the dataset's per-item seeds, Mixup's from its own generator.
        seed_everything(epoch_seed(cfg, epoch, dist.rank))
        train_set.set_seed(epoch_seed(cfg, epoch))
        loader = make_loader(cfg, train_set, dist, batch, train=True, epoch=epoch)
        mixup = _mixup(cfg, epoch, dist.rank)
        epoch_stats = train_epoch(net, loader, optimizer, schedule, epoch, step_cfg, dist, scaler, mixup, log)
        record = {"type": "train_epoch", "epoch": epoch + 1, **epoch_stats.as_dict()}
        result["train"] = record
        if stats:
            stats.write(record, step=epoch + 1)
            for failure in epoch_stats.failures:
                logger.warning("epoch %d: replaced unreadable video %s (%s)", epoch + 1, failure.path, failure.reason)
            logger.info("epoch %d: loss %.4f, top-1 %.1f%%, %.1f clips/s (CPU ms per clip: data %.1f, model %.1f), "
                        "%d failed videos", epoch + 1, record["loss"], record["top1"], record["clips_per_s"],
                        record["data_cpu_ms_per_clip"], record["model_cpu_ms_per_clip"], record["failed_videos"])
        last = epoch + 1 == cfg.SOLVER.MAX_EPOCH
        if dist.is_main and ((epoch + 1) % cfg.TRAIN.CHECKPOINT_PERIOD == 0 or last):
            save_training_state(cfg.OUTPUT_DIR, epoch, model, optimizer, scaler, cfg.dump(), classnames)
        if val_set is not None and ((epoch + 1) % cfg.TRAIN.EVAL_PERIOD == 0 or last):
            result["val"] = _validate(cfg, model, val_set, dist, epoch, stats)
        barrier()
    if stats:
        stats.close()
        plot_curves({os.path.basename(os.path.abspath(cfg.OUTPUT_DIR)): stats.path},
                    os.path.join(cfg.OUTPUT_DIR, "curves.png"))
    return result


def _validate(cfg, model, val_set, dist, epoch, stats) -> dict:
    loader = make_loader(cfg, val_set, dist, cfg.TEST.BATCH_SIZE, train=False)
    meter = TestMeter(cfg.MODEL.NUM_CLASSES, cfg.DATA.ENSEMBLE_METHOD, _classnames(cfg))
    evaluate(model, loader, meter, dist, amp_dtype(cfg, dist.device), desc=f"val {epoch + 1}")
    summary = meter.summary()
    record = {"type": "val", "epoch": epoch + 1, "top1": summary["top1"], "top5": summary["top5"],
              "num_videos": summary["num_videos"], "failed_videos": len(summary["failed_videos"])}
    if stats:
        stats.write(record, step=epoch + 1)
        logger.info("epoch %d: validation top-1 %.1f%% on %d videos", epoch + 1, record["top1"], record["num_videos"])
    return record


def load_test_model(cfg: CfgNode, device: torch.device) -> torch.nn.Module:
    """The model to test: TEST.CHECKPOINT_FILE_PATH (a file of any layout load_checkpoint takes, an http(s) URL or a
    registry name) or the run's newest training state (OUTPUT_DIR/checkpoints).

    Raises:
        FileNotFoundError: no checkpoint given and none under OUTPUT_DIR/checkpoints.
        DownloadError: TEST.CHECKPOINT_FILE_PATH could not be downloaded.
    """
    model = build_model(cfg)
    path = cfg.TEST.CHECKPOINT_FILE_PATH
    source = resolve_checkpoint(path)[0] if path else latest_training_state(cfg.OUTPUT_DIR)
    if not source:
        raise FileNotFoundError(
            f"nothing to test: TEST.CHECKPOINT_FILE_PATH is empty and {cfg.OUTPUT_DIR}/checkpoints has no checkpoint"
        )
    report = load_checkpoint(source, model)
    logger.info("testing %s (%s layout)", path or source["path"], report.source_format)
    return model.to(device)


def test(cfg: CfgNode, view_transform=None, name: str = "test") -> dict:
    """Multi-view test on DATA.PATH_TO_DATA_DIR/test; writes OUTPUT_DIR/{name}_results.json and predictions CSV.

    Returns:
        The results summary (top1, top5, clip_top1, num_videos, num_views, per-class accuracy, failed videos).
    """
    classnames = check_num_classes(cfg)
    dist = init_distributed(cfg.NUM_GPUS, cfg.NUM_SHARDS, cfg.SHARD_ID)
    model = load_test_model(cfg, dist.device)
    if view_transform is None and cfg.TEST.SHUFFLE_FRAMES:
        view_transform = FrameShuffle("shuffle", cfg.RNG_SEED)
    dataset = build_dataset(cfg, "test")
    views = cfg.TEST.NUM_ENSEMBLE_VIEWS * cfg.TEST.NUM_SPATIAL_CROPS
    # TEST.BATCH_SIZE counts clips, as in PySlowFast; a batch holds all the views of whole videos
    loader = make_loader(cfg, dataset, dist, max(1, cfg.TEST.BATCH_SIZE // views), train=False)
    meter = TestMeter(cfg.MODEL.NUM_CLASSES, cfg.DATA.ENSEMBLE_METHOD, classnames)
    start = time.perf_counter()
    evaluate(model, loader, meter, dist, amp_dtype(cfg, dist.device), desc=name, view_transform=view_transform)
    summary = meter.write(cfg.OUTPUT_DIR, name) if dist.is_main else meter.summary()
    summary["seconds"] = time.perf_counter() - start
    barrier()
    return summary
