"""Bad and unusual inputs to `cfa_loss` and `CFALoss` (and its controller, through `record`)."""

from __future__ import annotations

import pytest
import torch
from _cases import Case, bad, good, ids, run
from _loss_cases import C, Loss, N, labels, logits, loss_rows, option_rows, same_as

from torch_absld.losses import CFALoss, cfa_loss

NAMES = ("student_clean", "student_adv")
CLASS_BETA = torch.tensor([6.0, 1.0, 3.0, 0.5], dtype=torch.float64)


def _module(**kwargs: object) -> CFALoss:
    loss_fn = CFALoss(C, **kwargs)  # type: ignore[arg-type]
    loss_fn.calibration.class_beta.copy_(CLASS_BETA)
    return loss_fn


FUNCTIONAL = Loss("cfa_loss", NAMES, lambda z, y, **kw: cfa_loss(*z, y, CLASS_BETA, **kw), masked=0)
MODULE = Loss("CFALoss", NAMES, lambda z, y, **kw: _module(**kw)(*z, y), masked=0)


def _beta(value: object) -> torch.Tensor:
    return cfa_loss(*logits(2), labels(), value)  # type: ignore[arg-type]


def _record(student_adv: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    loss_fn = CFALoss(C)
    loss_fn.record(student_adv, target)
    return loss_fn.calibration.accumulator


CASES: list[Case] = [
    *loss_rows(FUNCTIONAL),
    *loss_rows(MODULE),
    *option_rows(
        "CFALoss",
        lambda **kw: CFALoss(C, **kw),
        [
            ("reduction", "batchmean", ValueError, "`reduction` to be one of"),
            ("lambda_beta", -0.5, ValueError, "`lambda_beta` >= 0"),
            ("lambda_beta", None, None, ""),
            ("lambda_eps", -1.0, ValueError, "`lambda_eps` >= 0"),
            ("beta", -6.0, ValueError, "`beta` >= 0"),
            ("begin_epoch", -1, ValueError, "`begin_epoch` to be an int >= 0"),
            ("lamda_eps", 0.3, TypeError, "Did you mean `lambda_eps`"),
            ("validate_args", "yes", TypeError, "`validate_args` to be a bool"),
        ],
    ),
    bad("class_beta negative", ValueError, "`class_beta` to hold finite values >= 0", lambda: _beta(-CLASS_BETA)),
    bad(
        "class_beta -1 (a zero denominator)",
        ValueError,
        "`class_beta` to hold finite values >= 0",
        lambda: _beta(torch.tensor([-1.0, -1.0, -1.0, -1.0])),
    ),
    bad(
        "class_beta inf",
        ValueError,
        "`class_beta` to hold finite values >= 0",
        lambda: _beta(torch.tensor([6.0, float("inf"), 6.0, 6.0])),
    ),
    bad(
        "class_beta (C + 1,)",
        ValueError,
        r"`class_beta` to be a floating point tensor of shape \(4,\)",
        lambda: _beta(torch.ones(5)),
    ),
    bad("class_beta on meta", ValueError, "`class_beta` on the device", lambda: _beta(CLASS_BETA.to("meta"))),
    # record: whether each adversarial example is classified correctly
    good(
        "record uint8 labels",
        lambda: _record(logits(1)[0], labels(torch.uint8)),
        same_as(lambda: _record(logits(1)[0], labels())),
    ),
    bad("record logits 1-D", ValueError, r"`values` of shape \(N, C\)", lambda: _record(torch.zeros(N), labels())),
    bad(
        "record logits of another C",
        ValueError,
        r"`values` of shape \(N, 4\) for num_classes = 4",
        lambda: _record(torch.zeros(N, C + 1), labels()),
    ),
    bad(
        "record N mismatch",
        ValueError,
        r"`target` of shape \(N,\) with N = 4",
        lambda: _record(torch.zeros(N, C), labels()[:3]),
    ),
    bad(
        "record labels >= C",
        ValueError,
        r"`target` values in \[0, 4\)",
        lambda: _record(torch.zeros(N, C), labels() + 1),
    ),
    bad(
        "record logits on meta",
        ValueError,
        "`values` on the device",
        lambda: _record(torch.zeros(N, C, device="meta"), labels()),
    ),
]


@pytest.mark.parametrize("case", CASES, ids=ids(CASES))
def test_case(case: Case) -> None:
    run(case)
