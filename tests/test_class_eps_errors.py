"""The per-class controllers' entry points: wired to the shared checks, one read from the device (none without
checks), the rules by hand, and loads that are refused without changing anything."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import torch
from _cases import rejected_load
from _reads import count_reads
from torch import nn

from torch_absld import FairnessAwareAveraging, PGDConfig
from torch_absld.class_eps import CalibratedEpsilon, ClassEpsilon, _calibration
from torch_absld.class_weights import VulnerabilityWeights, vulnerability_weights
from torch_absld.multipliers import FRLMultipliers, _multiplier_update, frl_class_weights
from torch_absld.validation import validation_pass

C = 3
T = torch.tensor
LABELS = T([0, 1, 2])
CLEAN = T([[2.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
ROBUST = T([[1.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
KAPPA = T([1.0, 2.0, 4.0])
ALL = torch.ones(C, dtype=torch.bool)
ATTACK = PGDConfig(eps=0.1, step_size=0.05, steps=1, random_start="uniform")


def _model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(12, C))


def _fawa(**options: Any) -> FairnessAwareAveraging:
    return FairnessAwareAveraging(_model(), C, start_epoch=0, threshold=0.0, **options)


def _entries() -> dict[str, Callable[[bool, torch.Tensor], Any]]:
    """Each entry point as ``call(validate_args, target)``."""
    return {
        "ClassEpsilon.forward": lambda v, y: ClassEpsilon(C, scale_step=True, validate_args=v)(y, 0.1, 0.025),
        "CalibratedEpsilon.update": lambda v, y: CalibratedEpsilon(C, validate_args=v).update(CLEAN, y),
        "FRLMultipliers.record": lambda v, y: FRLMultipliers(C, validate_args=v).record(CLEAN, ROBUST, y),
        "VulnerabilityWeights.forward": lambda v, y: VulnerabilityWeights(C, validate_args=v)(y),
        "VulnerabilityWeights.update": lambda v, y: VulnerabilityWeights(C, validate_args=v).update(KAPPA, y),
        "FairnessAwareAveraging.record": lambda v, y: _fawa(validate_args=v).record(CLEAN, ROBUST, y),
    }


@pytest.mark.parametrize("name", list(_entries()))
def test_entry_points_read_once_and_are_wired_to_the_label_checks(name: str) -> None:
    call = _entries()[name]
    with count_reads() as reads:
        call(True, LABELS)
    assert reads.count == 1, reads.calls
    with count_reads() as reads:
        call(False, LABELS)
    assert reads.count == 0, reads.calls
    with pytest.raises(ValueError, match=r"`target` values in \[0, 3\)"):
        call(True, T([0, 1, 3]))
    with pytest.raises(TypeError, match="`target` to hold integer class indices"):
        call(True, LABELS.float())
    call(True, LABELS.to(torch.uint8))  # any integer dtype


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda: ClassEpsilon(C)(LABELS, -0.1, 0.025), ValueError, "`eps` >= 0"),
        (lambda: ClassEpsilon(C)(LABELS, 0.1, 0.0), ValueError, "`step_size` > 0"),
        (lambda: ClassEpsilon(C, scale_step=True)(LABELS, 0.1, 0.1, present=torch.ones(C)), ValueError, "`present`"),
        (lambda: CalibratedEpsilon(C).update(torch.zeros(3, 4), LABELS), ValueError, "for num_classes = 3"),
        (lambda: CalibratedEpsilon(C, lambda_beta=-0.5), ValueError, "`lambda_beta` >= 0"),
        (lambda: ClassEpsilon(C, scale_step="yes"), TypeError, "`scale_step` to be a bool"),
        (lambda: FRLMultipliers(C).record(CLEAN, ROBUST[:2], LABELS), ValueError, "of one shape"),
        (lambda: FRLMultipliers(C, threshold=(0.1, 0.1, 0.1)), ValueError, "`threshold` to be a number or a pair"),
        (lambda: FRLMultipliers(C, halve_every=0), ValueError, "`halve_every` to be an int >= 1"),
        (lambda: VulnerabilityWeights(C).update(-KAPPA, LABELS), ValueError, r"`values` \(each sample's kappa"),
        (lambda: VulnerabilityWeights(C).update(LABELS, LABELS), TypeError, "`values` to be a floating point"),
        (lambda: VulnerabilityWeights(C, min_weight=3.0), ValueError, "`min_weight` <= `max_weight`"),
        (lambda: vulnerability_weights(torch.ones(C), -KAPPA, ALL), ValueError, "`mean_kappa` finite and >= 0"),
        (lambda: vulnerability_weights(torch.ones(C), KAPPA, ALL.float()), TypeError, "a bool `present`"),
        (lambda: frl_class_weights(T(0.3)), ValueError, r"of shape \(\.\.\., C\)"),
        (lambda: _fawa(decay=1.0), ValueError, r"`decay` in \(0, 1\)"),
        (lambda: _fawa(worst_fraction=0.0), ValueError, r"`worst_fraction` in \(0, 1\]"),
        (lambda: _fawa(attack=ATTACK.replace(random_start="normal")), ValueError, "'uniform' or None"),
        (lambda: FairnessAwareAveraging(None, C), TypeError, "`model` to be an nn.Module"),
        (lambda: _fawa().step(5), TypeError, "`validation` to be an iterable"),
        (lambda: validation_pass(_model(), 3, print, config=ATTACK), TypeError, "`batches` to be an iterable"),
        (lambda: validation_pass(_model(), [], 1, config=ATTACK), TypeError, "`record` to be a callable"),
        (lambda: validation_pass(_model(), [], print, config=ATTACK, seed=-1), ValueError, "`seed` to be an int"),
        (lambda: validation_pass(_model(), [], print, config={}), TypeError, "`config` to be a PGDConfig"),
        (lambda: validation_pass(_model(), [], print, config=ATTACK, device="x"), ValueError, "`device` to be a"),
        (lambda: validation_pass(_model(), [T([1.0])], print, config=ATTACK), TypeError, r"\(input, target\) pairs"),
    ],
)
def test_bad_arguments_are_refused(call: Callable[[], Any], error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        call()


def test_options_accept_numpy_numbers_and_local_mode() -> None:
    assert type(CalibratedEpsilon(np.int64(C)).num_classes) is int
    assert _fawa(decay=np.float64(0.9)).decay == 0.9
    assert VulnerabilityWeights(C, process_group=False).step().tolist() == [1.0] * C


def test_steps_read_once_and_refuse_missing_classes_or_non_finite_sums() -> None:
    for ctrl in (FRLMultipliers(C), CalibratedEpsilon(C), VulnerabilityWeights(C)):
        ctrl.accumulate(torch.ones(C, ctrl.num_stats, dtype=torch.float64), LABELS)
        with count_reads() as reads:
            ctrl.step()
        assert reads.count == 1, (type(ctrl).__name__, reads.calls)
    ctrl = FRLMultipliers(C)
    ctrl.record(CLEAN[:2], ROBUST[:2], LABELS[:2])
    before = ctrl.state_dict()
    with pytest.raises(ValueError, match=r"classes \[2\] have no sample"):
        ctrl.step()
    assert all(torch.equal(v, before[k]) for k, v in ctrl.state_dict().items() if isinstance(v, torch.Tensor))
    weights = VulnerabilityWeights(C)
    weights.update(T([math.inf, 1.0, 1.0]), LABELS)
    with pytest.raises(ValueError, match="finite accumulated statistics"):
        weights.step()
    with pytest.raises(ValueError, match=r"classes \[2\] have no sample"):
        _fawa().step([(torch.rand(2, 3, 2, 2), T([0, 1]))])


def test_vulnerability_weights_reads_once_and_not_at_all_without_checks() -> None:
    for validate_args, reads_expected in ((True, 1), (False, 0)):
        with count_reads() as reads:
            vulnerability_weights(torch.ones(C), KAPPA, ALL, validate_args=validate_args)
        assert reads.count == reads_expected, reads.calls


def test_the_rules_by_hand() -> None:
    calibrated = _calibration(torch.ones(C), T([0.5, 0.2, math.nan]), T([True, True, False]), 0.3, 1.0)
    torch.testing.assert_close(calibrated, T([0.8, 0.5, 1.0]))  # an absent class keeps its value
    ratios = [(1 / (k + 1e-5)) ** 2.0 for k in KAPPA.tolist()]  # ``weight_assign`` of the official code
    want = T([min(max(3 * r / sum(ratios), 5 / 6), 5 / 2) for r in ratios])
    torch.testing.assert_close(vulnerability_weights(torch.ones(C), KAPPA, ALL), want)
    assert torch.equal(vulnerability_weights(torch.ones(C), KAPPA, ~ALL), torch.ones(C))
    torch.testing.assert_close(frl_class_weights(T([0.3, 0.0, 0.0])), T([1 / 3 + 0.2, 1 / 3 - 0.1, 1 / 3 - 0.1]))
    accuracy = T([[1.0, 1.0, 0.5], [1.0, 0.0, 0.5]], dtype=torch.float64)
    overall = T([2.5 / 3, 1.5 / 3], dtype=torch.float64)
    lam = _multiplier_update(torch.zeros(3, C), accuracy, overall, (0.05, 0.05), 0.05, 0.2, 0.5)
    natural = [0.05 * ((1 - a) - (1 - 2.5 / 3) - 0.05) for a in accuracy[0].tolist()]  # ``frl_train``
    boundary = [(a - r) - (2.5 / 3 - 1.5 / 3) - 0.05 for a, r in zip(*accuracy.tolist())]

    def project(values: list[float]) -> list[float]:
        positive = [max(v, 0.0) for v in values]
        return [v * 0.5 / sum(positive) for v in positive] if sum(positive) > 0.5 else positive

    want = T([project(natural), project([0.1 * g for g in boundary]), [0.2 * g for g in boundary]])
    torch.testing.assert_close(lam, want.double())


def _loaded(
    make: Callable[[], nn.Module], prepare: Callable[[nn.Module], None] = lambda m: None, **changes: Any
) -> Any:
    state = make().state_dict()
    state.update(changes)
    target = make()
    prepare(target)
    return rejected_load(target, state)


F64 = {"dtype": torch.float64}


@pytest.mark.parametrize(
    ("make", "changes", "match"),
    [
        (lambda: CalibratedEpsilon(C), {"class_beta": T([-7.0, 6.0, 6.0], **F64)}, "`class_beta` to be finite and"),
        (lambda: CalibratedEpsilon(C), {"scale": torch.ones(4, **F64)}, r"`scale` of shape \(3,\)"),
        (lambda: CalibratedEpsilon(C), {"_extra_state": {"epochs_stepped": 1}}, "'epochs_stepped', 'updates' >= 0"),
        (lambda: FRLMultipliers(C), {"scale": T([100.0, 1.0, 1.0], **F64)}, r"`scale` in \[0.98, 3.0\]"),
        (lambda: FRLMultipliers(C), {"natural_weights": T([-1.0, 1.0, 1.0], **F64)}, ">= 0 with sum 1"),
        (lambda: FRLMultipliers(C), {"multipliers": T([[0.4, 0.4, 0.0], [0.0] * 3, [0.0] * 3], **F64)}, "<= limit"),
        (lambda: FRLMultipliers(C), {"multipliers": torch.full((3, C), math.nan, **F64)}, "to be finite"),
        (lambda: VulnerabilityWeights(C), {"weights": T([9.0, 1.0, 1.0])}, "`weights` to be finite and > 0"),
        (lambda: VulnerabilityWeights(C), {"weights": T([math.nan, 1.0, 1.0])}, "`weights` to be finite and > 0"),
        (_fawa, {"module.1.weight": torch.zeros(2, 12)}, r"`module.1.weight` of shape \(3, 12\)"),
        (_fawa, {"module.1.bias": torch.full((C,), math.nan)}, "`module.1.bias` to be finite"),
        (_fawa, {"_extra_state": {"epochs_stepped": 0, "accepted": -1, "last_worst": 0.0}}, "'accepted' >= 0"),
    ],
)
def test_rejected_loads_change_nothing(make: Callable[[], nn.Module], changes: dict[str, Any], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        _loaded(make, lambda m: m.accumulator.add_(1), **changes)  # a partial epoch a rejected load must keep


def test_loads_that_an_update_can_make_are_accepted() -> None:
    _loaded(lambda: VulnerabilityWeights(C), weights=T([5 / 6, 5 / 2, 1.0]))
    _loaded(lambda: FRLMultipliers(C), multipliers=T([[0.1, 0.0, 0.0], [0.0] * 3, [-0.5, 0.2, 0.0]], **F64))
