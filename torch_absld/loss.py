"""The ABSLD distillation loss (Eq. 12) as a pure function and as a module."""

from __future__ import annotations

import weakref
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ._internal.checks import (
    ProcessGroupArg,
    ValueCheck,
    at_least_float32,
    check_bool,
    check_choice,
    check_device,
    check_integer_labels,
    check_logits,
    check_logits_alike,
    check_num_classes,
    check_positive,
    check_unit_interval,
    defer,
    label_range_flag,
    logit_flag,
    raise_first,
    temperature_flag,
    values_checkable,
)
from ._internal.modules import check_state_first
from .kl import REDUCTIONS, Reduction, _soft_label_kl, _soft_labels
from .temperature import ClassTemperatureController, RiskReduction

__all__ = ["DEFAULT_COUPLING", "ABSLDLoss", "absld_loss"]

Kind = Literal["adv", "clean"]
Adapt = Literal["both", "adv", "none"]
Coupling = Literal["separate", "product"]

DEFAULT_COUPLING: Coupling = "product"
"""How the two temperature vectors enter the loss unless told otherwise (see :class:`ABSLDLoss`)."""


def _sample_temperatures(
    tau_adv: Tensor, tau_clean: Tensor, target: Tensor, coupling: Coupling
) -> tuple[Tensor, Tensor]:
    r"""Each sample's teacher temperature of both terms: $\tau^{adv}[y]$, $\tau^{clean}[y]$ or their product."""
    t_adv, t_clean = tau_adv[target], tau_clean[target]
    return (t_adv * t_clean,) * 2 if coupling == "product" else (t_adv, t_clean)


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
    validate_args: bool = True,
) -> Tensor:
    r"""ABSLD distillation loss (Eq. 12).

    $L = \alpha\,\mathrm{KL}(p^{adv} \| q^{adv}) + (1-\alpha)\,\mathrm{KL}(p^{clean} \| q^{clean})$,
    $p^{k} = \mathrm{softmax}(z_t / \tau^{k}[y])$ (the temperature of each sample's true class;
    ``coupling="product"``: $\tau^{adv}[y]\,\tau^{clean}[y]$ in both, the authors' script),
    $q = \mathrm{softmax}(z_s / \tau_s)$; ``teacher``: logits of the clean batch. Reductions as
    :func:`~torch_absld.kl.soft_label_kl`.

    Shape:
        - student_adv, student_clean, teacher: $(N, C)$
        - target: $(N,)$ integer classes in $[0, C)$
        - tau_adv, tau_clean: $(C,)$, positive
        - Output: scalar, or $(N,)$ with ``reduction="none"``
    """
    named = (("student_adv", student_adv), ("student_clean", student_clean), ("teacher", teacher))
    num_classes, device, owner = check_logits_alike(named), student_adv.device, "`student_adv`"
    target = check_integer_labels(
        target, num_classes, batch_size=len(student_adv), check_values=False, device=device, owner=owner
    )
    checks: list[ValueCheck] = [label_range_flag(target, num_classes), logit_flag(teacher, "teacher")]
    for name, tau in (("tau_adv", tau_adv), ("tau_clean", tau_clean)):
        if not isinstance(tau, Tensor) or tau.shape != (num_classes,):
            got = tuple(tau.shape) if isinstance(tau, Tensor) else type(tau).__name__
            error = ValueError if isinstance(tau, Tensor) else TypeError
            raise error(f"Expected `{name}` to be a tensor of shape ({num_classes},), but got {got}.")
        check_device(tau, device, name, owner)
        checks.append(temperature_flag(tau, name))
    alpha = check_unit_interval(alpha, "alpha")
    student_temperature = check_positive(student_temperature, "student_temperature")
    check_choice(reduction, "reduction", REDUCTIONS)
    check_choice(coupling, "coupling", ("separate", "product"))
    if values_checkable(validate_args):
        raise_first(checks)
    return _absld_loss(
        student_adv,
        student_clean,
        teacher,
        target,
        tau_adv,
        tau_clean,
        alpha=alpha,
        student_temperature=student_temperature,
        reduction=reduction,
        coupling=coupling,
    )


