"""Bad and unusual inputs to `CountingObjective`."""

from __future__ import annotations

import pytest
import torch
from _cases import Case, bad, good, identical, ids, run
from torch import nn

from torch_absld import pgd
from torch_absld.attack import CountingObjective

C, N = 3, 4
T = torch.tensor
LABELS = [0, 1, 2, 1]


def _model(out: int = C) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(12, out))


def _x(n: int = N) -> torch.Tensor:
    return torch.rand(n, 3, 2, 2, generator=torch.Generator().manual_seed(1))


def _counts(
    labels: object, target: object = None, *, objective: str = "ce", model: nn.Module | None = None, n: int = N
) -> torch.Tensor:
    counter = CountingObjective(objective)  # type: ignore[arg-type]
    counter.reset(labels)  # type: ignore[arg-type]
    attack_target = T(LABELS) if target is None else target
    pgd(model or _model(), _x(n), attack_target, objective=counter, eps=0.1, steps=2, random_start=None)
    return counter.counts


def _by_hand(labels: list[int]) -> torch.Tensor:
    """The predictions at the start (the input) and after one step of the same attack, compared with the labels."""
    model, start = _model(), _x()
    first = pgd(model, start, T(LABELS), eps=0.1, steps=1, random_start=None)
    with torch.no_grad():
        hits = [(model(point).argmax(1) == T(labels)).float() for point in (start, first)]
    return hits[0] + hits[1]


class _Flat(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.flatten(1).sum(1)


def _soft(value: float | None = None) -> torch.Tensor:
    soft = torch.softmax(torch.randn(N, C, generator=torch.Generator().manual_seed(2)), dim=1)
    if value is not None:
        soft[1, 1] = value
    return soft


CASES: list[Case] = [
    good("counts by hand", lambda: _counts(T(LABELS)), lambda out: identical(out, _by_hand(LABELS))),
    *(
        good(
            f"labels {dtype}",
            lambda dtype=dtype: _counts(T(LABELS, dtype=dtype)),
            lambda out: identical(out, _by_hand(LABELS)),
        )
        for dtype in (torch.uint8, torch.int32)
    ),
    bad("labels float", TypeError, "`labels` to hold integer class indices", lambda: _counts(T(LABELS) * 1.0)),
    bad("labels >= C", ValueError, r"`labels` values in \[0, 3\)", lambda: _counts(T([0, 1, 2, 3]))),
    bad("ce target >= C", ValueError, r"`target` values in \[0, 3\)", lambda: _counts(T(LABELS), T([0, 1, 2, 5]))),
    good("kl soft labels", lambda: _counts(T(LABELS), _soft(), objective="kl"), lambda out: _shape(out, (N,))),
    bad(
        "kl soft labels of another C",
        ValueError,
        r"`target` of shape \(N, C\) = \(4, 3\)",
        lambda: _counts(T(LABELS), torch.full((N, C + 1), 0.25), objective="kl"),
    ),
    bad("model returns 1-D", ValueError, r"`output` of shape \(N, C\)", lambda: _counts(T(LABELS), model=_Flat())),
    bad(
        "reset for another batch",
        RuntimeError,
        r"Call `reset\(labels\)` before each attack",
        lambda: _counts(T(LABELS[:3])),
    ),
    good(
        "empty",
        lambda: _counts(torch.zeros(0, dtype=torch.long), torch.zeros(0, dtype=torch.long), n=0),
        lambda out: _shape(out, (0,)),
    ),
    bad("objective 'auto'", ValueError, "`objective` to be one of 'ce', 'kl', 'cw'", lambda: CountingObjective("auto")),  # type: ignore[arg-type]
    bad(
        "student_temperature=0",
        ValueError,
        "`student_temperature` > 0",
        lambda: CountingObjective("kl", student_temperature=0.0),
    ),
]


def _shape(tensor: torch.Tensor, shape: tuple[int, ...]) -> None:
    assert tuple(tensor.shape) == shape


@pytest.mark.parametrize("case", CASES, ids=ids(CASES))
def test_case(case: Case) -> None:
    run(case)
