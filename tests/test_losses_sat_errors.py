"""Bad and unusual inputs to `sat_loss` and `SATLoss`."""

from __future__ import annotations

import pytest
import torch
from _cases import Case, good, ids, run
from _loss_cases import Loss, labels, logits, loss_rows, option_rows

from torch_absld.losses import SATLoss, sat_loss

FUNCTIONAL = Loss("sat_loss", ("student_adv",), lambda z, y, **kw: sat_loss(*z, y, **kw))
MODULE = Loss("SATLoss", ("student_adv",), lambda z, y, **kw: SATLoss(**kw)(*z, y))


CASES: list[Case] = [
    *loss_rows(FUNCTIONAL),
    *loss_rows(MODULE),
    *option_rows(
        "sat_loss",
        lambda **kw: sat_loss(logits(1)[0], labels(), **kw),
        [("reduction", "batchmean", ValueError, "`reduction` to be one of 'mean', 'sum', 'none'")],
    ),
    *option_rows(
        "SATLoss",
        SATLoss,
        [
            ("reduction", "bogus", ValueError, "`reduction` to be one of"),
            ("validate_args", "yes", TypeError, "`validate_args` to be a bool"),
        ],
    ),
    good(
        "sat_loss empty 'none'",
        lambda: sat_loss(torch.zeros(0, 4), torch.zeros(0, dtype=torch.long), reduction="none"),
        lambda out: _shape(out, (0,)),
    ),
]


def _shape(tensor: torch.Tensor, shape: tuple[int, ...]) -> None:
    assert tuple(tensor.shape) == shape


@pytest.mark.parametrize("case", CASES, ids=ids(CASES))
def test_case(case: Case) -> None:
    run(case)
