"""Bad and unusual inputs to `bat_loss`, `uniform_kl` and `BATLoss`."""

from __future__ import annotations

import math

import pytest
import torch
from _cases import Case, good, ids, run
from _loss_cases import C, Loss, labels, logits, loss_rows, option_rows

from torch_absld.losses import BATLoss, bat_loss, uniform_kl

NAMES = ("student_clean", "student_first_adv", "student_last_clean")
FUNCTIONAL = Loss("bat_loss", NAMES, lambda z, y, **kw: bat_loss(*z, y, **kw), masked=0)
LAST_CLEAN = Loss("bat_loss last clean", NAMES, lambda z, y, **kw: bat_loss(*z, y, **kw), masked=2)
MODULE = Loss("BATLoss", NAMES, lambda z, y, **kw: BATLoss(**kw)(*z, y), masked=0)
OPTIONS = [
    ("beta", -1.0, ValueError, "`beta` >= 0"),
    ("uniform_weight", -1.0, ValueError, "`uniform_weight` >= 0"),
    ("uniform_weight", float("nan"), ValueError, "`uniform_weight` to be finite"),
    ("uniform_weight", 0.0, None, ""),
    ("reduction", "batchmean", ValueError, "`reduction` to be one of 'mean', 'sum', 'none'"),
]


def _uniform_kl_masked() -> tuple[torch.Tensor, torch.Tensor]:
    """A masked class: the KL of the other classes to the uniform over all C, by hand."""
    z = logits(1)[0]
    z[:, 0] = -math.inf
    p = torch.softmax(z[:, 1:], dim=1)
    return uniform_kl(z), (p * (p * C).log()).sum(dim=1)


CASES: list[Case] = [
    *loss_rows(FUNCTIONAL),
    *loss_rows(LAST_CLEAN)[-1:],  # the masking row: the natural and the uniform terms of a masked class
    *loss_rows(MODULE),
    *option_rows("bat_loss", lambda **kw: bat_loss(*logits(3), labels(), **kw), OPTIONS),
    *option_rows("BATLoss", BATLoss, [*OPTIONS, ("validate_args", "yes", TypeError, "`validate_args` to be a bool")]),
    good("uniform_kl -inf (masking)", _uniform_kl_masked, lambda pair: torch.testing.assert_close(*pair)),
    good("uniform_kl uniform logits", lambda: uniform_kl(torch.zeros(2, C)), lambda out: _zero(out)),
]


def _zero(out: torch.Tensor) -> None:
    torch.testing.assert_close(out, torch.zeros_like(out))


@pytest.mark.parametrize("case", CASES, ids=ids(CASES))
def test_case(case: Case) -> None:
    run(case)
