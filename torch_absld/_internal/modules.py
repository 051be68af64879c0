"""Module helpers: the module inside a data-parallel wrapper, and modes restored on exit."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from torch import nn

__all__ = ["eval_mode", "frozen_model", "unwrap_model"]


def unwrap_model(model: nn.Module) -> nn.Module:
    """The module to attack: the one inside ``DistributedDataParallel`` / ``DataParallel``.

    Attacking the wrapper itself would run DDP's reducer hooks on a forward whose backward
    never reaches the parameters, leaving the next training step waiting.
    """
    inner = getattr(model, "module", None)
    wrappers = (nn.parallel.DistributedDataParallel, nn.DataParallel)
    if isinstance(model, wrappers) and isinstance(inner, nn.Module):
        return inner
    return model


@contextlib.contextmanager
def eval_mode(model: nn.Module) -> Iterator[None]:
    """Put every submodule in eval mode, then give each one its own previous mode back.

    The modes are restored also when the body raises.
    """
    modes = [(module, module.training) for module in model.modules()]
    model.eval()
    try:
        yield
    finally:
        for module, training in modes:
            module.training = training


@contextlib.contextmanager
def frozen_model(model: nn.Module) -> Iterator[None]:
    """Eval mode and ``requires_grad=False`` on every parameter; both restored on exit.

    Attacks that call ``.backward()`` (AutoAttack's FAB) then leave the parameters' ``.grad``
    untouched, and no parameter gradient is computed for nothing.
    """
    flags = [(param, param.requires_grad) for param in model.parameters()]
    with eval_mode(model):
        for param, _ in flags:
            param.requires_grad_(False)
        try:
            yield
        finally:
            for param, requires_grad in flags:
                param.requires_grad_(requires_grad)
