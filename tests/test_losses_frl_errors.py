"""Bad and unusual inputs to `frl_loss` and `FRLLoss`."""

from __future__ import annotations

import pytest
import torch
from _cases import Case, bad, good, ids, run
from _loss_cases import C, Loss, labels, logits, loss_rows, option_rows

from torch_absld.losses import FRLLoss, frl_loss

NAMES = ("student_clean", "student_adv")
NATURAL = torch.tensor([0.1, 0.4, 0.2, 0.3], dtype=torch.float64)
BOUNDARY = torch.tensor([0.3, 0.3, 0.1, 0.3], dtype=torch.float64)


def _module(**kwargs: object) -> FRLLoss:
    loss_fn = FRLLoss(C, **kwargs)  # type: ignore[arg-type]
    loss_fn.multipliers.natural_weights.copy_(NATURAL)
    loss_fn.multipliers.boundary_weights.copy_(BOUNDARY)
    return loss_fn


FUNCTIONAL = Loss("frl_loss", NAMES, lambda z, y, **kw: frl_loss(*z, y, NATURAL, BOUNDARY, **kw), masked=0)
MODULE = Loss("FRLLoss", NAMES, lambda z, y, **kw: _module(**kw)(*z, y), masked=0)


def _weights(natural: object, boundary: object = BOUNDARY) -> torch.Tensor:
    return frl_loss(*logits(2), labels(), natural, boundary)  # type: ignore[arg-type]


CASES: list[Case] = [
    *loss_rows(FUNCTIONAL),
    *loss_rows(MODULE),
    *option_rows(
        "frl_loss",
        lambda **kw: frl_loss(*logits(2), labels(), NATURAL, BOUNDARY, **kw),
        [("beta", -1.0, ValueError, "`beta` >= 0"), ("reduction", "batchmean", ValueError, "`reduction` to be one of")],
    ),
    *option_rows(
        "FRLLoss",
        lambda **kw: FRLLoss(C, **kw),
        [
            ("beta", -1.0, ValueError, "`beta` >= 0"),
            ("threshold", [0.05, 0.1], None, ""),
            ("threshold", -0.05, ValueError, r"`threshold` in \[0, 1\]"),
            ("threshold", 1.5, ValueError, r"`threshold` in \[0, 1\]"),
            ("threshold", (0.1, 0.1, 0.1), ValueError, "`threshold` to be a number or a pair"),
            ("limit", 2.0, ValueError, r"`limit` in \[0, 1\]"),
            ("halve_every", 0, ValueError, "`halve_every` to be an int >= 1"),
            ("bogus", 1, TypeError, "keyword options of FRLLoss"),
            ("thresold", 0.1, TypeError, "Did you mean `threshold`"),
        ],
    ),
    bad("weights negative", ValueError, "`natural_weights` to hold finite values >= 0", lambda: _weights(-NATURAL)),
    bad(
        "weights NaN",
        ValueError,
        "`boundary_weights` to hold finite values >= 0",
        lambda: _weights(NATURAL, torch.full((C,), float("nan"), dtype=torch.float64)),
    ),
    bad(
        "weights int",
        ValueError,
        r"`natural_weights` to be a floating point tensor of shape \(4,\)",
        lambda: _weights(labels()),
    ),
    bad("weights on meta", ValueError, "`natural_weights` on the device", lambda: _weights(NATURAL.to("meta"))),
    good(
        "weights zero: a zero loss",
        lambda: _weights(torch.zeros(C, dtype=torch.float64), torch.zeros(C, dtype=torch.float64)),
        lambda out: _zero(out),
    ),
    bad(
        "FRLLoss logits of another C",
        ValueError,
        r"`student_clean` of shape \(N, 4\) for num_classes = 4",
        lambda: _module()(*logits(2, c=C + 1), labels()),
    ),
    bad(
        "FRLLoss logits on meta",
        ValueError,
        "`student_clean` on the device",
        lambda: _module()(*(t.to("meta") for t in logits(2)), labels().to("meta")),
    ),
]


def _zero(out: torch.Tensor) -> None:
    assert out.item() == 0.0


@pytest.mark.parametrize("case", CASES, ids=ids(CASES))
def test_case(case: Case) -> None:
    run(case)
