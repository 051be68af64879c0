"""Bad and unusual inputs to `soft_labels` and `soft_label_kl`."""

from __future__ import annotations

import math

import pytest
import torch
from _cases import Case, bad, good, ids, run

from torch_absld import soft_label_kl, soft_labels

N, C = 3, 4
INF = float("inf")


def _teacher(**where: float) -> torch.Tensor:
    teacher = torch.tensor([[2.0, 0.5, -1.0, 0.0], [0.0, 1.0, 3.0, -2.0], [1.0, 1.0, 0.0, 0.5]])
    for key, value in where.items():
        row, col = (int(v) for v in key[1:].split("_"))
        teacher[row, col] = value
    return teacher


STUDENT = torch.tensor([[0.3, -0.2, 1.0, 0.1], [1.5, 0.0, -0.5, 0.2], [0.0, 0.4, 0.9, -1.0]])


def masked_kl_reference(student: torch.Tensor, teacher: torch.Tensor, tau: float) -> list[float]:
    """KL(p || q) per sample with Python floats, skipping the classes where p = 0 (0 log 0 = 0)."""
    out = []
    for s_row, t_row in zip(student.tolist(), teacher.tolist()):
        t_max = max(t_row)
        t_exp = [math.exp((t - t_max) / tau) for t in t_row]
        p = [e / sum(t_exp) for e in t_exp]
        s_max = max(s_row)
        log_z = s_max + math.log(sum(math.exp(s - s_max) for s in s_row))
        out.append(sum(pc * (math.log(pc) - (s - log_z)) for pc, s in zip(p, s_row) if pc > 0))
    return out


def _matches_masked_reference(teacher: torch.Tensor):
    def check(kl: torch.Tensor) -> None:
        want = torch.tensor(masked_kl_reference(STUDENT, teacher, 1.0)) / teacher.shape[1]  # each sample: KL / C
        torch.testing.assert_close(kl, want)

    return check


def _zero_with_graph(loss: torch.Tensor) -> None:
    assert loss.shape == ()
    assert loss.item() == 0.0
    assert loss.requires_grad


def _empty_kl(reduction: str) -> torch.Tensor:
    student = torch.zeros(0, C, requires_grad=True)
    return soft_label_kl(student, torch.zeros(0, C), 1.0, reduction=reduction)  # type: ignore[arg-type]


def _masked_soft_labels(labels: torch.Tensor) -> None:
    assert labels[0, 1] == 0.0
    assert torch.isfinite(labels).all()
    torch.testing.assert_close(labels.sum(1), torch.ones(N))


CASES: list[Case] = [
    # wiring: each entry point calls the shared checks (tests/test_checks.py holds their table)
    bad(
        "soft_labels temperature",
        ValueError,
        "`temperature` to hold finite temperatures > 0",
        lambda: soft_labels(_teacher(), torch.tensor(0.0)),
    ),
    bad(
        "soft_labels temperature shape",
        ValueError,
        r"`temperature` of shape \(N,\) = \(3,\)",
        lambda: soft_labels(_teacher(), torch.ones(N + 1)),
    ),
    bad(
        "soft_labels teacher int",
        TypeError,
        "`teacher` to be floating point logits",
        lambda: soft_labels(torch.ones(N, C, dtype=torch.long), torch.ones(N)),
    ),
    bad(
        "soft_labels teacher NaN",
        ValueError,
        "`teacher` to hold finite logits",
        lambda: soft_labels(_teacher(t1_1=float("nan")), torch.ones(N)),
    ),
    good("soft_labels unchecked", lambda: soft_labels(_teacher(t1_1=float("nan")), torch.ones(N), validate_args=False)),
    bad(
        "kl teacher temperature",
        ValueError,
        "`teacher_temperature` > 0",
        lambda: soft_label_kl(STUDENT, _teacher(), 0.0),
    ),
    bad(
        "kl student temperature",
        ValueError,
        "`student_temperature` > 0",
        lambda: soft_label_kl(STUDENT, _teacher(), 1.0, student_temperature=0.0),
    ),
    bad(
        "kl unknown reduction",
        ValueError,
        "`reduction` to be one of",
        lambda: soft_label_kl(STUDENT, _teacher(), 1.0, reduction="avg"),
    ),  # type: ignore[arg-type]
    bad(
        "kl shapes",
        ValueError,
        r"`student`, `teacher` of one shape \(N, C\)",
        lambda: soft_label_kl(STUDENT[:1], _teacher(), 1.0),
    ),
    bad(
        "kl student 1-D",
        ValueError,
        r"`student` of shape \(N, C\)",
        lambda: soft_label_kl(STUDENT[0], _teacher()[0], 1.0),
    ),
    bad(
        "kl teacher NaN",
        ValueError,
        "`teacher` to hold finite logits",
        lambda: soft_label_kl(STUDENT, _teacher(t2_0=float("nan")), 1.0),
    ),
    # behaviour at the edges
    good(
        "soft_labels temperature float",
        lambda: soft_labels(_teacher(), 2.0),
        lambda p: torch.testing.assert_close(p, torch.softmax(_teacher() / 2, 1)),
    ),
    good(
        "soft_labels teacher -inf (masking)",
        lambda: soft_labels(_teacher(t0_1=-INF), torch.ones(N)),
        _masked_soft_labels,
    ),
    good("soft_labels empty", lambda: soft_labels(torch.zeros(0, C), torch.ones(0)), lambda p: _shape(p, (0, C))),
    good(
        "kl teacher -inf on a non-target class",
        lambda: soft_label_kl(STUDENT, _teacher(t0_1=-INF, t1_3=-INF), 1.0, reduction="none"),
        _matches_masked_reference(_teacher(t0_1=-INF, t1_3=-INF)),
    ),
    good("kl gradient with a masked class is finite", lambda: _masked_gradient(), lambda g: _finite(g)),
    good("kl empty 'mean'", lambda: _empty_kl("mean"), _zero_with_graph),
    good("kl empty 'sum'", lambda: _empty_kl("sum"), _zero_with_graph),
    good("kl empty 'none'", lambda: _empty_kl("none"), lambda kl: _shape(kl, (0,))),
]


def _masked_gradient() -> torch.Tensor:
    student = STUDENT.clone().requires_grad_(True)
    soft_label_kl(student, _teacher(t0_1=-INF), 1.0).backward()
    assert student.grad is not None
    return student.grad


def _shape(tensor: torch.Tensor, shape: tuple[int, ...]) -> None:
    assert tuple(tensor.shape) == shape


def _finite(tensor: torch.Tensor) -> None:
    assert torch.isfinite(tensor).all()


@pytest.mark.parametrize("case", CASES, ids=ids(CASES))
def test_case(case: Case) -> None:
    run(case)
