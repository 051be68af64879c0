"""What PGD ascends: KL to soft labels, cross-entropy, the CW margin, or a callable of the model's output."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal, TypeAlias

import torch
import torch.nn.functional as F
from torch import Tensor

from .._internal.checks import at_least_float32, check_choice, check_integer_labels, check_probabilities

__all__ = ["Objective", "ObjectiveFn", "ObjectiveName", "attack_objective"]

ObjectiveName: TypeAlias = Literal["kl", "ce", "cw"]
ObjectiveFn: TypeAlias = Callable[[Any, Tensor], Tensor]
"""``objective(output, target) -> scalar``: the summed loss to ascend, from whatever the model returns."""
Objective: TypeAlias = ObjectiveName | Literal["auto"] | ObjectiveFn
_NAMES = ("auto", "kl", "ce", "cw")


def attack_objective(
    logits: Tensor,
    target: Tensor,
    objective: ObjectiveName,
    *,
    student_temperature: float = 1.0,
) -> Tensor:
    r"""The summed loss that PGD ascends, computed in float32.

    - ``"kl"``: $\sum_b \mathrm{KL}(p_b \,\|\, \mathrm{softmax}(z_b / \tau_s))$, ``target`` the
      soft labels $p$ $(N, C)$;
    - ``"ce"``: $\sum_b \mathrm{CE}(z_b, y_b)$, ``target`` integer labels $(N,)$;
    - ``"cw"``: $\sum_b \big(\max_{c \ne y_b} z_{b,c} - z_{b,y_b}\big)$, the CW margin.

    Shape:
        - logits: $(N, C)$
        - target: $(N, C)$ probabilities for ``"kl"``, else $(N,)$ integers
        - Output: scalar
    """
    logits = at_least_float32(logits)
    if objective == "kl":
        log_q = torch.log_softmax(logits / student_temperature, dim=1)
        return F.kl_div(log_q, target.to(log_q.dtype), reduction="sum")
    if objective == "ce":
        return F.cross_entropy(logits, target, reduction="sum")
    true_logit = logits.gather(1, target.unsqueeze(1)).squeeze(1)
    others = logits.scatter(1, target.unsqueeze(1), float("-inf"))
    return (others.amax(dim=1) - true_logit).sum()


def check_objective(objective: object) -> None:
    """Raise unless ``objective`` is a callable or one of ``"auto"``, ``"kl"``, ``"ce"``, ``"cw"``."""
    if not callable(objective):
        check_choice(objective, "objective", _NAMES)


def resolve_objective(objective: Objective, target: Tensor) -> ObjectiveName | ObjectiveFn:
    """``objective`` with ``"auto"`` resolved: ``"kl"`` for floating point ``target``, else ``"ce"``."""
    check_objective(objective)
    if not isinstance(target, Tensor):
        raise TypeError(f"Expected `target` to be a torch.Tensor, but got {type(target).__name__}.")
    if objective == "auto":
        return "kl" if target.is_floating_point() else "ce"
    return objective


def check_target(target: Tensor, objective: ObjectiveName | ObjectiveFn, batch_size: int, check_values: bool) -> None:
    """Check ``target`` against a named objective; a callable objective owns its target."""
    if callable(objective):
        return
    if objective == "kl":
        check_probabilities(target, "target", check_values=check_values)
        if target.shape[0] != batch_size:
            raise ValueError(f"Expected `target` of shape (N, C) with N = {batch_size}, but got {tuple(target.shape)}.")
        return
    # The class count is the model's output width, which cross_entropy / gather check.
    check_integer_labels(target, None, batch_size=batch_size, check_values=check_values)


def summed_objective(
    output: Any, target: Tensor, objective: ObjectiveName | ObjectiveFn, student_temperature: float
) -> Tensor:
    """The scalar to ascend from the model's ``output`` (shape checks only: free under compile)."""
    if callable(objective):
        loss = objective(output, target)
        if not isinstance(loss, Tensor) or loss.dim() != 0:
            shape = tuple(loss.shape) if isinstance(loss, Tensor) else type(loss).__name__
            raise ValueError(f"Expected the callable `objective` to return a scalar tensor, but got {shape}.")
        return loss
    if not isinstance(output, Tensor) or output.dim() != 2:
        got = tuple(output.shape) if isinstance(output, Tensor) else type(output).__name__
        raise ValueError(
            f"Expected `model` to return logits of shape (N, C) for objective {objective!r}, but got {got}. "
            "For other outputs, pass a callable `objective(output, target)`."
        )
    return attack_objective(output, target, objective, student_temperature=student_temperature)
