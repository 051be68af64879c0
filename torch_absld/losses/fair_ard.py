r"""Fair-ARD (Yue et al. 2023): ARD's (or RSLAD's) loss, each sample weighted by its class's vulnerability."""

from __future__ import annotations

from typing import Literal

from torch import Tensor

from .._internal.checks import (
    ProcessGroupArg,
    check_choice,
    check_device,
    check_positive,
    check_unit_interval,
)
from ..class_weights import DEFAULT_BETA, DEFAULT_MAX_WEIGHT, DEFAULT_MIN_WEIGHT, VulnerabilityWeights
from ..kl import kl_terms
from ._common import SAMPLE_REDUCTIONS, SampleReduction, WeightedTerms, check_batch, check_logit_batch, reduce_samples
from .ard import _CLASSES, ard_sample_terms

__all__ = ["BASE_DEFAULTS", "Base", "FairARDLoss", "fair_ard_loss"]

Base = Literal["ard", "rslad"]
BASE_DEFAULTS: dict[str, tuple[float, float]] = {"ard": (30.0, 1.0), "rslad": (1.0, 5 / 6)}
r"""``base -> (temperature, alpha)``: ``Fair-ARD.py`` (``--temp 30``, ``--alpha 1.0``) and
``Fair-RSLAD.py`` (temperature 1, $5/6$ on the adversarial term, $1/6$ on the clean one)."""


def _sample_terms(
    base: Base, student_adv: Tensor, student_clean: Tensor, teacher: Tensor, target: Tensor, temperature: float
) -> tuple[Tensor, Tensor]:
    """The base method's two per-sample terms, at the scale of its authors' mean over the N x C elements."""
    if base == "ard":
        return ard_sample_terms(student_adv, student_clean, teacher, target, temperature=temperature)
    num_classes = teacher.shape[1]
    adv = kl_terms(student_adv, teacher, temperature, temperature, "none")
    clean = kl_terms(student_clean, teacher, temperature, temperature, "none")
    return adv / num_classes, clean / num_classes


def _defaults(base: object, temperature: float | None, alpha: float | None) -> tuple[float, float]:
    check_choice(base, "base", tuple(BASE_DEFAULTS))
    default_temperature, default_alpha = BASE_DEFAULTS[str(base)]
    temperature = check_positive(default_temperature if temperature is None else temperature, "temperature")
    return temperature, check_unit_interval(default_alpha if alpha is None else alpha, "alpha")


def fair_ard_loss(
    student_adv: Tensor,
    student_clean: Tensor,
    teacher: Tensor,
    target: Tensor,
    class_weights: Tensor,
    *,
    base: Base = "ard",
    temperature: float | None = None,
    alpha: float | None = None,
    reduction: SampleReduction = "mean",
) -> Tensor:
    r"""The Fair-ARD loss: the base loss with each sample's terms multiplied by its class's weight $w_{y_i}$.

    Per sample, with $p_T = \mathrm{softmax}(f_t(x) / T)$ (teacher on the clean input, no gradient)
    and $q_T = \mathrm{softmax}(f_s(\cdot) / T)$:

    - ``base="ard"`` (``Fair-ARD.py``): $\ell_i = w_{y_i}\big(\alpha T^2\,\mathrm{KL}(p_T \| q_T(x'_i)) / C
      + (1 - \alpha)\,\mathrm{CE}(f_s(x_i), y_i)\big)$, defaults $T = 30$, $\alpha = 1$;
    - ``base="rslad"`` (``Fair-RSLAD.py``): $\ell_i = w_{y_i}\big(\alpha\,\mathrm{KL}(p_T \| q_T(x'_i))
      + (1 - \alpha)\,\mathrm{KL}(p_T \| q_T(x_i))\big) / C$, defaults $T = 1$, $\alpha = 5/6$.

    The $1/C$ is the authors' ``nn.KLDivLoss()`` mean over a sample's $C$ elements. ``"mean"``
    divides the weighted sum by the batch size $N$ (the authors' ``(1/len(outputs)) * sum``,
    **not** by $\sum_i w_{y_i}$); with all weights 1 it is exactly ARD's (or RSLAD's) loss.
    ``"sum"`` sums, ``"none"`` returns $\ell_i$. Computed in float32.

    Shape:
        - student_adv, student_clean, teacher: $(N, C)$
        - target: $(N,)$ integer classes in $[0, C)$
        - class_weights: $(C,)$ floating point, finite and $\ge 0$, e.g.
          :attr:`VulnerabilityWeights.weights <torch_absld.VulnerabilityWeights>`
        - Output: scalar, or $(N,)$ with ``"none"``
    """
    temperature, alpha = _defaults(base, temperature, alpha)
    check_choice(reduction, "reduction", SAMPLE_REDUCTIONS)
    logits = {"student_adv": student_adv, "student_clean": student_clean, "teacher": teacher}
    num_classes = check_logit_batch(logits, hint=_CLASSES)
    if not isinstance(class_weights, Tensor) or class_weights.shape != (num_classes,):
        got = tuple(class_weights.shape) if isinstance(class_weights, Tensor) else type(class_weights).__name__
        raise ValueError(f"Expected `class_weights` of shape ({num_classes},), but got {got}.")
    _, target = check_batch(logits, target, class_vectors={"class_weights": class_weights}, hint=_CLASSES)
    adv, clean = _sample_terms(base, student_adv, student_clean, teacher, target, temperature)
    return reduce_samples(class_weights[target] * (alpha * adv + (1 - alpha) * clean), reduction)


