"""Bad and unusual inputs to `ClassEpsilon`, `CalibratedEpsilon` and `class_calibration`."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from _cases import Case, bad, good, identical, ids, rejected_load, run

from torch_absld.class_eps import CalibratedEpsilon, ClassEpsilon, class_calibration

C = 3
T = torch.tensor
SCALE = T([1.0, 2.0, 3.0], dtype=torch.float64)
LABELS = [1, 1, 2]  # no class 0: labels read as a mask would select every class
EPS, STEP = 0.1, 0.025


def _radii(
    target: torch.Tensor, eps: object = EPS, step: object = STEP, **kwargs: object
) -> tuple[torch.Tensor, object]:
    ctrl = ClassEpsilon(C, scale_step=kwargs.pop("scale_step", False))  # type: ignore[arg-type]
    ctrl.scale.copy_(SCALE)
    return ctrl(target, eps, step, **kwargs)  # type: ignore[arg-type]


def _by_hand(labels: list[int]) -> tuple[torch.Tensor, float]:
    return T([SCALE[k].item() * EPS for k in labels], dtype=torch.float64), STEP


def _same_radii(want: tuple[torch.Tensor, object]):
    def check(got: tuple[torch.Tensor, object]) -> None:
        torch.testing.assert_close(got[0], want[0])
        torch.testing.assert_close(got[1], want[1])

    return check


def _update(values: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    ctrl = CalibratedEpsilon(C)
    ctrl.update(values, target)
    return ctrl.accumulator


def _calibrate(
    previous: object = None, accuracy: object = None, present: object = None, **kwargs: object
) -> torch.Tensor:
    previous = torch.ones(C) if previous is None else previous
    accuracy = T([0.5, 0.2, 0.0]) if accuracy is None else accuracy
    present = T([True, True, False]) if present is None else present
    return class_calibration(previous, accuracy, present, **{"lam": 0.3, "base": 1.0, **kwargs})  # type: ignore[arg-type]


def _load(**changes: object) -> object:
    state = CalibratedEpsilon(C).state_dict()
    state.update(changes)
    return rejected_load(CalibratedEpsilon(C), state)


LOGITS = T([[2.0, 0.0, 0.0], [0.0, 1.0, 0.0], [3.0, 0.0, 0.0]])

CASES: list[Case] = [
    # the radii of a batch
    good("radii by hand", lambda: _radii(T(LABELS)), _same_radii(_by_hand(LABELS))),
    *(
        good(f"radii labels {dtype}", lambda dtype=dtype: _radii(T(LABELS, dtype=dtype)), _same_radii(_by_hand(LABELS)))
        for dtype in (torch.uint8, torch.int8, torch.int16, torch.int32)
    ),
    bad(
        "radii labels bool", TypeError, "`target` to hold integer class indices", lambda: _radii(T([True, False, True]))
    ),
    bad("radii labels >= C", ValueError, r"`target` values in \[0, 3\)", lambda: _radii(T([0, 3]))),
    bad("radii labels on meta", ValueError, "`target` on the device", lambda: _radii(T(LABELS, device="meta"))),
    bad("radii eps<0", ValueError, "`eps` >= 0", lambda: _radii(T(LABELS), eps=-0.1)),
    bad("radii eps='a'", TypeError, "`eps` to be a real number", lambda: _radii(T(LABELS), eps="a")),
    bad("radii eps=nan", ValueError, "`eps` to be finite", lambda: _radii(T(LABELS), eps=float("nan"))),
    bad("radii step_size=0", ValueError, "`step_size` > 0", lambda: _radii(T(LABELS), step=0.0)),
    good("radii eps=np.float32", lambda: _radii(T(LABELS), eps=np.float32(EPS)), lambda out: _shape(out[0], (3,))),
    good("radii empty", lambda: _radii(torch.zeros(0, dtype=torch.long)), lambda out: _shape(out[0], (0,))),
    good(
        "radii scale_step empty",
        lambda: _radii(torch.zeros(0, dtype=torch.long), scale_step=True),
        lambda out: _shape(out[1], (0,)),
    ),
    bad(
        "radii present float",
        ValueError,
        r"`present` to be a bool tensor of shape \(3,\)",
        lambda: _radii(T(LABELS), scale_step=True, present=torch.ones(C)),
    ),
    bad(
        "radii present (2,)",
        ValueError,
        r"`present` to be a bool tensor of shape \(3,\)",
        lambda: _radii(T(LABELS), scale_step=True, present=T([True, True])),
    ),
    # the calibration's update
    good(
        "update uint8 labels",
        lambda: _update(LOGITS, T([0, 0, 1], dtype=torch.uint8)),
        lambda acc: identical(acc, _update(LOGITS, T([0, 0, 1]))),
    ),
    bad(
        "update logits 1-D",
        ValueError,
        r"`values` of shape \(N, C\)",
        lambda: _update(T([1.0, 2.0, 3.0]), T([0, 1, 2])),
    ),
    bad(
        "update logits of another C",
        ValueError,
        r"`values` of shape \(N, 3\) for num_classes = 3",
        lambda: _update(torch.zeros(3, 4), T([0, 1, 2])),
    ),
    bad("update N mismatch", ValueError, r"`target` of shape \(N,\) with N = 3", lambda: _update(LOGITS, T([0, 1]))),
    bad("update labels >= C", ValueError, r"`target` values in \[0, 3\)", lambda: _update(LOGITS, T([0, 1, 3]))),
    bad(
        "update logits int",
        TypeError,
        "`values` to be floating point logits",
        lambda: _update(LOGITS.long(), T([0, 1, 2])),
    ),
    # options
    bad("lambda_beta<0", ValueError, "`lambda_beta` >= 0", lambda: CalibratedEpsilon(C, lambda_beta=-0.5)),
    bad("lambda_eps<0", ValueError, "`lambda_eps` >= 0", lambda: CalibratedEpsilon(C, lambda_eps=-0.3)),
    bad("beta<0", ValueError, "`beta` >= 0", lambda: CalibratedEpsilon(C, beta=-6.0)),
    bad(
        "begin_epoch=1.5", ValueError, "`begin_epoch` to be an int >= 0", lambda: CalibratedEpsilon(C, begin_epoch=1.5)
    ),  # type: ignore[arg-type]
    bad("scale_step='yes'", TypeError, "`scale_step` to be a bool", lambda: ClassEpsilon(C, scale_step="yes")),  # type: ignore[arg-type]
    good("num_classes=np.int64", lambda: CalibratedEpsilon(np.int64(C)), lambda m: _int(m.num_classes)),
    good("process_group=False", lambda: CalibratedEpsilon(C, process_group=False).step(), lambda s: _shape(s, (C,))),
    # class_calibration
    good("calibration by hand", _calibrate, lambda out: torch.testing.assert_close(out, T([0.8, 0.5, 1.0]))),
    bad(
        "calibration NaN accuracy",
        ValueError,
        r"`accuracy` in \[0, 1\] for every class in `present`",
        lambda: _calibrate(accuracy=T([0.5, float("nan"), 0.0])),
    ),
    bad(
        "calibration accuracy 1.5",
        ValueError,
        r"`accuracy` in \[0, 1\] for every class in `present`",
        lambda: _calibrate(accuracy=T([1.5, 0.2, 0.0])),
    ),
    good(
        "calibration NaN accuracy of an absent class",
        lambda: _calibrate(accuracy=T([0.5, 0.2, float("nan")])),
        lambda out: torch.testing.assert_close(out, T([0.8, 0.5, 1.0])),
    ),
    bad("calibration present float", TypeError, "a bool `present`", lambda: _calibrate(present=T([1.0, 1.0, 0.0]))),
    bad(
        "calibration accuracy (2,)",
        ValueError,
        r"`accuracy` of shape \(C,\)",
        lambda: _calibrate(accuracy=T([0.5, 0.2])),
    ),
    bad("calibration lam<0", ValueError, "`lam` >= 0", lambda: _calibrate(lam=-1.0)),
    bad("calibration base nan", ValueError, "`base` to be finite", lambda: _calibrate(base=float("nan"))),
    # loading
    bad(
        "load class_beta negative",
        ValueError,
        "loaded `class_beta` to be finite and >= 0",
        lambda: _load(class_beta=T([-7.0, 6.0, 6.0], dtype=torch.float64)),
    ),
    bad(
        "load scale negative",
        ValueError,
        "loaded `scale` to be finite and >= 0",
        lambda: _load(scale=T([-1.0, 1.0, 1.0], dtype=torch.float64)),
    ),
    bad(
        "load scale (4,)",
        ValueError,
        r"loaded `scale` of shape \(3,\)",
        lambda: _load(scale=torch.ones(4, dtype=torch.float64)),
    ),
    bad(
        "load counters",
        ValueError,
        "'epochs_stepped', 'updates' >= 0",
        lambda: _load(_extra_state={"epochs_stepped": 1}),
    ),
]


def _shape(tensor: object, shape: tuple[int, ...]) -> None:
    assert isinstance(tensor, torch.Tensor)
    assert tuple(tensor.shape) == shape


def _int(value: object) -> None:
    assert type(value) is int


@pytest.mark.parametrize("case", CASES, ids=ids(CASES))
def test_case(case: Case) -> None:
    run(case)