def _absld_loss(
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
    """:func:`absld_loss` without its checks (``target`` int64)."""
    terms = (student_adv, student_clean, teacher, target, tau_adv, tau_clean, student_temperature, reduction)
    adv, clean = _kl_terms(*terms, coupling)
    return alpha * adv + (1 - alpha) * clean


def _kl_terms(
    student_adv: Tensor,
    student_clean: Tensor,
    teacher: Tensor,
    target: Tensor,
    tau_adv: Tensor,
    tau_clean: Tensor,
    student_temperature: float,
    reduction: Reduction,
    coupling: Coupling,
) -> tuple[Tensor, Tensor]:
    t_adv, t_clean = _sample_temperatures(tau_adv, tau_clean, target, coupling)
    kl: dict[str, Any] = {"student_temperature": student_temperature, "reduction": reduction}
    return _soft_label_kl(student_adv, teacher, t_adv, **kl), _soft_label_kl(student_clean, teacher, t_clean, **kl)


class ABSLDLoss(nn.Module):
    r"""ABSLD distillation loss with its two per-class temperature controllers.

    ``adv`` ($\tilde\tau$: adversarial term and attack) and ``clean`` ($\tau$: clean term) are
    :class:`ClassTemperatureController`; in training mode each call records every sample's
    risk into them, and :meth:`step` at the epoch end applies Eq. 11. Formula: :func:`absld_loss`.

    Args:
        alpha: as :func:`absld_loss` (5/6: RSLAD's default).
        student_temperature, coupling, reduction: as :func:`absld_loss`.
        init_temperature, lr: starting temperature and $\beta$ of the adapting controllers.
        min_temperature, max_temperature: the clamp (paper: 0.5, 5; ResNet-18 on CIFAR-100: 0.8, 3).
        adapt: ``"both"`` (ABSLD), ``"adv"`` (ABSLD$_{adv}$), ``"none"`` (frozen: RSLAD).
        risk_reduction, process_group, validate_args: the controllers'; record_risk: record in training mode.

    Shape:
        - student_adv_logits, student_clean_logits, teacher_logits: $(N, C)$
        - target: $(N,)$ integer classes
        - Output: scalar, or $(N,)$ with ``reduction="none"``

    Example:
        >>> loss_fn = ABSLDLoss(10)
        >>> s_adv, s_clean, t = torch.randn(3, 4, 10).unbind()
        >>> loss_fn(s_adv, s_clean, t, torch.tensor([0, 1, 2, 3])).shape
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
        process_group: ProcessGroupArg = None,
        validate_args: bool = True,
    ) -> None:
        super().__init__()
        num_classes = check_num_classes(num_classes, minimum=2)
        self.alpha = check_unit_interval(alpha, "alpha")
        self.student_temperature = check_positive(student_temperature, "student_temperature")
        check_choice(adapt, "adapt", ("both", "adv", "none"))
        check_choice(coupling, "coupling", ("separate", "product"))
        check_choice(reduction, "reduction", REDUCTIONS)
        self.adapt, self.coupling, self.reduction = adapt, coupling, reduction
        self.record_risk = check_bool(record_risk, "record_risk")
        self.validate_args = check_bool(validate_args, "validate_args")
        common: dict[str, Any] = dict(
            init_temperature=init_temperature,
            risk_reduction=risk_reduction,
            min_temperature=min_temperature,
            max_temperature=max_temperature,
            process_group=process_group,
            validate_args=validate_args,
        )
        self.adv = ClassTemperatureController(num_classes, lr=lr if adapt != "none" else 0.0, **common)
        self.clean = ClassTemperatureController(num_classes, lr=lr if adapt == "both" else 0.0, **common)
        self.num_classes = num_classes
        self._last_soft_labels: tuple[Any, ...] | None = None
        # Both controllers check the checkpoint before either copies anything (a rejected load changes nothing).
        self.register_load_state_dict_pre_hook(check_state_first)  # type: ignore[no-untyped-call]

    def _labels(self, target: Tensor, batch_size: int | None = None) -> Tensor:
        """``target`` with its dtype, shape and device checked (not its values), as int64."""
        device, owner = self.adv.temperatures.device, "the loss"
        return check_integer_labels(
            target, self.num_classes, batch_size=batch_size, check_values=False, device=device, owner=owner
        )

    def _flags(self, target: Tensor, teacher_logits: Tensor | None = None) -> list[ValueCheck]:
        """The value flags of labels and teacher logits (none unless eager with ``validate_args``)."""
        teacher = [] if teacher_logits is None else [logit_flag(teacher_logits, "teacher_logits")]
        return [label_range_flag(target, self.num_classes), *teacher] if values_checkable(self.validate_args) else []

    def _checked(self, target: Tensor, *named: tuple[str, Tensor]) -> Tensor:
        """Check logits and labels; read their values with any deferred flags (not again after :meth:`soft_labels`)."""
        if check_logits_alike(named, self.adv.temperatures.device, "the loss (its temperatures)") != self.num_classes:
            names = ", ".join(f"`{name}`" for name, _ in named)
            expected = f"(N, {self.num_classes}) for num_classes = {self.num_classes} ({names})"
            raise ValueError(f"Expected logits of shape {expected}, but got {tuple(named[0][1].shape)}.")
        labels = self._labels(target, named[0][1].shape[0])
        teacher = dict(named).get("teacher_logits")
        if values_checkable(self.validate_args):
            last = self._last_soft_labels if teacher is not None else None
            self._last_soft_labels = None if teacher is not None else self._last_soft_labels
            read = last is not None and last[0]() is teacher and last[2]() is target  # by soft_labels' flags
            fresh = read and (teacher._version, target._version) == (last[1], last[3])  # type: ignore[index, union-attr]
            raise_first([] if fresh else self._flags(labels, teacher))
        return labels

    def teacher_temperatures(self, target: Tensor, kind: Kind = "adv") -> Tensor:
        """Per-sample teacher temperature $(N,)$ float32 of the ``kind`` term for labels $(N,)$."""
        check_choice(kind, "kind", ("adv", "clean"))
        target = self._labels(target)
        raise_first(self._flags(target))
        return self._teacher_temperatures(target, kind)

    def _teacher_temperatures(self, target: Tensor, kind: Kind = "adv") -> Tensor:
        t_adv, t_clean = _sample_temperatures(self.adv.temperatures, self.clean.temperatures, target, self.coupling)
        return t_adv if kind == "adv" else t_clean

    def soft_labels(self, teacher_logits: Tensor, target: Tensor, kind: Kind = "adv") -> Tensor:
        """The teacher's soft labels for the ``kind`` term: what the attack maximises KL to.

        Shapes are checked now; the values (label range, finite teacher logits) are read by the
        next checked call of the step (the attack, else this loss, which then does not read them
        again for the same, unchanged tensors, or the next ``soft_labels``, with its own).

        Shape:
            - teacher_logits: $(N, C)$
            - target: $(N,)$ integer classes
            - Output: $(N, C)$ float32 probabilities
        """
        check_choice(kind, "kind", ("adv", "clean"))
        check_logits(
            teacher_logits, "teacher_logits", self.num_classes, device=self.adv.temperatures.device, owner="the loss"
        )
        labels = self._labels(target, teacher_logits.shape[0])
        checks = self._flags(labels, teacher_logits)
        if checks:
            defer(checks)
            tracked = not (teacher_logits.is_inference() or target.is_inference())  # inference tensors: no versions
            t, y = teacher_logits, target
            self._last_soft_labels = (weakref.ref(t), t._version, weakref.ref(y), y._version) if tracked else None
            labels = labels.clamp(0, self.num_classes - 1)  # index safely until the deferred range check is read
        return self._soft_labels(teacher_logits, labels, kind)

    def _soft_labels(self, teacher_logits: Tensor, target: Tensor, kind: Kind = "adv") -> Tensor:
        return _soft_labels(teacher_logits, self._teacher_temperatures(target, kind))

    def forward(
        self, student_adv_logits: Tensor, student_clean_logits: Tensor, teacher_logits: Tensor, target: Tensor
    ) -> Tensor:
        """The loss of Eq. 12; in training mode also records each sample's risk."""
        return self.combine(*self.terms(student_adv_logits, student_clean_logits, teacher_logits, target))

    def _forward(
        self, student_adv_logits: Tensor, student_clean_logits: Tensor, teacher_logits: Tensor, target: Tensor
    ) -> Tensor:
        return self.combine(*self._terms(student_adv_logits, student_clean_logits, teacher_logits, target))

    def combine(self, adv_kl: Tensor, clean_kl: Tensor) -> Tensor:
        r"""The loss from its two terms: $\alpha \cdot$ ``adv_kl`` $+ (1 - \alpha) \cdot$ ``clean_kl``."""
        return self.alpha * adv_kl + (1 - self.alpha) * clean_kl

    def terms(
        self, student_adv_logits: Tensor, student_clean_logits: Tensor, teacher_logits: Tensor, target: Tensor
    ) -> tuple[Tensor, Tensor]:
        r"""The two KL terms of Eq. 12 (scalars, or $(N,)$ with ``"none"``), whose :meth:`combine` is the loss.

        Records risks in training mode, as :meth:`forward` does (call one of the two per batch).
        """
        logits = (student_adv_logits, student_clean_logits, teacher_logits)
        labels = self._checked(target, *zip(("student_adv_logits", "student_clean_logits", "teacher_logits"), logits))
        return self._terms(student_adv_logits, student_clean_logits, teacher_logits, labels)

    def _terms(
        self, student_adv_logits: Tensor, student_clean_logits: Tensor, teacher_logits: Tensor, target: Tensor
    ) -> tuple[Tensor, Tensor]:
        taus = (self.adv.temperatures, self.clean.temperatures, self.student_temperature, self.reduction)
        adv, clean = _kl_terms(student_adv_logits, student_clean_logits, teacher_logits, target, *taus, self.coupling)
        if self.training and self.record_risk:
            self._record(student_adv_logits, student_clean_logits, target)
        return adv, clean

    def record(self, student_adv_logits: Tensor, student_clean_logits: Tensor, target: Tensor) -> None:
        """Add the per-sample cross-entropy of both student outputs $(N, C)$ to the controllers."""
        named = (("student_adv_logits", student_adv_logits), ("student_clean_logits", student_clean_logits))
        self._record(student_adv_logits, student_clean_logits, self._checked(target, *named))

    @torch.no_grad()
    def _record(self, student_adv_logits: Tensor, student_clean_logits: Tensor, target: Tensor) -> None:
        for controller, logits in ((self.adv, student_adv_logits), (self.clean, student_clean_logits)):
            controller._accumulate(F.cross_entropy(at_least_float32(logits.detach()), target, reduction="none"), target)

    def step(self) -> tuple[Tensor, Tensor]:
        """End of epoch: step both controllers; return ``(tau_adv, tau_clean)`` (a collective, see theirs)."""
        return self.adv.step(), self.clean.step()

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_last_soft_labels": None}  # weak references do not pickle

    def extra_repr(self) -> str:
        shown = f"adapt={self.adapt!r}, coupling={self.coupling!r}, reduction={self.reduction!r}"
        return f"num_classes={self.num_classes}, alpha={self.alpha:.4g}, {shown}"
