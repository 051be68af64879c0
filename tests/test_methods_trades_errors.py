"""Bad and unusual inputs to `TRADESStep` (its boundary's rows are in test_methods_adversarial_errors.py)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from _cases import Case, bad, good, ids, run
from _step_cases import build, run_step

CASES: list[Case] = [
    bad("beta<0", ValueError, "`beta` >= 0", lambda: build("trades", beta=-6.0)),
    bad("beta='6'", TypeError, "`beta` to be a real number", lambda: build("trades", beta="6")),
    good("beta=np.float32", lambda: run_step("trades", beta=np.float32(2.0)), lambda out: _combined(out, 2.0)),
    bad(
        "reduction='batchmean'", ValueError, "`reduction` to be one of", lambda: build("trades", reduction="batchmean")
    ),
    bad("betta (a typo)", TypeError, "Did you mean `beta`", lambda: build("trades", betta=6.0)),
]


def _combined(out, beta: float) -> None:
    torch.testing.assert_close(out.loss, out.natural_ce + beta * out.robust_kl)


@pytest.mark.parametrize("case", CASES, ids=ids(CASES))
def test_case(case: Case) -> None:
    run(case)
