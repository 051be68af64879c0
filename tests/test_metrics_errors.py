"""Bad and unusual inputs to `ClassAccuracy`, `class_accuracy_summary` and `worst_class_count`."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from _cases import Case, bad, equal, good, ids, run

from torch_absld import ClassAccuracy, class_accuracy_summary, worst_class_count

C = 3
PREDS = [0, 1, 1, 2]
LABELS = [0, 1, 2, 2]


def _updated(preds: object = None, target: object = None, **kwargs: object) -> ClassAccuracy:
    metric = ClassAccuracy(C, **kwargs)  # type: ignore[arg-type]
    metric.update(torch.tensor(PREDS) if preds is None else preds, torch.tensor(LABELS) if target is None else target)  # type: ignore[arg-type]
    return metric


def _counts(correct: list[int], total: list[int]):
    def check(metric: ClassAccuracy) -> None:
        assert metric.correct.tolist() == correct
        assert metric.total.tolist() == total

    return check


RIGHT = _counts([1, 1, 1], [1, 1, 2])

CASES: list[Case] = [
    bad("num_classes=0", ValueError, "`num_classes` >= 1", lambda: ClassAccuracy(0)),
    good("num_classes=np.int64", lambda: ClassAccuracy(np.int64(C)), lambda m: _is_int(m.num_classes)),
    bad("worst_fraction=0", ValueError, r"`worst_fraction` in \(0, 1\]", lambda: ClassAccuracy(C, worst_fraction=0.0)),
    good(
        "process_group=False",
        lambda: _updated(process_group=False).compute(),
        lambda r: equal(r.per_class, [1.0, 1.0, 0.5]),
    ),
    *(
        good(f"labels {dtype}", lambda dtype=dtype: _updated(target=torch.tensor(LABELS, dtype=dtype)), RIGHT)
        for dtype in (torch.uint8, torch.int8, torch.int16, torch.int32)
    ),
    good("predictions uint8", lambda: _updated(preds=torch.tensor(PREDS, dtype=torch.uint8)), RIGHT),
    good("scores", lambda: _updated(preds=torch.eye(C)[PREDS]), RIGHT),
    good(
        "empty batch", lambda: _updated(torch.zeros(0, C), torch.zeros(0, dtype=torch.long)), _counts([0] * 3, [0] * 3)
    ),
    bad("labels >= C", ValueError, r"`target` values in \[0, 3\)", lambda: _updated(target=torch.tensor([0, 1, 2, 3]))),
    bad(
        "predictions >= C",
        ValueError,
        r"`input` values in \[0, 3\)",
        lambda: _updated(preds=torch.tensor([0, 1, 2, 5])),
    ),
    bad("scores wrong C", ValueError, r"`input` scores of shape \(N, 3\)", lambda: _updated(preds=torch.randn(4, 4))),
    bad(
        "predictions N mismatch",
        ValueError,
        r"`target` of shape \(N,\) with N = 3",
        lambda: _updated(preds=torch.tensor([0, 1, 2])),
    ),
    # class_accuracy_summary
    bad(
        "summary negative",
        ValueError,
        "`correct` to hold non-negative counts",
        lambda: class_accuracy_summary([-1, 1], [2, 2]),
    ),
    bad("summary correct > total", ValueError, "`correct` <= `total`", lambda: class_accuracy_summary([3, 1], [2, 2])),
    bad(
        "summary float tensor",
        TypeError,
        "`correct` to be an integer tensor",
        lambda: class_accuracy_summary(torch.tensor([1.0, 1.0]), [2, 2]),
    ),
    bad("summary empty class", ValueError, "at least one sample", lambda: class_accuracy_summary([1, 0], [2, 0])),
    bad("summary lengths", ValueError, "of the same shape", lambda: class_accuracy_summary([1, 1], [2, 2, 2])),
    good(
        "summary numpy counts",
        lambda: class_accuracy_summary(np.array([1, 2]), np.array([2, 2])),
        lambda r: equal(r.per_class, [0.5, 1.0]),
    ),  # type: ignore[arg-type]
    good(
        "summary uint8 tensor",
        lambda: class_accuracy_summary(torch.tensor([1, 2], dtype=torch.uint8), torch.tensor([2, 2])),
        lambda r: equal(r.per_class, [0.5, 1.0]),
    ),
    # worst_class_count
    bad("worst fraction 1.5", ValueError, r"`worst_fraction` in \(0, 1\]", lambda: worst_class_count(10, 1.5)),
    good("worst fraction np.float64", lambda: worst_class_count(30, np.float64(0.1)), lambda k: equal(k, 3)),
    good("worst count np.int64 classes", lambda: worst_class_count(np.int64(100)), lambda k: equal(k, 10)),
]


def _is_int(value: object) -> None:
    assert type(value) is int


@pytest.mark.parametrize("case", CASES, ids=ids(CASES))
def test_case(case: Case) -> None:
    run(case)
