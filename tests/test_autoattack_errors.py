"""Bad and unusual inputs to `auto_attack`."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from _cases import Case, bad, good, ids, run
from torch import nn

from torch_absld import auto_attack

N, C = 4, 10


def _model(c: int = C) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(12, c))


def _x(n: int = N) -> torch.Tensor:
    return torch.rand(n, 3, 2, 2, generator=torch.Generator().manual_seed(1))


LABELS = torch.tensor([0, 9, 3, 3])


def _aa(
    model: nn.Module | None = None, input: torch.Tensor | None = None, target: torch.Tensor = LABELS, **kwargs: object
) -> torch.Tensor:
    options: dict[str, object] = {"num_classes": C, "eps": 0.0}
    options.update(kwargs)
    return auto_attack(_model() if model is None else model, _x() if input is None else input, target, **options)  # type: ignore[arg-type]


class _Tuple(nn.Module):
    def forward(self, x: torch.Tensor) -> object:
        return (_model()(x),)


def _unchanged(x_adv: torch.Tensor) -> None:
    assert torch.equal(x_adv, _x())


CASES: list[Case] = [
    bad("batch_size=-3", ValueError, "`batch_size` to be an int >= 1", lambda: _aa(batch_size=-3, eps=0.01)),
    bad(
        "num_classes above the model's width",
        ValueError,
        r"`model` to return logits of shape \(N, num_classes\) = \(1, 10\)",
        lambda: _aa(_model(5), target=torch.tensor([0, 4, 3, 3])),
    ),
    bad(
        "num_classes below the model's width",
        ValueError,
        r"`model` to return logits of shape \(N, num_classes\) = \(1, 10\)",
        lambda: _aa(_model(12)),
    ),
    bad(
        "model returns a tuple",
        ValueError,
        r"`model` to return logits of shape \(N, num_classes\)",
        lambda: _aa(_Tuple()),
    ),
    good("num_classes=np.int64", lambda: _aa(num_classes=np.int64(C)), _unchanged),
    bad("version", ValueError, "`version` to be one of", lambda: _aa(version="fast")),
    bad("attacks without custom", ValueError, "`attacks` only with version='custom'", lambda: _aa(attacks=["apgd-ce"])),
    bad("attacks unknown", ValueError, "`attacks` to be one of", lambda: _aa(version="custom", attacks=["pgd"])),
    bad("clip_min=0.5", ValueError, "`clip_min` = 0 and `clip_max` = 1", lambda: _aa(clip_min=0.5)),
    bad(
        "input 2-D with square",
        ValueError,
        r"`input` images of shape \(N, C, H, W\)",
        lambda: _aa(input=_x().flatten(1)),
    ),
    bad(
        "input int",
        TypeError,
        "`input` to be a floating point tensor",
        lambda: _aa(input=torch.ones(N, 3, 2, 2, dtype=torch.long)),
    ),
    bad("labels >= C", ValueError, r"`target` values in \[0, 10\)", lambda: _aa(target=torch.tensor([0, 1, 2, 10]))),
    good("labels int32", lambda: _aa(target=LABELS.int()), _unchanged),
    bad(
        "input NaN",
        ValueError,
        "`input` to be finite",
        lambda: _aa(input=_x().masked_fill(_x() > 0.9, float("nan")), eps=0.01),
    ),
    bad("input on meta", ValueError, "`input` on the device", lambda: _aa(input=torch.rand(N, 3, 2, 2, device="meta"))),
]


@pytest.mark.parametrize("case", CASES, ids=ids(CASES))
def test_case(case: Case) -> None:
    run(case)
