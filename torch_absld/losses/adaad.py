r"""AdaAD (Huang et al. 2023): KL from the teacher to the student, both on the adversarial input."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from .._internal.checks import at_least_float32, check_choice, check_unit_interval
from ..kl import REDUCTIONS, Reduction, kl_terms
from ._common import WeightedTerms, check_logit_batch, check_logit_values, masked_kl_elements

__all__ = ["AdaADLoss", "adaad_attack_objective", "adaad_loss"]

DEFAULT_ALPHA = 1.0
"""AdaAD's weight of the adversarial term (``--AdaAD_alpha 1.0``, ``main.py`` of the official code)."""


def adaad_attack_objective(output: tuple[Tensor, Tensor], target: Any = None) -> Tensor:
    r"""AdaAD's inner maximisation: $\sum_i \mathrm{KL}(\mathrm{softmax} f_t(x'_i) \,\|\, \mathrm{softmax} f_s(x'_i))$.

    A callable objective for :func:`~torch_absld.pgd` on a module that returns
    ``(student_logits, teacher_logits)`` of the same input: the teacher runs **inside** the
    loop, and the gradient flows through **both** networks (the teacher is not detached), as in
    ``adaad_inner_loss`` of the official ``AT_helper.py`` (``KLDivLoss(reduction='none')``
    summed over the $N \times C$ elements). ``target`` is not used. Computed in float32; a
    teacher logit of $-\infty$ masks its class ($0 \log 0 = 0$). Shapes are checked (free under
    compile): the module must return a pair of logits of one shape.

    Shape:
        - output: two $(N, C)$ logits, the student's first
        - Output: scalar
    """
    student, teacher = _student_and_teacher(output)
    log_q = torch.log_softmax(at_least_float32(student), dim=1)
    log_p = torch.log_softmax(at_least_float32(teacher), dim=1)
    return masked_kl_elements(log_p, log_q).sum()


def _student_and_teacher(output: object) -> tuple[Tensor, Tensor]:
    if not isinstance(output, (tuple, list)) or len(output) != 2:
        got = f"a tuple of {len(output)}" if isinstance(output, (tuple, list)) else type(output).__name__
        raise TypeError(
            f"Expected the attacked module to return (student_logits, teacher_logits), but got {got}. Attack "
            "`StudentAndTeacher(student, teacher)` (torch_absld.methods.adaad)."
        )
    for name, value in zip(("student", "teacher"), output):
        if not isinstance(value, Tensor):
            raise ValueError(f"Expected `{name}` to return logits of shape (N, C), but got {type(value).__name__}.")
    student, teacher = output
    if student.dim() != 2 or student.shape != teacher.shape:
        raise ValueError(
            f"Expected the student's and the teacher's logits of one shape (N, C), but got {tuple(student.shape)} and "
            f"{tuple(teacher.shape)}. The student and the teacher must have the same number of classes."
        )
    return student, teacher


def adaad_loss(
    student_adv: Tensor,
    student_clean: Tensor,
    teacher_adv: Tensor,
    teacher_clean: Tensor,
    *,
    alpha: float = DEFAULT_ALPHA,
    reduction: Reduction = "mean",
) -> Tensor:
    r"""The AdaAD loss: $\alpha\,\mathrm{KL}(p(x') \,\|\, q(x')) + (1 - \alpha)\,\mathrm{KL}(p(x) \,\|\, q(x))$.

    $p = \mathrm{softmax} f_t$ is the teacher's output on the **same** input as the student's
    $q = \mathrm{softmax} f_s$: on the adversarial batch in the first term, on the clean batch in
    the second; the teacher gets no gradient; temperature 1. Reductions as
    :func:`~torch_absld.soft_label_kl`: ``"mean"`` over the $N \times C$ elements (default: the
    official CIFAR-10 branch, ``nn.KLDivLoss()``), ``"batchmean"`` (the official CIFAR-100 branch,
    the summed KL divided by $N$: $C$ times ``"mean"``), ``"sum"``, ``"none"`` (each sample's
    KL, summed over classes). Computed in float32.

    Shape:
        - student_adv, student_clean, teacher_adv, teacher_clean: $(N, C)$
        - Output: scalar, or $(N,)$ with ``"none"``

    Example:
        >>> s, t = torch.tensor([[0.0, 0.0]]), torch.tensor([[2.0, 0.0]])
        >>> adaad_loss(s, s, t, t, alpha=1.0, reduction="batchmean")  # KL(softmax t || uniform)
        tensor(0.3278)
    """
    alpha = check_unit_interval(alpha, "alpha")
    check_choice(reduction, "reduction", REDUCTIONS)
    adv, clean = _checked_terms(student_adv, student_clean, teacher_adv, teacher_clean, reduction, True)
    return alpha * adv + (1 - alpha) * clean


