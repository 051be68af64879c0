"""What PGD ascends: KL to soft labels, cross-entropy, the CW margin, or a callable of the model's output."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal, TypeAlias

import torch
import torch.nn.functional as F
from torch import Tensor

from .._internal.checks import (
    at_least_float32,
    check_choice,
    check_device,
    check_integer_labels,
    check_logits,
    check_positive,
    check_probabilities,
    label_range_flag,
    raise_first,
    values_checkable,
)

__all__ = ["Objective", "ObjectiveFn", "ObjectiveName", "attack_objective"]

ObjectiveName: TypeAlias = Literal["kl", "ce", "cw"]
ObjectiveFn: TypeAlias = Callable[[Any, Tensor], Tensor]
"""``objective(output, target) -> scalar``: the summed loss to ascend, from whatever the model returns."""
Objective: TypeAlias = ObjectiveName | Literal["auto"] | ObjectiveFn
_NAMES = ("auto", "kl", "ce", "cw")
_NAMED = ("kl", "ce", "cw")


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

    The arguments are checked (shapes always; label range and probabilities in eager mode).

    Shape:
        - logits: $(N, C)$
        - target: $(N, C)$ probabilities for ``"kl"``, else $(N,)$ integers (any integer dtype) in $[0, C)$
        - Output: scalar
    """
    check_choice(objective, "objective", _NAMED)
    check_logits(logits, "logits")
    student_temperature = check_positive(student_temperature, "student_temperature")
    checking = values_checkable(True)
    target = check_target(target, objective, logits.shape[0], checking, device=logits.device)
    if objective == "kl":
        check_output_width(logits, target, objective, "logits")
    elif checking:
        raise_first([label_range_flag(target, logits.shape[1])])
    return objective_value(logits, target, objective, student_temperature)


def objective_value(logits: Tensor, target: Tensor, objective: ObjectiveName, student_temperature: float) -> Tensor:
    """:func:`attack_objective` without its checks (the attack's hot path; ``target`` labels are int64)."""
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
    if not isinstance(target, Tensor) and not callable(objective):
        raise TypeError(f"Expected `target` to be a torch.Tensor, but got {type(target).__name__}.")
    if objective == "auto":
        return "kl" if target.is_floating_point() else "ce"
    return objective


def check_target(
    target: Tensor,
    objective: ObjectiveName | ObjectiveFn,
    batch_size: int,
    check_values: bool,
    *,
    device: torch.device | None = None,
) -> Tensor:
    """Check ``target`` against a named objective (labels come back as int64); a callable objective owns its target.

    Soft labels are checked here entirely (values when ``check_values``); the range of integer
    labels needs the class count, which the caller checks against the model's output.
    """
    if callable(objective):
        return target
    if objective == "kl":
        check_probabilities(target, "target", check_values=False)
        if target.shape[0] != batch_size:
            raise ValueError(f"Expected `target` of shape (N, C) with N = {batch_size}, but got {tuple(target.shape)}.")
        check_device(target, device, "target", "`input`")
        check_probabilities(target, "target", check_values=check_values)
        return target
    return check_integer_labels(target, None, batch_size=batch_size, check_values=False, device=device, owner="`input`")


def check_output_width(
    output: Any, target: Tensor, objective: ObjectiveName, name: str = "model", *, blame_output: bool = False
) -> None:
    """Raise unless ``output`` is logits $(N, C)$, with the shape of soft labels ``target`` for ``"kl"`` (shape only).

    A class-count mismatch names ``target`` (the user's soft labels), or the model ``name``
    with ``blame_output`` (soft labels a training step made from its teacher).
    """
    if not isinstance(output, Tensor) or output.dim() != 2:
        got = tuple(output.shape) if isinstance(output, Tensor) else type(output).__name__
        verb = "return logits" if name != "logits" else "be logits"
        raise ValueError(
            f"Expected `{name}` to {verb} of shape (N, C) for objective {objective!r}, but got {got}. "
            "For other outputs, pass a callable `objective(output, target)`."
        )
    if objective == "kl" and output.shape != target.shape and blame_output:
        raise ValueError(
            f"Expected `{name}` to return logits of shape (N, C) = {tuple(target.shape)} like the soft labels, "
            f"but got {tuple(output.shape)}: the student and the teacher must have the same number of classes."
        )
    if objective == "kl" and output.shape != target.shape:
        raise ValueError(
            f"Expected `target` of shape (N, C) = {tuple(output.shape)} like the logits of `{name}`, but got "
            f"{tuple(target.shape)}: the soft labels and the model must have the same number of classes."
        )


def summed_objective(
    output: Any,
    target: Tensor,
    objective: ObjectiveName | ObjectiveFn,
    student_temperature: float,
    name: str = "model",
) -> Tensor:
    """The scalar to ascend from the model's ``output`` (shape checks only: free under compile).

    ``name`` is how errors call the model; a name other than ``"model"`` is a training step's
    student, blamed for a class-count mismatch with the soft labels.
    """
    if callable(objective):
        loss = objective(output, target)
        if not isinstance(loss, Tensor) or loss.dim() != 0:
            shape = tuple(loss.shape) if isinstance(loss, Tensor) else type(loss).__name__
            raise ValueError(f"Expected the callable `objective` to return a scalar tensor, but got {shape}.")
        return loss
    check_output_width(output, target, objective, name, blame_output=name != "model")
    return objective_value(output, target, objective, student_temperature)
