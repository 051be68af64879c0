r"""Per-class attack radii $\epsilon_k = s_k\,\epsilon$, set once per epoch from per-class statistics (FRL, CFA)."""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import Tensor

from ._internal.checks import (
    ProcessGroupArg,
    ValueCheck,
    check_bool,
    check_integer,
    check_logits,
    check_positive,
    raise_first,
    values_checkable,
)
from .stats import COUNTER, Bound, Bounds, ClassStatistics, ExtraState, class_means

__all__ = ["CalibratedEpsilon", "ClassEpsilon", "EpochController"]

DEFAULT_LAMBDA_EPS = 0.3  # CFA's base budget $\lambda_1$ for TRADES (paper Sec. 5.1).
DEFAULT_LAMBDA_BETA = 0.5  # CFA's $\lambda_2$ of the class-wise TRADES $\beta$ (paper Sec. 5.1 and ``--lambda-2``).
DEFAULT_BETA = 6.0  # TRADES' $\beta$ that CFA calibrates (paper Sec. 5.1 and ``--beta 6``).


def missing_classes(present: Tensor) -> ValueCheck:

    def raise_error() -> None:
        missing = (~present).nonzero().flatten().tolist()
        raise ValueError(
            f"Expected every class in the validation data, but classes {missing} have no sample; nothing was "
            "changed. Build the split with `stratified_split`."
        )

    return (~present).any(), raise_error


class EpochController(ExtraState, ClassStatistics):
    """Per-class sums that set buffers by :meth:`rule` at the end of each epoch (all checks in one read)."""

    epochs_stepped: int

    def rule(self, synced: Tensor) -> tuple[dict[str, Tensor], list[ValueCheck]]:
        """The new buffers from the epoch's synced sums, and the checks that must pass first."""
        raise NotImplementedError

    @torch.no_grad()
    def _end_epoch(self, apply: bool = True) -> None:
        synced = self.synced()
        new, checks = self.rule(synced) if apply else ({}, [])
        if values_checkable(self.validate_args):

            def raise_error() -> None:
                raise ValueError(f"Expected finite accumulated statistics at `step()`, but got {synced.tolist()}.")

            raise_first([(~torch.isfinite(synced).all(), raise_error), *checks])
        for name, value in new.items():
            getattr(self, name).copy_(value)
        self.reset()
        self.epochs_stepped += 1

    def state_bounds(self) -> dict[str, Bounds]:
        return {"epochs_stepped": COUNTER}


class ClassEpsilon(EpochController):
    r"""Per-class scales $s \in \mathbb{R}^C$ of an attack radius: class $k$ is attacked within $s_k\,\epsilon$.

    :meth:`rule` says how the epoch's synced sums set the scales (start: 1); :meth:`step` syncs, applies it once
    epoch ``begin_epoch`` (0-based) is next, resets. ``scale_step``: each sample's step is ``step_size`` times
    the largest scale in its batch (FRL), else the common ``step_size`` (CFA).
    """

    scale: Tensor
    shown: ClassVar[tuple[str, ...]] = ("num_classes", "begin_epoch", "scale_step")

    def __init__(
        self,
        num_classes: int,
        num_stats: int = 1,
        *,
        begin_epoch: int = 0,
        scale_step: bool = False,
        process_group: ProcessGroupArg = None,
        validate_args: bool = True,
    ) -> None:
        super().__init__(num_classes, num_stats, process_group=process_group, validate_args=validate_args)
        self.begin_epoch = check_integer(begin_epoch, "begin_epoch", minimum=0)
        self.scale_step = check_bool(scale_step, "scale_step")
        self.epochs_stepped = 0
        self.updates = 0
        self.register_buffer("scale", torch.ones(self.num_classes, dtype=torch.float64))

    @property
    def calibrating(self) -> bool:
        """Whether the next :meth:`step` applies the rule (the epoch after it is ``begin_epoch`` or later)."""
        return self.epochs_stepped + 1 >= self.begin_epoch

    def radii(self, eps: float) -> Tensor:
        r"""Each class's radius $s_k\,\epsilon$, shape $(C,)$ float64."""
        return self.scale * check_positive(eps, "eps", allow_zero=True)

    def forward(
        self, target: Tensor, eps: float, step_size: float, *, present: Tensor | None = None
    ) -> tuple[Tensor, Any]:
        r"""Each sample's radius $s_{y_i}\,\epsilon$ $(N,)$ and step.

        ``scale_step``: ``step_size`` times the largest scale of the labels' classes, or of ``present`` $(C,)$.
        """
        eps = check_positive(eps, "eps", allow_zero=True)
        step_size = check_positive(step_size, "step_size")
        if present is not None and (
            not isinstance(present, Tensor) or present.dtype != torch.bool or present.shape != self.scale.shape
        ):
            got = f"{present.dtype} of shape {tuple(present.shape)}" if isinstance(present, Tensor) else present
            raise ValueError(f"Expected `present` to be a bool tensor of shape ({self.num_classes},), but got {got}.")
        target = self._checked(target)
        return self._forward(target, eps, step_size, present=present)

    def _forward(
        self, target: Tensor, eps: float, step_size: float, *, present: Tensor | None = None
    ) -> tuple[Tensor, Any]:
        scales = self.scale[target]
        if not self.scale_step:
            return scales * eps, step_size
        if present is not None:
            largest = torch.where(present, self.scale, torch.zeros_like(self.scale)).amax()
        else:
            largest = scales.amax() if scales.numel() else scales.new_ones(())
        return scales * eps, (largest * step_size).expand(scales.shape)

    def step(self) -> Tensor:
        """End the epoch: sync the sums, apply the :meth:`rule` when due (all or nothing), reset; the scales $(C,)$."""
        calibrating = self.calibrating
        self._end_epoch(calibrating)
        self.updates += int(calibrating)
        return self.scale

    def state_bounds(self) -> dict[str, Bounds]:
        return {**super().state_bounds(), "updates": COUNTER, "scale": Bound(0)}


