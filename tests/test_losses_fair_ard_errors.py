"""Bad and unusual inputs to `fair_ard_loss` and `FairARDLoss` (and its controller, through `record`)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from _cases import Case, bad, good, identical, ids, rejected_load, run
from _loss_cases import C, Loss, N, labels, logits, loss_rows, option_rows, same_as

from torch_absld.losses import FairARDLoss, fair_ard_loss

NAMES = ("student_adv", "student_clean", "teacher")
WEIGHTS = torch.tensor([1.0, 2.0, 0.9, 1.5])


def _module(**kwargs: object) -> FairARDLoss:
    loss_fn = FairARDLoss(C, alpha=0.5, **kwargs)  # type: ignore[arg-type]
    loss_fn.vulnerability.weights.copy_(WEIGHTS)
    return loss_fn


FUNCTIONAL = Loss("fair_ard_loss", NAMES, lambda z, y, **kw: fair_ard_loss(*z, y, WEIGHTS, alpha=0.5, **kw), masked=2)
RSLAD = Loss(
    "fair_ard_loss rslad", NAMES, lambda z, y, **kw: fair_ard_loss(*z, y, WEIGHTS, base="rslad", **kw), masked=2
)
MODULE = Loss("FairARDLoss", NAMES, lambda z, y, **kw: _module(**kw)(*z, y), masked=2)
OPTIONS = [
    ("base", "trades", ValueError, "`base` to be one of 'ard', 'rslad'"),
    ("temperature", -1.0, ValueError, "`temperature` > 0"),
    ("alpha", 2.0, ValueError, r"`alpha` in \[0, 1\]"),
    ("reduction", "batchmean", ValueError, "`reduction` to be one of 'mean', 'sum', 'none'"),
]


def _weights(values: object) -> torch.Tensor:
    return fair_ard_loss(*logits(3), labels(), values)  # type: ignore[arg-type]


def _record(kappa: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    loss_fn = FairARDLoss(C)
    loss_fn.record(kappa, target)
    return loss_fn.vulnerability.accumulator


def _load(**changes: object) -> object:
    state = FairARDLoss(C).state_dict()
    state.update(changes)
    return rejected_load(FairARDLoss(C), state)


CASES: list[Case] = [
    *loss_rows(FUNCTIONAL),
    *loss_rows(RSLAD),
    *loss_rows(MODULE),
    *option_rows("fair_ard_loss", lambda **kw: fair_ard_loss(*logits(3), labels(), WEIGHTS, **kw), OPTIONS),
    *option_rows(
        "FairARDLoss",
        lambda **kw: FairARDLoss(C, **kw),
        [
            *OPTIONS,
            ("beta", -2.0, ValueError, "`beta` >= 0"),
            ("beta", 0.0, None, ""),
            ("min_weight", 0.0, ValueError, "`min_weight` > 0"),
            ("max_weight", 0.5, ValueError, "`min_weight` <= `max_weight`"),
            ("process_group", False, None, ""),
            ("process_group", 1, TypeError, "`process_group` to be a ProcessGroup"),
            ("validate_args", "yes", TypeError, "`validate_args` to be a bool"),
        ],
    ),
    good("FairARDLoss num_classes=np.int64", lambda: FairARDLoss(np.int64(C)), lambda m: _int(m.num_classes)),
    bad("FairARDLoss num_classes=1.0", TypeError, "`num_classes` to be an int", lambda: FairARDLoss(1.0)),  # type: ignore[arg-type]
    # the class weights of the functional form
    bad("class_weights negative", ValueError, "`class_weights` to hold finite values >= 0", lambda: _weights(-WEIGHTS)),
    bad(
        "class_weights NaN",
        ValueError,
        "`class_weights` to hold finite values >= 0",
        lambda: _weights(torch.tensor([1.0, float("nan"), 1.0, 1.0])),
    ),
    bad(
        "class_weights (C + 1,)",
        ValueError,
        r"`class_weights` of shape \(4,\), but got \(5,\)",
        lambda: _weights(torch.ones(5)),
    ),
    bad(
        "class_weights a list",
        ValueError,
        r"`class_weights` of shape \(4,\), but got list",
        lambda: _weights([1.0] * 4),
    ),
    bad("class_weights on meta", ValueError, "`class_weights` on the device", lambda: _weights(WEIGHTS.to("meta"))),
    # record: each sample's kappa into the controller
    good(
        "record uint8 labels",
        lambda: _record(torch.tensor([1.0, 2.0, 3.0, 4.0]), labels(torch.uint8)),
        same_as(lambda: _record(torch.tensor([1.0, 2.0, 3.0, 4.0]), labels())),
    ),
    bad(
        "record kappa negative",
        ValueError,
        r"`values` \(each sample's kappa.*>= 0",
        lambda: _record(torch.tensor([1.0, -2.0, 3.0, 4.0]), labels()),
    ),
    bad("record kappa int", TypeError, "`values` to be a floating point tensor", lambda: _record(labels(), labels())),
    bad("record labels >= C", ValueError, r"`target` values in \[0, 4\)", lambda: _record(torch.ones(N), labels() + 1)),
    bad(
        "record N mismatch",
        ValueError,
        r"`target` of shape \(N,\) with N = 4",
        lambda: _record(torch.ones(N), labels()[:3]),
    ),
    good(
        "record empty",
        lambda: _record(torch.zeros(0), torch.zeros(0, dtype=torch.long)),
        lambda acc: identical(acc, torch.zeros(2, C, dtype=torch.float64)),
    ),
    # loading the controller
    bad(
        "load weights above max_weight",
        ValueError,
        "loaded `weights` to be finite and > 0",
        lambda: _load(**{"vulnerability.weights": torch.tensor([9.0, 1.0, 1.0, 1.0])}),
    ),
    bad(
        "load weights below min_weight",
        ValueError,
        "loaded `weights` to be finite and > 0",
        lambda: _load(**{"vulnerability.weights": torch.tensor([0.5, 1.0, 1.0, 1.0])}),
    ),
    good(
        "load weights in the clamp",
        lambda: _load(**{"vulnerability.weights": torch.tensor([2.5, 5 / 6, 1.0, 1.7])}),
    ),
]


def _int(value: object) -> None:
    assert type(value) is int


@pytest.mark.parametrize("case", CASES, ids=ids(CASES))
def test_case(case: Case) -> None:
    run(case)
