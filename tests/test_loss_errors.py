"""Bad and unusual inputs to `absld_loss` and `ABSLDLoss`."""

from __future__ import annotations

import pytest
import torch
from _cases import Case, bad, good, ids, rejected_load, run

from torch_absld import ABSLDLoss, absld_loss
from torch_absld._internal.checks import raise_first

N, C = 4, 4
LABELS = [0, 3, 2, 2]
INF = float("inf")


def _logits(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(N, C, generator=g), torch.randn(N, C, generator=g), torch.randn(N, C, generator=g)


TAU_ADV = torch.tensor([1.0, 2.0, 0.5, 3.0])
TAU_CLEAN = torch.tensor([1.5, 1.0, 2.0, 0.7])


def _functional(
    target: torch.Tensor | None = None, *, teacher: torch.Tensor | None = None, **kwargs: object
) -> torch.Tensor:
    s_adv, s_clean, t = _logits()
    target = torch.tensor(LABELS) if target is None else target
    taus = {"tau_adv": TAU_ADV, "tau_clean": TAU_CLEAN}
    for name in ("tau_adv", "tau_clean"):
        taus[name] = kwargs.pop(name, taus[name])  # type: ignore[assignment]
    return absld_loss(
        s_adv, s_clean, t if teacher is None else teacher, target, taus["tau_adv"], taus["tau_clean"], **kwargs
    )  # type: ignore[arg-type]


def _equals_long_labels(loss: torch.Tensor) -> None:
    torch.testing.assert_close(loss, _functional())


def _module(target: torch.Tensor, *, teacher: torch.Tensor | None = None, **kwargs: object) -> ABSLDLoss:
    loss_fn = ABSLDLoss(C, **kwargs)  # type: ignore[arg-type]
    s_adv, s_clean, t = _logits()
    loss_fn.last_loss = loss_fn(s_adv, s_clean, t if teacher is None else teacher, target)  # type: ignore[assignment]
    return loss_fn


def _records_like_long_labels(loss_fn: ABSLDLoss) -> None:
    want = _module(torch.tensor(LABELS))
    torch.testing.assert_close(loss_fn.last_loss, want.last_loss)  # type: ignore[arg-type]
    assert torch.equal(loss_fn.adv.accumulator, want.adv.accumulator)
    assert torch.equal(loss_fn.clean.accumulator, want.clean.accumulator)


def _empty(reduction: str, *, module: bool) -> torch.Tensor:
    s_adv = torch.zeros(0, C, requires_grad=True)
    s_clean = torch.zeros(0, C, requires_grad=True)
    empty = torch.zeros(0, dtype=torch.long)
    if module:
        loss_fn = ABSLDLoss(C, reduction=reduction)  # type: ignore[arg-type]
        loss = loss_fn(s_adv, s_clean, torch.zeros(0, C), empty)
        assert loss_fn.adv.count.sum() == 0
        return loss
    return absld_loss(s_adv, s_clean, torch.zeros(0, C), empty, TAU_ADV, TAU_CLEAN, reduction=reduction)  # type: ignore[arg-type]


def _soft_labels_then_read(teacher: torch.Tensor, target: torch.Tensor) -> None:
    ABSLDLoss(C).soft_labels(teacher, target)  # its value checks are read with the next check
    raise_first()


def _zero_with_graph(loss: torch.Tensor) -> None:
    assert loss.shape == ()
    assert loss.item() == 0.0
    assert loss.requires_grad
    loss.backward()


def _finite_loss(loss: torch.Tensor) -> None:
    assert torch.isfinite(loss).all()


def _teacher(**where: float) -> torch.Tensor:
    teacher = _logits()[2].clone()
    for key, value in where.items():
        row, col = (int(v) for v in key[1:].split("_"))
        teacher[row, col] = value
    return teacher


def _loaded(source_kwargs: dict[str, object], target_kwargs: dict[str, object], **state_changes: object) -> object:
    source = ABSLDLoss(C, **source_kwargs)  # type: ignore[arg-type]
    state = source.state_dict()
    state.update(state_changes)
    target = ABSLDLoss(C, **target_kwargs)  # type: ignore[arg-type]
    target.adv.temperatures.fill_(2.0)
    return rejected_load(target, state)


CASES: list[Case] = [
    # the functional loss
    bad(
        "absld_loss student_temperature=0",
        ValueError,
        "`student_temperature` > 0",
        lambda: _functional(student_temperature=0.0),
    ),
    bad("absld_loss alpha=2", ValueError, r"`alpha` in \[0, 1\]", lambda: _functional(alpha=2.0)),
    bad("absld_loss reduction", ValueError, "`reduction` to be one of", lambda: _functional(reduction="avg")),
    bad("absld_loss coupling", ValueError, "`coupling` to be one of", lambda: _functional(coupling="both")),
    bad(
        "absld_loss tau_adv shape",
        ValueError,
        r"`tau_adv` to be a tensor of shape \(4,\)",
        lambda: _functional(tau_adv=torch.ones(3)),
    ),
    bad(
        "absld_loss tau_clean NaN",
        ValueError,
        "`tau_clean` to hold finite temperatures > 0",
        lambda: _functional(tau_clean=torch.tensor([1.0, float("nan"), 1.0, 1.0])),
    ),
    bad("absld_loss tau_adv list", TypeError, "`tau_adv` to be a tensor", lambda: _functional(tau_adv=[1.0] * 4)),
    good("absld_loss labels uint8", lambda: _functional(torch.tensor(LABELS, dtype=torch.uint8)), _equals_long_labels),
    bad(
        "absld_loss labels float",
        TypeError,
        "`target` to hold integer class indices",
        lambda: _functional(torch.tensor([0.0, 1.0, 2.0, 3.0])),
    ),
    bad(
        "absld_loss labels >= C",
        ValueError,
        r"`target` values in \[0, 4\)",
        lambda: _functional(torch.tensor([0, 1, 2, 4])),
    ),
    good("absld_loss empty 'mean'", lambda: _empty("mean", module=False), _zero_with_graph),
    bad(
        "absld_loss teacher NaN",
        ValueError,
        "`teacher` to hold finite logits",
        lambda: _functional(teacher=_teacher(t1_2=float("nan"))),
    ),
    good(
        "absld_loss teacher -inf (masking)", lambda: _functional(teacher=_teacher(t0_1=-INF, t3_0=-INF)), _finite_loss
    ),
    bad(
        "absld_loss student (1, C)",
        ValueError,
        "of one shape",
        lambda: absld_loss(
            torch.randn(1, C), torch.randn(N, C), torch.randn(N, C), torch.tensor(LABELS), TAU_ADV, TAU_CLEAN
        ),
    ),
    bad(
        "absld_loss tau_adv on meta",
        ValueError,
        "`tau_adv` on the device",
        lambda: _functional(tau_adv=torch.ones(C, device="meta")),
    ),
    # the module
    bad("ABSLDLoss num_classes=1", ValueError, "`num_classes` >= 2", lambda: ABSLDLoss(1)),
    bad(
        "ABSLDLoss record_risk='yes'", TypeError, "`record_risk` to be a bool", lambda: ABSLDLoss(C, record_risk="yes")
    ),  # type: ignore[arg-type]
    good("ABSLDLoss labels int16", lambda: _module(torch.tensor(LABELS, dtype=torch.int16)), _records_like_long_labels),
    good("ABSLDLoss empty 'mean'", lambda: _empty("mean", module=True), _zero_with_graph),
    bad(
        "ABSLDLoss teacher NaN",
        ValueError,
        "`teacher_logits` to hold finite logits",
        lambda: _module(torch.tensor(LABELS), teacher=_teacher(t2_2=float("nan"))),
    ),
    good(
        "ABSLDLoss teacher NaN unchecked",
        lambda: _module(torch.tensor(LABELS), teacher=_teacher(t2_2=float("nan")), validate_args=False),
        lambda m: None,
    ),
    good(
        "ABSLDLoss teacher -inf (masking)",
        lambda: _module(torch.tensor(LABELS), teacher=_teacher(t0_1=-INF)),
        lambda m: _finite_loss(m.last_loss),
    ),  # type: ignore[arg-type]
    bad(
        "ABSLDLoss class count",
        ValueError,
        r"logits of shape \(N, 4\) for num_classes = 4",
        lambda: ABSLDLoss(C)(*(torch.randn(N, 5) for _ in range(3)), torch.tensor(LABELS)),
    ),
    bad(
        "ABSLDLoss logits on meta",
        ValueError,
        "`student_adv_logits` on the device",
        lambda: ABSLDLoss(C)(torch.randn(N, C, device="meta"), *_logits()[1:], torch.tensor(LABELS)),
    ),
    bad(
        "ABSLDLoss soft_labels teacher NaN",
        ValueError,
        "`teacher_logits` to hold finite logits",
        lambda: _soft_labels_then_read(_teacher(t0_0=float("nan")), torch.tensor(LABELS)),
    ),
    good(
        "ABSLDLoss teacher_temperatures uint8",
        lambda: ABSLDLoss(C, coupling="separate").teacher_temperatures(torch.tensor([3, 1], dtype=torch.uint8)),
        lambda t: _shape(t, (2,)),
    ),
    good(
        "ABSLDLoss record int32",
        lambda: _recorded(torch.tensor(LABELS, dtype=torch.int32)),
        lambda counts: _equal(counts, [1, 0, 2, 1]),
    ),
    bad(
        "ABSLDLoss record labels >= C",
        ValueError,
        r"`target` values in \[0, 4\)",
        lambda: _recorded(torch.tensor([0, 1, 2, 9])),
    ),
    # loading
    bad(
        "load adapt='both' into adapt='none'",
        ValueError,
        "`adapt`",
        lambda: _loaded({"adapt": "both"}, {"adapt": "none"}),
    ),
    bad(
        "load adapt='none' into adapt='both'",
        ValueError,
        "`adapt`",
        lambda: _loaded({"adapt": "none"}, {"adapt": "both"}),
    ),
    good(
        "load adapt='adv' into adapt='adv'",
        lambda: _loaded({"adapt": "adv", "lr": 0.3}, {"adapt": "adv"}),
        lambda r: None,
    ),
    bad(
        "load temperatures above max",
        ValueError,
        r"loaded `temperatures` in \[min_temperature, max_temperature\]",
        lambda: _loaded({}, {}, **{"adv.temperatures": torch.full((C,), 50.0)}),
    ),
    bad(
        "load NaN temperature",
        ValueError,
        "loaded `temperatures` to be finite",
        lambda: _loaded({}, {}, **{"clean.temperatures": torch.tensor([1.0, float("nan"), 1.0, 1.0])}),
    ),
]


def _recorded(target: torch.Tensor) -> torch.Tensor:
    loss_fn = ABSLDLoss(C)
    s_adv, s_clean, _ = _logits()
    loss_fn.record(s_adv, s_clean, target)
    return loss_fn.adv.count


def _equal(tensor: torch.Tensor, values: list[float]) -> None:
    assert torch.equal(tensor, torch.tensor(values, dtype=tensor.dtype))


def _int(value: object) -> None:
    assert type(value) is int


def _shape(tensor: torch.Tensor, shape: tuple[int, ...]) -> None:
    assert tuple(tensor.shape) == shape


@pytest.mark.parametrize("case", CASES, ids=ids(CASES))
def test_case(case: Case) -> None:
    run(case)
