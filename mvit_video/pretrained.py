"""A model ready to use from one name: a checkpoint file, an http(s) URL or a registry name, with the config and
class names it carries.

    loaded = mvit_video.load_model("mvitv2_s_16x4_k400")        # or "output/run/checkpoints/...pyth", or a URL
    mvit_video.predict("clip.mp4", loaded).labels

The config is, in this order: the one given (``cfg_file``), the one the checkpoint stores (every checkpoint this
project writes does), or the registry entry's file in configs/; ``opts`` override it. The class names are the ones
given, else the checkpoint's own, else the registry entry's list, else those of the config's dataset (DATA.CLASSNAMES,
``classnames.txt`` in the data folder, the class folders), else ``class_<i>``.
"""

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional, Sequence, Tuple, Union

import torch
from fvcore.common.config import CfgNode
from torch import nn

from .config import ConfigError, load_config, load_config_text
from .data import build_classnames, build_eval_transform, load_classnames
from .data.transforms import EvalTransform
from .engine.training_state import latest_training_state
from .hub import resolve_checkpoint
from .models import build_model
from .weight_files import read_checkpoint
from .weight_layouts import convert_state_dict, load_checkpoint
from .weights import Weights

ROOT = Path(__file__).resolve().parents[1]
ClassNames = Union[None, str, Sequence[str]]


@dataclass
class LoadedModel:
    """A model in eval mode with what using it needs: its config, class names (label id = index), the eval
    transform of its test views, the local checkpoint file and where the config came from."""

    model: nn.Module
    cfg: CfgNode
    classnames: List[str]
    transform: EvalTransform
    checkpoint: str
    config_source: str


def load_model(
    checkpoint: Optional[str] = None,
    cfg_file: Optional[str] = None,
    opts: Sequence[str] = (),
    classnames: ClassNames = None,
    device: Union[None, str, torch.device] = None,
) -> LoadedModel:
    """Builds the model of a checkpoint and loads it strictly (see the module docstring for the config and names).

    Args:
        checkpoint: a file, an http(s) URL or a registry name; None takes TEST.CHECKPOINT_FILE_PATH of ``cfg_file``,
            else the newest checkpoint under its OUTPUT_DIR.
        cfg_file, opts: a config file and KEY VALUE overrides.
        classnames: a list, a class-name file or a shipped list ("kinetics400", "kinetics600").
        device: where to put the model (default: CUDA when available, else the CPU).
    Raises:
        FileNotFoundError: no such checkpoint, config or class-name file; nothing to load.
        DownloadError, CheckpointError: the checkpoint cannot be downloaded, read or loaded.
        ConfigError: no config to be found, or a bad one.
        ValueError: the class count of the config, the checkpoint or the class names disagree (each source named).
    """
    path, entry, container = _open_checkpoint(checkpoint, cfg_file, opts)
    cfg, config_source = _config(container, entry, path, cfg_file, opts)
    _check_head(container, cfg, config_source, path)
    names = _classnames(classnames, container, entry, cfg, config_source, path)
    model = build_model(cfg)
    load_checkpoint(path, model)
    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    return LoadedModel(model.to(device).eval(), cfg, names, build_eval_transform(cfg, "test"), path, config_source)


def checkpoint_config(checkpoint: Optional[str] = None, cfg_file: Optional[str] = None,
                      opts: Sequence[str] = ()) -> Tuple[CfgNode, str]:
    """The config of a checkpoint (see the module docstring), with TEST.CHECKPOINT_FILE_PATH set to its local file,
    and where the config came from. Raises as :func:`load_model`."""
    path, entry, container = _open_checkpoint(checkpoint, cfg_file, opts)
    cfg, source = _config(container, entry, path, cfg_file, opts)
    _check_head(container, cfg, source, path)
    return cfg, source


def _open_checkpoint(checkpoint, cfg_file, opts) -> Tuple[str, Optional[Weights], dict]:
    """(local file, registry entry or None, its contents)."""
    if checkpoint:
        path, entry = resolve_checkpoint(checkpoint)
        return path, entry, read_checkpoint(path)
    if not cfg_file:
        raise ConfigError("no checkpoint and no config: name a checkpoint (a file, URL or registry name) or a config")
    cfg = load_config(cfg_file, opts)
    if cfg.TEST.CHECKPOINT_FILE_PATH:
        return _open_checkpoint(cfg.TEST.CHECKPOINT_FILE_PATH, None, ())
    latest = latest_training_state(cfg.OUTPUT_DIR)
    if latest is None:
        raise FileNotFoundError(f"no checkpoint: TEST.CHECKPOINT_FILE_PATH is empty and {cfg.OUTPUT_DIR}/checkpoints "
                                f"has none")
    return latest.pop("path"), None, latest


def _config(container: dict, entry: Optional[Weights], path: str, cfg_file, opts) -> Tuple[CfgNode, str]:
    """The model's config with TEST.CHECKPOINT_FILE_PATH set to ``path``, and where it came from."""
    opts = list(opts) + ["TEST.CHECKPOINT_FILE_PATH", path]
    if cfg_file:
        return load_config(cfg_file, opts), f"--cfg {cfg_file}"
    stored = container.get("cfg")
    if isinstance(stored, str) and stored.strip():
        return load_config_text(stored, opts, f"{path} (its stored config)"), f"the config stored in {path}"
    if entry is not None:
        return load_config(str(ROOT / entry.config), list(entry.opts) + opts), f"the registry's {entry.config}"
    raise ConfigError(f"{path} stores no config (it was not written by mvit_video): give its config file (--cfg)")


def _head_classes(container: Mapping) -> Optional[int]:
    """The number of classes of the checkpoint's classifier, or None when it has none."""
    wrapped = [container[k] for k in ("model_state", "state_dict", "model") if isinstance(container.get(k), Mapping)]
    state = wrapped[0] if wrapped else container
    weight = convert_state_dict(state)[0].get("head.projection.weight")
    return int(weight.shape[0]) if isinstance(weight, torch.Tensor) else None


def _check_head(container: dict, cfg: CfgNode, config_source: str, path: str) -> None:
    classes = _head_classes(container)
    if classes is not None and classes != cfg.MODEL.NUM_CLASSES:
        raise ValueError(
            f"class count mismatch: MODEL.NUM_CLASSES = {cfg.MODEL.NUM_CLASSES} (from {config_source}, with any "
            f"--opts) but the checkpoint {path} has a {classes}-class head (head.projection.weight); set "
            f"MODEL.NUM_CLASSES {classes} or use the checkpoint's own config"
        )


def _classnames(given: ClassNames, container: dict, entry: Optional[Weights], cfg: CfgNode, config_source: str,
                path: str) -> List[str]:
    num_classes = cfg.MODEL.NUM_CLASSES
    if given is not None:
        names = load_classnames(str(given)) if isinstance(given, str) else [str(n) for n in given]
        source = f"class names {given!r}" if isinstance(given, str) else "the class-name list"
    elif container.get("classnames"):
        names, source = list(container["classnames"]), f"the class names stored in {path}"
    elif entry is not None:
        names, source = load_classnames(entry.classnames), f"the registry's {entry.classnames}"
    else:
        names, source = build_classnames(cfg)
        if names is None:
            return [f"class_{i}" for i in range(num_classes)]
    if len(names) != num_classes:
        raise ValueError(f"{source}: {len(names)} names, but the model predicts {num_classes} classes "
                         f"(MODEL.NUM_CLASSES from {config_source})")
    return names
