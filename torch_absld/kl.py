r"""Temperature-scaled soft labels and the KL divergence from a teacher's to a student's distribution.

The building blocks of the distillation losses: each sample's teacher distribution
$p = \mathrm{softmax}(z_t / \tau)$ with its own temperature, and $\mathrm{KL}(p \,\|\, q)$ to the
student's $q = \mathrm{softmax}(z_s / \tau_s)$, in float32 whatever the logits' dtype.

A teacher logit of $-\infty$ masks its class: $p_c = 0$ there and the class adds nothing to the
KL ($0 \log 0 = 0$). NaN, $+\infty$ or a row of $-\infty$ only is rejected.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from ._internal.checks import (
    at_least_float32,
    check_choice,
    check_device,
    check_logits,
    check_positive,
    check_temperature_argument,
    logit_flag,
    raise_first,
    values_checkable,
)

__all__ = ["Reduction", "soft_label_kl", "soft_labels"]

Reduction = Literal["mean", "batchmean", "sum", "none"]
REDUCTIONS = ("mean", "batchmean", "sum", "none")


def soft_labels(teacher: Tensor, temperature: Tensor | float, *, validate_args: bool = True) -> Tensor:
    r"""Teacher soft labels with one temperature per sample: $\mathrm{softmax}(z_t / \tau)$.

    Computed in float32 whatever the dtype of ``teacher``; no gradient flows to the teacher.
    With ``validate_args`` in eager mode the values are checked in one read from the device:
    temperatures finite and positive, teacher logits finite ($-\infty$ masks a class).

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
    """:func:`soft_labels` without its checks (for callers that checked the arguments)."""
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

    Per element: $p_c(\log p_c - \log q_c)$ with $p = \mathrm{softmax}(z_t / \tau_t)$ (one
    $\tau_t$ per sample, no gradient) and $q = \mathrm{softmax}(z_s / \tau_s)$; $0$ where
    $p_c = 0$ (a teacher logit of $-\infty$ masks its class). Computed in float32 with
    ``log_softmax``, whatever the dtype of the logits.

    Reductions: ``"mean"`` averages the $N \times C$ elements (the authors' ``torch.mean``: the
    batch-mean KL divided by $C$), ``"batchmean"`` is the true batch-mean KL, ``"sum"`` sums
    everything, ``"none"`` returns each sample's KL. An empty batch gives 0 (still part of the
    autograd graph), not NaN.

    Shape:
        - student, teacher: $(N, C)$, the same shape (no broadcasting)
        - teacher_temperature: $(N,)$ or a scalar
        - Output: scalar, or $(N,)$ with ``"none"``
    """
    check_logits(student, "student")
    check_logits(teacher, "teacher")
    if student.shape != teacher.shape:
        raise ValueError(
            f"Expected `student` and `teacher` of one shape (N, C), but got {tuple(student.shape)} and "
            f"{tuple(teacher.shape)}."
        )
    check_device(teacher, student.device, "teacher", "`student`")
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
    """:func:`soft_label_kl` without its checks (for callers that checked the arguments)."""
    log_p = torch.log_softmax(_scaled(teacher.detach(), teacher_temperature), dim=1)
    log_q = torch.log_softmax(_scaled(student, student_temperature), dim=1)
    elementwise = F.kl_div(log_q, log_p, reduction="none", log_target=True)
    # exp(-inf) * (-inf - log q) is NaN; the KL term of a class with p = 0 is 0 (0 log 0 = 0).
    elementwise = torch.where(log_p == float("-inf"), torch.zeros_like(elementwise), elementwise)
    return _reduce(elementwise, reduction)


def _reduce(elementwise: Tensor, reduction: Reduction) -> Tensor:
    if reduction == "none":
        return elementwise.sum(dim=1)
    if reduction == "sum" or elementwise.numel() == 0:  # an empty batch: 0, in the graph
        return elementwise.sum()
    if reduction == "mean":
        return elementwise.mean()
    return elementwise.sum() / elementwise.shape[0]
