r"""BAT (Sun et al. 2023): TRADES on boundary-near points plus a pull of their predictions towards uniform."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from .._internal.checks import at_least_float32, check_positive
from ._common import SampleReduction, WeightedTerms, check_batch, kl_rows, per_sample_ce, reduce
from .trades import DEFAULT_BETA

__all__ = ["BATLoss", "bat_loss", "uniform_kl"]

DEFAULT_UNIFORM_WEIGHT = 1.0  # hard-coded in ``BAT_loss`` of the official ``train.py``


def uniform_kl(logits: Tensor) -> Tensor:
    r"""Each row's $\mathrm{KL}(\mathrm{softmax}\, z \,\|\, U)$, $U$ uniform, $(N, C) \to (N,)$; $-\infty$ masks.

    Example:
        >>> uniform_kl(torch.tensor([[0.0, 0.0], [100.0, 0.0]]))
        tensor([0.0000, 0.6931])
    """
    log_p = torch.log_softmax(at_least_float32(logits), dim=1)
    safe = torch.where(log_p == -math.inf, torch.zeros_like(log_p), log_p)
    return (log_p.exp() * safe).sum(dim=1) + math.log(logits.shape[1])


def _terms(first_adv: Tensor, clean: Tensor, last_clean: Tensor, target: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    uniform = uniform_kl(last_clean) + uniform_kl(first_adv)
    return per_sample_ce(last_clean, target), kl_rows(clean, first_adv), uniform


def bat_loss(
    student_first_adv: Tensor,
    student_clean: Tensor,
    student_last_clean: Tensor,
    target: Tensor,
    *,
    beta: float = DEFAULT_BETA,
    uniform_weight: float = DEFAULT_UNIFORM_WEIGHT,
    reduction: SampleReduction = "mean",
    validate_args: bool = True,
) -> Tensor:
    r"""BAT's loss on two boundary-near points of each sample (``BAT_loss`` of the official ``train.py``).

    Logits $(N, C)$: $z^{fa}$ on the first adversarial iterate, $z^{lc}$ on the last one still correct, $z$ clean:
    $\ell_i = \mathrm{CE}(z^{lc}_i, y_i) + \beta\,\mathrm{KL}(\mathrm{softmax} z_i \| \mathrm{softmax} z^{fa}_i)
    + w\,[\mathrm{KL}(\mathrm{softmax} z^{lc}_i \| U) + \mathrm{KL}(\mathrm{softmax} z^{fa}_i \| U)]$
    (:func:`uniform_kl`). ``"none"``: $\ell_i$ $(N,)$; ``"mean"`` (the official scale) / ``"sum"``: mean / sum.

    Example:
        >>> z = torch.tensor([[2.0, 0.0]])
        >>> bat_loss(torch.zeros(1, 2), z, z, torch.tensor([0]), beta=1.0)
        tensor(0.7826)
    """
    beta = check_positive(beta, "beta", allow_zero=True)
    uniform_weight = check_positive(uniform_weight, "uniform_weight", allow_zero=True)
    logits = {"student_first_adv": student_first_adv, "student_clean": student_clean}
    logits["student_last_clean"] = student_last_clean
    target = check_batch(logits, target, reduction=reduction, validate_args=validate_args)
    terms = _terms(student_first_adv, student_clean, student_last_clean, target)
    natural, robust, uniform = (reduce(term, reduction) for term in terms)
    return natural + beta * robust + uniform_weight * uniform


class BATLoss(WeightedTerms):
    r""":func:`bat_loss` as a module, with its three terms apart for logging."""

    inputs = ("student_first_adv", "student_clean", "student_last_clean", "target")
    shown = ("beta", "uniform_weight")

    def __init__(
        self,
        *,
        beta: float = DEFAULT_BETA,
        uniform_weight: float = DEFAULT_UNIFORM_WEIGHT,
        reduction: SampleReduction = "mean",
        validate_args: bool = True,
    ) -> None:
        super().__init__(reduction, validate_args)
        self.beta = check_positive(beta, "beta", allow_zero=True)
        self.uniform_weight = check_positive(uniform_weight, "uniform_weight", allow_zero=True)
        self.coefficients = (1.0, self.beta, self.uniform_weight)

    @staticmethod
    def _sample_terms(
        student_first_adv: Tensor, student_clean: Tensor, student_last_clean: Tensor, target: Tensor
    ) -> tuple[Tensor, Tensor, Tensor]:
        return _terms(student_first_adv, student_clean, student_last_clean, target)
