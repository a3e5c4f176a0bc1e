"""Errors shared across the package that belong to no one module."""

import importlib
from types import ModuleType


class MissingPackageError(ImportError):
    """An optional package that a requested feature needs is not installed; the message names the install command."""


def import_optional(module: str, extra: str, feature: str) -> ModuleType:
    """Imports ``module``, which ``feature`` needs and the ``extra`` of setup.py installs.

    Returns:
        The module.
    Raises:
        MissingPackageError: naming the feature and ``pip install mvit_video[extra]``.
    """
    try:
        return importlib.import_module(module)
    except ImportError as err:
        raise MissingPackageError(
            f"{feature} needs the {module} package, which is not installed: pip install mvit_video[{extra}] "
            f"(in a source checkout: pip install -e \".[{extra}]\")"
        ) from err