def _calibration(previous: Tensor, accuracy: Tensor, present: Tensor, lam: float, base: float) -> Tensor:
    r"""CFA's $(\lambda + t_k)\,b$ (Eqs. 6, 7, unclipped) for classes in ``present``, else ``previous``; all $(C,)$."""
    calibrated = (lam + accuracy.to(torch.float64)) * base
    return torch.where(present, calibrated, previous.to(torch.float64)).to(previous.dtype)


class CalibratedEpsilon(ClassEpsilon):
    r"""CFA's CCM and CCR: $\epsilon_k = (\lambda_1 + t_k)\,\epsilon$, $\beta_k = (\lambda_2 + t_k)\,\beta$ (Eqs. 6, 7).

    $t_k$: class $k$'s training robust accuracy (:meth:`update`); absent: kept. ``lambda_beta=None``: CCM.
    """

    value_bound = Bound(0, 1, integer=True)  # whether a sample is classified correctly
    class_beta: Tensor
    shown = ("num_classes", "lambda_eps", "beta", "lambda_beta", "begin_epoch")

    def __init__(
        self,
        num_classes: int,
        *,
        lambda_eps: float = DEFAULT_LAMBDA_EPS,
        beta: float = DEFAULT_BETA,
        lambda_beta: float | None = DEFAULT_LAMBDA_BETA,
        begin_epoch: int = 0,
        process_group: ProcessGroupArg = None,
        validate_args: bool = True,
    ) -> None:
        super().__init__(num_classes, begin_epoch=begin_epoch, process_group=process_group, validate_args=validate_args)
        self.lambda_eps = check_positive(lambda_eps, "lambda_eps", allow_zero=True)
        self.beta = check_positive(beta, "beta", allow_zero=True)
        self.lambda_beta = None if lambda_beta is None else check_positive(lambda_beta, "lambda_beta", allow_zero=True)
        self.register_buffer("class_beta", torch.full((self.num_classes,), self.beta, dtype=torch.float64))

    def update(self, values: Tensor, target: Tensor) -> None:
        """Add whether each sample's adversarial logits ``values`` $(N, C)$ predict its class $(N,)$."""
        check_logits(values, "values", self.num_classes, device=self.scale.device, owner=f"the {type(self).__name__}")
        self._update(
            values, self._checked(target, values.shape[0], self._value_flag("values", values, target, Bound()))
        )

    @torch.no_grad()
    def _update(self, values: Tensor, target: Tensor) -> None:
        self._accumulate((values.detach().argmax(dim=1) == target).to(torch.float64), target)

    def rule(self, synced: Tensor) -> tuple[dict[str, Tensor], list[ValueCheck]]:
        means, present = class_means(synced)
        new = {"scale": _calibration(self.scale, means[0], present, self.lambda_eps, 1.0)}
        if self.lambda_beta is not None:
            new["class_beta"] = _calibration(self.class_beta, means[0], present, self.lambda_beta, self.beta)
        return new, []

    def state_bounds(self) -> dict[str, Bounds]:
        low, high = (1.0, 1.0) if self.lambda_beta is None else (self.lambda_beta, self.lambda_beta + 1)
        scale = Bound(self.lambda_eps, self.lambda_eps + 1, start=1.0)
        beta = Bound(low * self.beta, high * self.beta, start=self.beta)
        return {**super().state_bounds(), "scale": scale, "class_beta": beta}
