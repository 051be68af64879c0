"""Per-class sums and counts accumulated over an epoch, and the bounds loaded per-class state is checked against."""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any, ClassVar

import torch
from torch import Tensor, nn
from typing_extensions import Self

from ._internal.checks import (
    ProcessGroupArg,
    ValueCheck,
    check_bool,
    check_integer,
    check_integer_labels,
    check_num_classes,
    check_process_group,
    check_values_shape,
    label_range_flag,
    raise_first,
    values_checkable,
)
from ._internal.distributed import all_reduce_sum
from ._internal.modules import loaded_tensor, settings_repr

__all__ = ["Bound", "Bounds", "ClassStatistics", "ExtraState", "class_means"]


@dataclass(frozen=True)
class Bound:
    """Finite values in ``[low, high]`` (+- ``1e-9 + 1e-6 |bound|``), integers, row sums in range; or ``start``."""

    low: float = -math.inf
    high: float = math.inf
    integer: bool = False
    sum_low: float = -math.inf
    sum_high: float = math.inf
    start: float | None = None
    label: str = ""  # names the range in messages, e.g. "[min_temperature, max_temperature]"

    def bad(self, values: Tensor) -> Tensor:
        low, high = _slack(self.low, -1), _slack(self.high, 1)
        bad = ~torch.isfinite(values) | (values < low) | (values > high)
        if self.integer:
            bad |= values != values.round()
        if self.sum_low > -math.inf or self.sum_high < math.inf:
            sums = values.sum(dim=-1, keepdim=True)
            bad |= (sums < _slack(self.sum_low, -1)) | (sums > _slack(self.sum_high, 1))
        if self.start is not None:
            bad &= ~(values.isnan() if math.isnan(self.start) else values == self.start)
        return bad

    def __str__(self) -> str:
        text = ""
        if self.low > -math.inf or self.high < math.inf:
            text = f"in {self.label + ' = ' if self.label else ''}[{self.low:.6g}, {self.high:.6g}]"
        text += " (integers)" if self.integer else ""
        if self.sum_low == self.sum_high or self.sum_high < math.inf:
            text += f" summing to {'' if self.sum_low == self.sum_high else '<= '}{self.sum_high:.6g}"
        return text.strip() + ("" if self.start is None else f", or {self.start} (the start)")


COUNTER = Bound(0, integer=True)  # an epoch or update counter
Bounds = Bound | tuple[Bound, ...]  # the bound of a saved entry, or one per row


def _slack(bound: float, sign: int) -> float:
    return bound + sign * (1e-9 + 1e-6 * abs(bound)) if math.isfinite(bound) else bound


def class_means(accumulator: Tensor) -> tuple[Tensor, Tensor]:
    r"""Per-class means $(S, C)$ of an accumulator $(S + 1, C)$ (``NaN`` if unseen), and which classes were seen."""
    sums, counts = accumulator[:-1], accumulator[-1]
    present = counts > 0
    return torch.where(present, sums / counts.clamp_min(1), torch.full_like(sums, float("nan"))), present


def finite_flag(values: Tensor, name: str, target: Tensor, epoch: int | None, bound: Bound = Bound()) -> ValueCheck:
    """Whether a sample's values leave ``bound``; the error names their classes."""
    detached = values.detach()
    bad = bound.bad(detached)
    rows = bad.flatten(1).any(dim=1) if bad.dim() > 1 else bad

    def raise_error() -> None:
        labels = target[rows]  # one read for the message
        found = torch.cat([labels.double(), detached[rows].double().flatten()]).tolist()
        classes, held = sorted({int(v) for v in found[: len(labels)]}), found[len(labels) :][:4]
        raise ValueError(
            f"Expected `{name}` to hold {f'finite values {bound}'.strip()}, but samples of classes {classes} hold "
            f"{held}"
            + ("" if epoch is None else f" in epoch {epoch} (as counted by `step()`)")
            + ". Nothing was added; the model or its input may have diverged."
        )

    return rows.any(), raise_error


