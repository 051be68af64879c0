"""Bad and unusual inputs to `AdaADStep` (its boundary's rows are in test_methods_adversarial_errors.py)."""

from __future__ import annotations

import pytest
import torch
from _cases import Case, bad, good, ids, run
from _step_cases import N, batch, build, labels, run_step

CASES: list[Case] = [
    bad("alpha=-1", ValueError, r"`alpha` in \[0, 1\]", lambda: build("adaad", alpha=-1.0)),
    good("reduction='batchmean'", lambda: run_step("adaad", reduction="batchmean"), lambda out: _finite(out.loss)),
    good(
        "reduction='none'",
        lambda: build("adaad", reduction="none", alpha=0.5)(batch(), labels()),
        lambda out: _per_sample(out.loss),
    ),
    bad("reduction='bogus'", ValueError, "`reduction` to be one of", lambda: build("adaad", reduction="bogus")),
    good("validate_args=False", lambda: run_step("adaad", validate_args=False), lambda out: _finite(out.loss)),
]


def _finite(loss: torch.Tensor) -> None:
    assert torch.isfinite(loss).all()


def _per_sample(loss: torch.Tensor) -> None:
    assert loss.shape == (N,)
    _finite(loss)


@pytest.mark.parametrize("case", CASES, ids=ids(CASES))
def test_case(case: Case) -> None:
    run(case)
