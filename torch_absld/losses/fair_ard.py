r"""Fair-ARD (Yue et al. 2023): ARD's (or RSLAD's) loss, each sample weighted by its class's vulnerability."""

from __future__ import annotations

from typing import Any, Literal

import torch
from torch import Tensor

from .._internal.checks import ProcessGroupArg, check_choice, check_positive, check_unit_interval
from ..class_weights import DEFAULT_BETA, DEFAULT_MAX_WEIGHT, DEFAULT_MIN_WEIGHT, VulnerabilityWeights
from ..kl import _soft_label_kl
from ._common import SampleReduction, WeightedTerms, check_batch, reduce
from .ard import _sample_terms as _ard_terms

__all__ = ["FairARDLoss", "fair_ard_loss"]

Base = Literal["ard", "rslad"]
_BASE_DEFAULTS = {"ard": (30.0, 1.0), "rslad": (1.0, 5 / 6)}  # (temperature, alpha): Fair-ARD.py, Fair-RSLAD.py


def _sample_terms(
    base: Base, student_adv: Tensor, student_clean: Tensor, teacher: Tensor, target: Tensor, temperature: float
) -> tuple[Tensor, Tensor]:
    if base == "ard":
        return _ard_terms(student_adv, student_clean, teacher, target, temperature)
    kl: dict[str, Any] = {"student_temperature": temperature, "reduction": "none"}
    adv, clean = (_soft_label_kl(student, teacher, temperature, **kl) for student in (student_adv, student_clean))
    return adv, clean


def _defaults(base: object, temperature: float | None, alpha: float | None) -> tuple[float, float]:
    check_choice(base, "base", tuple(_BASE_DEFAULTS))
    default_temperature, default_alpha = _BASE_DEFAULTS[str(base)]
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
    validate_args: bool = True,
) -> Tensor:
    r"""Fair-ARD: the base loss, each sample's terms times $w_{y_i}$ (``class_weights`` $(C,)$).

    $p_T = \mathrm{softmax}(f_t(x) / T)$ (clean input, no gradient), $q_T = \mathrm{softmax}(f_s / T)$:

    - ``"ard"`` (``Fair-ARD.py``): $\ell_i = w_{y_i}\big(\alpha T^2\,\mathrm{KL}(p_T \| q_T(x'_i)) / C
      + (1 - \alpha)\,\mathrm{CE}(f_s(x_i), y_i)\big)$, defaults $T = 30$, $\alpha = 1$;
    - ``"rslad"`` (``Fair-RSLAD.py``): $\ell_i = w_{y_i}\big(\alpha\,\mathrm{KL}(p_T \| q_T(x'_i))
      + (1 - \alpha)\,\mathrm{KL}(p_T \| q_T(x_i))\big) / C$, defaults $T = 1$, $\alpha = 5/6$.

    ``"none"``: $\ell_i$ $(N,)$; ``"mean"`` (the authors' ``(1/len(outputs)) * sum``) / ``"sum"``: mean / sum.
    """
    temperature, alpha = _defaults(base, temperature, alpha)
    logits = {"student_adv": student_adv, "student_clean": student_clean, "teacher": teacher}
    vectors = {"class_weights": class_weights}
    target = check_batch(logits, target, class_vectors=vectors, reduction=reduction, validate_args=validate_args)
    adv, clean = _sample_terms(base, student_adv, student_clean, teacher, target, temperature)
    return reduce(class_weights[target] * (alpha * adv + (1 - alpha) * clean), reduction)


class FairARDLoss(WeightedTerms):
    r""":func:`fair_ard_loss` with its class weights, a :class:`~torch_absld.VulnerabilityWeights` ``vulnerability``.

    :meth:`record` adds each sample's $\kappa_i$ (:class:`~torch_absld.attack.CountingObjective`);
    :meth:`step` at the end of the epoch sets the weights for the next one. ``beta``, ``min_weight``,
    ``max_weight``: as :class:`~torch_absld.VulnerabilityWeights`; other options as :func:`fair_ard_loss`.
    """

    inputs = ("student_adv", "student_clean", "teacher", "target")
    shown = ("base", "temperature", "alpha")

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
        super().__init__(reduction, validate_args)
        self.temperature, self.alpha = _defaults(base, temperature, alpha)
        self.base: Base = base
        self.coefficients = (self.alpha, 1.0 - self.alpha)
        self.vulnerability = VulnerabilityWeights(
            num_classes, beta=beta, min_weight=min_weight, max_weight=max_weight, process_group=process_group
        )
        self.vulnerability.validate_args = self.validate_args
        self.num_classes = self.vulnerability.num_classes

    @property
    def class_weights(self) -> Tensor:
        """The current class weights $w$, shape $(C,)$ (the controller's buffer)."""
        return self.vulnerability.weights

    def _owner(self) -> tuple[torch.device, str]:
        return self.class_weights.device, "the loss (its class weights)"

    def _sample_terms(
        self, student_adv: Tensor, student_clean: Tensor, teacher: Tensor, target: Tensor
    ) -> tuple[Tensor, Tensor]:
        adv, clean = _sample_terms(self.base, student_adv, student_clean, teacher, target, self.temperature)
        weights = self.class_weights[target]
        return weights * adv, weights * clean

    def record(self, kappa: Tensor, target: Tensor) -> None:
        r"""Add each sample's $\kappa_i$ $(N,)$ into the controller's sums (no gradient); target $(N,)$."""
        self.vulnerability.update(kappa, target)

    def _record(self, kappa: Tensor, target: Tensor) -> None:
        self.vulnerability._update(kappa, target)

    def step(self) -> Tensor:
        """End of epoch: :meth:`VulnerabilityWeights.step <torch_absld.VulnerabilityWeights.step>`; the new weights."""
        return self.vulnerability.step()
