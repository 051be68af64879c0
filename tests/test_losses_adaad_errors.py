"""Bad and unusual inputs to `adaad_loss`, `adaad_attack_objective` and `AdaADLoss`."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from _cases import Case, bad, good, ids, run
from _loss_cases import C, Loss, N, logits, loss_rows, option_rows

from torch_absld.losses import AdaADLoss, adaad_attack_objective, adaad_loss

NAMES = ("student_adv", "student_clean", "teacher_adv", "teacher_clean")
FUNCTIONAL = Loss("adaad_loss", NAMES, lambda z, y, **kw: adaad_loss(*z, alpha=0.5, **kw), labelled=False, masked=2)
MODULE = Loss("AdaADLoss", NAMES, lambda z, y, **kw: AdaADLoss(alpha=0.5, **kw)(*z), labelled=False, masked=3)
OPTIONS = [
    ("alpha", 1.5, ValueError, r"`alpha` in \[0, 1\]"),
    ("alpha", "1", TypeError, "`alpha` to be a real number"),
    ("reduction", "batchmean", None, ""),
    ("reduction", "bogus", ValueError, "`reduction` to be one of 'mean', 'batchmean', 'sum', 'none'"),
]


def _objective_masked() -> tuple[torch.Tensor, list[torch.Tensor]]:
    student, teacher = (t.requires_grad_(True) for t in logits(2))
    masked = teacher.masked_fill(torch.tensor([True, False, False, False]), -float("inf"))
    return adaad_attack_objective((student, masked)), [student, teacher]


def _objective_by_hand() -> tuple[torch.Tensor, torch.Tensor]:
    student, teacher = logits(2)
    want = F.kl_div(F.log_softmax(student, 1), F.softmax(teacher, 1), reduction="sum")
    return adaad_attack_objective((student, teacher)), want


CASES: list[Case] = [
    *loss_rows(FUNCTIONAL),
    *loss_rows(MODULE),
    *option_rows("adaad_loss", lambda **kw: adaad_loss(*logits(4), **kw), OPTIONS),
    *option_rows("AdaADLoss", AdaADLoss, OPTIONS),
    bad(
        "adaad_loss teacher_clean of another C: the hint",
        ValueError,
        "`teacher_clean` of the shape of `student_adv`.*same number of classes",
        lambda: adaad_loss(*logits(3), torch.zeros(N, C + 1)),
    ),
    # the attack objective (its module returns the student's and the teacher's logits)
    good("objective equals the summed KL", _objective_by_hand, lambda pair: torch.testing.assert_close(*pair)),
    good("objective teacher -inf (masking)", _objective_masked, lambda out: _finite(*out)),
    bad(
        "objective output a tensor",
        TypeError,
        r"attacked module to return \(student_logits, teacher_logits\)",
        lambda: adaad_attack_objective(logits(1)[0]),  # type: ignore[arg-type]
    ),
    bad(
        "objective output of three",
        TypeError,
        r"attacked module to return \(student_logits, teacher_logits\)",
        lambda: adaad_attack_objective(tuple(logits(3))),  # type: ignore[arg-type]
    ),
    bad(
        "objective teacher with one class",
        ValueError,
        "same number of classes",
        lambda: adaad_attack_objective((logits(1)[0], torch.zeros(N, 1))),
    ),
    bad(
        "objective teacher returns a tuple",
        ValueError,
        r"`teacher` to return logits of shape \(N, C\)",
        lambda: adaad_attack_objective((logits(1)[0], (logits(1)[0],))),  # type: ignore[arg-type]
    ),
]


def _finite(loss: torch.Tensor, inputs: list[torch.Tensor]) -> None:
    assert torch.isfinite(loss)
    loss.backward()
    assert all(torch.isfinite(t.grad).all() for t in inputs)  # type: ignore[arg-type]


@pytest.mark.parametrize("case", CASES, ids=ids(CASES))
def test_case(case: Case) -> None:
    run(case)
