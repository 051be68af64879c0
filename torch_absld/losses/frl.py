r"""FRL (Xu et al. 2021), Reweight + Remargin: TRADES' two terms, each a class-weighted mean."""

from __future__ import annotations

import torch
from torch import Tensor
from typing_extensions import Unpack

from .._internal.checks import check_choice, check_device, check_options, check_positive
from ..multipliers import FRLMultipliers, FRLOptions
from ._common import SAMPLE_REDUCTIONS, SampleReduction, check_batch, per_sample_ce
from .trades import TRADESLoss, _per_sample_kl

__all__ = ["FRLLoss", "frl_loss"]

DEFAULT_BETA = 1.5
r"""FRL's weight $\beta$ of the boundary (KL) term (``--beta 1.5``, ``frlrmrw.py`` of the official code)."""


def _weighted(values: Tensor, weights: Tensor, reduction: SampleReduction, normalizer: Tensor | None) -> Tensor:
    r"""``"mean"``: $\sum_i w_i v_i / \sum_i w_i$ (or / ``normalizer``), ``"sum"``: $\sum_i w_i v_i$, ``"none"``.

    A batch whose weights sum to 0 (an empty batch) gives 0 for ``"mean"``, not NaN.
    """
    weighted = weights * values
    if reduction == "mean":
        total = weights.sum() if normalizer is None else normalizer.to(weighted.dtype)
        return weighted.sum() / total.clamp_min(torch.finfo(weighted.dtype).tiny)
    return weighted.sum() if reduction == "sum" else weighted


def _terms(
    student_clean: Tensor,
    student_adv: Tensor,
    target: Tensor,
    natural_weights: Tensor,
    boundary_weights: Tensor,
    reduction: SampleReduction,
    normalizers: tuple[Tensor, Tensor] | None = None,
) -> tuple[Tensor, Tensor]:
    ce = per_sample_ce(student_clean, target)
    kl = _per_sample_kl(student_clean, student_adv)
    natural_sum, boundary_sum = (None, None) if normalizers is None else normalizers
    natural = _weighted(ce, natural_weights[target].to(ce.dtype), reduction, natural_sum)
    return natural, _weighted(kl, boundary_weights[target].to(kl.dtype), reduction, boundary_sum)


def frl_loss(
    student_clean: Tensor,
    student_adv: Tensor,
    target: Tensor,
    natural_weights: Tensor,
    boundary_weights: Tensor,
    *,
    beta: float = DEFAULT_BETA,
    reduction: SampleReduction = "mean",
) -> Tensor:
    r"""FRL's loss: the class-weighted clean cross-entropy plus $\beta$ times the class-weighted TRADES KL.

    With $u_i = w^{nat}_{y_i}$ and $v_i = w^{bndy}_{y_i}$ (FRL's class weights, see
    :class:`~torch_absld.multipliers.FRLMultipliers`):

    $$\ell = \frac{\sum_i u_i\,\mathrm{CE}(f(x_i), y_i)}{\sum_i u_i}
           + \beta\,\frac{\sum_i v_i\,\mathrm{KL}_i}{\sum_i v_i},$$

    $\mathrm{KL}_i = \mathrm{KL}(\mathrm{softmax} f(x_i) \,\|\, \mathrm{softmax} f(x'_i))$ as in
    :func:`~torch_absld.losses.trades_kl` (the gradient through both outputs). ``"mean"`` is this
    self-normalised form (``train_model`` of the official ``utils_frl2.py``); with equal weights it
    is TRADES' loss. ``"sum"`` gives the two weighted sums, ``"none"`` each sample's
    $u_i\,\mathrm{CE}_i + \beta\,v_i\,\mathrm{KL}_i$. Computed in float32.

    Shape:
        - student_clean, student_adv: $(N, C)$
        - target: $(N,)$ integer classes in $[0, C)$
        - natural_weights, boundary_weights: $(C,)$, finite and $\ge 0$
        - Output: scalar, or $(N,)$ with ``"none"``

    Example:
        >>> import torch
        >>> clean, adv = torch.tensor([[2.0, 0.0], [0.0, 1.0]]), torch.zeros(2, 2)
        >>> frl_loss(clean, adv, torch.tensor([0, 1]), torch.tensor([0.5, 0.5]), torch.tensor([0.5, 0.5]), beta=1.0)
        tensor(0.4395)
    """
    beta = check_positive(beta, "beta", allow_zero=True)
    check_choice(reduction, "reduction", SAMPLE_REDUCTIONS)
    _, target = check_batch(
        {"student_clean": student_clean, "student_adv": student_adv},
        target,
        class_vectors={"natural_weights": natural_weights, "boundary_weights": boundary_weights},
    )
    natural, boundary = _terms(student_clean, student_adv, target, natural_weights, boundary_weights, reduction)
    return natural + beta * boundary


