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


# What makes a network single-scale: MODEL.ARCH "vit" is MViT with none of these set.
_VIT_EMPTY_KEYS = (
    "DIM_MUL", "HEAD_MUL", "POOL_Q_STRIDE", "POOL_KV_STRIDE", "POOL_KV_STRIDE_ADAPTIVE", "POOL_KVQ_KERNEL"
)


def _check_vit(cfg: CfgNode, source: str) -> None:
    """MODEL.ARCH "vit" promises no pooling and no channel expansion; refuses a config that has them."""
    if cfg.MODEL.ARCH != "vit":
        return
    multiscale = [f"MVIT.{key}" for key in _VIT_EMPTY_KEYS if cfg.MVIT[key]]
    if multiscale:
        raise ConfigError(
            f"{source}: MODEL.ARCH = 'vit' is single-scale, but {', '.join(multiscale)} "
            f"{'is' if len(multiscale) == 1 else 'are'} set; empty them (see configs/K400/VIT_B_16x4.yaml) or use "
            f"MODEL.ARCH mvit"
        )


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
    _check_vit(cfg, source)
    return cfg


class _DuplicateKeyLoader(yaml.SafeLoader):
    """A YAML loader that refuses a key repeated with another value in one mapping (PyYAML would silently keep the
    last one). A key repeated with the same value, as SOLVER.COSINE_AFTER_WARMUP in PySlowFast's MVITv2_S_16x4.yaml,
    is harmless and accepted."""

    def construct_mapping(self, node, deep=False):
        seen = {}
        for key_node, value_node in node.value:
            key = self.construct_object(key_node, deep=deep)
            value = self.construct_object(value_node, deep=True)
            if key in seen and seen[key][1] != value:
                raise ConfigError(
                    f"{self.name}: key {key!r} appears twice in one section with different values (lines "
                    f"{seen[key][0] + 1} and {key_node.start_mark.line + 1}); YAML would silently keep the second. "
                    f"Remove one."
                )
            seen[key] = (key_node.start_mark.line, value)
        return super().construct_mapping(node, deep=deep)


def _read_yaml(path: str):
    """The parsed YAML document of ``path``, checked for repeated keys.

    Raises:
        ConfigError: a YAML syntax error (with its line), an empty file, or a key repeated with another value.
    """
    with open(path) as f:
        loader = None
        try:
            loader = _DuplicateKeyLoader(f)
            loader.name = str(path)
            data = loader.get_single_data()
        except yaml.MarkedYAMLError as err:
            mark = err.problem_mark or err.context_mark
            where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
            raise ConfigError(f"{path}: not valid YAML{where}: {err.problem or err.context}") from err
        except yaml.YAMLError as err:
            raise ConfigError(f"{path}: not valid YAML: {str(err).splitlines()[0]}") from err
        except UnicodeDecodeError as err:
            raise ConfigError(f"{path}: not a text file ({err.reason} at byte {err.start})") from err
        finally:
            if loader is not None:
                loader.dispose()
    if data is None:
        raise ConfigError(f"{path}: the file is empty; a config sets at least one key (or _BASE_)")
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of config sections, got a YAML {type(data).__name__}")
    return data


def check_yaml_file(path: str) -> None:
    """Refuses a config file, or any file it names as ``_BASE_``, that is not valid YAML, is empty, or repeats a key
    with another value within one section.

    PySlowFast's MVIT_B_32x3_CONV.yaml sets MVIT.DEPTH twice, and so silently builds a 24-block network.

    Raises:
        ConfigError: naming the file and the line.
        FileNotFoundError: a ``_BASE_`` file does not exist.
    """
    base = _read_yaml(path).get("_BASE_")
    if base:
        base_path = str(Path(path).parent / base) if not Path(base).is_absolute() else base
        if not Path(base_path).is_file():
            raise FileNotFoundError(f"{path}: _BASE_ config file not found: {base_path}")
        check_yaml_file(base_path)


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
