"""Bad and unusual inputs to `ClassTemperatureController` and `temperature_update`."""

from __future__ import annotations

import pytest
import torch
from _cases import Case, bad, good, ids, rejected_load, run

from torch_absld import ClassTemperatureController
from torch_absld.temperature import temperature_update

C = 4
LABELS = [0, 1, 2, 3]


def _ctrl(**kwargs: object) -> ClassTemperatureController:
    ctrl = ClassTemperatureController(C, **kwargs)  # type: ignore[arg-type]
    ctrl.temperatures.copy_(torch.tensor([1.0, 2.0, 3.0, 4.0]))
    return ctrl


def _gathered(target: torch.Tensor) -> torch.Tensor:
    return _ctrl()(target)


def _updated(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    ctrl = _ctrl()
    ctrl.update(logits, target)
    return ctrl.accumulator


def _counts_are(counts: list[float]):
    def check(accumulator: torch.Tensor) -> None:
        assert torch.equal(accumulator[1], torch.tensor(counts, dtype=torch.float64))
        assert torch.isfinite(accumulator).all()

    return check


def _temperatures_of(labels: list[int]):
    def check(out: torch.Tensor) -> None:
        assert torch.equal(out, torch.tensor([float(c + 1) for c in labels]))

    return check


def _load(**changes: object) -> object:
    """Load a checkpoint with ``changes`` into a controller whose own state is not the default."""
    source = ClassTemperatureController(C, lr=0.2)
    state = source.state_dict()
    extra = dict(state["_extra_state"])
    for key, value in changes.items():
        if key in extra:
            extra[key] = value
        else:
            state[key] = value
    if "_extra_state" not in changes:
        state["_extra_state"] = extra
    target = _ctrl(lr=0.3)
    target.update(torch.randn(4, C), torch.tensor(LABELS))
    return rejected_load(target, state)


def _update_rule(**kwargs: object) -> torch.Tensor:
    args = {
        "temperatures": torch.ones(3),
        "risk": torch.tensor([1.0, 2.0, 3.0]),
        "present": torch.ones(3, dtype=torch.bool),
        "lr": 0.1,
        "min_temperature": 0.5,
        "max_temperature": 5.0,
    }
    args.update(kwargs)
    return temperature_update(**args)  # type: ignore[arg-type]


CASES: list[Case] = [
    # construction
    bad("num_classes=1", ValueError, "`num_classes` >= 2, but got 1", lambda: ClassTemperatureController(1)),
    bad("min_temperature=0", ValueError, "`min_temperature` > 0", lambda: _ctrl(min_temperature=0.0)),
    bad(
        "min > max",
        ValueError,
        "`min_temperature` <= `max_temperature`",
        lambda: _ctrl(min_temperature=3.0, max_temperature=2.0),
    ),
    bad("init outside", ValueError, "`init_temperature` in", lambda: _ctrl(init_temperature=9.0)),
    bad("lr<0", ValueError, "`lr` >= 0", lambda: _ctrl(lr=-0.1)),
    bad("gap_tolerance<0", ValueError, "`gap_tolerance` >= 0", lambda: _ctrl(gap_tolerance=-1.0)),
    bad("risk_reduction", ValueError, "`risk_reduction` to be one of", lambda: _ctrl(risk_reduction="median")),
    bad(
        "process_group=1",
        TypeError,
        "`process_group` to be a ProcessGroup, None or False",
        lambda: _ctrl(process_group=1),
    ),
    # forward: labels of every integer dtype are class indices
    good(
        "forward labels uint8",
        lambda: _gathered(torch.tensor([3, 0, 2, 2], dtype=torch.uint8)),
        _temperatures_of([3, 0, 2, 2]),
    ),
    bad(
        "forward labels float",
        TypeError,
        "`target` to hold integer class indices",
        lambda: _gathered(torch.tensor([0.0])),
    ),
    bad("forward labels >= C", ValueError, r"`target` values in \[0, 4\)", lambda: _gathered(torch.tensor([4]))),
    good("forward empty", lambda: _gathered(torch.zeros(0, dtype=torch.long)), lambda t: _shape(t, (0,))),
    # update
    good(
        "update labels int32",
        lambda: _updated(torch.randn(4, C), torch.tensor([3, 0, 2, 2], dtype=torch.int32)),
        _counts_are([1, 0, 2, 1]),
    ),
    good(
        "update empty batch",
        lambda: _updated(torch.randn(0, C), torch.zeros(0, dtype=torch.long)),
        _counts_are([0] * 4),
    ),
    bad(
        "update logits wrong C",
        ValueError,
        r"`logits` of shape \(N, 4\)",
        lambda: _updated(torch.randn(4, 5), torch.tensor(LABELS)),
    ),
    bad(
        "update N mismatch",
        ValueError,
        r"`target` of shape \(N,\) with N = 4",
        lambda: _updated(torch.randn(4, C), torch.tensor([0, 1])),
    ),
    # loading: validated before anything is copied
    good("load a valid checkpoint", lambda: _load(), lambda r: None),
    bad(
        "load temperature above max",
        ValueError,
        r"loaded `temperatures` in \[min_temperature, max_temperature\] = \[0.5, 5\]",
        lambda: _load(temperatures=torch.tensor([1.0, 50.0, 1.0, 1.0])),
    ),
    bad(
        "load NaN temperature",
        ValueError,
        "loaded `temperatures` to be finite",
        lambda: _load(temperatures=torch.tensor([1.0, float("nan"), 1.0, 1.0])),
    ),
    bad(
        "load temperatures wrong shape",
        ValueError,
        r"loaded `temperatures` of shape \(4,\)",
        lambda: _load(temperatures=torch.ones(5)),
    ),
    bad(
        "load negative count",
        ValueError,
        "non-negative integer counts",
        lambda: _load(accumulator=torch.tensor([[0.0] * 4, [-1.0, 0, 0, 0]], dtype=torch.float64)),
    ),
    bad(
        "load negative lr",
        ValueError,
        r"`_extra_state\['lr'\]` in \[0, inf\]",
        lambda: _load(lr=-0.1),
    ),
    bad(
        "load negative epochs_stepped",
        ValueError,
        r"`_extra_state\['epochs_stepped'\]` in \[0, inf\] \(integers\)",
        lambda: _load(epochs_stepped=-1),
    ),
    bad(
        "load extra state not a dict",
        ValueError,
        r"`_extra_state` to be a dict with keys",
        lambda: _load(_extra_state=[0.1]),
    ),
    # temperature_update, the functional rule
    bad("update rule lr<0", ValueError, "`lr` >= 0", lambda: _update_rule(lr=-0.1)),
    bad(
        "update rule min>max",
        ValueError,
        "`min_temperature` <= `max_temperature`",
        lambda: _update_rule(min_temperature=5.0, max_temperature=0.5),
    ),
    bad("update rule shapes", ValueError, r"`risk` of shape \(3,\)", lambda: _update_rule(risk=torch.ones(4))),
    bad(
        "update rule present not bool",
        TypeError,
        "`present` to be a bool tensor",
        lambda: _update_rule(present=torch.ones(3)),
    ),
    bad(
        "update rule NaN risk",
        ValueError,
        "`risk` to be finite",
        lambda: _update_rule(risk=torch.tensor([1.0, float("nan"), 3.0])),
    ),
    good(
        "update rule NaN risk of an absent class",
        lambda: _update_rule(risk=torch.tensor([1.0, float("nan"), 3.0]), present=torch.tensor([True, False, True])),
        lambda t: _finite(t),
    ),
    bad(
        "update rule temperatures int",
        TypeError,
        "`temperatures` to be a floating point tensor",
        lambda: _update_rule(temperatures=torch.ones(3, dtype=torch.long)),
    ),
]


def _int(value: object) -> None:
    assert type(value) is int


def _float(value: object, want: float) -> None:
    assert type(value) is float
    assert value == want


def _shape(tensor: torch.Tensor, shape: tuple[int, ...]) -> None:
    assert tuple(tensor.shape) == shape


def _finite(tensor: torch.Tensor) -> None:
    assert torch.isfinite(tensor).all()
    assert tensor[1] == 1.0


@pytest.mark.parametrize("case", CASES, ids=ids(CASES))
def test_case(case: Case) -> None:
    run(case)
