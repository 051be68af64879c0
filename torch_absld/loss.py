"""The ABSLD distillation loss (Eq. 12) as a pure function and as a module."""

from __future__ import annotations

import warnings
from typing import Literal

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import Tensor, nn

from ._internal.checks import (
    at_least_float32,
    check_choice,
    check_integer_labels,
    check_logits,
    check_positive,
    check_unit_interval,
    values_checkable,
)
from .kl import REDUCTIONS, Reduction, soft_label_kl, soft_labels
from .temperature import ClassTemperatureController, RiskReduction

__all__ = ["DEFAULT_COUPLING", "ABSLDLoss", "absld_loss", "soft_label_kl", "soft_labels"]

Kind = Literal["adv", "clean"]
Adapt = Literal["both", "adv", "none"]
Coupling = Literal["separate", "product"]
_COUPLINGS = ("separate", "product")
_OLD_COUPLINGS: dict[str, Coupling] = {"paper": "separate", "script": "product"}

DEFAULT_COUPLING: Coupling = "product"
"""How the two temperature vectors enter the loss unless told otherwise (see :class:`ABSLDLoss`)."""


def _coupling(value: object) -> Coupling:
    """A coupling name checked, with the 0.1 names mapped to the new ones (and a warning)."""
    if isinstance(value, str) and value in _OLD_COUPLINGS:
        new = _OLD_COUPLINGS[value]
        warnings.warn(
            f"coupling={value!r} is deprecated since torch-absld 0.2 and will be removed; use coupling={new!r} "
            "(same behaviour).",
            DeprecationWarning,
            stacklevel=3,
        )
        return new
    check_choice(value, "coupling", _COUPLINGS)
    return value  # type: ignore[return-value]


def _sample_temperatures(
    tau_adv: Tensor, tau_clean: Tensor, target: Tensor, coupling: Coupling
) -> tuple[Tensor, Tensor]:
    r"""Each sample's teacher temperature in the adversarial and the clean term.

    ``"separate"``: $\tau^{adv}[y]$ and $\tau^{clean}[y]$; ``"product"``: $\tau^{adv}[y]\,\tau^{clean}[y]$ in both.
    """
    t_adv, t_clean = tau_adv[target], tau_clean[target]
    if coupling == "product":
        t_adv = t_clean = t_adv * t_clean
    return t_adv, t_clean


def absld_loss(
    student_adv: Tensor,
    student_clean: Tensor,
    teacher: Tensor,
    target: Tensor,
    tau_adv: Tensor,
    tau_clean: Tensor,
    *,
    alpha: float = 5 / 6,
    student_temperature: float = 1.0,
    reduction: Reduction = "mean",
    coupling: Coupling = DEFAULT_COUPLING,
) -> Tensor:
    r"""ABSLD distillation loss (Eq. 12).

    $L = \alpha\,\mathrm{KL}(p^{adv} \| q^{adv}) + (1-\alpha)\,\mathrm{KL}(p^{clean} \| q^{clean})$
    with $p^{adv} = \mathrm{softmax}(z_t / \tau^{adv}[y])$,
    $p^{clean} = \mathrm{softmax}(z_t / \tau^{clean}[y])$ (each sample scaled by the temperature
    of its **own true class**), $q = \mathrm{softmax}(z_s / \tau_s)$ of the student's logits on
    the adversarial and the clean batch. The teacher logits are those of the clean batch.
    ``coupling="separate"`` is the paper's Eq. 12 (above); ``coupling="product"`` uses
    $\tau^{adv}[y]\,\tau^{clean}[y]$ in both terms, as the authors' script computes. See
    :func:`soft_label_kl` for the reductions (default: mean over all $N \times C$ elements,
    as the authors' code).

    Shape:
        - student_adv, student_clean, teacher: $(N, C)$
        - target: $(N,)$ integer classes in $[0, C)$
        - tau_adv, tau_clean: $(C,)$, positive
        - Output: scalar, or $(N,)$ with ``reduction="none"``
    """
    num_classes = _check_logit_triple(student_adv, student_clean, teacher)
    check_integer_labels(target, num_classes, batch_size=student_adv.shape[0], check_values=values_checkable(True))
    for name, tau in (("tau_adv", tau_adv), ("tau_clean", tau_clean)):
        if not isinstance(tau, Tensor) or tau.shape != (num_classes,):
            got = tuple(tau.shape) if isinstance(tau, Tensor) else type(tau).__name__
            raise ValueError(f"Expected `{name}` of shape ({num_classes},), but got {got}.")
        if values_checkable(True) and not bool((torch.isfinite(tau) & (tau > 0)).all()):
            raise ValueError(f"Expected `{name}` to hold finite temperatures > 0, but got {tau.tolist()}.")
    alpha = check_unit_interval(alpha, "alpha")
    student_temperature = check_positive(student_temperature, "student_temperature")
    check_choice(reduction, "reduction", REDUCTIONS)
    t_adv, t_clean = _sample_temperatures(tau_adv, tau_clean, target, _coupling(coupling))
    adv, clean = _kl_terms(student_adv, student_clean, teacher, t_adv, t_clean, student_temperature, reduction)
    return _weighted(adv, clean, alpha)


