"""A training step's loss module from its ``loss`` argument, and that argument from a builder's flat options."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from torch import nn

__all__ = ["loss_module", "pop_loss_argument"]


L = TypeVar("L", bound=nn.Module)


def loss_module(loss: L | Mapping[str, Any] | None, kind: type[L], num_classes: int, validate_args: bool) -> L:
    """``loss`` itself (a ``kind`` for ``num_classes``), or a ``kind`` made from a mapping of its arguments."""
    make: Callable[..., L] = kind
    name = kind.__name__
    article = "an" if name[0] in "AEIOU" else "a"
    if isinstance(loss, kind):
        classes = getattr(loss, "num_classes", num_classes)
        if classes != num_classes:
            raise ValueError(
                f"Expected `loss` for num_classes = {num_classes}, but got {article} {name} with "
                f"num_classes = {classes}."
            )
        return loss
    if loss is None or isinstance(loss, Mapping):
        return make(num_classes, **{"validate_args": validate_args, **(loss or {})})
    raise TypeError(
        f"Expected `loss` to be {article} {name}, a mapping of its arguments or None, but got {type(loss).__name__}."
    )


def pop_loss_argument(hyperparameters: dict[str, Any], options: frozenset[str]) -> Any:
    """Take the loss's options (the keys in ``options``) out of a builder's flat ``hyperparameters``.

    Returns the step's ``loss`` argument: the given ``loss``, or a mapping of the loss options
    (``None`` when there are none). Giving both is a ``ValueError``.
    """
    loss_options = {key: hyperparameters.pop(key) for key in list(hyperparameters) if key in options}
    if loss_options and "loss" in hyperparameters:
        raise ValueError(f"Expected either `loss` or loss options {sorted(loss_options)}, but got both.")
    return hyperparameters.pop("loss", loss_options or None)
