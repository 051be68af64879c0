"""Deprecated 0.1 names and module paths, still importable with a ``DeprecationWarning``.

- Top-level helpers that became private (``torch_absld.pgd_step``, ...) are served by the
  package's module ``__getattr__`` through :func:`deprecated_attribute`.
- Modules that moved (``torch_absld.metrics`` is now ``torch_absld.evaluation.metrics``, ...)
  are served by one import hook: ``import torch_absld.metrics`` returns the module at its
  new path (the same object), so classes and functions are identical.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import sys
import warnings
from collections.abc import Sequence
from types import ModuleType
from typing import Any

__all__ = ["MOVED_MODULES", "MOVED_NAMES", "deprecated_attribute", "install_module_aliases"]

MOVED_MODULES = {
    "torch_absld.autoattack": "torch_absld.evaluation.autoattack",
    "torch_absld.checkpoint": "torch_absld.evaluation.checkpoint",
    "torch_absld.data": "torch_absld.evaluation.data",
    "torch_absld.distiller": "torch_absld.methods.absld",
    "torch_absld.hooks": "torch_absld.integrations.hooks",
    "torch_absld.metrics": "torch_absld.evaluation.metrics",
    "torch_absld.protocol": "torch_absld.evaluation.protocol",
    "torch_absld.report": "torch_absld.evaluation.report",
}
"""0.1 module path -> its module now."""

_PRIVATE_HELPERS = {
    "compiled_pgd_step": ("torch_absld.attack.engine", "_compiled_pgd_step"),
    "pgd_step": ("torch_absld.attack.engine", "_pgd_step"),
    "trace_input_gradients": ("torch_absld._internal.compile", "trace_input_gradients"),
    "unwrap_model": ("torch_absld._internal.modules", "unwrap_model"),
}
MOVED_NAMES = {"torch_absld": _PRIVATE_HELPERS, "torch_absld.attack": _PRIVATE_HELPERS}
"""Module -> {0.1 public name -> (module, name) of the private helper that serves it now}."""


def deprecated_attribute(module: str, name: str) -> Any:
    """The value of a deprecated ``module.name`` (with a warning), or ``AttributeError``."""
    moved = MOVED_NAMES.get(module, {}).get(name)
    if moved is not None:
        warnings.warn(
            f"`{module}.{name}` is private since torch-absld 0.2 and will be removed; it is an internal "
            "helper of the attacks (use `pgd`, `KLPGDAttack` or `PGDConfig(compile=True)` instead).",
            DeprecationWarning,
            stacklevel=3,
        )
        return getattr(importlib.import_module(moved[0]), moved[1])
    old_module = f"{module}.{name}"
    if old_module in MOVED_MODULES:
        _warn_moved(old_module)
        return importlib.import_module(MOVED_MODULES[old_module])
    raise AttributeError(f"module {module!r} has no attribute {name!r}")


def _warn_moved(old: str) -> None:
    warnings.warn(
        f"`{old}` moved to `{MOVED_MODULES[old]}` in torch-absld 0.2; the old path will be removed. "
        "Import from the new path, or the names themselves from `torch_absld`.",
        DeprecationWarning,
        stacklevel=4,
    )


class _MovedModuleFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Finds a 0.1 module path and loads the module at its new path in its place."""

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname not in MOVED_MODULES:
            return None
        return importlib.util.spec_from_loader(fullname, self)

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        return None  # a placeholder that exec_module replaces

    def exec_module(self, module: ModuleType) -> None:
        _warn_moved(module.__name__)
        # The import system returns what sys.modules holds once this returns: the real module.
        sys.modules[module.__name__] = importlib.import_module(MOVED_MODULES[module.__name__])


def install_module_aliases() -> None:
    """Make the 0.1 module paths importable (once per process)."""
    if not any(isinstance(finder, _MovedModuleFinder) for finder in sys.meta_path):
        sys.meta_path.append(_MovedModuleFinder())
