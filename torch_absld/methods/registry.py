"""Training methods by name: each step module registers a :class:`Method` when it is imported."""

from __future__ import annotations

import difflib
import functools
import importlib
import pkgutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from torch import Tensor, nn

from .._internal.checks import check_options
from .base import TrainingStep

__all__ = ["Method", "available", "create", "get", "options", "register", "unregister"]


@dataclass(frozen=True)
class Method:
    """A training method: key ``name`` (``"fair-ard"``), display ``title``, ``step`` class, functional ``loss``.

    ``defaults``: the options :func:`create` fixes; ``needs_validation``: the step reads ``validation=`` batches.
    """

    name: str
    title: str
    step: type[TrainingStep]
    loss: Callable[..., Tensor]
    needs_teacher: bool
    needs_validation: bool = False
    defaults: Mapping[str, Any] = field(default_factory=dict)
    summary: str = ""


_REGISTRY: dict[str, Method] = {}


def register(method: Method) -> Method:
    """Add ``method`` to the registry (at the bottom of its step module); returns it."""
    if not isinstance(method, Method):
        raise TypeError(f"Expected `method` to be a Method, but got {type(method).__name__}.")
    if _REGISTRY.setdefault(method.name, method) != method:
        raise ValueError(f"Expected a new method name, but {method.name!r} is registered. `unregister` it first.")
    return method


def unregister(name: str) -> Method:
    """Remove the method ``name`` from the registry; returns it."""
    return _REGISTRY.pop(get(name).name)


@functools.cache
def _discover() -> None:
    """Import every public module of this package once (each step module registers its method)."""
    for module in pkgutil.iter_modules(importlib.import_module(__package__).__path__):
        if not module.name.startswith("_"):
            importlib.import_module(f"{__package__}.{module.name}")


def available() -> tuple[str, ...]:
    """The names of the registered methods, sorted.

    Example:
        >>> available()
        ('absld', 'adaad', 'ard', 'bat', 'cfa', 'fair-ard', 'frl', 'rslad', 'sat', 'trades')
    """
    _discover()
    return tuple(sorted(_REGISTRY))


def get(name: str) -> Method:
    """The :class:`Method` registered as ``name`` (``get("fair-ard").title == "Fair-ARD"``)."""
    names = available()
    if not isinstance(name, str):
        raise TypeError(f"Expected `name` to be a str, one of {', '.join(map(repr, names))}, but got {name!r}.")
    if name not in _REGISTRY:
        close = difflib.get_close_matches(name.lower().replace("_", "-"), names, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ValueError(f"Expected `name` to be one of {', '.join(map(repr, names))}, but got {name!r}.{hint}")
    return _REGISTRY[name]


def options(name: str) -> tuple[str, ...]:
    """The keyword options :func:`create` accepts for method ``name`` (its step's), sorted."""
    return tuple(sorted(get(name).step.option_names()))


def create(
    name: str, student: nn.Module, *, num_classes: int, teacher: nn.Module | None = None, **options: Any
) -> TrainingStep:
    """The :class:`~torch_absld.methods.base.TrainingStep` of method ``name`` (one of :func:`available`).

    ``teacher`` is required by a method that distils, ignored by the others. ``options``: the step's
    keyword options (:func:`options`, an unknown one is a ``TypeError``); :func:`recipe` gives the authors'.

    Example:
        >>> student, teacher = nn.Linear(4, 3), nn.Linear(4, 3)
        >>> step = create("rslad", student, num_classes=3, teacher=teacher, steps=2)
        >>> step.loss_fn.adapt
        'none'
    """
    method = get(name)
    check_options(options, method.step.option_names(), f"the method {name!r}")
    for key, value in method.defaults.items():
        if options.setdefault(key, value) != value:
            raise ValueError(f"Expected `{key}` = {value!r} for the method {name!r}, but got {options[key]!r}.")
    step: Callable[..., TrainingStep] = method.step
    if not method.needs_teacher:
        return step(student, num_classes, **options)
    if teacher is None:
        raise ValueError(f"Expected a `teacher` for the method {name!r} (it distils a teacher), but got None.")
    return step(student, teacher, num_classes, **options)
