"""Configuration: fvcore ``CfgNode`` defaults, YAML files and ``--opts`` overrides, as in PySlowFast."""

from pathlib import Path
from typing import Optional, Sequence

from fvcore.common.config import CfgNode

from .defaults import SUPPORTED_VALUES, get_default_cfg


class ConfigError(ValueError):
    """A configuration file or override names an unknown key or an unsupported value."""


def get_cfg() -> CfgNode:
    """Returns a fresh copy of the default configuration."""
    return get_default_cfg()


def _lookup(cfg: CfgNode, dotted: str):
    node = cfg
    for part in dotted.split("."):
        node = node[part]
    return node


def _normalise(value):
    return list(value) if isinstance(value, tuple) else value


def validate(cfg: CfgNode, source: str = "config") -> CfgNode:
    """Refuses values this project does not implement; returns ``cfg`` unchanged.

    Raises:
        ConfigError: naming the key, its value and the supported values.
    """
    for key, allowed in SUPPORTED_VALUES.items():
        value = _normalise(_lookup(cfg, key))
        if value not in [_normalise(a) for a in allowed]:
            raise ConfigError(
                f"{source}: {key} = {value!r} is not supported by mvit_video (supported: "
                f"{', '.join(repr(a) for a in allowed)})"
            )
    return cfg


def merge_opts(cfg: CfgNode, opts: Sequence[str], source: str = "--opts") -> None:
    """Applies ``KEY VALUE`` pairs in place; unknown keys raise ConfigError naming them."""
    if len(opts) % 2:
        raise ConfigError(f"{source}: expected KEY VALUE pairs, got an odd number of items: {list(opts)}")
    try:
        cfg.merge_from_list(list(opts))
    except (KeyError, ValueError, AssertionError) as err:
        raise ConfigError(f"{source}: {err}") from err


def load_config(path: Optional[str], opts: Optional[Sequence[str]] = None) -> CfgNode:
    """Merges the YAML file at ``path`` (if given) and ``opts`` into the defaults.

    Returns:
        The merged, validated and frozen configuration.
    Raises:
        FileNotFoundError: ``path`` does not exist.
        ConfigError: a key is unknown (the key is named) or a value is unsupported.
    """
    cfg = get_cfg()
    if path is not None:
        if not Path(path).is_file():
            raise FileNotFoundError(f"config file not found: {path}")
        try:
            cfg.merge_from_file(str(path))
        except (KeyError, ValueError, AssertionError) as err:
            raise ConfigError(f"{path}: {err}") from err
    if opts:
        merge_opts(cfg, opts)
    validate(cfg, source=str(path) if path else "config")
    cfg.freeze()
    return cfg


__all__ = ["ConfigError", "get_cfg", "load_config", "merge_opts", "validate"]
