"""Datasets of the demo: scikit-learn's digits (no download) and torchvision's MNIST / CIFAR-10.

Every dataset goes through an ordinary :class:`~torch.utils.data.Dataset` yielding
``(image, label)`` with images in ``[0, 1]``, so the training and evaluation code is the same
for all of them.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor
from torch.utils.data import Dataset

from ..evaluation import stratified_split

__all__ = ["DATASETS", "DatasetSpec", "DatasetUnavailableError", "DigitsDataset", "load_dataset"]


class DatasetUnavailableError(RuntimeError):
    """A dataset could not be loaded (e.g. its download failed)."""


class DigitsDataset(Dataset[tuple[Tensor, Tensor]]):
    """scikit-learn's 1,797 handwritten 8x8 digits, pixels scaled from [0, 16] to [0, 1].

    The images ship inside scikit-learn: nothing is downloaded.

    Shape:
        - item: image $(1, 8, 8)$ float32 in $[0, 1]$, label $()$ int64 in $[0, 10)$
    """

    def __init__(self) -> None:
        try:
            from sklearn.datasets import load_digits
        except ImportError as error:
            raise ImportError('The digits dataset needs scikit-learn: pip install "torch-absld[demo]"') from error
        digits = load_digits()
        self.images = torch.as_tensor(digits.images, dtype=torch.float32).unsqueeze(1) / 16.0
        self.targets = torch.as_tensor(digits.target, dtype=torch.long)

    def __len__(self) -> int:
        return int(self.targets.shape[0])

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor]:
        return self.images[index], self.targets[index]


Loader = Callable[[str, int], tuple[Dataset[Any], Dataset[Any]]]


@dataclass(frozen=True)
class DatasetSpec:
    """A dataset the demo can run on.

    Args:
        name: the ``--dataset`` value.
        description: one line for the report.
        num_classes: number of classes.
        input_shape: ``(channels, height, width)`` of one image.
        eps: default L-inf radius for this dataset.
        load: ``load(data_dir, seed) -> (train, test)``.
        download: whether ``load`` may download files.
    """

    name: str
    description: str
    num_classes: int
    input_shape: tuple[int, int, int]
    eps: float
    load: Loader
    download: bool


def _load_digits(data_dir: str, seed: int) -> tuple[Dataset[Any], Dataset[Any]]:
    del data_dir
    train, test = stratified_split(DigitsDataset(), 0.5, seed=seed)
    return train, test


def _torchvision(name: str) -> Loader:
    def load(data_dir: str, seed: int) -> tuple[Dataset[Any], Dataset[Any]]:
        del seed
        try:
            torchvision = importlib.import_module("torchvision")
        except ImportError as error:
            raise ImportError(f"The {name} dataset needs torchvision: pip install torchvision") from error
        cls = {"mnist": torchvision.datasets.MNIST, "cifar10": torchvision.datasets.CIFAR10}[name]
        to_tensor = torchvision.transforms.ToTensor()
        try:
            train = cls(data_dir, train=True, download=True, transform=to_tensor)
            test = cls(data_dir, train=False, download=True, transform=to_tensor)
        except (OSError, RuntimeError) as error:
            raise DatasetUnavailableError(f"Could not load {name} into {data_dir!r}: {error}") from error
        return train, test

    return load


DATASETS: dict[str, DatasetSpec] = {
    "digits": DatasetSpec(
        "digits",
        "scikit-learn's handwritten digits (1,797 images of 8x8, 10 classes), stratified 50/50 split",
        10,
        (1, 8, 8),
        0.1,
        _load_digits,
        False,
    ),
    "mnist": DatasetSpec(
        "mnist",
        "torchvision MNIST (28x28, 60,000 train / 10,000 test)",
        10,
        (1, 28, 28),
        0.3,
        _torchvision("mnist"),
        True,
    ),
    "cifar10": DatasetSpec(
        "cifar10",
        "torchvision CIFAR-10 (32x32 RGB, 50,000 train / 10,000 test)",
        10,
        (3, 32, 32),
        8 / 255,
        _torchvision("cifar10"),
        True,
    ),
}


def load_dataset(name: str, data_dir: str, seed: int) -> tuple[DatasetSpec, Dataset[Any], Dataset[Any]]:
    """The spec and the ``(train, test)`` datasets registered under ``name``.

    Raises:
        ValueError: if ``name`` is not in :data:`DATASETS`.
    """
    if name not in DATASETS:
        raise ValueError(f"Expected `--dataset` to be one of {', '.join(DATASETS)}, but got {name!r}.")
    spec = DATASETS[name]
    train, test = spec.load(data_dir, seed)
    return spec, train, test
