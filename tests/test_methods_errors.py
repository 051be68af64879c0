"""Bad and unusual inputs to the training steps and the registry: one wiring case per public entry point.

The checks themselves are tested once, in tests/test_checks.py; here each door of every method
(``methods.create``, the step's constructor, ``forward``, ``on_epoch_end``, ``load_state_dict``)
is shown to be wired to them, and the boundary's behaviours (any integer labels, empty batches,
eval mode) are pinned for every method.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from _cases import Case, bad, good, ids, run
from _step_cases import (
    C,
    N,
    batch,
    build,
    empty_step,
    finite_loss,
    labels,
    loaded,
    nan_input,
    net,
    returns,
    run_step,
    same_as_long_labels,
    zero_loss_nothing_recorded,
)

from torch_absld import methods
from torch_absld.losses.frl import FRLLoss

ALL = methods.available()
DISTILLERS = tuple(name for name in ALL if methods.get(name).needs_teacher)
VALIDATED = tuple(name for name in ALL if methods.get(name).needs_validation)


def _create(name: object, *, teacher: object = "default", **options: object):
    teacher = net(2) if teacher == "default" else teacher
    return methods.create(name, net(1), num_classes=C, teacher=teacher, steps=1, **options)  # type: ignore[arg-type]


def _direct(name: str, **options: object) -> object:
    """The step class itself (not ``methods.create``)."""
    method = methods.get(name)
    return method.step(*((net(1), net(2)) if method.needs_teacher else (net(1),)), C, **options)


def _epoch_end(name: str, validation: object = None, **options: object) -> object:
    return build(name, **({"fawa": True, "start_epoch": 0} if name == "cfa" else {}), **options).on_epoch_end(
        validation
    )


def _records_nothing_in_eval_mode(name: str) -> torch.nn.Module:
    step = build(name).eval()
    step(batch(), labels())
    return step


def _nothing_recorded(step: torch.nn.Module) -> None:
    for module in step.modules():
        accumulator = getattr(module, "accumulator", None)
        if isinstance(accumulator, torch.Tensor):
            assert accumulator.sum() == 0, type(module).__name__


def _rows(name: str) -> list[Case]:
    step = methods.get(name).step.__name__
    return [
        # the constructor
        bad(
            f"{name} unknown option", TypeError, f"keyword options of {step} .*`bogus`", lambda: _direct(name, bogus=1)
        ),
        bad(f"{name} loss option", ValueError, "`reduction`", lambda: build(name, reduction="bogus")),
        bad(f"{name} loss a list", TypeError, "`loss` to be an? .*Loss or None", lambda: build(name, loss=[1.0])),
        bad(f"{name} validate_args", TypeError, "`validate_args` to be a bool", lambda: build(name, validate_args=1)),
        bad(f"{name} num_classes=1", ValueError, "`num_classes` >= 2", lambda: build(name, num_classes=1)),
        bad(f"{name} attack a dict", TypeError, "`config` to be a PGDConfig", lambda: build(name, attack={})),
        good(
            f"{name} num_classes=np.int64", lambda: build(name, num_classes=np.int64(C)), lambda s: _int(s.num_classes)
        ),
        # forward: shapes, dtypes and devices always, values in one read
        good(f"{name} labels uint8", lambda: run_step(name, labels(torch.uint8)), same_as_long_labels(name)),
        bad(f"{name} labels bool", TypeError, "`target` to hold integer", lambda: run_step(name, labels() > 1)),
        bad(f"{name} labels >= C", ValueError, r"`target` values in \[0, 4\)", lambda: run_step(name, labels() + 1)),
        bad(f"{name} input NaN", ValueError, "`input` to be finite", lambda: run_step(name, input=nan_input())),
        bad(
            f"{name} input on meta",
            ValueError,
            "`input` on the device",
            lambda: run_step(name, input=torch.rand(N, 3, 2, 2, device="meta")),
        ),
        bad(
            f"{name} student with C + 1 classes",
            ValueError,
            r"\(N, (C|num_classes)\)|same number of classes",
            lambda: run_step(name, student=net(1, C + 1)),
        ),
        good(f"{name} empty batch", lambda: empty_step(name), zero_loss_nothing_recorded),
        good(f"{name} eval mode records nothing", lambda: _records_nothing_in_eval_mode(name), _nothing_recorded),
        # load_state_dict
        bad(
            f"{name} load a student of another shape",
            ValueError,
            r"loaded `student.4.weight` of shape \(4, 8\)|loaded `scale`",  # FRL's scales are checked first
            lambda: loaded(name, {"student.4.weight": torch.zeros(C + 1, 8)}),
        ),
    ]


def _teacher_rows(name: str) -> list[Case]:
    return [
        bad(
            f"{name} teacher None",
            TypeError,
            "`teacher` to be an nn.Module",
            lambda: methods.get(name).step(net(1), None, C),
        ),
        bad(f"{name} create without teacher", ValueError, "Expected a `teacher`", lambda: _create(name, teacher=None)),
        bad(
            f"{name} teacher with C + 1 classes",
            ValueError,
            r"`teacher` to return logits of shape \(N, num_classes\)|of one shape",
            lambda: run_step(name, teacher=net(2, C + 1)),
        ),
        bad(
            f"{name} teacher NaN",
            ValueError,
            "`teacher` to (return|hold) finite",
            lambda: run_step(name, teacher=returns("nan")),
        ),
        good(f"{name} teacher -inf masks", lambda: run_step(name, teacher=returns("masked")), finite_loss),
    ]


def _validation_rows(name: str) -> list[Case]:
    return [
        bad(
            f"{name} validation an int", TypeError, "`validation` to be an iterable", lambda: build(name, validation=3)
        ),
        bad(f"{name} validation_steps=0", ValueError, "`validation_steps`", lambda: build(name, validation_steps=0)),
        bad(f"{name} epoch end without validation", RuntimeError, r"pass\s+`validation=`", lambda: _epoch_end(name)),
        bad(
            f"{name} validation labels >= C",
            ValueError,
            r"`target` values in \[0, 4\)",
            lambda: _epoch_end(name, [(batch(4), torch.tensor([0, 1, 2, 4]))]),
        ),
        good(
            f"{name} validation of an empty batch and a full one",
            lambda: _epoch_end(name, [(batch(0), torch.zeros(0, dtype=torch.long)), (batch(8), torch.arange(8) % C)]),
            lambda scales: _shape(scales, (C,)),
        ),
    ]


CASES: list[Case] = [
    # methods.create
    bad("create name 'bogus'", ValueError, "`name` to be one of 'absld', 'adaad'", lambda: _create("bogus")),
    bad("create name None", TypeError, "`name` to be a str", lambda: _create(None)),
    bad("create name 'fair_ard'", ValueError, "Did you mean 'fair-ard'", lambda: _create("fair_ard")),
    bad(
        "create unknown option",
        TypeError,
        "keyword options of the method 'sat' .*`bogus`",
        lambda: _create("sat", bogus=1),
    ),
    bad("create a typo", TypeError, "Did you mean `beta`", lambda: _create("trades", betta=6.0)),
    bad(
        "create rslad adapt='both'",
        ValueError,
        "`adapt` = 'none' for the method 'rslad'",
        lambda: _create("rslad", adapt="both"),
    ),
    bad(
        "create loss and its options",
        ValueError,
        "either `loss` or loss options",
        lambda: _create("frl", loss=FRLLoss(C), threshold=0.1),
    ),
    good("create sat ignores a teacher", lambda: _create("sat"), lambda step: _none(step.teacher)),
    # the methods' own constructor arguments
    bad("cfa fawa 'yes'", TypeError, "`fawa` to be a bool", lambda: build("cfa", fawa="yes")),
    bad("cfa decay with fawa=False", ValueError, "no weight-averaging options", lambda: build("cfa", decay=0.9)),
    bad("cfa decay=1", ValueError, r"`decay` in \(0, 1\)", lambda: build("cfa", fawa=True, decay=1.0)),
    bad("bat patience=0", ValueError, "`patience`", lambda: build("bat", patience=-1)),
    bad(
        "fair-ard base 'trades'",
        ValueError,
        "`base` to be one of 'ard', 'rslad'",
        lambda: build("fair-ard", base="trades"),
    ),
    *(row for name in ALL for row in _rows(name)),
    *(row for name in DISTILLERS for row in _teacher_rows(name)),
    *(row for name in VALIDATED for row in _validation_rows(name)),
]


def _int(value: object) -> None:
    assert type(value) is int


def _none(value: object) -> None:
    assert value is None


def _shape(tensor: torch.Tensor, shape: tuple[int, ...]) -> None:
    assert tuple(tensor.shape) == shape


@pytest.mark.parametrize("case", CASES, ids=ids(CASES))
def test_case(case: Case) -> None:
    run(case)
