"""What PGD ascends: KL to soft labels, cross-entropy, the CW margin, or a callable of the model's output."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal, TypeAlias

import torch
import torch.nn.functional as F
from torch import Tensor

from .._internal import checks

__all__ = ["Objective", "ObjectiveFn", "ObjectiveName", "attack_objective"]

ObjectiveName: TypeAlias = Literal["kl", "ce", "cw"]
ObjectiveFn: TypeAlias = Callable[[Any, Tensor], Tensor]
"""``objective(output, target) -> scalar``: the summed loss to ascend, from whatever the model returns."""
Objective: TypeAlias = ObjectiveName | Literal["auto"] | ObjectiveFn


def attack_objective(
    logits: Tensor,
    target: Tensor,
    objective: ObjectiveName,
    *,
    student_temperature: float = 1.0,
    validate_args: bool = True,
) -> Tensor:
    r"""The summed loss that PGD ascends, in float32.

    - ``"kl"``: $\sum_b \mathrm{KL}(p_b \,\|\, \mathrm{softmax}(z_b / \tau_s))$, ``target`` the soft labels $p$;
    - ``"ce"``: $\sum_b \mathrm{CE}(z_b, y_b)$;
    - ``"cw"``: $\sum_b \big(\max_{c \ne y_b} z_{b,c} - z_{b,y_b}\big)$, the CW margin.

    ``validate_args`` checks the values of ``target`` (one read from the device).

    Shape:
        - logits: $(N, C)$; target: $(N, C)$ probabilities (``"kl"``) or $(N,)$ in $[0, C)$; Output: scalar
    """
    checks.check_choice(objective, "objective", ("kl", "ce", "cw"))
    checks.check_logits(logits, "logits")
    student_temperature = checks.check_positive(student_temperature, "student_temperature")
    target = check_target(target, objective, logits.shape[0], device=logits.device)
    check_output_width(logits, target, objective, "logits")
    if checks.values_checkable(validate_args):
        checks.raise_first([target_flag(target, objective, logits.shape[1])])
    return _attack_objective(logits, target, objective, student_temperature=student_temperature)


def _attack_objective(
    logits: Tensor, target: Tensor, objective: ObjectiveName, *, student_temperature: float = 1.0
) -> Tensor:
    """:func:`attack_objective` without checks (``target`` labels as int64)."""
    logits = checks.at_least_float32(logits)
    if objective == "kl":
        scaled = logits if student_temperature == 1.0 else logits / student_temperature  # x / 1 is x, bit for bit
        log_q = torch.log_softmax(scaled, dim=1)
        return F.kl_div(log_q, target.to(log_q.dtype), reduction="sum")
    if objective == "ce":
        return F.cross_entropy(logits, target, reduction="sum")
    true_logit = logits.gather(1, target.unsqueeze(1)).squeeze(1)
    others = logits.scatter(1, target.unsqueeze(1), float("-inf"))
    return (others.amax(dim=1) - true_logit).sum()


def target_flag(target: Tensor, objective: ObjectiveName, num_classes: int) -> checks.ValueCheck:
    """The value flag of a named objective's ``target``: probabilities for ``"kl"``, else labels in $[0, C)$."""
    return (
        checks.probability_flag(target, "target") if objective == "kl" else checks.label_range_flag(target, num_classes)
    )


def resolve_objective(objective: Objective, target: Tensor) -> ObjectiveName | ObjectiveFn:
    """``objective`` with ``"auto"`` resolved: ``"kl"`` for floating point ``target``, else ``"ce"``."""
    if not callable(objective):
        checks.check_choice(objective, "objective", ("auto", "kl", "ce", "cw"))
    if not isinstance(target, Tensor) and not callable(objective):
        raise TypeError(f"Expected `target` to be a torch.Tensor, but got {type(target).__name__}.")
    if objective == "auto":
        return "kl" if target.is_floating_point() else "ce"
    return objective


def check_target(
    target: Tensor, objective: ObjectiveName | ObjectiveFn, batch_size: int, *, device: torch.device | None = None
) -> Tensor:
    """``target`` checked against a named objective (shapes only; labels as int64); a callable owns its target."""
    if callable(objective):
        return target
    if objective != "kl":
        return checks.check_integer_labels(
            target, None, batch_size=batch_size, check_values=False, device=device, owner="`input`"
        )
    checks.check_logits(target, "target")
    if target.shape[0] != batch_size:
        raise ValueError(f"Expected `target` of shape (N, C) with N = {batch_size}, but got {tuple(target.shape)}.")
    checks.check_device(target, device, "target", "`input`")
    return target


def check_output_width(output: Any, target: Tensor, objective: ObjectiveName, name: str = "model") -> None:
    """Raise unless ``output`` is logits $(N, C)$, shaped like the soft labels ``target`` for ``"kl"``."""
    if not isinstance(output, Tensor) or output.dim() != 2:
        got = tuple(output.shape) if isinstance(output, Tensor) else type(output).__name__
        verb = "return logits" if name != "logits" else "be logits"
        raise ValueError(
            f"Expected `{name}` to {verb} of shape (N, C) for objective {objective!r}, but got {got}. "
            "For other outputs, pass a callable `objective(output, target)`."
        )
    if objective != "kl" or output.shape == target.shape:
        return
    if name not in ("model", "logits", "output"):
        raise ValueError(
            f"Expected `{name}` to return logits of shape (N, C) = {tuple(target.shape)} like the soft labels, "
            f"but got {tuple(output.shape)}: the student and the teacher must have the same number of classes."
        )
    raise ValueError(
        f"Expected `target` of shape (N, C) = {tuple(output.shape)} like the logits of `{name}`, but got "
        f"{tuple(target.shape)}: the soft labels and the model must have the same number of classes."
    )


def summed_objective(
    output: Any, target: Tensor, objective: ObjectiveName | ObjectiveFn, student_temperature: float, name: str
) -> Tensor:
    """The scalar to ascend from the model's ``output`` (shape checks only); ``name``: the model in errors."""
    if callable(objective):
        loss = objective(output, target)
        if not isinstance(loss, Tensor) or loss.dim() != 0:
            shape = tuple(loss.shape) if isinstance(loss, Tensor) else type(loss).__name__
            raise ValueError(f"Expected the callable `objective` to return a scalar tensor, but got {shape}.")
        return loss
    check_output_width(output, target, objective, name)
    return _attack_objective(output, target, objective, student_temperature=student_temperature)