def _kl_terms(
    student_adv: Tensor,
    student_clean: Tensor,
    teacher: Tensor,
    t_adv: Tensor,
    t_clean: Tensor,
    student_temperature: float,
    reduction: Reduction,
) -> tuple[Tensor, Tensor]:
    """The adversarial and the clean KL terms of Eq. 12, with per-sample teacher temperatures."""
    adv = soft_label_kl(student_adv, teacher, t_adv, student_temperature=student_temperature, reduction=reduction)
    clean = soft_label_kl(student_clean, teacher, t_clean, student_temperature=student_temperature, reduction=reduction)
    return adv, clean


def _weighted(adv: Tensor, clean: Tensor, alpha: float) -> Tensor:
    """Eq. 12's weighting of its two terms."""
    return alpha * adv + (1 - alpha) * clean


def _check_logit_triple(student_adv: Tensor, student_clean: Tensor, teacher: Tensor) -> int:
    check_logits(student_adv, "student_adv")
    check_logits(student_clean, "student_clean")
    check_logits(teacher, "teacher")
    if not student_adv.shape == student_clean.shape == teacher.shape:
        raise ValueError(
            "Expected `student_adv`, `student_clean` and `teacher` of one shape (N, C), but got "
            f"{tuple(student_adv.shape)}, {tuple(student_clean.shape)} and {tuple(teacher.shape)}."
        )
    return int(student_adv.shape[1])


