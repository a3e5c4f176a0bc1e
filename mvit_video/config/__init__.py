"""Configuration: fvcore ``CfgNode`` defaults, YAML files and ``--opts`` overrides, as in PySlowFast."""

from pathlib import Path
from typing import Optional, Sequence

import yaml
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


class _DuplicateKeyLoader(yaml.SafeLoader):
    """A YAML loader that refuses a key repeated in one mapping (PyYAML would silently keep the last one)."""

    def construct_mapping(self, node, deep=False):
        seen = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise ConfigError(
                    f"{self.name}: key {key!r} appears twice in one section (lines {seen[key] + 1} and "
                    f"{key_node.start_mark.line + 1}); YAML would silently keep the second. Remove one."
                )
            seen[key] = key_node.start_mark.line
        return super().construct_mapping(node, deep=deep)


def check_yaml_file(path: str) -> None:
    """Refuses a config file, or any file it names as ``_BASE_``, that repeats a key within one section.

    PySlowFast's MVIT_B_32x3_CONV.yaml sets MVIT.DEPTH twice, and so silently builds a 24-block network.
    """
    with open(path) as f:
        loader = _DuplicateKeyLoader(f)
        loader.name = str(path)
        try:
            data = loader.get_single_data() or {}
        finally:
            loader.dispose()
    base = data.get("_BASE_") if isinstance(data, dict) else None
    if base:
        check_yaml_file(str(Path(path).parent / base) if not Path(base).is_absolute() else base)


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
        check_yaml_file(str(path))
        try:
            cfg.merge_from_file(str(path))
        except (KeyError, ValueError, AssertionError) as err:
            raise ConfigError(f"{path}: {err}") from err
    if opts:
        merge_opts(cfg, opts)
    validate(cfg, source=str(path) if path else "config")
    cfg.freeze()
    return cfg


def load_config_text(text: str, opts: Optional[Sequence[str]] = None, source: str = "config") -> CfgNode:
    """Like :func:`load_config`, from YAML text (such as the ``cfg`` a training checkpoint stores).

    Raises:
        ConfigError: the text is not YAML, or names an unknown key or an unsupported value (``source`` is named).
    """
    cfg = get_cfg()
    try:
        cfg.merge_from_other_cfg(cfg.load_cfg(text))
    except (KeyError, ValueError, AssertionError, yaml.YAMLError) as err:
        raise ConfigError(f"{source}: {err}") from err
    if opts:
        merge_opts(cfg, opts)
    validate(cfg, source=source)
    cfg.freeze()
    return cfg


__all__ = ["ConfigError", "get_cfg", "load_config", "load_config_text", "merge_opts", "validate"]
