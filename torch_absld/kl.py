r"""Temperature-scaled soft labels and the KL divergence from a teacher's to a student's distribution.

The building blocks of the distillation losses: each sample's teacher distribution
$p = \mathrm{softmax}(z_t / \tau)$ with its own temperature, and $\mathrm{KL}(p \,\|\, q)$ to the
student's $q = \mathrm{softmax}(z_s / \tau_s)$, in float32 whatever the logits' dtype.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from ._internal.checks import at_least_float32, check_logits

__all__ = ["Reduction", "soft_label_kl", "soft_labels"]

Reduction = Literal["mean", "batchmean", "sum", "none"]
REDUCTIONS = ("mean", "batchmean", "sum", "none")


def soft_labels(teacher: Tensor, temperature: Tensor) -> Tensor:
    r"""Teacher soft labels with one temperature per sample: $\mathrm{softmax}(z_t / \tau)$.

    Computed in float32 whatever the dtype of ``teacher``; no gradient flows to the teacher.

    Shape:
        - teacher: $(N, C)$ logits
        - temperature: $(N,)$ positive, or a scalar
        - Output: $(N, C)$ float32 probabilities
    """
    check_logits(teacher, "teacher")
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
) -> Tensor:
    r"""$\mathrm{KL}(p \,\|\, q)$ between temperature-scaled teacher and student distributions.

    Per element: $p_c(\log p_c - \log q_c)$ with $p = \mathrm{softmax}(z_t / \tau_t)$ (one
    $\tau_t$ per sample, no gradient) and $q = \mathrm{softmax}(z_s / \tau_s)$. Computed in
    float32 with ``log_softmax``, whatever the dtype of the logits.

    Reductions: ``"mean"`` averages the $N \times C$ elements (the authors' ``torch.mean``: the
    batch-mean KL divided by $C$), ``"batchmean"`` is the true batch-mean KL, ``"sum"`` sums
    everything, ``"none"`` returns each sample's KL.

    Shape:
        - student, teacher: $(N, C)$
        - teacher_temperature: $(N,)$ or a scalar
        - Output: scalar, or $(N,)$ with ``"none"``
    """
    log_p = torch.log_softmax(_scaled(teacher.detach(), teacher_temperature), dim=1)
    log_q = torch.log_softmax(_scaled(student, student_temperature), dim=1)
    elementwise = F.kl_div(log_q, log_p, reduction="none", log_target=True)
    return _reduce(elementwise, reduction)


def _reduce(elementwise: Tensor, reduction: Reduction) -> Tensor:
    if reduction == "mean":
        return elementwise.mean()
    if reduction == "batchmean":
        return elementwise.sum() / elementwise.shape[0]
    if reduction == "sum":
        return elementwise.sum()
    return elementwise.sum(dim=1)
