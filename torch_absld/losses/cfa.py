r"""CFA (Wei et al. 2023), TRADES + CFA: the TRADES loss with a class-wise $\beta_y$, normalised by $1 + \beta_y$."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from ..class_eps import CalibratedEpsilon
from ._common import SampleReduction, WeightedTerms, check_batch, kl_rows, per_sample_ce, reduce

__all__ = ["CFALoss", "cfa_loss"]


def _terms(student_adv: Tensor, student_clean: Tensor, target: Tensor, class_beta: Tensor) -> tuple[Tensor, Tensor]:
    ce = per_sample_ce(student_clean, target)
    beta = class_beta[target].to(ce.dtype)
    return ce / (1 + beta), beta * kl_rows(student_clean, student_adv) / (1 + beta)


def cfa_loss(
    student_adv: Tensor,
    student_clean: Tensor,
    target: Tensor,
    class_beta: Tensor,
    *,
    reduction: SampleReduction = "mean",
    validate_args: bool = True,
) -> Tensor:
    r"""CFA's class-wise regularization (CCR, Eq. 8): $\ell_i = (\mathrm{CE}_i + \beta_y\mathrm{KL}_i) / (1 + \beta_y)$.

    $\mathrm{KL}_i$ of :func:`~torch_absld.losses.trades.trades_kl`; ``class_beta`` $(C,)$, finite, $\ge 0$.
    ``"none"``: $\ell_i$ $(N,)$; ``"mean"`` (``cw_trades_loss``, official ``attack.py``) / ``"sum"``: mean / sum.

    Example:
        >>> cfa_loss(torch.zeros(1, 2), torch.tensor([[2.0, 0.0]]), torch.tensor([0]), torch.tensor([1.0, 6.0]))
        tensor(0.2274)
    """
    logits = {"student_adv": student_adv, "student_clean": student_clean}
    vectors = {"class_beta": class_beta}
    target = check_batch(logits, target, class_vectors=vectors, reduction=reduction, validate_args=validate_args)
    natural, robust = _terms(student_adv, student_clean, target, class_beta)
    return reduce(natural, reduction) + reduce(robust, reduction)


class CFALoss(WeightedTerms):
    r""":func:`cfa_loss` with its $\beta_y$ from a :class:`~torch_absld.class_eps.CalibratedEpsilon` ``calibration``.

    :meth:`record` adds whether each adversarial example is classified correctly; :meth:`step` at the
    end of the epoch sets the radii and $\beta_k$ for the next one. ``**calibration``: its options.
    """

    def __init__(
        self, num_classes: int, *, reduction: SampleReduction = "mean", validate_args: bool = True, **calibration: Any
    ) -> None:
        super().__init__(reduction, validate_args)
        self.coefficients = (1.0, 1.0)
        self.calibration = CalibratedEpsilon(num_classes, validate_args=validate_args, **calibration)
        self.num_classes = self.calibration.num_classes

    inputs = ("student_adv", "student_clean", "target")

    def _owner(self) -> tuple[torch.device, str]:
        return self.calibration.scale.device, "the loss (its class-wise beta)"

    def _sample_terms(self, student_adv: Tensor, student_clean: Tensor, target: Tensor) -> tuple[Tensor, Tensor]:
        return _terms(student_adv, student_clean, target, self.calibration.class_beta)

    def record(self, student_adv: Tensor, target: Tensor) -> None:
        """Add whether each adversarial example $(N, C)$ is classified as its label $(N,)$ (no gradient)."""
        self.calibration.update(student_adv, target)

    def _record(self, student_adv: Tensor, target: Tensor) -> None:
        self.calibration._update(student_adv, target)

    def step(self) -> Tensor:
        """End of epoch: :meth:`CalibratedEpsilon.step <torch_absld.class_eps.ClassEpsilon.step>`; the scales."""
        return self.calibration.step()
