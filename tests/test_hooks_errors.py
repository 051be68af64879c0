"""Bad and unusual inputs to `follow_optimizer_lr`."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from _cases import Case, bad, good, ids, run
from torch import nn

from torch_absld import ABSLDLoss, ClassTemperatureController, follow_optimizer_lr


def _opt(groups: int = 1) -> torch.optim.Optimizer:
    layers = [nn.Linear(2, 2) for _ in range(groups)]
    return torch.optim.SGD([{"params": layer.parameters(), "lr": 0.1 * (i + 1)} for i, layer in enumerate(layers)])


CASES: list[Case] = [
    bad(
        "a module without controllers",
        ValueError,
        "`target` to hold at least one ClassTemperatureController",
        lambda: follow_optimizer_lr(nn.Linear(2, 2), _opt()),
    ),
    bad(
        "None",
        TypeError,
        "`target` to be an nn.Module holding ClassTemperatureControllers",
        lambda: follow_optimizer_lr(None, _opt()),
    ),  # type: ignore[arg-type]
    bad(
        "a string",
        TypeError,
        "`target` to be an nn.Module holding ClassTemperatureControllers",
        lambda: follow_optimizer_lr("loss_fn", _opt()),
    ),  # type: ignore[arg-type]
    bad(
        "a list with a module",
        TypeError,
        "an item of type Linear",
        lambda: follow_optimizer_lr([nn.Linear(2, 2)], _opt()),
    ),
    bad(
        "an empty list",
        ValueError,
        "`target` to hold at least one ClassTemperatureController",
        lambda: follow_optimizer_lr([], _opt()),
    ),
    bad(
        "param_group='0'",
        TypeError,
        "`param_group` to be an int",
        lambda: follow_optimizer_lr(ABSLDLoss(3), _opt(), param_group="0"),
    ),  # type: ignore[arg-type]
    bad(
        "param_group=1.0",
        TypeError,
        "`param_group` to be an int",
        lambda: follow_optimizer_lr(ABSLDLoss(3), _opt(), param_group=1.0),
    ),  # type: ignore[arg-type]
    bad(
        "param_group=-1",
        ValueError,
        r"`param_group` in \[0, 2\)",
        lambda: follow_optimizer_lr(ABSLDLoss(3), _opt(2), param_group=-1),
    ),
    bad(
        "param_group=2",
        ValueError,
        r"`param_group` in \[0, 2\)",
        lambda: follow_optimizer_lr(ABSLDLoss(3), _opt(2), param_group=2),
    ),
    good(
        "param_group=np.int64",
        lambda: follow_optimizer_lr(ABSLDLoss(3), _opt(2), param_group=np.int64(1)),
        lambda h: _two(h.controllers),
    ),
    bad(
        "optimizer a module",
        TypeError,
        "`optimizer` to be a torch.optim.Optimizer",
        lambda: follow_optimizer_lr(ABSLDLoss(3), nn.Linear(2, 2)),
    ),  # type: ignore[arg-type]
    good(
        "a list of controllers",
        lambda: follow_optimizer_lr([ClassTemperatureController(3)], _opt()),
        lambda h: _len(h.controllers, 1),
    ),
]


def _two(controllers: list[object]) -> None:
    assert len(controllers) == 2


def _len(items: list[object], n: int) -> None:
    assert len(items) == n


@pytest.mark.parametrize("case", CASES, ids=ids(CASES))
def test_case(case: Case) -> None:
    run(case)
