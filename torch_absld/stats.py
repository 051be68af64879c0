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
    check_values_shape,
    values_checkable,
)
from ._internal.distributed import all_reduce_sum

__all__ = ["ClassStatistics", "class_means"]


def class_means(accumulator: Tensor) -> tuple[Tensor, Tensor]:
    r"""Per-class means $(S, C)$ of an accumulator $(S + 1, C)$ (``NaN`` if unseen), and which classes were seen."""
    sums, counts = accumulator[:-1], accumulator[-1]
    present = counts > 0
    return torch.where(present, sums / counts.clamp_min(1), torch.full_like(sums, float("nan"))), present


class ClassStatistics(nn.Module):
    r"""Per-class sums of $S$ per-sample quantities and per-class sample counts.

    One float64 :attr:`accumulator` $(S + 1, C)$: the sums, then the counts. :meth:`accumulate`
    is one ``index_add_`` (no host sync), :meth:`synced` one ``all_reduce``. It is not a buffer,
    so DDP never overwrites a rank's partial sums; the module moves it on ``.to()`` (float64
    kept) and saves it under :attr:`_state_key`, checked on load before anything is copied.

    Args:
        num_classes: number of classes $C \ge 1$.
        num_stats: number of per-sample quantities $S \ge 1$.
        process_group: ranks :meth:`synced` sums over (``None``: default group; ``False``: this rank alone).
        validate_args: check label values in eager mode (one host read per batch).

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
        """Add each sample's values (detached, any floating point dtype) into its class's sums and count it.

        Shape:
            - values: $(N,)$ with $S = 1$, or $(N, S)$
            - target: $(N,)$ integers in $[0, C)$ (any integer dtype)
        """
        check_values_shape(values, self.num_stats)
        self._accumulate(values, self._checked_labels(target, values.shape[0]))

    @torch.no_grad()
    def _accumulate(self, values: Tensor, target: Tensor) -> None:
        columns = values.detach().to(torch.float64).reshape(values.shape[0], self.num_stats).T
        self.accumulator.index_add_(1, target, torch.cat([columns, torch.ones_like(columns[:1])]))

    def _checked_labels(
        self, target: Tensor, batch_size: int | None = None, *, check_values: bool | None = None
    ) -> Tensor:
        """``target`` checked against this module (values per ``validate_args`` unless ``check_values``), as int64."""
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
        super()._apply(fn, recurse)  # type: ignore[no-untyped-call]
        self.accumulator = self.accumulator.to(device=fn(self.accumulator).device)  # float64 under casts
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

    def _check_state_dict(self, state_dict: Mapping[str, Any], prefix: str) -> None:
        """Raise if this module's entries of ``state_dict`` would not load; copies nothing."""
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
        if not bool(torch.isfinite(values).all() & (counts >= 0).all() & (counts == counts.round()).all()):
            raise ValueError(
                f"Expected the loaded `{self._state_key}` to be finite with non-negative integer counts in its "
                f"last row, but got {values.tolist()}. The checkpoint is corrupt or comes from another model."
            )

    def _check_loaded_state(self, state_dict: Mapping[str, Any], prefix: str) -> None:
        """Subclasses check the rest of their state here, before anything is copied."""

    def extra_repr(self) -> str:
        return f"num_classes={self.num_classes}, num_stats={self.num_stats}"