class ClassStatistics(nn.Module):
    r"""Per-class sums of $S \ge 1$ per-sample quantities and per-class sample counts, $C \ge 1$ classes.

    One float64 :attr:`accumulator` $(S + 1, C)$, the sums then the counts: :meth:`accumulate` is one ``index_add_``,
    :meth:`synced` one ``all_reduce`` over ``process_group`` (``False``: this rank alone). Not a buffer (DDP never
    overwrites partial sums); it follows ``.to()`` (float64 kept), is saved and checked on load before any copy.

    Example:
        >>> stats = ClassStatistics(3)
        >>> stats.accumulate(torch.tensor([1.0, 3.0, 2.0]), torch.tensor([0, 0, 2]))
        >>> stats.accumulator
        tensor([[4., 0., 2.],
                [2., 0., 1.]], dtype=torch.float64)
        >>> stats.mean()
        tensor([[2., nan, 2.]], dtype=torch.float64)
    """

    _state_key: ClassVar[str] = "accumulator"
    value_bound: ClassVar[Bound] = Bound()  # what a per-sample value (and a loaded mean) can be
    shown: ClassVar[tuple[str, ...]] = ("num_classes", "num_stats")  # the options in the repr
    accumulator: Tensor

    def __init__(
        self, num_classes: int, num_stats: int = 1, *, process_group: ProcessGroupArg = None, validate_args: bool = True
    ) -> None:
        super().__init__()
        self.num_classes = check_num_classes(num_classes, minimum=1)
        self.num_stats = check_integer(num_stats, "num_stats", minimum=1)
        self.process_group = check_process_group(process_group)
        self.validate_args = check_bool(validate_args, "validate_args")
        self.accumulator = torch.zeros(self.num_stats + 1, self.num_classes, dtype=torch.float64)

    @property
    def sums(self) -> Tensor:
        """Per-class sums on this rank, $(S, C)$ (a view)."""
        return self.accumulator[:-1]

    @property
    def sample_counts(self) -> Tensor:
        """Per-class sample counts on this rank, $(C,)$ (a view)."""
        return self.accumulator[-1]

    def update(self, values: Tensor, target: Tensor) -> None:
        """Add a batch of per-sample values; see :meth:`accumulate`."""
        self.accumulate(values, target)

    def accumulate(self, values: Tensor, target: Tensor) -> None:
        """Add each sample's values $(N,)$ or $(N, S)$ (detached) into its class's sums and count it; labels $(N,)$."""
        check_values_shape(values, self.num_stats)
        self._accumulate(values, self._checked(target, values.shape[0], self._value_flag("values", values, target)))

    def _value_flag(self, name: str, values: Tensor, target: Tensor, bound: Bound | None = None) -> ValueCheck:
        epoch = getattr(self, "epochs_stepped", None)
        return finite_flag(values, name, target, epoch, self.value_bound if bound is None else bound)

    def _checked(self, target: Tensor, batch_size: int | None = None, *flags: ValueCheck) -> Tensor:
        target = self._checked_labels(target, batch_size, check_values=False)
        if values_checkable(self.validate_args):
            raise_first([label_range_flag(target, self.num_classes), *flags])
        return target

    @torch.no_grad()
    def _accumulate(self, values: Tensor, target: Tensor) -> None:
        columns = values.detach().to(torch.float64).reshape(values.shape[0], self.num_stats).T
        self.accumulator.index_add_(1, target, torch.cat([columns, torch.ones_like(columns[:1])]))

    def _checked_labels(
        self, target: Tensor, batch_size: int | None = None, *, check_values: bool | None = None
    ) -> Tensor:
        return check_integer_labels(
            target,
            self.num_classes,
            batch_size=batch_size,
            check_values=values_checkable(self.validate_args) if check_values is None else check_values,
            device=self.accumulator.device,
            owner=f"the {type(self).__name__}",
        )

    def synced(self) -> Tensor:
        """Every rank's accumulator summed with one ``all_reduce`` into a new tensor (every rank must call it)."""
        return all_reduce_sum(self.accumulator.clone(), self.process_group)

    def mean(self) -> Tensor:
        """Per-class means of this rank's sums, $(S, C)$, ``NaN`` for classes not seen."""
        return class_means(self.accumulator)[0]

    @torch.no_grad()
    def reset(self) -> None:
        """Zero the sums and counts on this rank."""
        self.accumulator.zero_()

    def _apply(self, fn: Callable[[Tensor], Tensor], recurse: bool = True) -> Self:
        """Follow device moves; keep the accumulator's and the buffers' dtypes under casts."""
        kept = dict(self._buffers)
        super()._apply(fn, recurse)  # type: ignore[no-untyped-call]
        for name, buffer in kept.items():
            if buffer is not None:
                self._buffers[name] = buffer.to(device=self._buffers[name].device)  # type: ignore[union-attr]
        self.accumulator = self.accumulator.to(device=fn(self.accumulator).device)
        return self

    def _save_to_state_dict(self, destination: dict[str, Any], prefix: str, keep_vars: bool) -> None:
        super()._save_to_state_dict(destination, prefix, keep_vars)
        destination[prefix + self._state_key] = self.accumulator if keep_vars else self.accumulator.detach()

    def _load_from_state_dict(
        self, state_dict: Mapping[str, Any], prefix: str, metadata: Any, strict: bool, missing: list[str], *rest: Any
    ) -> None:
        key = prefix + self._state_key
        self._check_state_dict(state_dict, prefix)
        others = {k: v for k, v in state_dict.items() if k != key}
        super()._load_from_state_dict(others, prefix, metadata, strict, missing, *rest)
        if key in state_dict:
            with torch.no_grad():
                self.accumulator.copy_(state_dict[key])
        elif strict:
            missing.append(key)

    def state_bounds(self) -> dict[str, Bounds]:
        """What each saved buffer or extra-state entry can hold (unlisted buffers: finite)."""
        return {}

    def _check_state_dict(self, state_dict: Mapping[str, Any], prefix: str) -> None:
        loaded = state_dict.get(prefix + self._state_key)
        if loaded is not None:
            self._check_loaded(loaded)
        bounds = self.state_bounds()
        for name, buffer in self._buffers.items():
            value = None if buffer is None else loaded_tensor(state_dict, prefix, name, buffer)
            if value is not None:
                _check_value(name, value, bounds.get(name, Bound()), prefix)
        if prefix + "_extra_state" in state_dict:
            self._extra_from(state_dict[prefix + "_extra_state"], prefix)
        self._check_loaded_state(state_dict, prefix)

    def _check_loaded(self, loaded: Any) -> None:
        expected = tuple(self.accumulator.shape)
        if not isinstance(loaded, Tensor) or tuple(loaded.shape) != expected:
            got = tuple(loaded.shape) if isinstance(loaded, Tensor) else type(loaded).__name__
            raise ValueError(f"Expected the loaded `{self._state_key}` of shape {expected}, but got {got}.")
        values = loaded.detach().to(device="cpu", dtype=torch.float64)
        sums, counts = values[:-1], values[-1]
        means = torch.where(counts > 0, sums / counts.clamp_min(1), sums)  # unseen classes: sums must be 0
        bad = COUNTER.bad(counts) | replace(self.value_bound, integer=False).bad(means).any(0)
        bad |= ((counts == 0) & (sums != 0).any(0)) | (self.value_bound.integer & (sums != sums.round())).any(0)
        if bool(bad.any()):
            raise ValueError(
                f"Expected the loaded `{self._state_key}` to be finite with non-negative integer counts (last row) "
                f"and sums of `count` {f'values {self.value_bound}'.strip()} (0 for count 0), but classes "
                f"{bad.nonzero().flatten().tolist()} hold (sums..., count) = {values.T[bad].tolist()}."
            )

    def _check_loaded_state(self, state_dict: Mapping[str, Any], prefix: str) -> None:
        """What :meth:`state_bounds` cannot say, before anything is copied."""

    def _extra_from(self, state: Any, prefix: str = "") -> dict[str, Any]:
        bounds = {name: bound for name, bound in self.state_bounds().items() if name not in self._buffers}
        if not isinstance(state, dict) or not bounds.keys() <= state.keys():
            raise ValueError(
                f"Expected the loaded `{prefix}_extra_state` to be a dict with keys {sorted(bounds)}, got {state!r}."
            )
        return {name: _check_value(f"_extra_state['{name}']", state[name], b, prefix) for name, b in bounds.items()}

    def extra_repr(self) -> str:
        return settings_repr(self, self.shown)


