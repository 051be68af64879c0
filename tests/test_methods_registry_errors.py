"""Bad and unusual inputs to `methods.create`."""

from __future__ import annotations

import numpy as np
import pytest
from _cases import Case, bad, good, ids, run
from _step_cases import C, net

from torch_absld.losses.frl import FRLLoss
from torch_absld.methods import available, create

TEACHER_FREE = ("sat", "trades", "frl", "cfa", "bat")


def _create(name: object, *, teacher: object = "default", **options: object):
    if teacher == "default":
        teacher = net(2)
    return create(name, net(1), num_classes=C, teacher=teacher, steps=1, **options)  # type: ignore[arg-type]


CASES: list[Case] = [
    bad("name 'bogus'", ValueError, "`name` to be one of 'absld', 'adaad'", lambda: _create("bogus")),
    bad("name None", TypeError, "`name` to be a str", lambda: _create(None)),
    bad("name 'fair_ard'", ValueError, "Did you mean 'fair-ard'", lambda: _create("fair_ard")),
    bad("name 'SAT'", ValueError, "Did you mean 'sat'", lambda: _create("SAT")),
    *(
        bad(
            f"{name} unknown option",
            TypeError,
            f"keyword options of the method '{name}' to be among .*but got unknown `bogus`",
            lambda name=name: _create(name, bogus=1),
        )
        for name in available()
    ),
    bad("trades a typo", TypeError, "Did you mean `beta`", lambda: _create("trades", betta=6.0)),
    bad("fair-ard a typo", TypeError, "Did you mean `min_weight`", lambda: _create("fair-ard", min_wieght=1.0)),
    *(
        bad(
            f"{name} without teacher",
            ValueError,
            f"Expected a `teacher` for the method '{name}'",
            lambda name=name: _create(name, teacher=None),
        )
        for name in ("absld", "rslad", "ard", "adaad", "fair-ard")
    ),
    bad("ard teacher a list", TypeError, "`teacher` to be an nn.Module", lambda: _create("ard", teacher=[net(2)])),
    *(
        good(f"{name} ignores a teacher", lambda name=name: _create(name), lambda step: _no_teacher(step))
        for name in TEACHER_FREE
    ),
    bad(
        "frl loss and its options",
        ValueError,
        "either `loss` or loss options",
        lambda: _create("frl", loss=FRLLoss(C), threshold=0.1),
    ),
    bad(
        "cfa averaging options with fawa=False",
        ValueError,
        "no weight-averaging options",
        lambda: _create("cfa", fawa=False, decay=0.9),
    ),
    bad("fair-ard beta<0", ValueError, "`beta` >= 0", lambda: _create("fair-ard", beta=-2.0)),
    bad("frl threshold<0", ValueError, r"`threshold` in \[0, 1\]", lambda: _create("frl", threshold=-0.1)),
    bad("cfa decay=1", ValueError, r"`decay` in \(0, 1\)", lambda: _create("cfa", decay=1.0)),
    good(
        "frl num_classes=np.int64",
        lambda: create("frl", net(1), num_classes=np.int64(C)),
        lambda step: _int(step.num_classes),
    ),
    bad("num_classes='4'", TypeError, "`num_classes` to be an int", lambda: create("sat", net(1), num_classes="4")),  # type: ignore[arg-type]
]


def _no_teacher(step) -> None:
    assert step.teacher is None


def _int(value: object) -> None:
    assert type(value) is int


@pytest.mark.parametrize("case", CASES, ids=ids(CASES))
def test_case(case: Case) -> None:
    run(case)
