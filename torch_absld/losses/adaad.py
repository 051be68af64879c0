r"""AdaAD (Huang et al. 2023): KL from the teacher to the student, both on the adversarial input."""

from __future__ import annotations

from typing import Any

from torch import Tensor

from .._internal.checks import check_unit_interval
from ..kl import _soft_label_kl
from ._common import SampleReduction, WeightedTerms, check_batch, kl_rows, reduce

__all__ = ["AdaADLoss", "adaad_attack_objective", "adaad_loss"]

DEFAULT_ALPHA = 1.0  # AdaAD's weight of the adversarial term (``--AdaAD_alpha 1.0``, ``main.py`` of the official code).


def adaad_attack_objective(output: tuple[Tensor, Tensor], target: Any = None) -> Tensor:
    r"""AdaAD's inner maximisation: $\sum_i \mathrm{KL}(\mathrm{softmax} f_t(x'_i) \,\|\, \mathrm{softmax} f_s(x'_i))$.

    For :func:`~torch_absld.pgd` on a module returning ``(student_logits, teacher_logits)``, each $(N, C)$;
    gradient through both (``adaad_inner_loss``, ``AT_helper.py``); ``target`` unused.
    """
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
    return kl_rows(teacher, student).sum()


def _kl_pair(s_adv: Tensor, s_clean: Tensor, t_adv: Tensor, t_clean: Tensor) -> tuple[Tensor, Tensor]:
    return _soft_label_kl(s_adv, t_adv, 1.0, reduction="none"), _soft_label_kl(s_clean, t_clean, 1.0, reduction="none")


def adaad_loss(
    student_adv: Tensor,
    student_clean: Tensor,
    teacher_adv: Tensor,
    teacher_clean: Tensor,
    *,
    alpha: float = DEFAULT_ALPHA,
    reduction: SampleReduction = "mean",
    validate_args: bool = True,
) -> Tensor:
    r"""AdaAD: $\ell_i = (\alpha\,\mathrm{KL}(p(x'_i) \| q(x'_i)) + (1 - \alpha)\,\mathrm{KL}(p(x_i) \| q(x_i))) / C$.

    $p = \mathrm{softmax} f_t$ (no gradient), $q = \mathrm{softmax} f_s$, logits $(N, C)$. ``"none"``: $\ell_i$
    $(N,)$; ``"mean"`` (the official CIFAR-10 ``nn.KLDivLoss()``) / ``"sum"``: mean / sum.

    Example:
        >>> import torch
        >>> s, t = torch.tensor([[0.0, 0.0]]), torch.tensor([[2.0, 0.0]])
        >>> adaad_loss(s, s, t, t, alpha=1.0) * 2  # KL(softmax t || uniform)
        tensor(0.3278)
    """
    alpha = check_unit_interval(alpha, "alpha")
    logits = {"student_adv": student_adv, "student_clean": student_clean}
    logits |= {"teacher_adv": teacher_adv, "teacher_clean": teacher_clean}
    check_batch(logits, reduction=reduction, validate_args=validate_args)
    adv, clean = _kl_pair(student_adv, student_clean, teacher_adv, teacher_clean)
    return reduce(alpha * adv + (1 - alpha) * clean, reduction)


class AdaADLoss(WeightedTerms):
    r""":func:`adaad_loss` as a module, with its two terms apart for logging."""

    inputs = ("student_adv", "student_clean", "teacher_adv", "teacher_clean")
    shown = ("alpha",)

    def __init__(
        self, *, alpha: float = DEFAULT_ALPHA, reduction: SampleReduction = "mean", validate_args: bool = True
    ) -> None:
        super().__init__(reduction, validate_args)
        self.alpha = check_unit_interval(alpha, "alpha")
        self.coefficients = (self.alpha, 1.0 - self.alpha)

    @staticmethod
    def _sample_terms(
        student_adv: Tensor, student_clean: Tensor, teacher_adv: Tensor, teacher_clean: Tensor
    ) -> tuple[Tensor, Tensor]:
        return _kl_pair(student_adv, student_clean, teacher_adv, teacher_clean)