def _checked_terms(
    student_adv: Tensor,
    student_clean: Tensor,
    teacher_adv: Tensor,
    teacher_clean: Tensor,
    reduction: Reduction,
    check_values: bool,
) -> tuple[Tensor, Tensor]:
    """Both KL terms; shapes and devices always checked, the logits' values in one read with ``check_values``."""
    students = {"student_adv": student_adv, "student_clean": student_clean}
    logits = {**students, "teacher_adv": teacher_adv, "teacher_clean": teacher_clean}
    check_logit_batch(logits, hint=" The student and the teacher must have the same number of classes.")
    if check_values:
        check_logit_values(logits)
    return _kl_pair(student_adv, student_clean, teacher_adv, teacher_clean, reduction)


def _kl_pair(
    student_adv: Tensor, student_clean: Tensor, teacher_adv: Tensor, teacher_clean: Tensor, reduction: Reduction
) -> tuple[Tensor, Tensor]:
    adv = kl_terms(student_adv, teacher_adv, 1.0, 1.0, reduction)
    return adv, kl_terms(student_clean, teacher_clean, 1.0, 1.0, reduction)


class AdaADLoss(WeightedTerms):
    r""":func:`adaad_loss` as a module, with its two terms apart for logging.

    Args:
        alpha: weight $\alpha$ of the adversarial term (1, ``main.py``: the clean term is off).
        reduction: ``"mean"`` (default; official CIFAR-10), ``"batchmean"`` (official CIFAR-100),
            ``"sum"`` or ``"none"``.
        validate_args: check the logits' values in eager mode (one host sync per call).

    Shape:
        - student_adv, student_clean, teacher_adv, teacher_clean: $(N, C)$
        - Output: scalar, or $(N,)$ with ``"none"``

    Example:
        >>> loss_fn = AdaADLoss(alpha=0.5)
        >>> s_adv, s_clean, t_adv, t_clean = torch.randn(4, 3, 10).unbind()
        >>> adv_kl, clean_kl = loss_fn.terms(s_adv, s_clean, t_adv, t_clean)
        >>> torch.equal(loss_fn(s_adv, s_clean, t_adv, t_clean), 0.5 * adv_kl + 0.5 * clean_kl)
        True
    """

    reduction: Reduction

    def __init__(
        self, *, alpha: float = DEFAULT_ALPHA, reduction: Reduction = "mean", validate_args: bool = True
    ) -> None:
        super().__init__(reduction, REDUCTIONS, validate_args)
        self.alpha = check_unit_interval(alpha, "alpha")
        self.coefficients = (self.alpha, 1.0 - self.alpha)

    def forward(self, student_adv: Tensor, student_clean: Tensor, teacher_adv: Tensor, teacher_clean: Tensor) -> Tensor:
        """The loss: ``combine(*terms(...))``."""
        return self.combine(*self.terms(student_adv, student_clean, teacher_adv, teacher_clean))

    def _forward(
        self, student_adv: Tensor, student_clean: Tensor, teacher_adv: Tensor, teacher_clean: Tensor
    ) -> Tensor:
        return self.combine(*self._terms(student_adv, student_clean, teacher_adv, teacher_clean))

    def terms(
        self, student_adv: Tensor, student_clean: Tensor, teacher_adv: Tensor, teacher_clean: Tensor
    ) -> tuple[Tensor, Tensor]:
        r"""The adversarial and the clean KL terms, each reduced, before the weights $\alpha$, $1 - \alpha$."""
        checking = self.validate_args
        return _checked_terms(student_adv, student_clean, teacher_adv, teacher_clean, self.reduction, checking)

    def _terms(
        self, student_adv: Tensor, student_clean: Tensor, teacher_adv: Tensor, teacher_clean: Tensor
    ) -> tuple[Tensor, Tensor]:
        return _kl_pair(student_adv, student_clean, teacher_adv, teacher_clean, self.reduction)

    def extra_repr(self) -> str:
        return f"alpha={self.alpha:.4g}, reduction={self.reduction!r}"
