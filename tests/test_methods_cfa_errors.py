"""Bad and unusual inputs to `CFAStep` (its boundary's rows are in test_methods_adversarial_errors.py)."""

from __future__ import annotations

import pytest
import torch
from _cases import Case, bad, equal, good, ids, run
from _step_cases import C, build, loaded

from torch_absld.losses.cfa import CFALoss

CASES: list[Case] = [
    bad("fawa 'yes'", TypeError, "`fawa` to be a bool", lambda: build("cfa", fawa="yes")),
    bad("fawa decay=1", ValueError, r"`decay` in \(0, 1\)", lambda: build("cfa", fawa=True, decay=1.0)),
    bad("loss lambda_beta<0", ValueError, "`lambda_beta` >= 0", lambda: build("cfa", lambda_beta=-0.5)),
    bad("loss option unknown", TypeError, "keyword options of CFAStep", lambda: build("cfa", bogus=1)),
    bad("loss for another C", ValueError, "`loss` for num_classes = 4", lambda: build("cfa", loss=CFALoss(C + 1))),
    bad(
        "load class_beta negative",
        ValueError,
        "loaded `class_beta` to be finite and >= 0",
        lambda: loaded("cfa", {"loss_fn.calibration.class_beta": torch.full((C,), -2.0, dtype=torch.float64)}),
    ),
    bad(
        "load a checkpoint without the average",
        RuntimeError,
        r"missing key\(s\) \['fawa",
        lambda: loaded("cfa", {}, source=_trained("cfa"), fawa=True),
    ),
    good("fawa True", lambda: build("cfa", fawa=True), lambda step: equal(step.fawa.decay, 0.85)),
]


def _trained(method: str):
    from _step_cases import batch, labels

    step = build(method).train()
    step(batch(), labels())
    return step


@pytest.mark.parametrize("case", CASES, ids=ids(CASES))
def test_case(case: Case) -> None:
    run(case)
