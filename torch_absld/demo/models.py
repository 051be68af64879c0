"""The demo's networks: a small CNN teacher and an MLP student."""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

__all__ = ["StudentMLP", "TeacherCNN"]


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
    r"""Flatten, then fully connected layers of widths ``hidden`` with ReLU, then the classifier.

    Shape:
        - Input: $(N, C_{in}, H, W)$
        - Output: $(N, \text{num\_classes})$ logits
    """

    def __init__(self, input_shape: tuple[int, int, int], num_classes: int, hidden: Sequence[int] = (64,)) -> None:
        layers: list[nn.Module] = [nn.Flatten()]
        width = input_shape[0] * input_shape[1] * input_shape[2]
        for size in hidden:
            layers += [nn.Linear(width, size), nn.ReLU()]
            width = size
        layers.append(nn.Linear(width, num_classes))
        super().__init__(*layers)
