"""Glue for existing training loops: beta that follows the optimizer's learning rate."""

from __future__ import annotations

import numbers
from collections.abc import Iterable
from dataclasses import dataclass

import torch
from torch import nn

from ..temperature import ClassTemperatureController

__all__ = ["LRFollowHandle", "follow_optimizer_lr"]


Target = nn.Module | Iterable[ClassTemperatureController]


def _controllers(target: Target) -> list[ClassTemperatureController]:
    expected = "an nn.Module holding ClassTemperatureControllers or an iterable of them"
    if isinstance(target, nn.Module):
        controllers = [module for module in target.modules() if isinstance(module, ClassTemperatureController)]
    elif isinstance(target, (str, bytes)) or not isinstance(target, Iterable):
        raise TypeError(f"Expected `target` to be {expected}, but got {type(target).__name__}.")
    else:
        controllers = list(target)
        for item in controllers:
            if not isinstance(item, ClassTemperatureController):
                raise TypeError(f"Expected `target` to be {expected}, but got an item of type {type(item).__name__}.")
    if not controllers:
        got = f"the {type(target).__name__} holds none" if isinstance(target, nn.Module) else "got an empty iterable"
        raise ValueError(f"Expected `target` to hold at least one ClassTemperatureController, but {got}.")
    return controllers


@dataclass
class LRFollowHandle:
    """Returned by :func:`follow_optimizer_lr`; :meth:`remove` restores a fixed beta."""

    controllers: list[ClassTemperatureController]

    def remove(self) -> None:
        """Stop following the optimizer; beta stays at its last value."""
        for controller in self.controllers:
            controller.follow_lr(None)


def follow_optimizer_lr(target: Target, optimizer: torch.optim.Optimizer, *, param_group: int = 0) -> LRFollowHandle:
    r"""Make the temperature learning rate $\beta$ follow the optimizer's learning rate.

    At every controller ``step()``, $\beta = \beta_0 \cdot \mathrm{lr} / \mathrm{lr}_0$: $\beta_0$
    the controller's ``base_lr``, ``lr`` the current learning rate of ``optimizer.param_groups[param_group]``
    and $\mathrm{lr}_0$ its ``"initial_lr"`` (set by schedulers), else its learning rate now, for
    every :class:`~torch_absld.ClassTemperatureController` in ``target`` (a module or an iterable).
    Call ``scheduler.step()`` before ``loss_fn.step()`` (the authors' order); again after a resume.

    Example:
        >>> from torch_absld import ABSLDLoss
        >>> opt = torch.optim.SGD(torch.nn.Linear(2, 2).parameters(), lr=0.1)
        >>> sched = torch.optim.lr_scheduler.MultiStepLR(opt, milestones=[1], gamma=0.1)
        >>> loss_fn = ABSLDLoss(2)
        >>> _ = follow_optimizer_lr(loss_fn, opt)
        >>> opt.step(); sched.step()
        >>> _ = loss_fn.step()
        >>> round(loss_fn.adv.lr, 6)
        0.01
    """
    if not isinstance(optimizer, torch.optim.Optimizer):
        raise TypeError(f"Expected `optimizer` to be a torch.optim.Optimizer, but got {type(optimizer).__name__}.")
    if isinstance(param_group, bool) or not isinstance(param_group, numbers.Integral):
        raise TypeError(f"Expected `param_group` to be an int index, but got {param_group!r}.")
    if not 0 <= (param_group := int(param_group)) < len(optimizer.param_groups):
        raise ValueError(f"Expected `param_group` in [0, {len(optimizer.param_groups)}), but got {param_group}.")
    controllers = _controllers(target)
    lr_at_attach = float(optimizer.param_groups[param_group]["lr"])

    def lr_ratio() -> float:
        # Looked up at each call: `optimizer.load_state_dict` replaces the group dicts (resume).
        group = optimizer.param_groups[param_group]
        initial = float(group.get("initial_lr", lr_at_attach))
        if initial <= 0:
            raise ValueError(f"Expected the optimizer's initial learning rate > 0, but got {initial}.")
        return float(group["lr"]) / initial

    for controller in controllers:
        controller.follow_lr(lambda c=controller: c.base_lr * lr_ratio())
    return LRFollowHandle(controllers)
