"""Train-then-probe experiments over several configs: the steps that tools/shuffle_demo.py and
tools/compare_variants.py share. Each run is a :class:`Run` with its own OUTPUT_DIR."""

import logging
import os
import time
from typing import Dict, List, NamedTuple, Optional, Sequence, Tuple

from fvcore.common.config import CfgNode

from ..data import has_split
from ..engine.training_state import latest_training_state, training_state_dir
from ..engine.trainer import train
from ..flops import count_model
from ..models import build_model

logger = logging.getLogger("mvit_video")


class Run(NamedTuple):
    """One config of an experiment: its name in the tables, its path as the user gave it, and the merged config."""

    name: str
    config: str
    cfg: CfgNode


def split_output_dir(opts: Sequence[str], out_dir: Optional[str]) -> Tuple[List[str], Optional[str]]:
    """Takes OUTPUT_DIR out of ``opts`` (one OUTPUT_DIR for several runs would mix their checkpoints) as the out dir.

    Raises:
        ValueError: OUTPUT_DIR in the opts and a different ``out_dir``; TEST.CHECKPOINT_FILE_PATH in the opts.
    """
    rest: List[str] = []
    for i in range(0, len(opts), 2):
        key, value = opts[i], opts[i + 1] if i + 1 < len(opts) else None
        if key == "OUTPUT_DIR" and value is not None:
            if out_dir is not None and os.path.normpath(out_dir) != os.path.normpath(value):
                raise ValueError(f"--out-dir {out_dir} and --opts OUTPUT_DIR {value} disagree; give one of them")
            out_dir = value
            continue
        if key == "TEST.CHECKPOINT_FILE_PATH":
            raise ValueError("--opts TEST.CHECKPOINT_FILE_PATH would test one file as every model; each run tests its "
                             "newest checkpoint (probe one checkpoint with tools/frame_shuffle_eval.py)")
        rest.extend(opts[i : i + 2])
    return rest, out_dir


def check_dataset(cfg: CfgNode, splits: Sequence[str]) -> None:
    """Fails before any model is built when DATA.PATH_TO_DATA_DIR lacks one of ``splits``.

    Raises:
        FileNotFoundError: naming the missing split and how to generate the synthetic dataset.
    """
    root = cfg.DATA.PATH_TO_DATA_DIR
    for split in splits:
        if not has_split(root, split):
            raise FileNotFoundError(
                f"DATA.PATH_TO_DATA_DIR = {root} has no {split} split ({os.path.join(root, split + '.csv')} not "
                f"found). Generate the synthetic dataset first: tools/make_synthetic_dataset.py --out {root} "
                f"(`make demo` and `make shuffle-demo` do this when it is missing)"
            )


def newest_checkpoint(run: Run, tool: str) -> dict:
    """The checkpoint a probe will test: the newest under the run's OUTPUT_DIR/checkpoints.

    Raises:
        FileNotFoundError: naming the folder, and how to train it (``tool`` without --skip-train, or run_net).
    """
    ckpt = latest_training_state(run.cfg.OUTPUT_DIR)
    if ckpt is None:
        raise FileNotFoundError(
            f"no checkpoint of {run.name} in {training_state_dir(run.cfg.OUTPUT_DIR)} (OUTPUT_DIR of {run.config}): "
            f"run {tool} without --skip-train, or train it with tools/run_net.py --cfg {run.config}"
        )
    return ckpt


def prepare(runs: Sequence[Run], skip_train: bool, tool: str) -> Dict[str, float]:
    """Checks every dataset (and, with ``skip_train``, every checkpoint) first, then trains each run in turn.

    Returns:
        The wall time in seconds of each run's training call (empty with ``skip_train``).
    Raises:
        FileNotFoundError: a missing split or checkpoint, before anything runs; and what training raises.
    """
    for run in runs:
        check_dataset(run.cfg, ["test"] if skip_train else ["train", "test"])
    if skip_train:
        for run in runs:
            newest_checkpoint(run, tool)
        return {}
    wall = {}
    for i, run in enumerate(runs):
        logger.info("[%d/%d] training %s (%s) for %d epochs in %s", i + 1, len(runs), run.name, run.config,
                    run.cfg.SOLVER.MAX_EPOCH, run.cfg.OUTPUT_DIR)
        start = time.perf_counter()
        train(run.cfg)
        wall[run.name] = time.perf_counter() - start
    return wall


def model_size(cfg: CfgNode) -> Tuple[int, float]:
    """Parameters and fvcore GFLOPs of one training clip of ``cfg``."""
    size = (cfg.DATA.INPUT_CHANNEL_NUM[0], cfg.DATA.NUM_FRAMES, cfg.DATA.TRAIN_CROP_SIZE, cfg.DATA.TRAIN_CROP_SIZE)
    counts = count_model(build_model(cfg), size, activations=False)
    return counts.params, counts.gflops


def summarise(run: Run, ckpt: dict, report: dict) -> dict:
    """One run's entry of a summary: where it came from and the probe's numbers, as in its frame_shuffle.json."""
    params, gflops = model_size(run.cfg)
    return {
        "config": run.config,
        "output_dir": run.cfg.OUTPUT_DIR,
        "frame_shuffle_json": os.path.join(run.cfg.OUTPUT_DIR, "frame_shuffle.json"),
        "checkpoint": ckpt["path"],
        "epochs": int(ckpt["epoch"]) + 1,
        "params": params,
        "gflops": gflops,
        "ordered_top1": report["ordered_top1"],
        "shuffled_top1": report["shuffled_top1"],
        "reversed_top1": report["reversed_top1"],
        "drop": report["drop"],
        "num_videos": report["num_videos"],
        "num_views": report["num_views"],
    }


def budget_warnings(models: Dict[str, dict], max_epoch: int) -> List[str]:
    """Lines saying when the probed checkpoints are not all from the configured budget (an OUTPUT_DIR that held a
    longer run is resumed past its end, so its newest checkpoint is the old one)."""
    epochs = {name: m["epochs"] for name, m in models.items()}
    lines = []
    if len(set(epochs.values())) > 1:
        lines.append("warning: the checkpoints are not from the same budget ("
                     + ", ".join(f"{name} {e} epochs" for name, e in epochs.items()) + ")")
    for name, e in epochs.items():
        if e != max_epoch:
            lines.append(f"warning: SOLVER.MAX_EPOCH is {max_epoch} but the {name} checkpoint probed is from epoch {e} "
                         f"({models[name]['checkpoint']}); to train it on this budget from scratch, remove "
                         f"{models[name]['output_dir']}")
    return lines
