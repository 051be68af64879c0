r"""CFA (Wei et al. 2023), TRADES + CFA: the TRADES loss with a class-wise $\beta_y$, normalised by $1 + \beta_y$."""

from __future__ import annotations

from torch import Tensor
from typing_extensions import Unpack

from .._internal.checks import check_choice, check_device, check_options
from ..class_eps import CalibratedEpsilon, CalibrationOptions
from ._common import (
    SAMPLE_REDUCTIONS,
    SampleReduction,
    WeightedTerms,
    check_batch,
    check_class_vector,
    per_sample_ce,
    reduce_samples,
)
from .trades import _per_sample_kl

__all__ = ["CFALoss", "cfa_loss", "check_class_vector"]


def _terms(
    student_clean: Tensor, student_adv: Tensor, target: Tensor, class_beta: Tensor, reduction: SampleReduction
) -> tuple[Tensor, Tensor]:
    ce = per_sample_ce(student_clean, target)
    beta = class_beta[target].to(ce.dtype)
    robust = beta * _per_sample_kl(student_clean, student_adv) / (1 + beta)
    return reduce_samples(ce / (1 + beta), reduction), reduce_samples(robust, reduction)


def cfa_loss(
    student_clean: Tensor,
    student_adv: Tensor,
    target: Tensor,
    class_beta: Tensor,
    *,
    reduction: SampleReduction = "mean",
) -> Tensor:
    r"""CFA's loss with class-wise regularization (CCR, Eq. 8).

    Per sample: $\ell_i = \big(\mathrm{CE}(f(x_i), y_i) + \beta_{y_i}\,\mathrm{KL}_i\big) / (1 + \beta_{y_i})$,
    with $\mathrm{KL}_i = \mathrm{KL}(\mathrm{softmax} f(x_i) \,\|\, \mathrm{softmax} f(x'_i))$ as in
    :func:`~torch_absld.losses.trades_kl` (the gradient flows through both outputs). ``"mean"``
    averages $\ell_i$ over the batch (``cw_trades_loss`` of the official ``attack.py``: each term
    divided by the batch size, **not** by a sum of weights); at $\beta_k = \beta$ for every class
    it is TRADES' loss divided by $1 + \beta$. ``"sum"`` sums, ``"none"`` returns $\ell_i$.
    Computed in float32.

    Shape:
        - student_clean, student_adv: $(N, C)$
        - target: $(N,)$ integer classes in $[0, C)$
        - class_beta: $(C,)$, finite and $\ge 0$, e.g.
          :attr:`CalibratedEpsilon.class_beta <torch_absld.class_eps.CalibratedEpsilon>`
        - Output: scalar, or $(N,)$ with ``"none"``

    Example:
        >>> import torch
        >>> clean, adv = torch.tensor([[2.0, 0.0]]), torch.tensor([[0.0, 0.0]])
        >>> cfa_loss(clean, adv, torch.tensor([0]), torch.tensor([1.0, 6.0]))
        tensor(0.2274)
    """
    check_choice(reduction, "reduction", SAMPLE_REDUCTIONS)
    _, target = check_batch(
        {"student_clean": student_clean, "student_adv": student_adv}, target, class_vectors={"class_beta": class_beta}
    )
    natural, robust = _terms(student_clean, student_adv, target, class_beta, reduction)
    return natural + robust


class CFALoss(WeightedTerms):
    r""":func:`cfa_loss` with its class-wise $\beta_y$: a :class:`~torch_absld.class_eps.CalibratedEpsilon` controller.

    Holds ``calibration`` (CCM's radius scales, CCR's $\beta_k$ and the epoch's robust accuracy
    sums). The loss uses the current $\beta_k$; :meth:`record` adds whether each training
    sample's adversarial logits predict its class, and :meth:`step` at the end of the epoch sets
    the radii and $\beta_k$ for the next one (synchronised across ranks).

    Args:
        num_classes: number of classes $C$.
        reduction: ``"mean"`` (default: the authors' scale), ``"sum"`` or ``"none"``.
        validate_args: check label values in eager mode (one host sync per call).
        **calibration: the options of :class:`~torch_absld.class_eps.CalibratedEpsilon` (``beta``,
            ``lambda_eps``, ``lambda_beta``, ``begin_epoch``, ``process_group``).

    Shape:
        - student_clean, student_adv: $(N, C)$
        - target: $(N,)$ integer classes
        - ``record(student_adv, target)``: $(N, C)$, $(N,)$
        - Output: scalar, or $(N,)$ with ``"none"``

    Example:
        >>> import torch
        >>> loss_fn = CFALoss(3)
        >>> clean, adv = torch.randn(2, 4, 3).unbind()
        >>> y = torch.tensor([0, 1, 2, 0])
        >>> torch.allclose(loss_fn(clean, adv, y), cfa_loss(clean, adv, y, torch.full((3,), 6.0)))
        True
    """

    reduction: SampleReduction

    def __init__(
        self,
        num_classes: int,
        *,
        reduction: SampleReduction = "mean",
        validate_args: bool = True,
        **calibration: Unpack[CalibrationOptions],
    ) -> None:
        super().__init__(reduction, SAMPLE_REDUCTIONS, validate_args)
        self.coefficients = (1.0, 1.0)
        check_options(calibration, CalibrationOptions.__optional_keys__, type(self).__name__)
        self.calibration = CalibratedEpsilon(num_classes, validate_args=validate_args, **calibration)
        self.num_classes = self.calibration.num_classes

    def forward(self, student_clean: Tensor, student_adv: Tensor, target: Tensor) -> Tensor:
        r"""The loss with the current $\beta_k$: ``combine(*terms(...))``."""
        return self.combine(*self.terms(student_clean, student_adv, target))

    def _forward(self, student_clean: Tensor, student_adv: Tensor, target: Tensor) -> Tensor:
        return self.combine(*self._terms(student_clean, student_adv, target))

    def terms(self, student_clean: Tensor, student_adv: Tensor, target: Tensor) -> tuple[Tensor, Tensor]:
        r"""The terms $\mathrm{CE}_i / (1 + \beta_y)$ and $\beta_y\,\mathrm{KL}_i / (1 + \beta_y)$, each reduced."""
        logits = {"student_clean": student_clean, "student_adv": student_adv}
        _, target = check_batch(logits, target, num_classes=self.num_classes, check_values=self.validate_args)
        check_device(student_clean, self.calibration.scale.device, "student_clean", "the loss (its class-wise beta)")
        return self._terms(student_clean, student_adv, target)

    def _terms(self, student_clean: Tensor, student_adv: Tensor, target: Tensor) -> tuple[Tensor, Tensor]:
        return _terms(student_clean, student_adv, target, self.calibration.class_beta, self.reduction)

    def record(self, student_adv: Tensor, target: Tensor) -> None:
        """Add whether each adversarial example is classified correctly (no gradient)."""
        self.calibration.update(student_adv, target)

    def _record(self, student_adv: Tensor, target: Tensor) -> None:
        self.calibration._update(student_adv, target)

    def step(self) -> Tensor:
        """End of epoch: the controller's :meth:`~torch_absld.class_eps.CalibratedEpsilon.step`; returns the scales."""
        return self.calibration.step()

    def extra_repr(self) -> str:
        return f"reduction={self.reduction!r}"
