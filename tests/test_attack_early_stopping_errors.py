"""Bad and unusual inputs to `EarlyStopping` (with `LogitsAndInput`)."""

from __future__ import annotations

import pytest
import torch
from _cases import Case, bad, good, ids, run
from torch import nn

from torch_absld import pgd
from torch_absld.attack import EarlyStopping
from torch_absld.attack.early_stopping import LogitsAndInput

C, N = 3, 4
T = torch.tensor
LABELS = [0, 1, 2, 1]


def _model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(12, C))


def _x(n: int = N) -> torch.Tensor:
    return torch.rand(n, 3, 2, 2, generator=torch.Generator().manual_seed(1))


def _soft(n: int = N) -> torch.Tensor:
    with torch.no_grad():
        return torch.softmax(_model()(_x(n)), dim=1)


def _points(
    labels: object = None,
    soft: object = None,
    *,
    wrap: bool = True,
    input: object = None,
    stop_at: str = "first_adversarial",
) -> torch.Tensor:
    stopper = EarlyStopping(stop_at, patience=1)  # type: ignore[arg-type]
    x = _x() if input is None else input
    stopper.reset(T(LABELS) if labels is None else labels, x)  # type: ignore[arg-type]
    attacked = LogitsAndInput(_model()) if wrap else _model()
    final = pgd(attacked, _x(), _soft() if soft is None else soft, objective=stopper, eps=0.3, steps=3, seed=0)
    return stopper.emitted(final)


def _same_points(labels: torch.Tensor):
    def check(points: torch.Tensor) -> None:
        assert torch.equal(points, _points(labels))

    return check


def _with(value: float) -> torch.Tensor:
    soft = _soft()
    soft[1, 1] = value
    return soft


CASES: list[Case] = [
    *(
        good(f"labels {dtype}", lambda dtype=dtype: _points(T(LABELS, dtype=dtype)), _same_points(T(LABELS)))
        for dtype in (torch.uint8, torch.int32)
    ),
    bad("labels float", TypeError, "`labels` to hold integer class indices", lambda: _points(T(LABELS) * 1.0)),
    bad("labels >= C", ValueError, r"`labels` values in \[0, 3\)", lambda: _points(T([0, 1, 2, 3]))),
    bad("labels of another batch", ValueError, r"`labels` of shape \(N,\) with N = 4", lambda: _points(T(LABELS[:3]))),
    bad(
        "input int",
        TypeError,
        "`input` to be a floating point tensor",
        lambda: _points(input=torch.zeros(N, 3, 2, 2, dtype=torch.long)),
    ),
    bad(
        "soft labels NaN", ValueError, "`target` to hold probability vectors", lambda: _points(soft=_with(float("nan")))
    ),
    bad(
        "soft labels of another C",
        ValueError,
        r"`target` to be soft labels of the logits' shape \(4, 3\)",
        lambda: _points(soft=torch.full((N, 1), 1.0)),
    ),
    bad("integer labels as the target", ValueError, "`target` to be soft labels", lambda: _points(soft=T(LABELS))),
    bad(
        "a model without LogitsAndInput",
        TypeError,
        r"attacked module to return \(logits, input\).*LogitsAndInput",
        lambda: _points(wrap=False),
    ),
    bad(
        "reset for another batch",
        RuntimeError,
        r"Call `reset\(labels, input\)`",
        lambda: _points(input=_x(2), labels=T(LABELS[:2])),
    ),
    good("empty", lambda: _empty(), lambda out: _shape(out, (0, 3, 2, 2))),
    bad("stop_at 'first'", ValueError, "`stop_at` to be one of", lambda: EarlyStopping("first")),  # type: ignore[arg-type]
    bad(
        "patience=-1",
        ValueError,
        "`patience` to be an int >= 0",
        lambda: EarlyStopping("first_adversarial", patience=-1),
    ),
]


def _empty() -> torch.Tensor:
    stopper = EarlyStopping("last_clean")
    x = _x(0)
    stopper.reset(torch.zeros(0, dtype=torch.long), x)
    final = pgd(LogitsAndInput(_model()), x, torch.zeros(0, C), objective=stopper, eps=0.3, steps=2)
    return stopper.emitted(final)


def _shape(tensor: torch.Tensor, shape: tuple[int, ...]) -> None:
    assert tuple(tensor.shape) == shape


@pytest.mark.parametrize("case", CASES, ids=ids(CASES))
def test_case(case: Case) -> None:
    run(case)