class FairARDLoss(WeightedTerms):
    r""":func:`fair_ard_loss` with its class weights: a :class:`~torch_absld.VulnerabilityWeights` controller.

    Holds ``vulnerability`` (the weights $w$ and the epoch's per-class $\kappa$ sums). The loss
    uses the current weights; :meth:`record` adds each sample's $\kappa_i$ from the training attack
    (see :class:`~torch_absld.attack.CountingObjective`), and :meth:`step` at the end of the epoch
    sets the weights for the next one (synchronised across ranks).

    Args:
        num_classes: number of classes $C$.
        base: ``"ard"`` (default: ``Fair-ARD.py``, what the ABSLD paper compares with on CIFAR-10)
            or ``"rslad"`` (``Fair-RSLAD.py``, the paper's CIFAR-100 choice).
        temperature: $T$ (``None``: 30 for ``"ard"``, 1 for ``"rslad"``).
        alpha: weight $\alpha$ of the adversarial term (``None``: 1 for ``"ard"``, 5/6 for ``"rslad"``).
        beta: the weights' exponent $\beta$ (2, ``Fair-ARD.py``).
        min_weight: lower clamp of a weight (5/6).
        max_weight: upper clamp of a weight (5/2).
        reduction: ``"mean"`` (default: the authors' scale), ``"sum"`` or ``"none"``.
        process_group: group the weights synchronise over.
        validate_args: check label values in eager mode.

    Shape:
        - student_adv, student_clean, teacher: $(N, C)$
        - target: $(N,)$ integer classes
        - ``record(kappa, target)``: kappa $(N,)$ floating point, target $(N,)$
        - Output: scalar, or $(N,)$ with ``"none"``

    Example:
        >>> import torch
        >>> loss_fn = FairARDLoss(3)
        >>> s_adv, s_clean, t = torch.randn(3, 4, 3).unbind()
        >>> y = torch.tensor([0, 1, 2, 0])
        >>> loss = loss_fn(s_adv, s_clean, t, y)
        >>> loss_fn.record(torch.tensor([1.0, 2.0, 4.0, 1.0]), y)
        >>> loss_fn.step()
        tensor([2.2857, 0.8333, 0.8333])
    """

    reduction: SampleReduction

    def __init__(
        self,
        num_classes: int,
        *,
        base: Base = "ard",
        temperature: float | None = None,
        alpha: float | None = None,
        beta: float = DEFAULT_BETA,
        min_weight: float = DEFAULT_MIN_WEIGHT,
        max_weight: float = DEFAULT_MAX_WEIGHT,
        reduction: SampleReduction = "mean",
        process_group: ProcessGroupArg = None,
        validate_args: bool = True,
    ) -> None:
        super().__init__(reduction, SAMPLE_REDUCTIONS, validate_args)
        self.temperature, self.alpha = _defaults(base, temperature, alpha)
        self.base: Base = base
        self.coefficients = (self.alpha, 1.0 - self.alpha)
        self.vulnerability = VulnerabilityWeights(
            num_classes,
            beta=beta,
            min_weight=min_weight,
            max_weight=max_weight,
            process_group=process_group,
            validate_args=validate_args,
        )
        self.num_classes = self.vulnerability.num_classes

    @property
    def class_weights(self) -> Tensor:
        """The current class weights $w$, shape $(C,)$ (the controller's buffer)."""
        return self.vulnerability.weights

    def forward(self, student_adv: Tensor, student_clean: Tensor, teacher: Tensor, target: Tensor) -> Tensor:
        """The loss with the current weights: ``combine(*terms(...))``."""
        return self.combine(*self.terms(student_adv, student_clean, teacher, target))

    def _forward(self, student_adv: Tensor, student_clean: Tensor, teacher: Tensor, target: Tensor) -> Tensor:
        return self.combine(*self._terms(student_adv, student_clean, teacher, target))

    def terms(
        self, student_adv: Tensor, student_clean: Tensor, teacher: Tensor, target: Tensor
    ) -> tuple[Tensor, Tensor]:
        r"""The weighted adversarial and clean terms, each reduced, before the weights $\alpha$, $1 - \alpha$.

        For ``base="ard"`` the clean term is the cross-entropy, for ``"rslad"`` the clean KL.
        """
        logits = {"student_adv": student_adv, "student_clean": student_clean, "teacher": teacher}
        checking = self.validate_args
        _, target = check_batch(logits, target, num_classes=self.num_classes, check_values=checking, hint=_CLASSES)
        check_device(student_adv, self.class_weights.device, "student_adv", "the loss (its class weights)")
        return self._terms(student_adv, student_clean, teacher, target)

    def _terms(
        self, student_adv: Tensor, student_clean: Tensor, teacher: Tensor, target: Tensor
    ) -> tuple[Tensor, Tensor]:
        adv, clean = _sample_terms(self.base, student_adv, student_clean, teacher, target, self.temperature)
        weights = self.class_weights[target]
        return reduce_samples(weights * adv, self.reduction), reduce_samples(weights * clean, self.reduction)

    def record(self, kappa: Tensor, target: Tensor) -> None:
        r"""Add each sample's $\kappa_i$ into the controller's sums (no gradient).

        Shape:
            - kappa: $(N,)$ floating point counts
            - target: $(N,)$ integer classes
        """
        self.vulnerability.update(kappa, target)

    def _record(self, kappa: Tensor, target: Tensor) -> None:
        self.vulnerability._update(kappa, target)

    def step(self) -> Tensor:
        """End of epoch: the controller's :meth:`~torch_absld.VulnerabilityWeights.step`; returns the new weights."""
        return self.vulnerability.step()

    def extra_repr(self) -> str:
        return (
            f"base={self.base!r}, temperature={self.temperature:.4g}, alpha={self.alpha:.4g}, "
            f"reduction={self.reduction!r}"
        )
