r"""ARD (Goldblum et al. 2020): tempered KL from the teacher's clean to the student's adversarial output."""

from __future__ import annotations

from torch import Tensor

from .._internal.checks import check_positive, check_unit_interval
from ..kl import _soft_label_kl
from ._common import SampleReduction, WeightedTerms, check_batch, per_sample_ce, reduce

__all__ = ["ARDLoss", "ard_loss"]

DEFAULT_TEMPERATURE = 30.0  # ARD's distillation temperature (``--temp 30.0``, ``main.py`` of the official code).
DEFAULT_ALPHA = 1.0  # ARD's weight of the KL term (``--alpha 1.0``, ``main.py``): the clean cross-entropy term is off.


def _sample_terms(
    student_adv: Tensor, student_clean: Tensor, teacher: Tensor, target: Tensor, temperature: float
) -> tuple[Tensor, Tensor]:
    r"""$(T^2\,\mathrm{KL}_i / C,\ \mathrm{CE}_i)$, each $(N,)$ (``nn.KLDivLoss()`` averages $N \times C$ elements)."""
    kl = _soft_label_kl(student_adv, teacher, temperature, student_temperature=temperature, reduction="none")
    return kl * (temperature * temperature), per_sample_ce(student_clean, target)


def ard_loss(
    student_adv: Tensor,
    student_clean: Tensor,
    teacher: Tensor,
    target: Tensor,
    *,
    temperature: float = DEFAULT_TEMPERATURE,
    alpha: float = DEFAULT_ALPHA,
    reduction: SampleReduction = "mean",
    validate_args: bool = True,
) -> Tensor:
    r"""ARD: $\ell_i = \alpha T^2\,\mathrm{KL}(p_T(x_i) \| q_T(x'_i)) / C + (1 - \alpha)\,\mathrm{CE}(f_s(x_i), y_i)$.

    $p_T = \mathrm{softmax}(f_t / T)$ on the clean input (no gradient), $q_T = \mathrm{softmax}(f_s / T)$.
    ``"none"``: $\ell_i$ $(N,)$; ``"mean"`` (the authors' ``nn.KLDivLoss()``) / ``"sum"``: mean / sum.

    Example:
        >>> import torch
        >>> t, s = torch.tensor([[3.0, 0.0]]), torch.tensor([[0.0, 3.0]])
        >>> ard_loss(s, s, t, torch.tensor([0]), temperature=1.0)  # KL of one sample over C = 2
        tensor(1.3577)
    """
    temperature = check_positive(temperature, "temperature")
    alpha = check_unit_interval(alpha, "alpha")
    logits = {"student_adv": student_adv, "student_clean": student_clean, "teacher": teacher}
    target = check_batch(logits, target, reduction=reduction, validate_args=validate_args)
    kl, ce = _sample_terms(student_adv, student_clean, teacher, target, temperature)
    return reduce(alpha * kl + (1 - alpha) * ce, reduction)


class ARDLoss(WeightedTerms):
    r""":func:`ard_loss` as a module, with its two terms apart for logging."""

    inputs = ("student_adv", "student_clean", "teacher", "target")
    shown = ("temperature", "alpha")

    def __init__(
        self,
        *,
        temperature: float = DEFAULT_TEMPERATURE,
        alpha: float = DEFAULT_ALPHA,
        reduction: SampleReduction = "mean",
        validate_args: bool = True,
    ) -> None:
        super().__init__(reduction, validate_args)
        self.temperature = check_positive(temperature, "temperature")
        self.alpha = check_unit_interval(alpha, "alpha")
        self.coefficients = (self.alpha, 1.0 - self.alpha)

    def _sample_terms(
        self, student_adv: Tensor, student_clean: Tensor, teacher: Tensor, target: Tensor
    ) -> tuple[Tensor, Tensor]:
        return _sample_terms(student_adv, student_clean, teacher, target, self.temperature)
