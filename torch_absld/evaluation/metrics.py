"""Class-wise accuracy: per class, the average, the worst class (or worst k%), overall."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from .._internal import checks
from ..stats import ClassStatistics
from .data import int_list

__all__ = ["ClassAccuracy", "ClassAccuracyResult", "class_accuracy_summary", "worst_class_count"]


def worst_class_count(num_classes: int, worst_fraction: float | None = None) -> int:
    r"""How many lowest classes *Worst* averages: $\lceil f \cdot C \rceil$; ``None``: 10% if $C \ge 100$, else 1.

    Example:
        >>> worst_class_count(10), worst_class_count(100), worst_class_count(30, 0.1)
        (1, 10, 3)
    """
    num_classes = checks.check_num_classes(num_classes, minimum=1)
    if worst_fraction is None:
        worst_fraction = 0.1 if num_classes >= 100 else 1.0 / num_classes
    worst_fraction = checks.check_finite_number(worst_fraction, "worst_fraction")
    if not (0.0 < worst_fraction <= 1.0):
        raise ValueError(f"Expected `worst_fraction` in (0, 1] or None, but got {worst_fraction}.")
    # The tolerance keeps ceil(0.1 * 30) at 3 (0.1 * 30 is 3.0000000000000004).
    return min(num_classes, max(1, math.ceil(worst_fraction * num_classes - 1e-9)))


@dataclass(frozen=True)
class ClassAccuracyResult:
    """Accuracy of one evaluation, as fractions in [0, 1].

    ``per_class`` ($C$ values), ``avg`` (*Avg.*, over all samples), ``worst`` (*Worst*: mean of the
    ``worst_k`` lowest classes), ``overall`` ((avg + worst) / 2), from each class's ``correct`` / ``total``.
    """

    per_class: list[float]
    avg: float
    worst: float
    overall: float
    correct: list[int]
    total: list[int]
    worst_k: int

    @property
    def num_samples(self) -> int:
        """Number of samples counted."""
        return sum(self.total)

    @property
    def worst_classes(self) -> list[int]:
        """The ``worst_k`` classes ``worst`` averages, lowest accuracy first (ties: lower index first)."""
        return sorted(range(len(self.per_class)), key=lambda c: (self.per_class[c], c))[: self.worst_k]

    @property
    def nsd(self) -> float:
        r"""$\sigma(a) / \bar a$ of the class accuracies (population std over plain mean; 0 if all equal)."""
        accuracies = self.per_class
        if all(a == accuracies[0] for a in accuracies):
            return 0.0
        mean = math.fsum(accuracies) / len(accuracies)
        return math.sqrt(math.fsum((a - mean) ** 2 for a in accuracies) / len(accuracies)) / mean


def class_accuracy_summary(
    correct: Tensor | Sequence[int], total: Tensor | Sequence[int], *, worst_fraction: float | None = None
) -> ClassAccuracyResult:
    r"""Per-class accuracy $a_c = \text{correct}_c / \text{total}_c$, *Avg.*, *Worst* and *Overall* from counts.

    *Avg.* is $\sum_c \text{correct}_c / \sum_c \text{total}_c$, *Worst* the mean of the $k$ lowest
    $a_c$ (:func:`worst_class_count`), *Overall* $(\text{Avg.} + \text{Worst}) / 2$. ``correct`` and
    ``total``: $(C,)$ counts, ``correct <= total``, every class seen (a ``ValueError`` lists the unseen).

    Example:
        >>> r = class_accuracy_summary([3, 1, 2], [4, 2, 2])
        >>> r.per_class, r.avg, r.worst, r.overall
        ([0.75, 0.5, 1.0], 0.75, 0.5, 0.625)
    """
    correct_list, total_list = int_list(correct, "correct", "counts"), int_list(total, "total", "counts")
    if len(correct_list) != len(total_list) or not correct_list:
        raise ValueError(f"Expected `correct` and `total` of the same shape (C,), C >= 1, got {correct}, {total}.")
    if any(c > t for c, t in zip(correct_list, total_list)):
        raise ValueError("Expected `correct` <= `total` for every class, but some class has more correct than total.")
    empty = [c for c, t in enumerate(total_list) if t == 0]
    if empty:
        shown = ", ".join(str(c) for c in empty[:20]) + (", ..." if len(empty) > 20 else "")
        raise ValueError(
            f"Expected every class in [0, {len(total_list)}) to have at least one sample, but {len(empty)} class(es) "
            f"have none: [{shown}] (of {sum(total_list)} samples). Evaluate on every class, or check `num_classes`."
        )
    per_class = [c / t for c, t in zip(correct_list, total_list)]
    k = worst_class_count(len(per_class), worst_fraction)
    worst = math.fsum(sorted(per_class)[:k]) / k
    avg = sum(correct_list) / sum(total_list)
    return ClassAccuracyResult(per_class, avg, worst, (avg + worst) / 2, correct_list, total_list, k)


class ClassAccuracy(ClassStatistics):
    r"""Correct / total counts per class over batches: :meth:`update`, :meth:`compute`, :meth:`reset`.

    :meth:`update` takes scores $(N, C)$ (argmax) or predictions $(N,)$ and labels $(N,)$ in $[0, C)$,
    reading the device once for their values (never with ``validate_args=False``, where it compiles
    with ``fullgraph=True``); :meth:`compute` sums the counts over ``process_group`` (``None``: the
    default group; ``False``: this rank) with one ``all_reduce``. The counts follow ``.to()`` and are
    in ``state_dict()`` (key ``"counts"``). ``worst_fraction``: :func:`worst_class_count`.

    Example:
        >>> metric = ClassAccuracy(3)
        >>> metric.update(torch.tensor([0, 1, 1, 2]), torch.tensor([0, 1, 2, 2]))
        >>> result = metric.compute()
        >>> result.per_class, result.avg, result.worst
        ([1.0, 1.0, 0.5], 0.75, 0.5)
    """

    _state_key = "counts"

    def __init__(
        self,
        num_classes: int,
        *,
        worst_fraction: float | None = None,
        process_group: checks.ProcessGroupArg = None,
        validate_args: bool = True,
    ) -> None:
        num_classes = checks.check_num_classes(num_classes, minimum=1)
        worst_class_count(num_classes, worst_fraction)  # validates worst_fraction
        super().__init__(num_classes, process_group=process_group, validate_args=validate_args)
        self.worst_fraction = worst_fraction

    @property
    def counts(self) -> Tensor:
        """Correct (row 0) and total (row 1) of each class on this rank, $(2, C)$ int64."""
        return self.accumulator.to(torch.int64)

    @property
    def correct(self) -> Tensor:
        """Correct predictions of each class on this rank, $(C,)$ int64."""
        return self.counts[0]

    @property
    def total(self) -> Tensor:
        """Samples of each class on this rank, $(C,)$ int64."""
        return self.counts[1]

    @torch.no_grad()
    def update(self, input: Tensor, target: Tensor) -> None:
        """Add one batch of predictions (or scores) and true labels."""
        if not isinstance(input, Tensor):
            raise TypeError(f"Expected `input` to be a torch.Tensor, but got {type(input).__name__}.")
        scores = input.is_floating_point()
        if scores and (input.dim() != 2 or input.shape[1] != self.num_classes):
            shape = tuple(input.shape)
            raise ValueError(
                f"Expected `input` scores of shape (N, {self.num_classes}) or integer predictions (N,), got {shape}."
            )
        if not scores:
            input = checks.check_integer_labels(input, self.num_classes, name="input", check_values=False)
        target = checks.check_integer_labels(target, self.num_classes, batch_size=input.shape[0], check_values=False)
        if checks.values_checkable(self.validate_args):
            flags = [] if scores else [checks.label_range_flag(input, self.num_classes, "input")]
            checks.raise_first([*flags, checks.label_range_flag(target, self.num_classes)])
        self._update(input, target)

    @torch.no_grad()
    def _update(self, input: Tensor, target: Tensor) -> None:
        """:meth:`update` without checks: scores $(N, C)$ or predictions $(N,)$, labels in $[0, C)$ (int64)."""
        predictions = input.argmax(dim=1) if input.is_floating_point() else input
        target = target.to(self.accumulator.device)
        self._accumulate(predictions.to(target.device) == target, target)

    def forward(self, input: Tensor, target: Tensor) -> None:
        """Same as :meth:`update`."""
        self.update(input, target)

    def compute(self) -> ClassAccuracyResult:
        """Per-class accuracy, avg, worst and overall over every rank's data (a collective: every rank calls it)."""
        correct, total = self.synced().to(torch.int64).tolist()
        return class_accuracy_summary(correct, total, worst_fraction=self.worst_fraction)

    def _check_loaded(self, loaded: Any) -> None:
        super()._check_loaded(loaded)
        correct, total = loaded.detach().cpu().to(torch.float64)
        if bool((correct < 0).any() | (correct > total).any() | (correct != correct.round()).any()):
            raise ValueError(f"Expected the loaded `counts` to hold integers in [0, total], but got {loaded.tolist()}.")

    def extra_repr(self) -> str:
        return f"num_classes={self.num_classes}, worst_fraction={self.worst_fraction}"
