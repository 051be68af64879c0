"""Bad and unusual inputs to `ard_loss` and `ARDLoss`."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from _cases import Case, bad, good, ids, run
from _loss_cases import C, Loss, N, labels, logits, loss_rows, option_rows

from torch_absld.losses import ARDLoss, ard_loss

NAMES = ("student_adv", "student_clean", "teacher")
FUNCTIONAL = Loss("ard_loss", NAMES, lambda z, y, **kw: ard_loss(*z, y, alpha=0.5, **kw), masked=2)
MODULE = Loss("ARDLoss", NAMES, lambda z, y, **kw: ARDLoss(alpha=0.5, **kw)(*z, y), masked=2)
OPTIONS = [
    ("temperature", 0.0, ValueError, "`temperature` > 0"),
    ("temperature", -30.0, ValueError, "`temperature` > 0"),
    ("temperature", float("inf"), ValueError, "`temperature` to be finite"),
    ("temperature", np.float64(4.0), None, ""),
    ("alpha", 1.5, ValueError, r"`alpha` in \[0, 1\]"),
    ("alpha", -0.1, ValueError, r"`alpha` in \[0, 1\]"),
    ("reduction", "batchmean", ValueError, "`reduction` to be one of 'mean', 'sum', 'none'"),
]


CASES: list[Case] = [
    *loss_rows(FUNCTIONAL),
    *loss_rows(MODULE),
    *option_rows("ard_loss", lambda **kw: ard_loss(*logits(3), labels(), **kw), OPTIONS),
    *option_rows("ARDLoss", ARDLoss, [*OPTIONS, ("validate_args", "yes", TypeError, "`validate_args` to be a bool")]),
    bad(
        "ard_loss teacher of another C: the hint",
        ValueError,
        "`teacher` of the shape of `student_adv`.*same number of classes",
        lambda: ard_loss(*logits(2), torch.zeros(N, C + 1), labels()),
    ),
    good(
        "ARDLoss teacher NaN unchecked",
        lambda: ARDLoss(validate_args=False)(*logits(2), torch.full((N, C), float("nan")), labels()),
        lambda out: _is_nan(out),
    ),
]


def _is_nan(out: torch.Tensor) -> None:
    assert torch.isnan(out)


@pytest.mark.parametrize("case", CASES, ids=ids(CASES))
def test_case(case: Case) -> None:
    run(case)