class ABSLDLoss(nn.Module):
    r"""ABSLD distillation loss with its two per-class temperature controllers.

    Holds ``adv`` ($\tilde\tau$, for the adversarial term and the attack) and ``clean``
    ($\tau$, for the clean term), two :class:`ClassTemperatureController`. In training mode
    each call also records every sample's risk (cross-entropy of the detached student logits
    it was given) into the matching controller; :meth:`step` at the end of the epoch then
    updates the temperatures (Eq. 11). ``loss_fn.eval()`` or ``record_risk=False`` stops the
    recording. See :func:`absld_loss` for the formula and the reductions.

    Args:
        num_classes: number of classes $C$.
        alpha: weight of the adversarial term (5/6, the RSLAD default).
        student_temperature: the student's constant temperature $\tau_s$.
        init_temperature: starting teacher temperature of every class.
        lr: temperature learning rate $\beta$ of the adapting controllers.
        min_temperature: lower temperature clamp (0.5 in the paper; 0.8 for ResNet-18 on CIFAR-100).
        max_temperature: upper temperature clamp (5 in the paper; 3 for ResNet-18 on CIFAR-100).
        adapt: which temperatures adapt: ``"both"`` (ABSLD), ``"adv"`` (the paper's
            ABSLD$_{adv}$ ablation), ``"none"`` (temperatures frozen: exactly RSLAD).
        coupling: ``"separate"`` (the paper's Eq. 12: $\tau^{adv}[y]$ in the adversarial term and
            the attack, $\tau^{clean}[y]$ in the clean term) or ``"product"``
            ($\tau^{adv}[y]\,\tau^{clean}[y]$ in both terms and in the attack: what the authors'
            script computes). The 0.1 names ``"paper"`` and ``"script"`` still work, with a
            ``DeprecationWarning``.
        reduction: ``"mean"`` (over $N \times C$, the authors' scale), ``"batchmean"``,
            ``"sum"`` or ``"none"``.
        risk_reduction: per-class ``"mean"`` (default) or ``"sum"`` of the risk.
        record_risk: record risks in training mode.
        process_group: group the controllers synchronise over.
        validate_args: check label values in eager mode.

    Shape:
        - student_adv_logits, student_clean_logits, teacher_logits: $(N, C)$
        - target: $(N,)$ integer classes
        - Output: scalar, or $(N,)$ with ``reduction="none"``

    Example:
        >>> loss_fn = ABSLDLoss(10)
        >>> s_adv, s_clean, t = torch.randn(3, 4, 10).unbind()
        >>> loss = loss_fn(s_adv, s_clean, t, torch.tensor([0, 1, 2, 3]))
        >>> loss.shape
        torch.Size([])
    """

    def __init__(
        self,
        num_classes: int,
        *,
        alpha: float = 5 / 6,
        student_temperature: float = 1.0,
        init_temperature: float = 1.0,
        lr: float = 0.1,
        min_temperature: float = 0.5,
        max_temperature: float = 5.0,
        adapt: Adapt = "both",
        coupling: Coupling = DEFAULT_COUPLING,
        reduction: Reduction = "mean",
        risk_reduction: RiskReduction = "mean",
        record_risk: bool = True,
        process_group: dist.ProcessGroup | None = None,
        validate_args: bool = True,
    ) -> None:
        super().__init__()
        self.alpha = check_unit_interval(alpha, "alpha")
        self.student_temperature = check_positive(student_temperature, "student_temperature")
        check_choice(adapt, "adapt", ("both", "adv", "none"))
        check_choice(reduction, "reduction", REDUCTIONS)
        self.adapt: Adapt = adapt
        self.coupling: Coupling = _coupling(coupling)
        self.reduction: Reduction = reduction
        self.record_risk = record_risk
        self.validate_args = validate_args
        common = dict(
            init_temperature=init_temperature,
            min_temperature=min_temperature,
            max_temperature=max_temperature,
            risk_reduction=risk_reduction,
            process_group=process_group,
            validate_args=validate_args,
        )
        self.adv = ClassTemperatureController(num_classes, lr=lr if adapt != "none" else 0.0, **common)  # type: ignore[arg-type]
        self.clean = ClassTemperatureController(num_classes, lr=lr if adapt == "both" else 0.0, **common)  # type: ignore[arg-type]
        self.num_classes = num_classes

    def teacher_temperatures(self, target: Tensor, kind: Kind = "adv", *, validated: bool = False) -> Tensor:
        """Per-sample teacher temperature of the ``kind`` term, as the loss uses it.

        ``validated=True`` skips the label value check (one host sync) when the caller has
        checked ``target`` already; shapes are always checked.

        Shape:
            - target: $(N,)$ integer classes
            - Output: $(N,)$ float32
        """
        check_choice(kind, "kind", ("adv", "clean"))
        checking = values_checkable(self.validate_args) and not validated
        check_integer_labels(target, self.num_classes, check_values=checking)
        t_adv, t_clean = _sample_temperatures(self.adv.temperatures, self.clean.temperatures, target, self.coupling)
        return t_adv if kind == "adv" else t_clean

    def soft_labels(
        self, teacher_logits: Tensor, target: Tensor, kind: Kind = "adv", *, validated: bool = False
    ) -> Tensor:
        """The teacher's soft labels for the ``kind`` term: what the attack maximises KL to.

        Shape:
            - teacher_logits: $(N, C)$
            - target: $(N,)$ integer classes
            - Output: $(N, C)$ float32 probabilities
        """
        check_logits(teacher_logits, "teacher_logits", self.num_classes)
        return soft_labels(teacher_logits, self.teacher_temperatures(target, kind, validated=validated))

    def forward(
        self,
        student_adv_logits: Tensor,
        student_clean_logits: Tensor,
        teacher_logits: Tensor,
        target: Tensor,
    ) -> Tensor:
        """The loss of Eq. 12; in training mode also records each sample's risk."""
        return self.combine(*self.terms(student_adv_logits, student_clean_logits, teacher_logits, target))

    def combine(self, adv_kl: Tensor, clean_kl: Tensor) -> Tensor:
        r"""The loss from its two terms: $\alpha \cdot$ ``adv_kl`` $+ (1 - \alpha) \cdot$ ``clean_kl``."""
        return _weighted(adv_kl, clean_kl, self.alpha)

    def terms(
        self,
        student_adv_logits: Tensor,
        student_clean_logits: Tensor,
        teacher_logits: Tensor,
        target: Tensor,
        *,
        validated: bool = False,
    ) -> tuple[Tensor, Tensor]:
        r"""The adversarial and the clean KL terms of Eq. 12, before the weights $\alpha$, $1 - \alpha$.

        Both keep their gradient; the loss is :meth:`combine` of them. In training mode this
        records each sample's risk, exactly as :meth:`forward` does (call one of the two per
        batch, not both). ``validated=True`` skips the label value check (one host sync) when
        the caller has checked ``target`` already; shapes are always checked.

        Shape:
            - student_adv_logits, student_clean_logits, teacher_logits: $(N, C)$
            - target: $(N,)$ integer classes
            - Output: two scalars, or two $(N,)$ with ``reduction="none"``
        """
        num_classes = _check_logit_triple(student_adv_logits, student_clean_logits, teacher_logits)
        if num_classes != self.num_classes:
            raise ValueError(
                f"Expected logits of shape (N, {self.num_classes}) for num_classes = {self.num_classes} "
                "(`student_adv_logits`, `student_clean_logits` and `teacher_logits`), but got "
                f"{tuple(student_adv_logits.shape)}."
            )
        check_integer_labels(
            target,
            self.num_classes,
            batch_size=student_adv_logits.shape[0],
            check_values=values_checkable(self.validate_args) and not validated,
        )
        t_adv, t_clean = _sample_temperatures(self.adv.temperatures, self.clean.temperatures, target, self.coupling)
        adv, clean = _kl_terms(
            student_adv_logits,
            student_clean_logits,
            teacher_logits,
            t_adv,
            t_clean,
            self.student_temperature,
            self.reduction,
        )
        if self.training and self.record_risk:
            self.record(student_adv_logits, student_clean_logits, target)
        return adv, clean

    @torch.no_grad()
    def record(self, student_adv_logits: Tensor, student_clean_logits: Tensor, target: Tensor) -> None:
        """Add the per-sample cross-entropy of both student outputs to the controllers.

        Shape:
            - student_adv_logits, student_clean_logits: $(N, C)$
            - target: $(N,)$ integer classes
        """
        for controller, logits in ((self.adv, student_adv_logits), (self.clean, student_clean_logits)):
            risk = F.cross_entropy(at_least_float32(logits.detach()), target, reduction="none")
            controller.accumulate(risk, target, validate=False)

    def step(self) -> tuple[Tensor, Tensor]:
        """End of epoch: step both controllers. Returns ``(tau_adv, tau_clean)``."""
        return self.adv.step(), self.clean.step()

    def extra_repr(self) -> str:
        return (
            f"num_classes={self.num_classes}, alpha={self.alpha:.4g}, adapt={self.adapt!r}, "
            f"coupling={self.coupling!r}, reduction={self.reduction!r}"
        )