class ExtraState:
    """Saves the entries of ``state_bounds()`` that are not buffers as the extra state, checked on load."""

    def get_extra_state(self: Any) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.state_bounds() if name not in self._buffers}

    def set_extra_state(self: Any, state: Any) -> None:
        for name, value in self._extra_from(state).items():
            setattr(self, name, value)


def _check_value(key: str, value: Any, bound: Bounds, prefix: str = "") -> Any:
    if isinstance(bound, tuple):  # one bound per row
        for row, (values, row_bound) in enumerate(zip(value, bound)):
            _check_value(f"{key}[{row}]", values, row_bound, prefix)
        return value
    where = f" (state key `{prefix}{key}`)" if prefix else ""
    if isinstance(value, Tensor):
        values = value.detach().to(device="cpu", dtype=torch.float64)
    elif (
        isinstance(value, numbers.Real)
        and not isinstance(value, bool)
        and (isinstance(value, numbers.Integral) or not bound.integer)
    ):
        values = torch.tensor(float(value), dtype=torch.float64)
    else:
        raise ValueError(f"Expected the loaded `{key}` to be a number {bound}, but got {value!r}{where}.")
    if bool(bound.bad(values).any()):
        got = values.tolist() if isinstance(value, Tensor) else value
        what = str(bound) if bool(values.isfinite().all()) else f"to be finite, {bound}"
        raise ValueError(f"Expected the loaded `{key}` {what}, but got {got}{where}. The checkpoint is corrupt.")
    return value
