"""Bad and unusual inputs to `SATStep` (its boundary's rows are in test_methods_adversarial_errors.py)."""

from __future__ import annotations

import pytest
from _cases import Case, bad, good, ids, run
from _step_cases import N, batch, build, labels, run_step

CASES: list[Case] = [
    good(
        "reduction='none'",
        lambda: build("sat", reduction="none")(batch(), labels()),
        lambda out: _shape(out.loss, (N,)),
    ),
    bad(
        "reduction='batchmean'",
        ValueError,
        "`reduction` to be one of 'mean', 'sum', 'none'",
        lambda: build("sat", reduction="batchmean"),
    ),
    bad("eps<0", ValueError, "`eps` >= 0", lambda: build("sat", eps=-1.0)),
    bad("steps=0", ValueError, "`steps` to be an int >= 1", lambda: build("sat", steps=0)),
    bad("loss_scale=0", ValueError, "`loss_scale` > 0", lambda: build("sat", loss_scale=0.0)),
    bad("attack a dict", TypeError, "`config` to be a PGDConfig", lambda: build("sat", attack={"eps": 0.1})),
    bad("student a list", TypeError, "`student` to be an nn.Module", lambda: build("sat", student=[1])),
    bad("input a list", TypeError, "`input` to be a floating point tensor", lambda: run_step("sat", input=[[0.0]])),
    bad(
        "input out of range",
        ValueError,
        r"`input` values in \[clip_min, clip_max\]",
        lambda: run_step("sat", input=batch() + 1),
    ),
]


def _shape(tensor, shape) -> None:
    assert tuple(tensor.shape) == shape


@pytest.mark.parametrize("case", CASES, ids=ids(CASES))
def test_case(case: Case) -> None:
    run(case)
