"""Training methods by name: :func:`available` and :func:`create`."""

from __future__ import annotations

import difflib
from collections.abc import Callable
from typing import Any

from torch import nn

from .._internal.checks import check_options
from . import absld, adaad, ard, bat, cfa, fair_ard, frl, sat, trades
from .adversarial import accepted_options
from .base import TrainingStep

__all__ = ["available", "create", "options"]

Builder = Callable[..., TrainingStep]

_METHODS: dict[str, Builder] = {
    "absld": absld.build_absld,
    "adaad": adaad.build_adaad,
    "ard": ard.build_ard,
    "bat": bat.build_bat,
    "cfa": cfa.build_cfa,
    "fair-ard": fair_ard.build_fair_ard,
    "frl": frl.build_frl,
    "rslad": absld.build_rslad,
    "sat": sat.build_sat,
    "trades": trades.build_trades,
}


_OPTIONS: dict[str, frozenset[str]] = {
    "absld": accepted_options(absld.ABSLDDistiller) | absld._LOSS_OPTIONS,
    "adaad": accepted_options(adaad.AdaADDistiller),
    "ard": accepted_options(ard.ARDDistiller),
    "bat": accepted_options(bat.BATStep),
    "cfa": accepted_options(cfa.CFAStep) | cfa._LOSS_OPTIONS | cfa._FAWA_OPTIONS,
    "fair-ard": accepted_options(fair_ard.FairARDDistiller) | fair_ard._LOSS_OPTIONS,
    "frl": accepted_options(frl.FRLStep) | frl._LOSS_OPTIONS,
    "rslad": accepted_options(absld.ABSLDDistiller) | absld._LOSS_OPTIONS,
    "sat": accepted_options(sat.SATStep),
    "trades": accepted_options(trades.TRADESStep),
}


def available() -> tuple[str, ...]:
    """The names :func:`create` accepts, sorted.

    Example:
        >>> available()
        ('absld', 'adaad', 'ard', 'bat', 'cfa', 'fair-ard', 'frl', 'rslad', 'sat', 'trades')
    """
    return tuple(sorted(_METHODS))


def options(name: str) -> tuple[str, ...]:
    """The hyperparameters :func:`create` accepts for method ``name``, sorted.

    Example:
        >>> options("trades")[:3]
        ('attack', 'beta', 'clip_max')
    """
    return tuple(sorted(_OPTIONS[_checked_name(name)]))


def _checked_name(name: object) -> str:
    if not isinstance(name, str):
        raise TypeError(f"Expected `name` to be a str, one of {', '.join(map(repr, available()))}, but got {name!r}.")
    if name not in _METHODS:
        close = difflib.get_close_matches(name.lower().replace("_", "-"), available(), n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ValueError(f"Expected `name` to be one of {', '.join(map(repr, available()))}, but got {name!r}.{hint}")
    return name


def create(
    name: str, student: nn.Module, *, num_classes: int, teacher: nn.Module | None = None, **hyperparameters: Any
) -> TrainingStep:
    """The training-step module of method ``name`` for ``student``.

    Every step module has ``forward(input, target)`` returning an output with ``.loss``,
    ``on_epoch_end()``, and ``state_dict()`` / ``load_state_dict()`` (see
    :class:`~torch_absld.methods.base.TrainingStep`).

    Args:
        name: one of :func:`available`.
        student: the network being trained.
        num_classes: number of classes $C$.
        teacher: the frozen teacher of a distillation method (``"absld"``, ``"rslad"``, ``"ard"``,
            ``"adaad"``, ``"fair-ard"``: a ``ValueError`` when it is missing). ``"sat"``,
            ``"trades"``, ``"frl"``, ``"cfa"`` and ``"bat"`` have no teacher and ignore a given
            one, so that one call can build every method for a comparison.
        **hyperparameters: the method's options. Every method takes the attack's ``eps``,
            ``step_size``, ``steps`` and ``generator`` (its random start), with its authors'
            defaults. For ``"absld"`` and ``"rslad"`` the options of
            :class:`~torch_absld.ABSLDLoss` and :class:`~torch_absld.ABSLDDistiller` together
            (e.g. ``lr=0.1, coupling="product", eps=8 / 255, steps=10``); for the others the
            keyword arguments of their step module (:class:`~torch_absld.methods.SATStep`,
            :class:`~torch_absld.methods.TRADESStep`, :class:`~torch_absld.methods.ARDDistiller`,
            :class:`~torch_absld.methods.AdaADDistiller`, :class:`~torch_absld.methods.FairARDDistiller`,
            :class:`~torch_absld.methods.FRLStep`, :class:`~torch_absld.methods.CFAStep`,
            :class:`~torch_absld.methods.BATStep`). ``"frl"`` and ``"cfa"`` also take
            ``validation=``: the batches of a validation split, read at the end of each epoch.
            :func:`options` lists a method's names; an unknown one is a ``TypeError`` naming them.

    Example:
        >>> student, teacher = nn.Linear(4, 3), nn.Linear(4, 3)
        >>> step = create("rslad", student, num_classes=3, teacher=teacher, steps=2)
        >>> step.loss_fn.adapt
        'none'
    """
    name = _checked_name(name)
    check_options(hyperparameters, _OPTIONS[name], f"the method {name!r}")
    return _METHODS[name](student, num_classes=num_classes, teacher=teacher, **hyperparameters)
