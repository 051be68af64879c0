"""Bad and unusual inputs to `FRLMultipliers`, `frl_multiplier_update` and `frl_class_weights`."""

from __future__ import annotations

import pytest
import torch
from _cases import Case, bad, equal, good, ids, rejected_load, run

from torch_absld.multipliers import FRLMultipliers, frl_class_weights, frl_multiplier_update

C = 3
T = torch.tensor
CLEAN = T([[2.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
ROBUST = T([[1.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
ACCURACY = (T([1.0, 1.0, 0.5], dtype=torch.float64), T([1.0, 0.0, 0.5], dtype=torch.float64))


def _record(clean: torch.Tensor, robust: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    ctrl = FRLMultipliers(C)
    ctrl.record(clean, robust, target)
    return ctrl.accumulator


def _update(
    multipliers: object = None, class_clean: object = ACCURACY[0], class_robust: object = ACCURACY[1], **kwargs: object
) -> torch.Tensor:
    lam = torch.zeros(3, C, dtype=torch.float64) if multipliers is None else multipliers
    clean, robust = T(2.5 / 3, dtype=torch.float64), T(1.5 / 3, dtype=torch.float64)
    return frl_multiplier_update(lam, class_clean, class_robust, clean, robust, **kwargs)  # type: ignore[arg-type]


def _by_hand() -> torch.Tensor:
    """``frl_train``'s update from zero multipliers with tau = 0.05, rates 0.05 and 0.2, limit 0.5."""
    natural = [(1 - a) - (1 - 2.5 / 3) - 0.05 for a in ACCURACY[0].tolist()]
    boundary = [(a - r) - (2.5 / 3 - 1.5 / 3) - 0.05 for a, r in zip(*(v.tolist() for v in ACCURACY))]

    def project(values: list[float]) -> list[float]:
        positive = [max(v, 0.0) for v in values]
        total = sum(positive)
        return [v * 0.5 / total for v in positive] if total > 0.5 else positive

    return T([project([0.05 * g for g in natural]), project([0.1 * g for g in boundary]), [0.2 * g for g in boundary]])


def _load(**changes: object) -> object:
    state = FRLMultipliers(C).state_dict()
    state.update(changes)
    return rejected_load(FRLMultipliers(C), state)


def _close(want: torch.Tensor):
    def check(got: torch.Tensor) -> None:
        torch.testing.assert_close(got, want.to(got.dtype))

    return check


CASES: list[Case] = [
    # options
    good(
        "threshold a list", lambda: FRLMultipliers(C, threshold=[0.05, 0.1]).threshold, lambda t: equal(t, (0.05, 0.1))
    ),
    bad("threshold<0", ValueError, r"`threshold` in \[0, 1\]", lambda: FRLMultipliers(C, threshold=-0.05)),
    bad("threshold 1.5", ValueError, r"`threshold` in \[0, 1\]", lambda: FRLMultipliers(C, threshold=(0.05, 1.5))),
    bad("threshold 'a'", TypeError, "`threshold` to be a real number", lambda: FRLMultipliers(C, threshold="a")),  # type: ignore[arg-type]
    bad(
        "threshold of three",
        ValueError,
        "`threshold` to be a number or a pair",
        lambda: FRLMultipliers(C, threshold=(0.1, 0.1, 0.1)),  # type: ignore[arg-type]
    ),
    bad("rate<0", ValueError, "`rate` >= 0", lambda: FRLMultipliers(C, rate=-0.05)),
    bad("eps_rate=nan", ValueError, "`eps_rate` to be finite", lambda: FRLMultipliers(C, eps_rate=float("nan"))),
    bad("limit 2", ValueError, r"`limit` in \[0, 1\]", lambda: FRLMultipliers(C, limit=2.0)),
    bad("halve_every=0", ValueError, "`halve_every` to be an int >= 1", lambda: FRLMultipliers(C, halve_every=0)),
    good("halve_every=None", lambda: FRLMultipliers(C, halve_every=None).rate_at(80), lambda r: equal(r, 0.05)),
    good(
        "process_group=False",
        lambda: FRLMultipliers(C, process_group=False, begin_epoch=5).step(),
        lambda s: equal(s.tolist(), [1.0] * C),
    ),
    # record: a validation batch
    good(
        "record by hand",
        lambda: _record(CLEAN, ROBUST, T([0, 1, 2])),
        _close(T([[1.0, 1.0, 1.0], [1.0, 0.0, 1.0], [1.0, 1.0, 1.0]])),
    ),
    good(
        "record uint8 labels",
        lambda: _record(CLEAN, ROBUST, T([0, 1, 2], dtype=torch.uint8)),
        _close(_record(CLEAN, ROBUST, T([0, 1, 2]))),
    ),
    bad(
        "record logits 1-D",
        ValueError,
        r"`clean_logits` of shape \(N, C\)",
        lambda: _record(T([1.0, 2.0, 3.0]), T([1.0, 2.0, 3.0]), T([0, 1, 2])),
    ),
    bad(
        "record logits of another C",
        ValueError,
        r"`clean_logits` and `robust_logits` of shape \(N, 3\) for num_classes = 3",
        lambda: _record(torch.zeros(3, 4), torch.zeros(3, 4), T([0, 1, 2])),
    ),
    bad(
        "record robust of another N",
        ValueError,
        "`clean_logits`, `robust_logits` of one shape",
        lambda: _record(CLEAN, ROBUST[:2], T([0, 1, 2])),
    ),
    bad("record labels >= C", ValueError, r"`target` values in \[0, 3\)", lambda: _record(CLEAN, ROBUST, T([0, 1, 3]))),
    bad(
        "record labels float",
        TypeError,
        "`target` to hold integer class indices",
        lambda: _record(CLEAN, ROBUST, T([0.0, 1.0, 2.0])),
    ),
    bad(
        "record logits on meta",
        ValueError,
        "`clean_logits` on the device",
        lambda: _record(CLEAN.to("meta"), ROBUST.to("meta"), T([0, 1, 2])),
    ),
    good(
        "record empty",
        lambda: _record(torch.zeros(0, C), torch.zeros(0, C), torch.zeros(0, dtype=torch.long)),
        _close(torch.zeros(3, C)),
    ),
    # the update rule
    good("update by hand", _update, _close(_by_hand())),
    good("update threshold a list", lambda: _update(threshold=[0.05, 0.05]), _close(_by_hand())),
    bad("update rate<0", ValueError, "`rate` >= 0", lambda: _update(rate=-0.05)),
    bad("update limit 2", ValueError, r"`limit` in \[0, 1\]", lambda: _update(limit=2.0)),
    bad("update threshold<0", ValueError, r"`threshold` in \[0, 1\]", lambda: _update(threshold=(-0.1, 0.05))),
    bad(
        "update NaN accuracy",
        ValueError,
        r"accuracies in \[0, 1\]",
        lambda: _update(class_clean=T([1.0, float("nan"), 0.5])),
    ),
    bad("update accuracy 1.5", ValueError, r"accuracies in \[0, 1\]", lambda: _update(class_robust=T([1.5, 0.0, 0.5]))),
    bad(
        "update class_robust (2,)",
        ValueError,
        r"`class_robust` of shape \(3,\)",
        lambda: _update(class_robust=T([1.0, 0.0])),
    ),
    bad(
        "update multipliers (2, C)", ValueError, r"`multipliers` of shape \(3, C\)", lambda: _update(torch.zeros(2, C))
    ),
    bad(
        "update NaN multipliers",
        ValueError,
        "finite `multipliers`",
        lambda: _update(torch.full((3, C), float("nan"), dtype=torch.float64)),
    ),
    good(
        "class weights by hand",
        lambda: frl_class_weights(T([0.3, 0.0, 0.0])),
        _close(T([1 / 3 + 0.2, 1 / 3 - 0.1, 1 / 3 - 0.1])),
    ),
    bad(
        "class weights 0-d",
        ValueError,
        r"`multipliers` to be a floating point tensor of shape \(\.\.\., C\)",
        lambda: frl_class_weights(T(0.3)),
    ),
    bad(
        "class weights int",
        ValueError,
        r"`multipliers` to be a floating point tensor",
        lambda: frl_class_weights(T([1, 0, 0])),
    ),
    # loading
    bad(
        "load scale 100",
        ValueError,
        r"loaded `scale` in \[0.98, 3.0\]",
        lambda: _load(scale=T([100.0, 1.0, 1.0], dtype=torch.float64)),
    ),
    bad(
        "load negative weights",
        ValueError,
        "loaded `natural_weights` >= 0 with sum 1",
        lambda: _load(natural_weights=T([-1.0, 1.0, 1.0], dtype=torch.float64)),
    ),
    bad(
        "load weights of sum 2",
        ValueError,
        "loaded `boundary_weights` >= 0 with sum 1",
        lambda: _load(boundary_weights=T([1.0, 0.5, 0.5], dtype=torch.float64)),
    ),
    bad(
        "load multipliers above the limit",
        ValueError,
        "loaded `multipliers` with weight rows >= 0",
        lambda: _load(multipliers=T([[0.4, 0.4, 0.0], [0.0] * 3, [0.0] * 3], dtype=torch.float64)),
    ),
    bad(
        "load NaN multipliers",
        ValueError,
        "loaded `multipliers` to be finite",
        lambda: _load(multipliers=torch.full((3, C), float("nan"), dtype=torch.float64)),
    ),
    good(
        "load negative radius multipliers",
        lambda: _load(multipliers=T([[0.1, 0.0, 0.0], [0.0] * 3, [-0.5, 0.2, 0.0]], dtype=torch.float64)),
    ),
]


@pytest.mark.parametrize("case", CASES, ids=ids(CASES))
def test_case(case: Case) -> None:
    run(case)
