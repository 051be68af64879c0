r"""Teacher soft labels $\mathrm{softmax}(z_t / \tau)$, a temperature per sample, and the masked KL to a student."""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from ._internal.checks import (
    at_least_float32,
    check_choice,
    check_logits,
    check_logits_alike,
    check_positive,
    check_temperature_argument,
    logit_flag,
    raise_first,
    values_checkable,
)

__all__ = ["Reduction", "soft_label_kl", "soft_labels"]

Reduction = Literal["mean", "sum", "none"]
REDUCTIONS = ("mean", "sum", "none")


def soft_labels(teacher: Tensor, temperature: Tensor | float, *, validate_args: bool = True) -> Tensor:
    r"""Teacher soft labels with one temperature per sample: $\mathrm{softmax}(z_t / \tau)$, float32, no gradient.

    Shape:
        - teacher: $(N, C)$ logits
        - temperature: $(N,)$ positive, or a scalar
        - Output: $(N, C)$ float32 probabilities
    """
    check_logits(teacher, "teacher")
    checks = check_temperature_argument(temperature, "temperature", teacher)
    if values_checkable(validate_args):
        raise_first([logit_flag(teacher, "teacher"), *checks])
    return _soft_labels(teacher, temperature)


def _soft_labels(teacher: Tensor, temperature: Tensor | float) -> Tensor:
    """:func:`soft_labels` without its checks."""
    return torch.softmax(_scaled(teacher.detach(), temperature), dim=1)


def _scaled(logits: Tensor, temperature: Tensor | float) -> Tensor:
    logits = at_least_float32(logits)
    if isinstance(temperature, Tensor) and temperature.dim() == 1:
        return logits / temperature.to(logits.dtype).unsqueeze(1)
    return logits / temperature


def soft_label_kl(
    student: Tensor,
    teacher: Tensor,
    teacher_temperature: Tensor | float,
    *,
    student_temperature: float = 1.0,
    reduction: Reduction = "mean",
    validate_args: bool = True,
) -> Tensor:
    r"""$\mathrm{KL}(p \,\|\, q)$ between temperature-scaled teacher and student distributions.

    Per element $p_c(\log p_c - \log q_c)$ ($0$ where $p_c = 0$: a teacher logit of $-\infty$ masks
    its class), $p = \mathrm{softmax}(z_t / \tau_t)$ (no gradient), $q = \mathrm{softmax}(z_s / \tau_s)$,
    in float32. Each sample's loss is its KL divided by $C$ (the authors' scale: their mean over
    the $N \times C$ elements); ``"none"`` returns it, ``"mean"`` its mean, ``"sum"`` its sum. An
    empty batch gives 0 (in the graph).

    Shape:
        - student, teacher: $(N, C)$, the same shape (no broadcasting)
        - teacher_temperature: $(N,)$ or a scalar
        - Output: scalar, or $(N,)$ with ``"none"``
    """
    check_logits_alike((("student", student), ("teacher", teacher)))
    checks = check_temperature_argument(teacher_temperature, "teacher_temperature", teacher)
    student_temperature = check_positive(student_temperature, "student_temperature")
    check_choice(reduction, "reduction", REDUCTIONS)
    if values_checkable(validate_args):
        raise_first([logit_flag(teacher, "teacher"), *checks])
    return _soft_label_kl(
        student, teacher, teacher_temperature, student_temperature=student_temperature, reduction=reduction
    )


def _soft_label_kl(
    student: Tensor,
    teacher: Tensor,
    teacher_temperature: Tensor | float,
    *,
    student_temperature: float = 1.0,
    reduction: Reduction = "mean",
) -> Tensor:
    """:func:`soft_label_kl` without its checks."""
    log_p = torch.log_softmax(_scaled(teacher.detach(), teacher_temperature), dim=1)
    log_q = torch.log_softmax(_scaled(student, student_temperature), dim=1)
    elementwise = F.kl_div(log_q, log_p, reduction="none", log_target=True)
    # exp(-inf) * (-inf - log q) is NaN; the KL term of a class with p = 0 is 0 (0 log 0 = 0).
    elementwise = torch.where(log_p == float("-inf"), torch.zeros_like(elementwise), elementwise)
    return _reduce(elementwise, reduction)


def _reduce(elementwise: Tensor, reduction: Reduction) -> Tensor:
    if reduction == "mean" and elementwise.numel():
        return elementwise.mean()  # the mean of the per-sample losses, summed in the authors' order
    per_sample = elementwise.mean(dim=1) if elementwise.shape[1] else elementwise.sum(dim=1)
    return per_sample if reduction == "none" else per_sample.sum()
