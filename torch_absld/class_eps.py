r"""Per-class attack radii $\epsilon_k = s_k\,\epsilon$, set once per epoch from per-class statistics (FRL, CFA)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import Tensor
from typing_extensions import Self

from ._internal.checks import (
    ProcessGroupArg,
    ValueCheck,
    check_bool,
    check_integer,
    check_logits,
    check_positive,
    label_range_flag,
    raise_first,
    values_checkable,
)
from ._internal.modules import loaded_tensor
from .stats import ClassStatistics, class_means

__all__ = ["CalibratedEpsilon", "ClassEpsilon", "EpochController"]

DEFAULT_LAMBDA_EPS = 0.3  # CFA's base budget $\lambda_1$ for TRADES (paper Sec. 5.1).
DEFAULT_LAMBDA_BETA = 0.5  # CFA's $\lambda_2$ of the class-wise TRADES $\beta$ (paper Sec. 5.1 and ``--lambda-2``).
DEFAULT_BETA = 6.0  # TRADES' $\beta$ that CFA calibrates (paper Sec. 5.1 and ``--beta 6``).


def checked_counters(state: Any, *names: str) -> tuple[int, ...]:
    """The ints ``names`` (>= 0) of an extra state dict; raise if one is missing or bad."""
    values = [state.get(name) if isinstance(state, dict) else None for name in names]
    if not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in values):
        listed = ", ".join(f"'{name}'" for name in names)
        raise ValueError(f"Expected the extra state to be a dict with ints {listed} >= 0, but got {state!r}.")
    return tuple(values)  # type: ignore[arg-type]


def missing_classes(present: Tensor) -> ValueCheck:
    """Whether a class has no validation sample, and the error."""

    def raise_error() -> None:
        missing = (~present).nonzero().flatten().tolist()
        raise ValueError(
            f"Expected every class in the validation data, but classes {missing} have no sample; nothing was "
            "changed. Build the split with `stratified_split`."
        )

    return (~present).any(), raise_error


class EpochController(ClassStatistics):
    """Per-class sums whose buffers keep their dtype under casts, :attr:`counters` saved, buffers checked on load.

    At the end of an epoch the synced sums set the buffers by :meth:`rule` (all checks in one read).
    Every controller takes ``process_group`` (ranks whose sums are added; ``None``: the default group,
    ``False``: this rank alone) and ``validate_args`` (check values in eager mode, one read per call).
    """

    counters: tuple[str, ...] = ("epochs_stepped",)
    epochs_stepped: int

    def _checked(self, target: Tensor, batch_size: int | None = None, *flags: ValueCheck) -> Tensor:
        """``target`` as int64, its range and ``flags`` read in one transfer (with ``validate_args``)."""
        target = self._checked_labels(target, batch_size, check_values=False)
        if values_checkable(self.validate_args):
            raise_first([label_range_flag(target, self.num_classes), *flags])
        return target

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

    def _apply(self, fn: Callable[[Tensor], Tensor], recurse: bool = True) -> Self:
        """Follow device moves; keep the buffers' dtypes under whole-module casts (``.half()``)."""
        kept = dict(self._buffers)
        super()._apply(fn, recurse)
        for name, buffer in kept.items():
            if buffer is not None:
                self._buffers[name] = buffer.to(device=self._buffers[name].device)  # type: ignore[union-attr]
        return self

    def get_extra_state(self) -> dict[str, Any]:
        """The counters."""
        return {name: getattr(self, name) for name in self.counters}

    def set_extra_state(self, state: Any) -> None:
        """Restore what :meth:`get_extra_state` saved."""
        for name, value in zip(self.counters, checked_counters(state, *self.counters)):
            setattr(self, name, value)

    def buffer_error(self, name: str, values: Tensor) -> str | None:
        """What a loaded buffer (float64, on the CPU) was expected to be, when it is bad; else ``None``."""
        return None if bool(torch.isfinite(values).all()) else "to be finite"

    def _check_loaded_state(self, state_dict: Mapping[str, Any], prefix: str) -> None:
        """Reject bad buffers and counters before anything is copied."""
        for name, buffer in self._buffers.items():
            loaded = None if buffer is None else loaded_tensor(state_dict, prefix, name, buffer)
            values = None if loaded is None else loaded.detach().to("cpu", torch.float64)
            expected = None if values is None else self.buffer_error(name, values)
            if values is not None and expected is not None:
                raise ValueError(f"Expected the loaded `{name}` {expected}, but got {values.tolist()}.")
        if prefix + "_extra_state" in state_dict:
            checked_counters(state_dict[prefix + "_extra_state"], *self.counters)


