"""Bad and unusual inputs to `trades_loss`, `trades_kl` and `TRADESLoss`."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from _cases import Case, good, ids, run
from _loss_cases import Loss, labels, logits, loss_rows, option_rows

from torch_absld.losses import TRADESLoss, trades_kl, trades_loss

NAMES = ("student_clean", "student_adv")
FUNCTIONAL = Loss("trades_loss", NAMES, lambda z, y, **kw: trades_loss(*z, y, **kw), masked=0)
KL = Loss("trades_kl", NAMES, lambda z, y, **kw: trades_kl(*z, **kw), labelled=False, masked=0)
MODULE = Loss("TRADESLoss", NAMES, lambda z, y, **kw: TRADESLoss(**kw)(*z, y), masked=0)
BETAS = [
    ("beta", -1.0, ValueError, "`beta` >= 0"),
    ("beta", float("nan"), ValueError, "`beta` to be finite"),
    ("beta", "6", TypeError, "`beta` to be a real number"),
    ("beta", np.float32(2.0), None, ""),
    ("beta", 0.0, None, ""),
    ("reduction", "batchmean", ValueError, "`reduction` to be one of 'mean', 'sum', 'none'"),
]


def _masked_equals_the_reduced_sum() -> tuple[torch.Tensor, torch.Tensor]:
    """A masked class adds nothing: the KL over the other classes, renormalised, by hand."""
    clean, adv = logits(2)
    clean[:, 0] = -float("inf")
    p = torch.softmax(clean[:, 1:], dim=1)
    log_q = torch.log_softmax(adv, dim=1)[:, 1:]
    want = (p * (p.log() - log_q)).sum(dim=1).mean()
    return trades_kl(clean, adv), want


CASES: list[Case] = [
    *loss_rows(FUNCTIONAL),
    *loss_rows(KL),
    *loss_rows(MODULE),
    *option_rows("trades_loss", lambda **kw: trades_loss(*logits(2), labels(), **kw), BETAS),
    *option_rows(
        "TRADESLoss", TRADESLoss, [*BETAS, ("validate_args", "yes", TypeError, "`validate_args` to be a bool")]
    ),
    good(
        "trades_kl -inf equals the KL over the other classes",
        _masked_equals_the_reduced_sum,
        lambda pair: torch.testing.assert_close(*pair),
    ),
]


@pytest.mark.parametrize("case", CASES, ids=ids(CASES))
def test_case(case: Case) -> None:
    run(case)
