"""Per-class sums and counts accumulated over an epoch: one tensor, one ``index_add_``, one ``all_reduce``."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, ClassVar

import torch
from torch import Tensor, nn
from typing_extensions import Self

from ._internal.checks import (
    ProcessGroupArg,
    check_bool,
    check_integer,
    check_integer_labels,
    check_num_classes,
    check_process_group,
    values_checkable,
)
from ._internal.distributed import all_reduce_sum

__all__ = ["ClassStatistics", "class_means"]


def class_means(accumulator: Tensor) -> tuple[Tensor, Tensor]:
    r"""Per-class means of the sums of an accumulator, and which classes were seen.

    Shape:
        - accumulator: $(S + 1, C)$, rows $0..S-1$ sums, row $S$ counts
        - Output: means $(S, C)$ (``NaN`` for unseen classes), present $(C,)$ bool
    """
    sums, counts = accumulator[:-1], accumulator[-1]
    present = counts > 0
    means = sums / counts.clamp_min(1)
    return torch.where(present, means, torch.full_like(means, float("nan"))), present


class ClassStatistics(nn.Module):
    r"""Per-class sums of $S$ per-sample quantities and per-class sample counts.

    The state is **one** float64 tensor :attr:`accumulator` of shape $(S + 1, C)$: rows
    $0..S-1$ hold the per-class sums, the last row the per-class counts. :meth:`accumulate`
    adds a batch with one ``index_add_`` (no gradient, no host synchronisation, no
    data-dependent shape: it compiles with ``fullgraph=True``); :meth:`synced` sums the
    accumulators of every rank of ``process_group`` with one ``all_reduce``; :meth:`reset`
    zeroes them. Counts are exact integers in float64 up to $2^{53}$.

    Subclasses specialise :meth:`update` to take what their rule needs (logits, predictions)
    and turn it into per-sample values, as a torchmetrics metric does; :meth:`accumulate`
    always adds raw values.

    Kept out of ``DistributedDataParallel``'s buffer broadcast by construction: the
    accumulator is not a registered buffer (DDP would copy rank 0's partial sums to every rank
    before each forward) but a plain tensor attribute that the module moves itself on
    ``.to(device)`` (it stays float64 under ``.half()`` and other casts) and saves and loads
    itself in ``state_dict()`` under the key ``"accumulator"``. A loaded accumulator is
    checked (shape, finite, counts non-negative integers) before anything is copied: a
    rejected checkpoint leaves the module as it was.

    Args:
        num_classes: number of classes $C \ge 1$.
        num_stats: number of per-sample quantities $S \ge 1$.
        process_group: ranks whose accumulators :meth:`synced` sums; ``None`` is the default
            group (nothing to sum in a single process); ``False`` is this rank alone (no
            collective: :meth:`synced` may then be called on one rank only).
        validate_args: check label values in eager mode (one host sync per batch).

    Shape:
        - ``accumulate(values, target)``: values $(N,)$ (with $S = 1$) or $(N, S)$, target $(N,)$

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
    accumulator: Tensor

    def __init__(
        self,
        num_classes: int,
        num_stats: int = 1,
        *,
        process_group: ProcessGroupArg = None,
        validate_args: bool = True,
    ) -> None:
        super().__init__()
        self.num_classes = check_num_classes(num_classes, minimum=1)
        self.num_stats = check_integer(num_stats, "num_stats", minimum=1)
        self.process_group = check_process_group(process_group)
        self.validate_args = check_bool(validate_args, "validate_args")
        self.accumulator = torch.zeros(self.num_stats + 1, self.num_classes, dtype=torch.float64)

    @property
    def sums(self) -> Tensor:
        """Per-class sums on this rank, shape $(S, C)$ (a view)."""
        return self.accumulator[:-1]

    @property
    def sample_counts(self) -> Tensor:
        """Per-class sample counts on this rank, shape $(C,)$ (a view)."""
        return self.accumulator[-1]

    def update(self, values: Tensor, target: Tensor) -> None:
        """Add a batch of per-sample values; see :meth:`accumulate`."""
        self.accumulate(values, target)

    def accumulate(self, values: Tensor, target: Tensor) -> None:
        """Add each sample's values (detached, any floating point dtype) into the sums of its class and count it.

        Shape:
            - values: $(N,)$ with $S = 1$, or $(N, S)$
            - target: $(N,)$ integers in $[0, C)$ (any integer dtype)
        """
        self._check_values(values)
        self._accumulate(values, self._checked_labels(target, values.shape[0]))

    @torch.no_grad()
    def _accumulate(self, values: Tensor, target: Tensor) -> None:
        columns = values.detach().to(torch.float64).reshape(values.shape[0], self.num_stats).T
        rows = torch.cat([columns, torch.ones_like(columns[:1])])
        self.accumulator.index_add_(1, target, rows)

    def _checked_labels(
        self, target: Tensor, batch_size: int | None = None, *, check_values: bool | None = None
    ) -> Tensor:
        """``target`` checked against this module (dtype, shape, device; values per ``validate_args``), as int64."""
        if check_values is None:
            check_values = values_checkable(self.validate_args)
        return check_integer_labels(
            target,
            self.num_classes,
            batch_size=batch_size,
            check_values=check_values,
            device=self.accumulator.device,
            owner=f"the {type(self).__name__}",
        )

    def _check_values(self, values: Tensor) -> None:
        shape = "(N,) or (N, S)" if self.num_stats == 1 else "(N, S)"
        if not isinstance(values, Tensor) or not values.is_floating_point():
            got = values.dtype if isinstance(values, Tensor) else type(values).__name__
            raise TypeError(f"Expected `values` to be a floating point tensor of shape {shape}, but got {got}.")
        ok = values.dim() == 2 and values.shape[1] == self.num_stats
        if not ok and not (values.dim() == 1 and self.num_stats == 1):
            raise ValueError(
                f"Expected `values` of shape {shape} with S = {self.num_stats}, but got {tuple(values.shape)}."
            )

    def synced(self) -> Tensor:
        """The accumulators of every rank summed with one ``all_reduce`` (a new tensor; the local one is unchanged).

        Every rank of ``process_group`` must call it: called on one rank only, it waits until the
        process group's timeout. With ``process_group=False``, or in a single process, it is a copy.

        Shape:
            - Output: $(S + 1, C)$ float64
        """
        return all_reduce_sum(self.accumulator.clone(), self.process_group)

    def mean(self) -> Tensor:
        """Per-class means of this rank's sums, ``NaN`` for classes not seen (see :func:`class_means`).

        Shape:
            - Output: $(S, C)$ float64
        """
        return class_means(self.accumulator)[0]

    @torch.no_grad()
    def reset(self) -> None:
        """Zero the sums and counts on this rank."""
        self.accumulator.zero_()

    def _apply(self, fn: Callable[[Tensor], Tensor], recurse: bool = True) -> Self:
        """Follow device moves; keep float64 under whole-module casts (``.half()``, bf16 precision)."""
        super()._apply(fn, recurse)  # type: ignore[no-untyped-call]
        moved = fn(self.accumulator)
        self.accumulator = self.accumulator.to(device=moved.device)
        return self

    def _save_to_state_dict(self, destination: dict[str, Any], prefix: str, keep_vars: bool) -> None:
        super()._save_to_state_dict(destination, prefix, keep_vars)
        destination[prefix + self._state_key] = self.accumulator if keep_vars else self.accumulator.detach()

    def _load_from_state_dict(
        self,
        state_dict: Mapping[str, Any],
        prefix: str,
        local_metadata: dict[str, Any],
        strict: bool,
        missing_keys: list[str],
        unexpected_keys: list[str],
        error_msgs: list[str],
    ) -> None:
        key = prefix + self._state_key
        loaded = state_dict.get(key)
        self._check_state_dict(state_dict, prefix)
        others = {k: v for k, v in state_dict.items() if k != key}
        super()._load_from_state_dict(others, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs)
        if loaded is None:
            if strict:
                missing_keys.append(key)
            return
        with torch.no_grad():
            self.accumulator.copy_(loaded)

    def _check_state_dict(self, state_dict: Mapping[str, Any], prefix: str) -> None:
        """Raise if ``state_dict`` (this module's entries under ``prefix``) would not load; copies nothing.

        A container calls it on every submodule before loading anything (see
        :func:`~torch_absld._internal.modules.check_state_before_loading`), so a rejected
        checkpoint leaves the whole container as it was.
        """
        loaded = state_dict.get(prefix + self._state_key)
        if loaded is not None:
            self._check_loaded(loaded)
        self._check_loaded_state(state_dict, prefix)

    def _check_loaded(self, loaded: Any) -> None:
        expected = tuple(self.accumulator.shape)
        if not isinstance(loaded, Tensor) or tuple(loaded.shape) != expected:
            got = tuple(loaded.shape) if isinstance(loaded, Tensor) else type(loaded).__name__
            raise ValueError(f"Expected the loaded `{self._state_key}` of shape {expected}, but got {got}.")
        values = loaded.detach().to(device="cpu", dtype=torch.float64)
        counts = values[-1]
        if not bool(torch.isfinite(values).all()) or bool((counts < 0).any() | (counts != counts.round()).any()):
            raise ValueError(
                f"Expected the loaded `{self._state_key}` to be finite with non-negative integer counts in its "
                f"last row, but got {values.tolist()}. The checkpoint is corrupt or comes from another model."
            )

    def _check_loaded_state(self, state_dict: Mapping[str, Any], prefix: str) -> None:
        """Subclasses check the rest of their state here, before anything is copied."""

    def extra_repr(self) -> str:
        return f"num_classes={self.num_classes}, num_stats={self.num_stats}"
