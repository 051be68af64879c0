"""The demo's data (scikit-learn's digits, torchvision's MNIST / CIFAR-10, in [0, 1]) and networks."""

from __future__ import annotations

import importlib
import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.utils.data import BatchSampler, DataLoader, Dataset, RandomSampler, SequentialSampler, Subset, TensorDataset

from ..evaluation import stratified_split

__all__ = ["DATASETS", "DatasetUnavailableError", "StudentMLP", "TeacherCNN", "digits_dataset", "load_dataset"]


class DatasetUnavailableError(RuntimeError):
    """A dataset could not be loaded (e.g. its download failed)."""


def digits_dataset() -> TensorDataset:
    """scikit-learn's 1,797 handwritten 8x8 digits: images $(1, 8, 8)$ in $[0, 1]$ (pixels / 16), int64 labels."""
    from sklearn.datasets import load_digits

    raw = load_digits()
    images = torch.as_tensor(raw.images, dtype=torch.float32).unsqueeze(1) / 16.0
    return TensorDataset(images, torch.as_tensor(raw.target, dtype=torch.long))


def _torchvision(cls: str) -> Callable[[str, int], tuple[Dataset[Any], Dataset[Any]]]:
    def load(data_dir: str, seed: int) -> tuple[Dataset[Any], Dataset[Any]]:
        make = getattr(importlib.import_module("torchvision.datasets"), cls)
        to_tensor = importlib.import_module("torchvision.transforms").ToTensor()
        try:
            return tuple(make(data_dir, train=train, download=True, transform=to_tensor) for train in (True, False))
        except (OSError, RuntimeError) as error:
            raise DatasetUnavailableError(f"Could not load {cls} into {data_dir!r}: {error}") from error

    return load


@dataclass(frozen=True)
class DatasetSpec:
    """A ``--dataset``: a line for the report, its classes, image shape, default eps and ``load(dir, seed)``."""

    name: str
    description: str
    num_classes: int
    input_shape: tuple[int, int, int]
    eps: float
    load: Callable[[str, int], tuple[Dataset[Any], Dataset[Any]]]


_DIGITS = "scikit-learn's handwritten digits (1,797 images of 8x8, 10 classes), stratified 50/50 split"
DATASETS = {
    "digits": DatasetSpec("digits", _DIGITS, 10, (1, 8, 8), 0.1,
                          lambda _, seed: stratified_split(digits_dataset(), 0.5, seed=seed)),
    "mnist": DatasetSpec("mnist", "torchvision MNIST (28x28, 60,000 train / 10,000 test)", 10, (1, 28, 28), 0.3,
                         _torchvision("MNIST")),
    "cifar10": DatasetSpec("cifar10", "torchvision CIFAR-10 (32x32 RGB, 50,000 train / 10,000 test)", 10, (3, 32, 32),
                           8 / 255, _torchvision("CIFAR10")),
}  # fmt: skip


def load_dataset(name: str, data_dir: str, seed: int) -> tuple[DatasetSpec, Dataset[Any], Dataset[Any]]:
    """The spec and the ``(train, test)`` datasets of ``name``; a ``ValueError`` for an unknown name."""
    if name not in DATASETS:
        raise ValueError(f"Expected `--dataset` to be one of {', '.join(DATASETS)}, but got {name!r}.")
    return (DATASETS[name], *DATASETS[name].load(data_dir, seed))


def in_memory(dataset: Dataset[Any]) -> tuple[torch.Tensor, ...] | None:
    """The tensors of a ``TensorDataset`` (or of a ``Subset`` of one, its rows in order); else ``None``."""
    if isinstance(dataset, TensorDataset):
        return tuple(dataset.tensors)
    if not isinstance(dataset, Subset) or (inner := in_memory(dataset.dataset)) is None:
        return None
    return tuple(t[torch.as_tensor(dataset.indices)] for t in inner)


class _Rows(Dataset[tuple[torch.Tensor, ...]]):
    """Tensors read a batch at a time: ``rows[indices]`` is each tensor's ``indices`` rows."""

    def __init__(self, tensors: tuple[torch.Tensor, ...]) -> None:
        self.tensors = tensors

    def __len__(self) -> int:
        return len(self.tensors[0])

    def __getitem__(self, indices: list[int]) -> tuple[torch.Tensor, ...]:
        return tuple(t[indices] for t in self.tensors)


def batches(
    dataset: Dataset[Any], batch_size: int, *, shuffle: bool = False, generator: torch.Generator | None = None
) -> DataLoader[Any]:
    """``DataLoader(dataset, batch_size, shuffle=, generator=)``'s batches and draws; in memory, gathered per batch."""
    tensors = in_memory(dataset)
    if tensors is None:
        return DataLoader(dataset, batch_size=batch_size, shuffle=shuffle, generator=generator)
    rows = _Rows(tensors)
    order = RandomSampler(rows, generator=generator) if shuffle else SequentialSampler(rows)
    return DataLoader(rows, batch_size=None, sampler=BatchSampler(order, batch_size, False), generator=generator)


class TeacherCNN(nn.Sequential):
    r"""conv3x3(in -> 32), conv3x3(32 -> 64), 2x2 max-pool, FC 256, FC ``num_classes``, ReLU between.

    Shape:
        - Input: $(N, C_{in}, H, W)$ with even $H$ and $W$
        - Output: $(N, \text{num\_classes})$ logits
    """

    def __init__(self, input_shape: tuple[int, int, int], num_classes: int) -> None:
        channels, height, width = input_shape
        super().__init__(
            nn.Conv2d(channels, 32, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(32, 64, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Flatten(),
            nn.Linear(64 * (height // 2) * (width // 2), 256),
            nn.ReLU(),
            nn.Linear(256, num_classes),
        )


class StudentMLP(nn.Sequential):
    r"""Flatten, fully connected layers of widths ``hidden`` with ReLU, then the classifier.

    Shape:
        - Input: $(N, C_{in}, H, W)$
        - Output: $(N, \text{num\_classes})$ logits
    """

    def __init__(self, input_shape: tuple[int, int, int], num_classes: int, hidden: Sequence[int] = (64,)) -> None:
        widths = [input_shape[0] * input_shape[1] * input_shape[2], *hidden]
        layers = [m for a, b in itertools.pairwise(widths) for m in (nn.Linear(a, b), nn.ReLU())]
        super().__init__(nn.Flatten(), *layers, nn.Linear(widths[-1], num_classes))
