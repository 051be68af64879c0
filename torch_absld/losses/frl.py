r"""FRL (Xu et al. 2021), Reweight + Remargin: TRADES' two terms, each a class-weighted mean."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from .._internal.checks import check_positive
from ..multipliers import FRLMultipliers
from ._common import SampleReduction, check_batch, kl_rows, per_sample_ce, reduce
from .trades import TRADESLoss

__all__ = ["FRLLoss", "frl_loss"]

DEFAULT_BETA = 1.5  # weight of the boundary KL (``--beta 1.5``, ``frlrmrw.py`` of the official code)


def _weighted(values: Tensor, weights: Tensor, total: Tensor | None) -> Tensor:
    r"""$N w_i v_i / \sum_j w_j$ (or ``/ total``): per-sample shares whose mean is the weighted mean."""
    weights = weights.to(values.dtype)
    total = weights.sum() if total is None else total.to(values.dtype)
    return weights * values * (values.shape[0] / total.clamp_min(torch.finfo(values.dtype).tiny))


def _terms(
    adv: Tensor, clean: Tensor, target: Tensor, weights: tuple[Tensor, Tensor], totals: Any = (None, None)
) -> tuple[Tensor, Tensor]:
    natural = _weighted(per_sample_ce(clean, target), weights[0][target], totals[0])
    return natural, _weighted(kl_rows(clean, adv), weights[1][target], totals[1])


def frl_loss(
    student_adv: Tensor,
    student_clean: Tensor,
    target: Tensor,
    natural_weights: Tensor,
    boundary_weights: Tensor,
    *,
    beta: float = DEFAULT_BETA,
    reduction: SampleReduction = "mean",
    validate_args: bool = True,
) -> Tensor:
    r"""FRL: the class-weighted clean cross-entropy plus $\beta$ times the class-weighted TRADES KL.

    $\ell = \sum_i u_i \mathrm{CE}_i / \sum_i u_i + \beta \sum_i v_i \mathrm{KL}_i / \sum_i v_i$ (``utils_frl2.py``),
    $u_i = w^{nat}_{y_i}$, $v_i = w^{bndy}_{y_i}$ (weights $(C,)$), $\mathrm{KL}_i$ of :func:`.trades.trades_kl`.
    ``"none"``: shares $N u_i\mathrm{CE}_i / \sum_j u_j + \beta N v_i\mathrm{KL}_i / \sum_j v_j$ $(N,)$, mean $\ell$.

    Example:
        >>> clean, adv, w = torch.tensor([[2.0, 0.0], [0.0, 1.0]]), torch.zeros(2, 2), torch.tensor([0.5, 0.5])
        >>> frl_loss(adv, clean, torch.tensor([0, 1]), w, w, beta=1.0)
        tensor(0.4395)
    """
    beta = check_positive(beta, "beta", allow_zero=True)
    logits = {"student_adv": student_adv, "student_clean": student_clean}
    vectors = {"natural_weights": natural_weights, "boundary_weights": boundary_weights}
    target = check_batch(logits, target, class_vectors=vectors, reduction=reduction, validate_args=validate_args)
    natural, boundary = _terms(student_adv, student_clean, target, (natural_weights, boundary_weights))
    return reduce(natural, reduction) + beta * reduce(boundary, reduction)


class FRLLoss(TRADESLoss):
    r""":func:`frl_loss` with its class weights, an :class:`~torch_absld.multipliers.FRLMultipliers` ``multipliers``.

    The training step records the validation split into it and calls :meth:`step` at each epoch's end.
    ``**multipliers``: the options of :class:`~torch_absld.multipliers.FRLMultipliers`.
    """

    def __init__(
        self,
        num_classes: int,
        *,
        beta: float = DEFAULT_BETA,
        reduction: SampleReduction = "mean",
        validate_args: bool = True,
        **multipliers: Any,
    ) -> None:
        super().__init__(beta=beta, reduction=reduction, validate_args=validate_args)
        self.multipliers = FRLMultipliers(num_classes, validate_args=self.validate_args, **multipliers)
        self.num_classes = self.multipliers.num_classes

    def _owner(self) -> tuple[torch.device, str]:
        return self.multipliers.scale.device, "the loss (its class weights)"

    def _sample_terms(  # type: ignore[override]
        self, student_adv: Tensor, student_clean: Tensor, target: Tensor, *, normalizers: Any = None
    ) -> tuple[Tensor, Tensor]:
        r"""``normalizers`` replace the two sums of weights (``FRLMultipliers.union_batch``'s, across ranks)."""
        weights = (self.multipliers.natural_weights, self.multipliers.boundary_weights)
        return _terms(student_adv, student_clean, target, weights, normalizers or (None, None))

    def step(self) -> Tensor:
        """End of epoch: :meth:`FRLMultipliers.step <torch_absld.class_eps.ClassEpsilon.step>`; the scales."""
        return self.multipliers.step()
