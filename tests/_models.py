"""Tiny models shared by the core tests."""

from __future__ import annotations

from typing import Any

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


class OddOutput(nn.Module):
    """``inner`` with its logits returned otherwise than as ``(N, C)``, or changed.

    ``kind``: ``"tuple"`` (wrapped in a tuple), ``"dict"`` (under ``"logits"``), ``"1d"`` (class
    0's column), ``"nan"`` (every logit NaN), ``"masked"`` (class 0 at -inf), ``"plain"`` (as is).
    """

    KINDS = ("tuple", "dict", "1d", "nan", "masked", "plain")

    def __init__(self, inner: nn.Module, kind: str) -> None:
        super().__init__()
        if kind not in self.KINDS:
            raise ValueError(f"Expected `kind` to be one of {self.KINDS}, but got {kind!r}.")
        self.inner = inner
        self.kind = kind

    def forward(self, x: torch.Tensor) -> Any:
        logits = self.inner(x)
        if self.kind == "tuple":
            return (logits,)
        if self.kind == "dict":
            return {"logits": logits}
        if self.kind == "1d":
            return logits[:, 0]
        if self.kind == "nan":
            return logits * float("nan")
        if self.kind == "masked":
            return logits.masked_fill(torch.arange(logits.shape[1], device=logits.device) == 0, -float("inf"))
        return logits