class FRLLoss(TRADESLoss):
    r""":func:`frl_loss` with its class weights: an :class:`~torch_absld.multipliers.FRLMultipliers` controller.

    Holds ``multipliers`` (the weights $w^{nat}$, $w^{bndy}$, the radius scales and the epoch's
    validation counts). The loss uses the current weights; the training step records the
    validation split into the controller and calls :meth:`step` at the end of each epoch
    (synchronised across ranks). A :class:`~torch_absld.TRADESLoss` whose two terms are
    class-weighted means: with all weights equal it is TRADES.

    Args:
        num_classes: number of classes $C$.
        beta: weight $eta$ of the boundary term (1.5, ``frlrmrw.py``).
        reduction: ``"mean"`` (default: the authors' weighted means), ``"sum"`` or ``"none"``.
        validate_args: check label values in eager mode (one host sync per call).
        **multipliers: the options of :class:`~torch_absld.multipliers.FRLMultipliers` (``threshold``,
            ``rate``, ``eps_rate``, ``limit``, ``halve_every``, ``begin_epoch``, ``scale_step``,
            ``process_group``).

    Shape:
        - student_clean, student_adv: $(N, C)$
        - target: $(N,)$ integer classes
        - Output: scalar, or $(N,)$ with ``"none"``

    Example:
        >>> import torch
        >>> loss_fn = FRLLoss(3)
        >>> clean, adv = torch.randn(2, 4, 3).unbind()
        >>> y, w = torch.tensor([0, 1, 2, 0]), loss_fn.multipliers.natural_weights
        >>> torch.allclose(loss_fn(clean, adv, y), frl_loss(clean, adv, y, w, w))
        True
    """

    def __init__(
        self,
        num_classes: int,
        *,
        beta: float = DEFAULT_BETA,
        reduction: SampleReduction = "mean",
        validate_args: bool = True,
        **multipliers: Unpack[FRLOptions],
    ) -> None:
        super().__init__(beta=beta, reduction=reduction, validate_args=validate_args)
        check_options(multipliers, FRLOptions.__optional_keys__, type(self).__name__)
        self.multipliers = FRLMultipliers(num_classes, validate_args=self.validate_args, **multipliers)
        self.num_classes = self.multipliers.num_classes

    def terms(
        self,
        student_clean: Tensor,
        student_adv: Tensor,
        target: Tensor,
        *,
        normalizers: tuple[Tensor, Tensor] | None = None,
    ) -> tuple[Tensor, Tensor]:
        r"""The weighted natural cross-entropy and the weighted boundary KL, each reduced, before 1 and $\beta$.

        ``normalizers`` replace the two sums of weights that ``"mean"`` divides by (a training step
        under ``torch.distributed`` passes :meth:`FRLMultipliers.union_batch
        <torch_absld.multipliers.FRLMultipliers.union_batch>`'s: the averaged gradients are then
        those of one process on the union).
        """
        logits = {"student_clean": student_clean, "student_adv": student_adv}
        _, target = check_batch(logits, target, num_classes=self.num_classes, check_values=self.validate_args)
        check_device(student_clean, self.multipliers.scale.device, "student_clean", "the loss (its class weights)")
        return self._terms(student_clean, student_adv, target, normalizers=normalizers)

    def _terms(
        self,
        student_clean: Tensor,
        student_adv: Tensor,
        target: Tensor,
        *,
        normalizers: tuple[Tensor, Tensor] | None = None,
    ) -> tuple[Tensor, Tensor]:
        weights = (self.multipliers.natural_weights, self.multipliers.boundary_weights)
        return _terms(student_clean, student_adv, target, *weights, self.reduction, normalizers)

    def step(self) -> Tensor:
        """End of epoch: the controller's :meth:`~torch_absld.multipliers.FRLMultipliers.step`; returns the scales."""
        return self.multipliers.step()
