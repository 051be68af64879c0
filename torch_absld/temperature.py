"""Per-class teacher temperatures adapted once per epoch from the student's class-wise risk (Eq. 11)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from ._internal.checks import (
    ProcessGroupArg,
    at_least_float32,
    check_choice,
    check_logits,
    check_num_classes,
    check_positive,
)
from .stats import COUNTER, Bound, Bounds, ClassStatistics, ExtraState, class_means

__all__ = ["ClassTemperatureController", "temperature_update"]

RiskReduction = Literal["mean", "sum"]


def temperature_update(
    temperatures: Tensor,
    risk: Tensor,
    present: Tensor,
    *,
    lr: float,
    min_temperature: float,
    max_temperature: float,
    gap_tolerance: float = 1e-4,
) -> Tensor:
    r"""Eq. 11: $\tau_k \leftarrow \mathrm{clip}(\tau_k - \beta\, g_k / \max_j |g_j|, \tau_{\min}, \tau_{\max})$.

    $g_k = R_k - \frac{1}{|P|}\sum_{i \in P} R_i$ over the classes $P$ seen (``present``); the others keep
    their temperature. Nothing moves when $\max_j |g_j| \le$ ``gap_tolerance`` $\cdot |\bar R|$ (rounding noise).
    All $(C,)$; the output has the dtype of ``temperatures``.
    """
    lr, min_temperature, max_temperature = _checked_rule(lr, min_temperature, max_temperature)
    gap_tolerance = check_positive(gap_tolerance, "gap_tolerance", allow_zero=True)
    if not isinstance(temperatures, Tensor) or not temperatures.is_floating_point() or temperatures.dim() != 1:
        raise TypeError(
            f"Expected `temperatures` to be a floating point tensor of shape (C,), but got {_got(temperatures)}."
        )
    shape = tuple(temperatures.shape)
    if not isinstance(risk, Tensor) or tuple(risk.shape) != shape:
        raise ValueError(f"Expected `risk` of shape {shape} like `temperatures`, but got {_got(risk)}.")
    if not isinstance(present, Tensor) or present.dtype != torch.bool or tuple(present.shape) != shape:
        raise TypeError(f"Expected `present` to be a bool tensor of shape {shape}, but got {_got(present)}.")
    if not bool(torch.isfinite(risk[present]).all()):
        raise ValueError(
            f"Expected `risk` to be finite for every present class, but got {risk.tolist()}. "
            "Classes outside `present` may hold anything."
        )
    return _temperature_update(temperatures, risk, present, lr, (min_temperature, max_temperature), gap_tolerance)


def _temperature_update(
    temperatures: Tensor, risk: Tensor, present: Tensor, lr: float, clamp: tuple[float, float], gap_tolerance: float
) -> Tensor:
    risk = risk.to(torch.float64)
    mean_risk = risk[present].mean()  # NaN when no class is present: nothing moves
    gap = torch.where(present, risk - mean_risk, torch.zeros_like(risk))
    largest = gap.abs().max() if gap.numel() else gap.new_zeros(())
    new = (temperatures.to(torch.float64) - lr * gap / largest).clamp(*clamp)
    return torch.where(largest > gap_tolerance * mean_risk.abs(), new.to(temperatures.dtype), temperatures)


def _got(value: object) -> str:
    return f"{value.dtype} of shape {tuple(value.shape)}" if isinstance(value, Tensor) else type(value).__name__


def _checked_rule(lr: object, min_temperature: object, max_temperature: object) -> tuple[float, float, float]:
    low = check_positive(min_temperature, "min_temperature")
    high = check_positive(max_temperature, "max_temperature")
    if low > high:
        raise ValueError(f"Expected `min_temperature` <= `max_temperature`, but got {low} > {high}.")
    return check_positive(lr, "lr", allow_zero=True), low, high


class ClassTemperatureController(ExtraState, ClassStatistics):
    r"""Per-class temperatures $\tau \in \mathbb{R}^C$ driven by the student's class-wise risk.

    :meth:`update` adds each sample's cross-entropy into its class's sums; :meth:`step` all-reduces them,
    applies Eq. 11 (:func:`temperature_update`; risk: mean, or ``"sum"`` as the authors' script) and resets.
    ``lr`` is $\beta$ (0.1, the paper; 0 freezes, RSLAD).

    Example:
        >>> ctrl = ClassTemperatureController(3)
        >>> logits = torch.tensor([[4.0, 0.0, 0.0], [0.0, 0.5, 0.0], [0.0, 0.0, 2.0]])
        >>> ctrl.update(logits, torch.tensor([0, 1, 2]))
        >>> ctrl.step()
        tensor([1.0733, 0.9000, 1.0267])
    """

    value_bound = Bound(0)  # a cross-entropy
    shown = ("num_classes", "lr", "min_temperature", "max_temperature", "risk_reduction")
    temperatures: Tensor
    last_risk: Tensor

    def __init__(
        self,
        num_classes: int,
        *,
        init_temperature: float = 1.0,
        lr: float = 0.1,
        min_temperature: float = 0.5,
        max_temperature: float = 5.0,
        risk_reduction: RiskReduction = "mean",
        gap_tolerance: float = 1e-4,
        process_group: ProcessGroupArg = None,
        validate_args: bool = True,
    ) -> None:
        num_classes = check_num_classes(num_classes, minimum=2)
        super().__init__(num_classes, process_group=process_group, validate_args=validate_args)
        self.lr, self.min_temperature, self.max_temperature = _checked_rule(lr, min_temperature, max_temperature)
        init = check_positive(init_temperature, "init_temperature")
        if not self.min_temperature <= init <= self.max_temperature:
            raise ValueError(
                f"Expected `init_temperature` in [min_temperature, max_temperature] = "
                f"[{self.min_temperature}, {self.max_temperature}], but got {init}."
            )
        check_choice(risk_reduction, "risk_reduction", ("mean", "sum"))
        self.init_temperature = init
        self.base_lr = self.lr
        self.risk_reduction: RiskReduction = risk_reduction
        self.gap_tolerance = check_positive(gap_tolerance, "gap_tolerance", allow_zero=True)
        self.epochs_stepped = 0
        self._lr_source: Callable[[], float] | None = None
        self.register_buffer("temperatures", torch.full((num_classes,), init, dtype=torch.float32))
        self.register_buffer("last_risk", torch.full((num_classes,), float("nan"), dtype=torch.float64), False)

    @property
    def risk_sum(self) -> Tensor:
        """Per-class sum of the risk accumulated this epoch, $(C,)$ (a view)."""
        return self.accumulator[0]

    @property
    def count(self) -> Tensor:
        """Per-class number of samples accumulated this epoch, $(C,)$ (a view)."""
        return self.sample_counts

    def forward(self, target: Tensor) -> Tensor:
        """Temperature of each sample's own class, $(N,)$ float32 for labels $(N,)$."""
        return self.temperatures[self._checked_labels(target)]

    def update(self, logits: Tensor, target: Tensor) -> None:
        """Add each sample's cross-entropy (detached, float32) of ``logits`` $(N, C)$ into its class's sums."""
        check_logits(logits, "logits", self.num_classes, device=self.accumulator.device, owner="the controller")
        self._update(
            logits, self._checked(target, logits.shape[0], self._value_flag("logits", logits, target, Bound()))
        )

    @torch.no_grad()
    def _update(self, logits: Tensor, target: Tensor) -> None:
        self._accumulate(F.cross_entropy(at_least_float32(logits.detach()), target, reduction="none"), target)

    def class_risk(self) -> tuple[Tensor, Tensor]:
        """This rank's per-class risk so far, $(C,)$ float64 (``NaN`` for unseen classes), and present $(C,)$ bool."""
        return self._risk_from(self.accumulator)

    def _risk_from(self, accumulator: Tensor) -> tuple[Tensor, Tensor]:
        means, present = class_means(accumulator)
        risk = means[0] if self.risk_reduction == "mean" else accumulator[0].clone()
        return torch.where(present, risk, torch.full_like(risk, float("nan"))), present

    def follow_lr(self, source: Callable[[], float] | None) -> None:
        r"""Take $\beta$ at each :meth:`step` from ``source()`` (``None``: :attr:`lr`); see ``follow_optimizer_lr``."""
        self._lr_source = source

    @torch.no_grad()
    def step(self) -> Tensor:
        """End the epoch (a collective): sum the risks across ranks, apply Eq. 11, reset; the temperatures."""
        synced = self.synced()
        if not bool(torch.isfinite(synced).all()):
            bad = (~torch.isfinite(synced[0])).nonzero().flatten().tolist()
            raise ValueError(
                f"Expected finite accumulated risk at `step()`, but classes {bad} have non-finite "
                "risk. The student's logits diverged (check the learning rate, AMP loss scaling "
                "or the inputs); temperatures were left unchanged."
            )
        if self._lr_source is not None:
            self.lr = check_positive(self._lr_source(), "lr", allow_zero=True)
        risk, present = self._risk_from(synced)
        self.last_risk.copy_(risk)
        if self.lr > 0:
            clamp = (self.min_temperature, self.max_temperature)
            risk = torch.nan_to_num(risk)
            self.temperatures.copy_(
                _temperature_update(self.temperatures, risk, present, self.lr, clamp, self.gap_tolerance)
            )
        self.reset()
        self.epochs_stepped += 1
        return self.temperatures

    def state_bounds(self) -> dict[str, Bounds]:
        lr = Bound(0)
        clamp = Bound(self.min_temperature, self.max_temperature, label="[min_temperature, max_temperature]")
        return {"temperatures": clamp, "lr": lr, "base_lr": lr, "epochs_stepped": COUNTER}

    def _check_loaded_state(self, state_dict: Mapping[str, Any], prefix: str) -> None:
        if prefix + "_extra_state" in state_dict:
            base_lr = state_dict[prefix + "_extra_state"]["base_lr"]
            if (base_lr == 0) != (self.base_lr == 0):
                mine = "frozen (base `lr` 0)" if self.base_lr == 0 else f"adapting (base `lr` {self.base_lr})"
                raise ValueError(
                    f"Expected a checkpoint whose temperatures are {mine} like this controller's, but its base "
                    f"`lr` is {base_lr}. Build the ABSLDLoss with the `adapt` and `lr` of the run that saved it "
                    "(`adapt`='none' freezes both controllers, 'adv' the clean one)."
                )
