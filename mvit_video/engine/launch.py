"""One run of tools/run_net.py: train then test, in one process or in all the processes of PySlowFast's launch."""

import os
from typing import Optional

from fvcore.common.config import CfgNode

from .distributed import launch, launched_by_torchrun, plan_launch, shutdown
from .trainer import test, train


def train_and_test(cfg: CfgNode) -> dict:
    """Trains when TRAIN.ENABLE, then tests when TEST.ENABLE.

    Returns:
        ``train`` and ``val`` (see :func:`~mvit_video.engine.trainer.train`) and ``test`` results, as each ran.
    """
    results = {}
    if cfg.TRAIN.ENABLE:
        results.update(train(cfg))
    if cfg.TEST.ENABLE:
        results["test"] = test(cfg)
    return results


def run(cfg: CfgNode, init_method: Optional[str] = None) -> Optional[dict]:
    """Runs :func:`train_and_test` on this machine's processes: NUM_GPUS of them joined through ``init_method`` as
    PySlowFast does, torchrun's, or this one.

    Returns:
        The results on the process of global rank 0, None on the others.
    Raises:
        ConfigError: NUM_GPUS, NUM_SHARDS, SHARD_ID or ``init_method`` do not describe a possible launch; and what
            training and testing raise.
    """
    spec = plan_launch(cfg.NUM_GPUS, cfg.NUM_SHARDS, cfg.SHARD_ID, init_method)
    if spec is not None:
        results = launch(train_and_test, (cfg,), spec)
        return results if spec.rank(0) == 0 else None
    try:
        results = train_and_test(cfg)
        return results if is_reporting_process(cfg.SHARD_ID) else None
    finally:
        shutdown()


def is_reporting_process(shard_id: int) -> bool:
    """Whether this process prints for the run before it starts: torchrun's rank 0, or PySlowFast's shard 0."""
    return int(os.environ.get("RANK", "0")) == 0 if launched_by_torchrun() else shard_id == 0
