"""Bad and unusual inputs to `FairARDStep` (its boundary's rows are in test_methods_adversarial_errors.py)."""

from __future__ import annotations

import pytest
import torch
from _cases import Case, bad, good, ids, run
from _step_cases import C, batch, build, labels, loaded, net

from torch_absld.losses.fair_ard import FairARDLoss


def _eval_records_nothing() -> torch.Tensor:
    step = build("fair-ard").eval()
    step(batch(), labels())
    return step.loss_fn.vulnerability.accumulator


CASES: list[Case] = [
    bad(
        "loss base 'trades'",
        ValueError,
        "`base` to be one of 'ard', 'rslad'",
        lambda: build("fair-ard", base="trades"),
    ),
    bad("loss beta<0", ValueError, "`beta` >= 0", lambda: build("fair-ard", beta=-2.0)),
    bad(
        "loss for another C",
        ValueError,
        "`loss` for num_classes = 4",
        lambda: build("fair-ard", loss=FairARDLoss(C + 1)),
    ),
    bad("loss a list", TypeError, "`loss` to be a FairARDLoss or None", lambda: build("fair-ard", loss=[1.0])),
    bad(
        "loss mapping with a bad key",
        TypeError,
        "Did you mean `beta`",
        lambda: build("fair-ard", betta=2.0),
    ),
    good("eval mode records nothing", _eval_records_nothing, lambda acc: _zero(acc)),
    good(
        "base 'rslad'",
        lambda: build("fair-ard", base="rslad")(batch(), labels()),
        lambda out: _finite(out.loss),
    ),
    bad(
        "load weights above max_weight",
        ValueError,
        "loaded `weights` to be finite and > 0",
        lambda: loaded("fair-ard", {"loss_fn.vulnerability.weights": torch.tensor([9.0, 1.0, 1.0, 1.0])}),
    ),
    bad(
        "load a student of another shape",
        ValueError,
        r"loaded `student.4.weight` of shape \(4, 8\)",
        lambda: loaded("fair-ard", {"student.4.weight": torch.zeros(C + 1, 8)}),
    ),
    bad(
        "load a checkpoint without the controller",
        RuntimeError,
        r"missing key\(s\) \['loss_fn.vulnerability",
        lambda: loaded("fair-ard", {}, source=build("ard", student=net(3))),
    ),
]


def _zero(accumulator: torch.Tensor) -> None:
    assert accumulator.sum() == 0


def _finite(loss: torch.Tensor) -> None:
    assert torch.isfinite(loss)


@pytest.mark.parametrize("case", CASES, ids=ids(CASES))
def test_case(case: Case) -> None:
    run(case)
