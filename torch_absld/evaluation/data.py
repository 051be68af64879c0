"""A class-stratified validation split, for selecting checkpoints without touching the test set."""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from typing import Any, TypeVar, overload

import torch
from torch import Tensor
from torch.utils.data import Dataset, Subset

from .._internal.checks import check_finite_number

__all__ = ["dataset_labels", "stratified_split"]

T = TypeVar("T")


def dataset_labels(dataset: Any) -> list[int]:
    """The label of every sample, from ``.targets``, ``.labels``, a ``TensorDataset`` or ``dataset[i][1]``."""
    if isinstance(dataset, Subset):
        inner = dataset_labels(dataset.dataset)
        return [inner[int(i)] for i in dataset.indices]
    for attribute in ("targets", "labels"):
        values = getattr(dataset, attribute, None)
        if values is not None:
            return int_list(values, f"dataset.{attribute}", signed=True)
    tensors = getattr(dataset, "tensors", None)
    if isinstance(tensors, tuple) and tensors and isinstance(tensors[-1], Tensor):
        return int_list(tensors[-1], "dataset.tensors[-1]", signed=True)
    return [int(dataset[i][1]) for i in range(len(dataset))]


def int_list(values: Any, name: str, kind: str = "labels", *, signed: bool = False) -> list[int]:
    """A 1-D sequence of integers (``>= 0`` unless ``signed``; tensor, array, list) as a list; ``kind``: in errors."""
    if isinstance(values, Tensor) and (values.is_floating_point() or values.is_complex() or values.dim() != 1):
        raise TypeError(
            f"Expected `{name}` to be an integer tensor of shape (N,), but got {values.dtype} {values.shape}."
        )
    out = values.tolist() if hasattr(values, "tolist") else list(values)  # tensors and NumPy arrays
    if any(isinstance(v, bool) or not isinstance(v, numbers.Integral) for v in out):
        raise TypeError(f"Expected `{name}` to hold integer {kind}, but got e.g. {out[:5]!r}.")
    if not signed and any(v < 0 for v in out):
        raise ValueError(f"Expected `{name}` to hold non-negative {kind} ({kind} >= 0), but got {out[:20]!r}.")
    return [int(v) for v in out]


@overload
def stratified_split(dataset_or_labels: Dataset[T], fraction: float, seed: int = 0) -> tuple[Subset[T], Subset[T]]: ...


@overload
def stratified_split(
    dataset_or_labels: Tensor | Sequence[int], fraction: float, seed: int = 0
) -> tuple[list[int], list[int]]: ...


def stratified_split(
    dataset_or_labels: Dataset[T] | Tensor | Sequence[int], fraction: float, seed: int = 0
) -> tuple[Subset[T], Subset[T]] | tuple[list[int], list[int]]:
    r"""Split off a held-out set with the class proportions of the data: ``(rest, held_out)``.

    Each class with $n_c \ge 2$ samples gives $\mathrm{round}(f \cdot n_c)$ ($f$: ``fraction`` in $(0, 1)$),
    clamped to $[1, n_c - 1]$ and drawn with ``seed``, to the held-out part: two :class:`~torch.utils.data.Subset`
    of a dataset (labels by :func:`dataset_labels`), or two sorted index lists for labels.

    Example:
        >>> [len(part) for part in stratified_split([0, 0, 0, 0, 1, 1, 1, 1, 1, 1], 0.25)]
        [7, 3]
    """
    fraction = check_finite_number(fraction, "fraction")
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"Expected `fraction` in (0, 1), but got {fraction}.")
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
        raise TypeError(f"Expected `seed` to be an int, but got {type(seed).__name__}.")
    seed = int(seed)
    is_dataset = not isinstance(dataset_or_labels, (Tensor, list, tuple)) and not hasattr(dataset_or_labels, "ndim")
    labels = int_list(dataset_labels(dataset_or_labels) if is_dataset else dataset_or_labels, "dataset_or_labels")
    by_class: dict[int, list[int]] = {}
    for index, label in enumerate(labels):
        by_class.setdefault(label, []).append(index)
    generator = torch.Generator().manual_seed(seed)
    held_out: list[int] = []
    for label in sorted(by_class):
        members = by_class[label]
        if len(members) < 2:
            continue
        take = min(len(members) - 1, max(1, math.floor(fraction * len(members) + 0.5)))
        order = torch.randperm(len(members), generator=generator)[:take].tolist()
        held_out.extend(members[i] for i in order)
    held_out.sort()
    chosen = set(held_out)
    rest = [i for i in range(len(labels)) if i not in chosen]
    if is_dataset:
        dataset: Dataset[T] = dataset_or_labels
        return Subset(dataset, rest), Subset(dataset, held_out)
    return rest, held_out
