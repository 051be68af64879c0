"""Bad and unusual inputs to `ClassStatistics`: each gets a clear error or the right result."""

from __future__ import annotations

import pytest
import torch
from _cases import Case, bad, good, ids, rejected_load, run

from torch_absld import ClassStatistics

C = 3


def _accumulated(target: torch.Tensor, values: torch.Tensor | None = None) -> torch.Tensor:
    stats = ClassStatistics(C)
    stats.accumulate(torch.ones(len(target)) if values is None else values, target)
    return stats.accumulator


def _expect(sums: list[float], counts: list[float]):
    def check(accumulator: torch.Tensor) -> None:
        assert torch.equal(accumulator, torch.tensor([sums, counts], dtype=torch.float64))

    return check


def _loaded(accumulator: torch.Tensor) -> object:
    stats = ClassStatistics(C)
    stats.accumulate(torch.ones(2), torch.tensor([0, 1]))
    return rejected_load(stats, {"accumulator": accumulator})


CASES: list[Case] = [
    bad("num_classes=0", ValueError, "`num_classes` >= 1, but got 0", lambda: ClassStatistics(0)),
    bad("num_stats=0", ValueError, "`num_stats` to be an int >= 1", lambda: ClassStatistics(C, 0)),
    bad(
        "process_group=True",
        TypeError,
        "`process_group` to be a ProcessGroup, None or False",
        lambda: ClassStatistics(C, process_group=True),  # type: ignore[arg-type]
    ),
    good("process_group=False", lambda: ClassStatistics(C, process_group=False).synced(), _expect([0] * 3, [0] * 3)),
    good(
        "labels uint8", lambda: _accumulated(torch.tensor([0, 2, 2], dtype=torch.uint8)), _expect([1, 0, 2], [1, 0, 2])
    ),
    bad(
        "labels float",
        TypeError,
        "`target` to hold integer class indices",
        lambda: _accumulated(torch.tensor([0.0, 1.0])),
    ),
    bad("labels >= C", ValueError, r"`target` values in \[0, 3\)", lambda: _accumulated(torch.tensor([0, 3]))),
    bad(
        "labels N mismatch",
        ValueError,
        r"`target` of shape \(N,\) with N = 3",
        lambda: _accumulated(torch.tensor([0, 1]), torch.ones(3)),
    ),
    bad(
        "values int",
        TypeError,
        "`values` to be a floating point tensor",
        lambda: _accumulated(torch.tensor([0]), torch.tensor([1])),
    ),
    bad(
        "values (N, 2) for S = 1",
        ValueError,
        r"`values` of shape",
        lambda: _accumulated(torch.tensor([0]), torch.ones(1, 2)),
    ),
    good("empty batch", lambda: _accumulated(torch.zeros(0, dtype=torch.long)), _expect([0] * 3, [0] * 3)),
    bad("load wrong shape", ValueError, r"loaded `accumulator` of shape \(2, 3\)", lambda: _loaded(torch.zeros(2, 4))),
    bad(
        "load NaN sum",
        ValueError,
        "loaded `accumulator` to be finite",
        lambda: _loaded(torch.tensor([[float("nan"), 0, 0], [1.0, 0, 0]])),
    ),
    bad(
        "load fractional count",
        ValueError,
        "non-negative integer counts",
        lambda: _loaded(torch.tensor([[0.0, 0, 0], [0.5, 0, 0]])),
    ),
]


def _is_int(value: object, want: int) -> None:
    assert type(value) is int
    assert value == want


@pytest.mark.parametrize("case", CASES, ids=ids(CASES))
def test_case(case: Case) -> None:
    run(case)
