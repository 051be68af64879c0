"""Bad and unusual inputs to `ARDStep` (its boundary's rows are in test_methods_adversarial_errors.py)."""

from __future__ import annotations

import pytest
from _cases import Case, bad, good, ids, run
from _step_cases import C, build, net, run_step

from torch_absld.methods.ard import ARDStep

CASES: list[Case] = [
    bad("temperature=0", ValueError, "`temperature` > 0", lambda: build("ard", temperature=0.0)),
    bad("alpha=2", ValueError, r"`alpha` in \[0, 1\]", lambda: build("ard", alpha=2.0)),
    bad("reduction='batchmean'", ValueError, "`reduction` to be one of", lambda: build("ard", reduction="batchmean")),
    bad("teacher a list", TypeError, "`teacher` to be an nn.Module", lambda: build("ard", teacher=[net(2)])),
    bad(
        "student is teacher",
        ValueError,
        "`student` and `teacher` to be different",
        lambda: (lambda m: ARDStep(m, m, C))(net(1)),
    ),
    good("alpha=0.5", lambda: run_step("ard", alpha=0.5), lambda out: _sum(out)),
]


def _sum(out) -> None:
    import torch

    torch.testing.assert_close(out.loss, 0.5 * out.adv_kl + 0.5 * out.clean_ce)


@pytest.mark.parametrize("case", CASES, ids=ids(CASES))
def test_case(case: Case) -> None:
    run(case)
