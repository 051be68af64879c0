"""Bad and unusual inputs to the training steps: `ABSLDStep` and the registry."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from _cases import Case, bad, equal, good, ids, odd_outputs, rejected_load, run
from _models import OddOutput
from torch import nn

from torch_absld import ABSLDLoss, ABSLDStep, PGDConfig
from torch_absld.methods import create

N, C = 4, 5
LABELS = [0, 4, 2, 2]


def _net(seed: int, c: int = C, dtype: torch.dtype = torch.float32) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Flatten(), nn.Linear(12, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, c)).to(dtype)


def _x(n: int = N) -> torch.Tensor:
    return torch.rand(n, 3, 2, 2, generator=torch.Generator().manual_seed(1))


def _distiller(student: object = None, teacher: object = None, num_classes: object = C, **kwargs: object) -> ABSLDStep:
    kwargs.setdefault("steps", 2)
    kwargs.setdefault("random_start", None)
    return ABSLDStep(
        _net(1) if student is None else student,  # type: ignore[arg-type]
        _net(2) if teacher is None else teacher,  # type: ignore[arg-type]
        num_classes,  # type: ignore[arg-type]
        **kwargs,  # type: ignore[arg-type]
    )


def _step(target: object = None, input: torch.Tensor | None = None, **kwargs: object):
    distiller = _distiller(**kwargs)
    out = distiller(_x() if input is None else input, torch.tensor(LABELS) if target is None else target)
    out.loss.backward()
    return out


def _same_as_long_labels(out) -> None:
    want = _step()
    torch.testing.assert_close(out.loss, want.loss)
    torch.testing.assert_close(out.x_adv, want.x_adv)


def _empty_step():
    distiller = _distiller()
    out = distiller(_x(0), torch.zeros(0, dtype=torch.long))
    assert out.loss.item() == 0.0
    assert out.loss.requires_grad
    out.loss.backward()
    assert distiller.loss_fn.adv.count.sum() == 0
    return out


def _loaded(source_kwargs: dict[str, object], target_kwargs: dict[str, object], **state_changes: object) -> object:
    source = _distiller(**source_kwargs)
    state = source.state_dict()
    state.update(state_changes)
    target = _distiller(student=_net(7), **target_kwargs)
    return rejected_load(target, state)


def _nan_input() -> torch.Tensor:
    x = _x()
    x[2, 0, 0, 0] = float("nan")
    return x


CASES: list[Case] = [
    # construction
    bad("student list", TypeError, "`student` to be an nn.Module", lambda: _distiller(student=[_net(1)])),
    bad("teacher list", TypeError, "`teacher` to be an nn.Module", lambda: _distiller(teacher=[_net(2)])),
    bad("teacher None", TypeError, "`teacher` to be an nn.Module", lambda: ABSLDStep(_net(1), None, C)),  # type: ignore[arg-type]
    bad(
        "student is teacher",
        ValueError,
        "`student` and `teacher` to be different",
        lambda: (lambda m: _distiller(student=m, teacher=m))(_net(1)),
    ),
    bad("num_classes=0", ValueError, "`num_classes` >= 2", lambda: _distiller(num_classes=0)),
    bad("num_classes='5'", TypeError, "`num_classes` to be an int", lambda: _distiller(num_classes="5")),
    good("num_classes=np.int64", lambda: _distiller(num_classes=np.int64(C)), lambda d: _int(d.num_classes)),
    bad("loss for another C", ValueError, "`loss` for num_classes = 5", lambda: _distiller(loss=ABSLDLoss(4))),
    bad("loss a list", TypeError, "`loss` to be an ABSLDLoss or None", lambda: _distiller(loss=[0.1])),
    bad("a bad option", TypeError, "keyword options of ABSLDStep .* unknown `betta`", lambda: _distiller(betta=0.1)),
    bad("attack a dict", TypeError, "`config` to be a PGDConfig", lambda: _distiller(attack={"eps": 0.1})),
    bad("eps<0", ValueError, "`eps` >= 0", lambda: _distiller(eps=-1.0)),
    bad("loss_scale=0", ValueError, "`loss_scale` > 0", lambda: _distiller(loss_scale=0.0)),
    bad("validate_args='yes'", TypeError, "`validate_args` to be a bool", lambda: _distiller(validate_args="yes")),
    good("attack config", lambda: _distiller(attack=PGDConfig(eps=0.1)), lambda d: equal(d.attack.eps, 0.1)),
    # labels
    *(
        good(f"labels {dtype}", lambda dtype=dtype: _step(torch.tensor(LABELS, dtype=dtype)), _same_as_long_labels)
        for dtype in (torch.uint8, torch.int8, torch.int16, torch.int32)
    ),
    bad(
        "labels bool",
        TypeError,
        "`target` to hold integer class indices",
        lambda: _step(torch.tensor([True, False, True, True])),
    ),
    bad(
        "labels float",
        TypeError,
        "`target` to hold integer class indices",
        lambda: _step(torch.tensor([0.0, 1.0, 2.0, 3.0])),
    ),
    bad("labels one-hot", ValueError, r"`target` of shape \(N,\)", lambda: _step(torch.eye(C, dtype=torch.long)[:N])),
    bad("labels >= C", ValueError, r"`target` values in \[0, 5\)", lambda: _step(torch.tensor([0, 1, 2, 5]))),
    bad("labels N mismatch", ValueError, r"`target` of shape \(N,\) with N = 4", lambda: _step(torch.tensor([0, 1]))),
    bad("labels on meta", ValueError, "`target` on the device", lambda: _step(torch.tensor(LABELS, device="meta"))),
    # input
    bad(
        "input int",
        TypeError,
        "`input` to be a floating point tensor",
        lambda: _step(input=torch.ones(N, 3, 2, 2, dtype=torch.long)),
    ),
    bad("input a list", TypeError, "`input` to be a floating point tensor", lambda: _step(input=[[0.0]])),
    bad("input NaN", ValueError, "`input` to be finite", lambda: _step(input=_nan_input())),
    bad("input out of range", ValueError, r"`input` values in \[clip_min, clip_max\]", lambda: _step(input=_x() + 1)),
    bad(
        "input on meta", ValueError, "`input` on the device", lambda: _step(input=torch.rand(N, 3, 2, 2, device="meta"))
    ),
    good("empty batch", _empty_step, lambda out: _shape(out.x_adv, (0, 3, 2, 2))),
    # the models' outputs
    *odd_outputs(
        "teacher",
        lambda kind: _step(teacher=OddOutput(_net(3), kind)),
        r"`teacher` to return logits of shape \(N, num_classes\)",
        kinds=("tuple", "dict"),
    ),
    bad(
        "teacher with 4 classes",
        ValueError,
        r"`teacher` to return logits of shape \(N, num_classes\) = \(4, 5\)",
        lambda: _step(teacher=_net(2, 4)),
    ),
    bad(
        "student with 4 classes",
        ValueError,
        r"`student` to return logits of shape \(N, C\) = \(4, 5\)",
        lambda: _step(student=_net(1, 4)),
    ),
    *odd_outputs(
        "student",
        lambda kind: _step(student=OddOutput(_net(3), kind)),
        r"`student` to return logits of shape \(N, C\)",
        kinds=("tuple",),
    ),
    bad(
        "teacher logits NaN",
        ValueError,
        "`teacher` to return finite logits",
        lambda: _step(teacher=OddOutput(_net(3), "nan")),
    ),
    # loading
    bad(
        "load adapt='both' into adapt='none'",
        ValueError,
        "`adapt`",
        lambda: _loaded({"adapt": "both"}, {"adapt": "none"}),
    ),
    bad(
        "load NaN temperature",
        ValueError,
        "loaded `temperatures` to be finite",
        lambda: _loaded({}, {}, **{"loss_fn.clean.temperatures": torch.tensor([1.0, float("nan"), 1.0, 1.0, 1.0])}),
    ),
    bad(
        "load temperatures above max",
        ValueError,
        r"loaded `temperatures` in \[min_temperature, max_temperature\]",
        lambda: _loaded({}, {}, **{"loss_fn.adv.temperatures": torch.full((C,), 9.0)}),
    ),
    # the other methods share the boundary checks (any integer labels, devices, one read)
    *(
        good(
            f"{method} labels {dtype}",
            lambda method=method, dtype=dtype: _method_step(method, torch.tensor(LABELS, dtype=dtype)),
            lambda out, method=method: _same(out.loss, _method_step(method, torch.tensor(LABELS)).loss),
        )
        for method in ("sat", "trades", "ard", "adaad", "fair-ard")
        for dtype in (torch.uint8, torch.int32)
    ),
    bad(
        "sat labels bool",
        TypeError,
        "`target` to hold integer class indices",
        lambda: _method_step("sat", torch.tensor([True, False, True, True])),
    ),
    bad(
        "trades input on meta",
        ValueError,
        "`input` on the device",
        lambda: _method_step("trades", torch.tensor(LABELS), torch.rand(N, 3, 2, 2, device="meta")),
    ),
    good(
        "VulnerabilityWeights uint8 labels",
        lambda: _vulnerability_weights(torch.tensor([3, 0, 2, 2], dtype=torch.uint8)),
        lambda w: _same(w, torch.tensor([4.0, 1.0, 3.0, 3.0])),
    ),
    # the registry
    bad(
        "create unknown method",
        ValueError,
        "`name` to be one of",
        lambda: create("bogus", _net(1), num_classes=C, teacher=_net(2)),
    ),
    bad(
        "create absld without teacher",
        ValueError,
        "Expected a `teacher`",
        lambda: create("absld", _net(1), num_classes=C),
    ),
    bad(
        "create rslad adapt='both'",
        ValueError,
        "`adapt` = 'none'",
        lambda: create("rslad", _net(1), num_classes=C, teacher=_net(2), adapt="both"),
    ),
    good(
        "create with np.int64 classes",
        lambda: create("absld", _net(1), num_classes=np.int64(C), teacher=_net(2)),
        lambda d: _int(d.num_classes),
    ),
]


def _method_step(method: str, target: torch.Tensor, input: torch.Tensor | None = None):
    teacher = None if method == "sat" else _net(2)
    step = create(method, _net(1), num_classes=C, teacher=teacher, steps=2, random_start=None)
    return step(_x() if input is None else input, target)


def _vulnerability_weights(target: torch.Tensor) -> torch.Tensor:
    from torch_absld.class_weights import VulnerabilityWeights

    weights = VulnerabilityWeights(C)
    weights.weights.copy_(torch.arange(1.0, C + 1))
    return weights(target)


def _same(a: torch.Tensor, b: torch.Tensor) -> None:
    torch.testing.assert_close(a, b)


def _int(value: object) -> None:
    assert type(value) is int


def _shape(tensor: torch.Tensor, shape: tuple[int, ...]) -> None:
    assert tuple(tensor.shape) == shape


@pytest.mark.parametrize("case", CASES, ids=ids(CASES))
def test_case(case: Case) -> None:
    run(case)
