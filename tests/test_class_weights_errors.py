"""Bad and unusual inputs to `vulnerability_weights` and `VulnerabilityWeights`."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from _cases import Case, bad, good, ids, rejected_load, run

from torch_absld import VulnerabilityWeights
from torch_absld.class_weights import vulnerability_weights

C = 3
ONES = torch.ones(C)
KAPPA = torch.tensor([1.0, 2.0, 4.0])
ALL = torch.ones(C, dtype=torch.bool)
T = torch.tensor


def _rule(weights: object = ONES, kappa: object = KAPPA, present: object = ALL, **kwargs: object) -> torch.Tensor:
    return vulnerability_weights(weights, kappa, present, **kwargs)  # type: ignore[arg-type]


def _by_hand(kappa: list[float], present: list[bool], beta: float = 2.0) -> torch.Tensor:
    """``weight_assign`` of the official code over the present classes, absent ones kept at 1."""
    ratios = {k: (1 / (kappa[k] + 1e-5)) ** beta for k in range(C) if present[k]}
    total = sum(ratios.values())
    return T([min(max(len(ratios) * ratios[k] / total, 5 / 6), 5 / 2) if k in ratios else 1.0 for k in range(C)])


def _update(values: torch.Tensor, target: torch.Tensor, **kwargs: object) -> torch.Tensor:
    ctrl = VulnerabilityWeights(C, **kwargs)  # type: ignore[arg-type]
    ctrl.update(values, target)
    return ctrl.accumulator


def _load(weights: torch.Tensor, **kwargs: object) -> object:
    state = VulnerabilityWeights(C).state_dict()
    state["weights"] = weights
    return rejected_load(VulnerabilityWeights(C, **kwargs), state)  # type: ignore[arg-type]


def _close(want: torch.Tensor):
    def check(got: torch.Tensor) -> None:
        torch.testing.assert_close(got, want)

    return check


CASES: list[Case] = [
    # the rule
    good("rule by hand", lambda: _rule(), _close(_by_hand([1.0, 2.0, 4.0], [True] * 3))),
    good(
        "rule NaN kappa of an absent class",
        lambda: _rule(kappa=T([1.0, float("nan"), 4.0]), present=T([True, False, True])),
        _close(_by_hand([1.0, 0.0, 4.0], [True, False, True])),
    ),
    good("rule no class present", lambda: _rule(present=torch.zeros(C, dtype=torch.bool)), _close(ONES)),
    bad("rule present float", TypeError, "`present` to be a bool tensor", lambda: _rule(present=ALL.float())),
    bad(
        "rule NaN kappa",
        ValueError,
        "`mean_kappa` finite and >= 0 for every class in `present`",
        lambda: _rule(kappa=T([1.0, float("nan"), 4.0])),
    ),
    bad(
        "rule negative kappa",
        ValueError,
        "`mean_kappa` finite and >= 0 for every class in `present`",
        lambda: _rule(kappa=T([-1.0, 2.0, 4.0])),
    ),
    bad(
        "rule kappa (2,)", ValueError, r"`mean_kappa` of the shape of `weights`, \(3,\)", lambda: _rule(kappa=KAPPA[:2])
    ),
    bad(
        "rule weights 2-D",
        ValueError,
        r"`weights` to be a floating point tensor of shape \(C,\)",
        lambda: _rule(ONES[None]),
    ),
    bad("rule kappa a list", TypeError, "`mean_kappa` to be a torch.Tensor", lambda: _rule(kappa=[1.0, 2.0, 4.0])),
    bad("rule beta<0", ValueError, "`beta` >= 0", lambda: _rule(beta=-2.0)),
    bad("rule min > max", ValueError, "`min_weight` <= `max_weight`", lambda: _rule(min_weight=3.0, max_weight=1.0)),
    bad("rule min_weight=0", ValueError, "`min_weight` > 0", lambda: _rule(min_weight=0.0)),
    good(
        "rule beta=np.float64", lambda: _rule(beta=np.float64(1.0)), _close(_by_hand([1.0, 2.0, 4.0], [True] * 3, 1.0))
    ),
    # the controller
    bad("beta<0", ValueError, "`beta` >= 0", lambda: VulnerabilityWeights(C, beta=-2.0)),
    bad("beta='2'", TypeError, "`beta` to be a real number", lambda: VulnerabilityWeights(C, beta="2")),  # type: ignore[arg-type]
    bad("num_classes=0", ValueError, "`num_classes` >= 1", lambda: VulnerabilityWeights(0)),
    good("num_classes=np.int64", lambda: VulnerabilityWeights(np.int64(C)), lambda m: _int(m.num_classes)),
    good("process_group=False", lambda: VulnerabilityWeights(C, process_group=False).step(), _close(ONES)),
    bad(
        "process_group=1",
        TypeError,
        "`process_group` to be a ProcessGroup",
        lambda: VulnerabilityWeights(C, process_group=1),
    ),  # type: ignore[arg-type]
    good(
        "update uint8 labels",
        lambda: _update(KAPPA, T([0, 2, 2], dtype=torch.uint8)),
        _close(_update(KAPPA, T([0, 2, 2]))),
    ),
    good(
        "update int32 labels",
        lambda: _update(KAPPA, T([0, 2, 2], dtype=torch.int32)),
        _close(_update(KAPPA, T([0, 2, 2]))),
    ),
    bad(
        "update negative kappa",
        ValueError,
        r"`values` \(each sample's kappa.*>= 0",
        lambda: _update(-KAPPA, T([0, 1, 2])),
    ),
    good("update negative kappa unchecked", lambda: _update(-KAPPA, T([0, 1, 2]), validate_args=False)),
    bad("update labels >= C", ValueError, r"`target` values in \[0, 3\)", lambda: _update(KAPPA, T([0, 1, 3]))),
    bad("update labels bool", TypeError, "`target` to hold integer class indices", lambda: _update(KAPPA, ALL)),
    bad(
        "update kappa (N, 2)",
        ValueError,
        r"`values` of shape \(N,\) or \(N, S\)",
        lambda: _update(torch.ones(3, 2), T([0, 1, 2])),
    ),
    bad("update N mismatch", ValueError, r"`target` of shape \(N,\) with N = 3", lambda: _update(KAPPA, T([0, 1]))),
    bad(
        "update labels on meta",
        ValueError,
        "`target` on the device",
        lambda: _update(KAPPA, T([0, 1, 2], device="meta")),
    ),
    good(
        "update empty",
        lambda: _update(torch.zeros(0), torch.zeros(0, dtype=torch.long)),
        _close(torch.zeros(2, C, dtype=torch.float64)),
    ),
    good("forward uint8 labels", lambda: VulnerabilityWeights(C)(T([2, 1], dtype=torch.uint8)), _close(torch.ones(2))),
    bad("forward labels >= C", ValueError, r"`target` values in \[0, 3\)", lambda: VulnerabilityWeights(C)(T([3]))),
    # loading
    bad(
        "load weights above max_weight",
        ValueError,
        "loaded `weights` to be finite and > 0",
        lambda: _load(T([9.0, 1.0, 1.0])),
    ),
    bad(
        "load weights below min_weight",
        ValueError,
        "loaded `weights` to be finite and > 0",
        lambda: _load(T([0.1, 1.0, 1.0])),
    ),
    bad(
        "load NaN weights",
        ValueError,
        "loaded `weights` to be finite and > 0",
        lambda: _load(T([float("nan"), 1.0, 1.0])),
    ),
    good("load weights clamped in float32", lambda: _load(T([5 / 6, 5 / 2, 1.0]))),
    good("load initial weights 1 below min_weight", lambda: _load(ONES, min_weight=1.5, max_weight=2.0)),
]


def _int(value: object) -> None:
    assert type(value) is int


@pytest.mark.parametrize("case", CASES, ids=ids(CASES))
def test_case(case: Case) -> None:
    run(case)