class ClassEpsilon(EpochController):
    r"""Per-class scales $s \in \mathbb{R}^C$ of an attack radius: class $k$ is attacked within $s_k\,\epsilon$.

    Subclasses add a batch's $S$ per-sample quantities with ``update`` and say in :meth:`rule` how
    the epoch's synced sums set the scales. :meth:`step` syncs, applies the rule once epoch
    ``begin_epoch`` is next, resets the sums and counts the epoch. Scales start at 1.

    Args:
        num_classes, num_stats: numbers of classes $C$ and of per-sample quantities $S$.
        begin_epoch: first epoch (0-based) trained with rule-made scales (0 and 1: from the first epoch end on).
        scale_step: ``True``: each sample's step is ``step_size`` times the largest scale in its batch
            (FRL); ``False``: the common ``step_size`` (CFA).
    """

    scale: Tensor
    counters = ("epochs_stepped", "updates")

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
        r"""Each sample's radius $s_{y_i}\,\epsilon$ $(N,)$ and step, for ``attack(x, y, eps=..., step_size=...)``.

        With ``scale_step`` the steps $(N,)$ are ``step_size`` times the largest scale of the classes of the
        labels $(N,)$, or of those in ``present`` $(C,)$ bool (under ``torch.distributed``, the ranks' union).
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

    def buffer_error(self, name: str, values: Tensor) -> str | None:
        """Buffers finite; ``scale`` and ``class_beta`` also >= 0."""
        if name in ("scale", "class_beta") and not bool((torch.isfinite(values) & (values >= 0)).all()):
            return "to be finite and >= 0"
        return super().buffer_error(name, values)

    def extra_repr(self) -> str:
        return f"num_classes={self.num_classes}, begin_epoch={self.begin_epoch}, scale_step={self.scale_step}"


def _calibration(previous: Tensor, accuracy: Tensor, present: Tensor, lam: float, base: float) -> Tensor:
    r"""CFA's $(\lambda + t_k)\,b$ for each class in ``present`` from its accuracy $t_k$, else ``previous`` (Eqs. 6, 7).

    $b = 1$: the radius scale (CCM); $b = \beta$: the class-wise TRADES weight (CCR). No clipping, as
    the paper and the official code. All $(C,)$.
    """
    calibrated = (lam + accuracy.to(torch.float64)) * base
    return torch.where(present, calibrated, previous.to(torch.float64)).to(previous.dtype)


class CalibratedEpsilon(ClassEpsilon):
    r"""CFA's class-wise calibrated margin (CCM) and regularization (CCR), from the training robust accuracy.

    :meth:`update` adds whether each training sample's adversarial logits predict its label; at the
    end of the epoch :meth:`step` sets, from each class's robust accuracy $t_k$ over the epoch,
    $\epsilon_k = (\lambda_1 + t_k)\,\epsilon$ and $\beta_k = (\lambda_2 + t_k)\,\beta$ (Eqs. 6 and 7) for the next
    epoch; a class absent from an epoch keeps its values (the official count over $N / C$ on a balanced set).

    Args:
        num_classes: number of classes $C$.
        lambda_eps: base budget $\lambda_1$ (0.3, the paper's value for TRADES).
        beta: TRADES' $\beta$ (6).
        lambda_beta: $\lambda_2$ (0.5); ``None`` keeps $\beta_k = \beta$ (CCM only).
        begin_epoch: first calibrated epoch (0: after the first epoch, the paper's Algorithm 1).
    """

    class_beta: Tensor

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
        """Add whether each sample's adversarial logits ``values`` $(N, C)$ predict its class $(N,)$ (no gradient)."""
        check_logits(values, "values", self.num_classes, device=self.scale.device, owner=f"the {type(self).__name__}")
        self._update(values, self._checked(target, values.shape[0]))

    @torch.no_grad()
    def _update(self, values: Tensor, target: Tensor) -> None:
        self.accumulate((values.detach().argmax(dim=1) == target).to(torch.float64), target, validate=False)

    def rule(self, synced: Tensor) -> tuple[dict[str, Tensor], list[ValueCheck]]:
        r"""CCM and CCR (Eqs. 6 and 7) from the epoch's robust accuracy."""
        means, present = class_means(synced)
        new = {"scale": _calibration(self.scale, means[0], present, self.lambda_eps, 1.0)}
        if self.lambda_beta is not None:
            new["class_beta"] = _calibration(self.class_beta, means[0], present, self.lambda_beta, self.beta)
        return new, []

    def extra_repr(self) -> str:
        return (
            f"num_classes={self.num_classes}, lambda_eps={self.lambda_eps:.4g}, beta={self.beta:.4g}, "
            f"lambda_beta={self.lambda_beta}, begin_epoch={self.begin_epoch}"
        )
