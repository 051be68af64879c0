"""Bad and unusual inputs to `BATStep` (its boundary's rows are in test_methods_adversarial_errors.py)."""

from __future__ import annotations

import pytest
import torch
from _cases import Case, bad, good, ids, run
from _step_cases import build, run_step

CASES: list[Case] = [
    bad("patience=-1", ValueError, "`patience` to be an int >= 0", lambda: build("bat", patience=-1)),
    bad("patience=1.5", ValueError, "`patience` to be an int >= 0", lambda: build("bat", patience=1.5)),
    bad("uniform_weight<0", ValueError, "`uniform_weight` >= 0", lambda: build("bat", uniform_weight=-1.0)),
    bad("beta<0", ValueError, "`beta` >= 0", lambda: build("bat", beta=-6.0)),
    good("patience=0", lambda: run_step("bat", patience=0, steps=2), lambda out: _finite(out.loss)),
    good(
        "uniform_weight=0",
        lambda: run_step("bat", uniform_weight=0.0, beta=2.0),
        lambda out: torch.testing.assert_close(out.loss, out.natural_ce + 2.0 * out.robust_kl),
    ),
]


def _finite(loss: torch.Tensor) -> None:
    assert torch.isfinite(loss).all()


@pytest.mark.parametrize("case", CASES, ids=ids(CASES))
def test_case(case: Case) -> None:
    run(case)
