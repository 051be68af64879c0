"""Bad and unusual inputs to `Normalize`."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from _cases import Case, bad, equal, good, ids, run

from torch_absld import Normalize

CASES: list[Case] = [
    bad("std 0", ValueError, "`std` > 0", lambda: Normalize((0.5, 0.5), (0.2, 0.0))),
    bad("std negative", ValueError, "`std` > 0", lambda: Normalize((0.5,), (-0.2,))),
    bad("mean empty", ValueError, "`mean` to hold one value per channel", lambda: Normalize((), ())),
    bad("mean and std lengths", ValueError, "one value per channel each", lambda: Normalize((0.5, 0.5), (0.2,))),
    bad("mean NaN", ValueError, "`mean` to be finite", lambda: Normalize((float("nan"),), (1.0,))),
    bad("mean a string", TypeError, "`mean` to be a sequence of floats", lambda: Normalize("abc", (1.0, 1.0, 1.0))),  # type: ignore[arg-type]
    bad("mean of strings", TypeError, "`mean` to hold real numbers", lambda: Normalize(["a"], [1.0])),  # type: ignore[list-item]
    bad("mean 2-D tensor", ValueError, r"`mean` of shape \(C,\)", lambda: Normalize(torch.ones(2, 3), torch.ones(3))),
    good(
        "numpy statistics",
        lambda: Normalize(np.array([0.5, 0.5]), np.array([0.25, 0.25])),
        lambda n: equal(n.num_channels, 2),
    ),  # type: ignore[arg-type]
    good(
        "numpy float items",
        lambda: Normalize([np.float32(0.5)], [np.float64(0.25)]),
        lambda n: equal(n.num_channels, 1),
    ),
    bad(
        "input int",
        TypeError,
        "`input` to be a floating point tensor",
        lambda: Normalize((0.5,), (0.5,))(torch.ones(1, 1, 2, 2, dtype=torch.long)),
    ),
    bad(
        "input channels",
        ValueError,
        r"`input` of shape \(N, 3, ...\)",
        lambda: Normalize((0.5,) * 3, (0.5,) * 3)(torch.rand(1, 1, 2, 2)),
    ),
    bad("input 1-D", ValueError, r"`input` of shape \(N, 1, ...\)", lambda: Normalize((0.5,), (0.5,))(torch.rand(4))),
]


@pytest.mark.parametrize("case", CASES, ids=ids(CASES))
def test_case(case: Case) -> None:
    run(case)
