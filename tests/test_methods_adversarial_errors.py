"""Bad and unusual inputs at the boundary that the baseline methods' steps share (`AdversarialStep`).

Every step checks its batch once: labels of any integer dtype (cast to int64 there), the input's
and the labels' values in one read, the models' outputs, and an empty batch gives a zero loss.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from _cases import Case, bad, good, ids, run
from _step_cases import (
    DISTILLERS,
    METHODS,
    STEPS,
    C,
    N,
    build,
    empty_step,
    finite_loss,
    labels,
    nan_input,
    net,
    returns,
    run_step,
    same_as_long_labels,
    zero_loss_nothing_recorded,
)


def _rows(method: str) -> list[Case]:
    name = STEPS[method].__name__
    rows = [
        good(
            f"{method} labels {dtype}",
            lambda dtype=dtype: run_step(method, labels(dtype)),
            same_as_long_labels(method),
        )
        for dtype in (torch.uint8, torch.int32)
    ]
    return [
        *rows,
        bad(
            f"{method} labels bool",
            TypeError,
            "`target` to hold integer class indices",
            lambda: run_step(method, labels() > 1),
        ),
        bad(
            f"{method} labels >= C", ValueError, r"`target` values in \[0, 4\)", lambda: run_step(method, labels() + 1)
        ),
        bad(
            f"{method} labels on meta",
            ValueError,
            "`target` on the device",
            lambda: run_step(method, labels().to("meta")),
        ),
        bad(f"{method} input NaN", ValueError, "`input` to be finite", lambda: run_step(method, input=nan_input())),
        bad(
            f"{method} input on meta",
            ValueError,
            "`input` on the device",
            lambda: run_step(method, input=torch.rand(N, 3, 2, 2, device="meta")),
        ),
        good(f"{method} empty batch", lambda: empty_step(method), zero_loss_nothing_recorded),
        bad(
            f"{method} student with C + 1 classes",
            ValueError,
            r"`student` to return logits of shape \(N, num_classes\)|same number of classes",
            lambda: run_step(method, student=net(1, C + 1)),
        ),
        bad(
            f"{method} student with C - 1 classes",
            ValueError,
            r"`student` to return logits of shape \(N, num_classes\)|same number of classes",
            lambda: run_step(method, student=net(1, C - 1)),
        ),
        bad(
            f"{method} student returns a tuple",
            ValueError,
            r"`student` to return logits of shape \(N, ",
            lambda: run_step(method, student=returns("tuple", 1)),
        ),
        bad(
            f"{method} unknown option",
            TypeError,
            f"keyword options of {name} .*`bogus`",
            lambda: build(method, bogus=1),
        ),
        bad(
            f"{method} validate_args='yes'",
            TypeError,
            "`validate_args` to be a bool",
            lambda: build(method, validate_args="yes"),
        ),
        good(
            f"{method} num_classes=np.int64",
            lambda: build(method, num_classes=np.int64(C)),
            lambda s: _int(s.num_classes),
        ),
        bad(f"{method} num_classes=1", ValueError, "`num_classes` >= 2", lambda: build(method, num_classes=1)),
    ]


def _teacher_rows(method: str) -> list[Case]:
    return [
        bad(
            f"{method} teacher with C + 1 classes",
            ValueError,
            r"`teacher` to return logits of shape \(N, num_classes\)|same number of classes",
            lambda: run_step(method, teacher=net(2, C + 1)),
        ),
        bad(
            f"{method} teacher returns a tuple",
            ValueError,
            r"`teacher` to return logits of shape \(N, ",
            lambda: run_step(method, teacher=returns("tuple")),
        ),
        bad(
            f"{method} teacher logits NaN",
            ValueError,
            "`teacher` to (return|hold) finite logits",
            lambda: run_step(method, teacher=returns("nan")),
        ),
        good(f"{method} teacher -inf (masking)", lambda: run_step(method, teacher=returns("masked")), finite_loss),
        bad(
            f"{method} teacher None", TypeError, "`teacher` to be an nn.Module", lambda: STEPS[method](net(1), None, C)
        ),
    ]


CASES: list[Case] = [
    *(row for method in METHODS for row in _rows(method)),
    *(row for method in DISTILLERS for row in _teacher_rows(method)),
]


def _int(value: object) -> None:
    assert type(value) is int


@pytest.mark.parametrize("case", CASES, ids=ids(CASES))
def test_case(case: Case) -> None:
    run(case)
