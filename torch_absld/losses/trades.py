r"""TRADES (Zhang et al. 2019): clean cross-entropy plus $\beta$ times the clean-to-adversarial KL."""

from __future__ import annotations

from torch import Tensor

from .._internal.checks import check_positive
from ._common import SampleReduction, WeightedTerms, check_batch, kl_rows, per_sample_ce, reduce

__all__ = ["TRADESLoss", "trades_kl", "trades_loss"]

DEFAULT_BETA = 6.0  # TRADES' $\beta$ for CIFAR-10 (``--beta 6.0``, ``train_trades_cifar10.py`` of the official code).


def trades_kl(
    student_adv: Tensor, student_clean: Tensor, *, reduction: SampleReduction = "mean", validate_args: bool = True
) -> Tensor:
    r"""TRADES' robust term $\mathrm{KL}_i = \mathrm{KL}(\mathrm{softmax} f(x_i) \,\|\, \mathrm{softmax} f(x'_i))$.

    Gradient through both (official ``trades.py``); a clean logit of $-\infty$ masks its class. Logits
    $(N, C)$; ``"none"``: $\mathrm{KL}_i$ $(N,)$, ``"mean"`` (the authors' scale) / ``"sum"``: their mean / sum.
    """
    logits = {"student_adv": student_adv, "student_clean": student_clean}
    check_batch(logits, reduction=reduction, validate_args=validate_args)
    return reduce(kl_rows(student_clean, student_adv), reduction)


def trades_loss(
    student_adv: Tensor,
    student_clean: Tensor,
    target: Tensor,
    *,
    beta: float = DEFAULT_BETA,
    reduction: SampleReduction = "mean",
    validate_args: bool = True,
) -> Tensor:
    r"""TRADES: $\ell_i = \mathrm{CE}(f(x_i), y_i) + \beta\,\mathrm{KL}_i$ (:func:`trades_kl`), in float32.

    ``"none"``: $\ell_i$ $(N,)$; ``"mean"`` (official ``loss_natural + beta * loss_robust``) / ``"sum"``: mean / sum.

    Example:
        >>> import torch
        >>> trades_loss(torch.zeros(1, 2), torch.tensor([[2.0, 0.0]]), torch.tensor([0]), beta=1.0)
        tensor(0.4547)
    """
    beta = check_positive(beta, "beta", allow_zero=True)
    logits = {"student_adv": student_adv, "student_clean": student_clean}
    target = check_batch(logits, target, reduction=reduction, validate_args=validate_args)
    return reduce(per_sample_ce(student_clean, target) + beta * kl_rows(student_clean, student_adv), reduction)


class TRADESLoss(WeightedTerms):
    r""":func:`trades_loss` as a module: ``forward(student_adv, student_clean, target)``, ``terms`` apart."""

    inputs = ("student_adv", "student_clean", "target")
    shown = ("beta",)

    def __init__(
        self, *, beta: float = DEFAULT_BETA, reduction: SampleReduction = "mean", validate_args: bool = True
    ) -> None:
        super().__init__(reduction, validate_args)
        self.beta = check_positive(beta, "beta", allow_zero=True)
        self.coefficients = (1.0, self.beta)

    @staticmethod
    def _sample_terms(student_adv: Tensor, student_clean: Tensor, target: Tensor) -> tuple[Tensor, Tensor]:
        return per_sample_ce(student_clean, target), kl_rows(student_clean, student_adv)
