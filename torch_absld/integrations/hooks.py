"""Glue for existing training loops: beta that follows the optimizer's learning rate."""

from __future__ import annotations

import numbers
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import torch
from torch import nn

from ..temperature import ClassTemperatureController

__all__ = ["LRFollowHandle", "follow_optimizer_lr"]


Target = nn.Module | Iterable[ClassTemperatureController]


def _controllers(target: Target) -> list[ClassTemperatureController]:
    if isinstance(target, nn.Module):
        controllers = [module for module in target.modules() if isinstance(module, ClassTemperatureController)]
        if not controllers:
            raise ValueError(
                f"Expected `target` to hold at least one ClassTemperatureController, but the "
                f"{type(target).__name__} holds none."
            )
        return controllers
    if isinstance(target, (str, bytes)) or not isinstance(target, Iterable):
        raise TypeError(
            "Expected `target` to be an nn.Module holding ClassTemperatureControllers or an iterable of "
            f"controllers, but got {type(target).__name__}."
        )
    controllers = list(target)
    if not controllers:
        raise ValueError(
            "Expected `target` to hold at least one ClassTemperatureController, but got an empty iterable."
        )
    for item in controllers:
        if not isinstance(item, ClassTemperatureController):
            raise TypeError(
                "Expected `target` to be an nn.Module holding ClassTemperatureControllers or an iterable "
                f"of them, but got an item of type {type(item).__name__}."
            )
    return controllers


def _scaled_base(controller: ClassTemperatureController, ratio: Callable[[], float]) -> Callable[[], float]:
    return lambda: controller.base_lr * ratio()


@dataclass
class LRFollowHandle:
    """Returned by :func:`follow_optimizer_lr`; :meth:`remove` restores a fixed beta."""

    controllers: list[ClassTemperatureController]

    def remove(self) -> None:
        """Stop following the optimizer; beta stays at its last value."""
        for controller in self.controllers:
            controller.follow_lr(None)


def follow_optimizer_lr(
    target: Target,
    optimizer: torch.optim.Optimizer,
    *,
    param_group: int = 0,
) -> LRFollowHandle:
    r"""Make the temperature learning rate $\beta$ follow the optimizer's learning rate.

    At every controller ``step()``, $\beta = \beta_0 \cdot \mathrm{lr} / \mathrm{lr}_0$, with
    $\beta_0$ the controller's ``base_lr`` (its constructor ``lr``), ``lr`` the current learning
    rate of ``optimizer.param_groups[param_group]`` and $\mathrm{lr}_0$ its ``"initial_lr"``
    (set by every PyTorch and timm scheduler and saved in the optimizer's state dict), or the
    learning rate at the time of this call when no scheduler set it. With a ``MultiStepLR``
    of ``gamma=0.1`` this is the authors' "beta times 0.1 at each milestone".

    At the end of an epoch call ``scheduler.step()`` **first**, then ``loss_fn.step()``: the
    authors' order, in which the learning rate and beta drop together at a milestone and that
    epoch's temperature update already uses the reduced beta. After a resume, call this
    again: beta's base and current value live in the controllers' ``state_dict``, the
    learning rate in the optimizer's.

    Args:
        target: any module: every :class:`~torch_absld.ClassTemperatureController` inside it
            follows (an :class:`~torch_absld.ABSLDLoss`: both of its controllers; an
            :class:`~torch_absld.ABSLDDistiller`: those of its loss; a controller: itself), or
            an iterable of controllers.
        optimizer: the optimizer whose learning rate to follow.
        param_group: index of the parameter group to read.

    Returns:
        A handle whose ``remove()`` stops following.

    Example:
        >>> model = torch.nn.Linear(2, 2)
        >>> opt = torch.optim.SGD(model.parameters(), lr=0.1)
        >>> sched = torch.optim.lr_scheduler.MultiStepLR(opt, milestones=[1], gamma=0.1)
        >>> from torch_absld import ABSLDLoss
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
    param_group = int(param_group)
    if not 0 <= param_group < len(optimizer.param_groups):
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
        controller.follow_lr(_scaled_base(controller, lr_ratio))
    return LRFollowHandle(controllers)
