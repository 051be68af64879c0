"""Bad and unusual inputs to `FRLStep` (its boundary's rows are in test_methods_adversarial_errors.py)."""

from __future__ import annotations

import pytest
import torch
from _cases import Case, bad, equal, good, ids, run
from _step_cases import C, batch, build, labels, loaded, net

from torch_absld.losses.frl import FRLLoss

CASES: list[Case] = [
    bad("loss threshold<0", ValueError, r"`threshold` in \[0, 1\]", lambda: build("frl", threshold=-0.05)),
    good(
        "loss threshold a list",
        lambda: build("frl", threshold=[0.05, 0.1]),
        lambda s: equal(s.multipliers.threshold, (0.05, 0.1)),
    ),
    bad("loss option unknown", TypeError, "keyword options of FRLStep", lambda: build("frl", bogus=1)),
    bad("loss for another C", ValueError, "`loss` for num_classes = 4", lambda: build("frl", loss=FRLLoss(C + 1))),
    bad(
        "load scale outside the clamp",
        ValueError,
        r"loaded `scale` in \[0.98, 3.0\]",
        lambda: loaded("frl", {"loss_fn.multipliers.scale": torch.full((C,), 9.0, dtype=torch.float64)}),
    ),
    bad(
        "load a TRADES checkpoint",
        RuntimeError,
        r"missing key\(s\) \['loss_fn.multipliers",
        lambda: loaded("frl", {}, source=build("trades", student=net(3))),
    ),
    good(
        "the labels of a step cast for the union batch",
        lambda: build("frl")(batch(), labels(torch.uint8)),
        lambda out: _shape(out.radii, (4,)),
    ),
]


def _shape(tensor: torch.Tensor, shape: tuple[int, ...]) -> None:
    assert tuple(tensor.shape) == shape


@pytest.mark.parametrize("case", CASES, ids=ids(CASES))
def test_case(case: Case) -> None:
    run(case)
