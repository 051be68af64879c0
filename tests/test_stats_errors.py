"""Bad and unusual inputs to `ClassStatistics`: each gets a clear error or the right result."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from _cases import Case, bad, good, ids, rejected_load, run

from torch_absld import ClassStatistics

C = 3
LABEL_DTYPES = (torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64)


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
    bad("num_classes=-2", ValueError, "`num_classes` >= 1", lambda: ClassStatistics(-2)),
    bad("num_classes=2.5", TypeError, "`num_classes` to be an int", lambda: ClassStatistics(2.5)),  # type: ignore[arg-type]
    bad("num_classes='3'", TypeError, "`num_classes` to be an int", lambda: ClassStatistics("3")),  # type: ignore[arg-type]
    bad("num_classes=True", TypeError, "`num_classes` to be an int", lambda: ClassStatistics(True)),
    good("num_classes=np.int64", lambda: ClassStatistics(np.int64(3)), lambda s: _is_int(s.num_classes, 3)),
    bad("num_stats=0", ValueError, "`num_stats` to be an int >= 1", lambda: ClassStatistics(C, 0)),
    bad("num_stats=1.5", ValueError, "`num_stats` to be an int >= 1", lambda: ClassStatistics(C, 1.5)),  # type: ignore[arg-type]
    good("num_stats=np.int32", lambda: ClassStatistics(C, np.int32(2)), lambda s: _is_int(s.num_stats, 2)),
    bad(
        "process_group=True",
        TypeError,
        "`process_group` to be a ProcessGroup, None or False",
        lambda: ClassStatistics(C, process_group=True),  # type: ignore[arg-type]
    ),
    good("process_group=False", lambda: ClassStatistics(C, process_group=False).synced(), _expect([0] * 3, [0] * 3)),
    *(
        good(
            f"labels {dtype}",
            lambda dtype=dtype: _accumulated(torch.tensor([0, 2, 2], dtype=dtype)),
            _expect([1, 0, 2], [1, 0, 2]),
        )
        for dtype in LABEL_DTYPES
    ),
    bad(
        "labels bool",
        TypeError,
        "`target` to hold integer class indices",
        lambda: _accumulated(torch.tensor([True, False])),
    ),
    bad(
        "labels float",
        TypeError,
        "`target` to hold integer class indices",
        lambda: _accumulated(torch.tensor([0.0, 1.0])),
    ),
    bad("labels 2-D", ValueError, r"`target` of shape \(N,\)", lambda: _accumulated(torch.tensor([[0], [1]]))),
    bad("labels list", TypeError, "`target` to be a torch.Tensor", lambda: _accumulated([0, 1])),  # type: ignore[arg-type]
    bad("labels >= C", ValueError, r"`target` values in \[0, 3\)", lambda: _accumulated(torch.tensor([0, 3]))),
    bad("labels < 0", ValueError, r"`target` values in \[0, 3\)", lambda: _accumulated(torch.tensor([-1, 0]))),
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
    bad(
        "labels on the meta device",
        ValueError,
        "`target` on the device",
        lambda: _accumulated(torch.tensor([0, 1], device="meta")),
    ),
    bad("load wrong shape", ValueError, r"loaded `accumulator` of shape \(2, 3\)", lambda: _loaded(torch.zeros(2, 4))),
    bad(
        "load NaN sum",
        ValueError,
        "loaded `accumulator` to be finite",
        lambda: _loaded(torch.tensor([[float("nan"), 0, 0], [1.0, 0, 0]])),
    ),
    bad(
        "load negative count",
        ValueError,
        "non-negative integer counts",
        lambda: _loaded(torch.tensor([[0.0, 0, 0], [-1.0, 0, 0]])),
    ),
    bad(
        "load fractional count",
        ValueError,
        "non-negative integer counts",
        lambda: _loaded(torch.tensor([[0.0, 0, 0], [0.5, 0, 0]])),
    ),
    bad("load a list", ValueError, r"loaded `accumulator` of shape \(2, 3\)", lambda: _loaded([[0.0] * 3, [0.0] * 3])),  # type: ignore[arg-type]
]


def _is_int(value: object, want: int) -> None:
    assert type(value) is int
    assert value == want


@pytest.mark.parametrize("case", CASES, ids=ids(CASES))
def test_case(case: Case) -> None:
    run(case)
