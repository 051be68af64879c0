"""Tiny models shared by the core tests."""

from __future__ import annotations

import torch
from torch import nn


def tiny_cnn(num_classes: int = 5, seed: int = 0) -> nn.Module:
    """A 3x8x8-input CNN with BatchNorm and Dropout, so train/eval mode matters."""
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(3, 6, 3, padding=1),
        nn.BatchNorm2d(6),
        nn.ReLU(),
        nn.Dropout(0.2),
        nn.Flatten(),
        nn.Linear(6 * 8 * 8, num_classes),
    )


def tiny_batch(n: int = 8, num_classes: int = 5, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 3, 8, 8, generator=g), torch.randint(0, num_classes, (n,), generator=g)


def small_gradient_mlp() -> nn.Module:
    """An MLP on (N, 1, 8, 8) inputs with weights scaled down so that input gradients are
    around 1e-7: below fp16's range unless the loss is scaled."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))
    with torch.no_grad():
        model[1].weight.mul_(0.01)
        model[3].weight.mul_(0.01)
    return model
