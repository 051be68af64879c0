from __future__ import annotations

import copy
import math

import pytest
import torch
from torch.testing import assert_close

from torch_absld.class_weights import VulnerabilityWeights, vulnerability_weights


def _weights_reference(previous, kappa_sums, counts, beta=2.0, low=5 / 6, high=5 / 2):
    """``weight_assign`` of Fair-ARD.py on the classes seen: (1 / (kbar + 1e-5))^beta, scaled to sum |P|,
    clamped; an unseen class keeps its weight."""
    present = [k for k, n in enumerate(counts) if n > 0]
    if not present:
        return list(previous)
    ratio = {k: (1 / (kappa_sums[k] / counts[k] + 1e-5)) ** beta for k in present}
    total = sum(ratio.values())
    out = list(previous)
    for k in present:
        out[k] = min(max(ratio[k] * len(present) / total, low), high)
    return out


@pytest.mark.parametrize(
    ("kappa_sums", "counts"),
    [
        ([10.0, 20.0, 30.0, 40.0], [5, 5, 5, 5]),  # balanced, all present
        ([0.0, 9.0, 18.0, 4.0], [3, 3, 3, 2]),  # a class never classified correctly
        ([7.0, 0.0, 5.0, 5.0], [2, 0, 5, 1]),  # an absent class keeps its weight
        ([4.0, 4.0, 4.0, 4.0], [2, 2, 2, 2]),  # equally vulnerable: all 1
        ([0.0, 0.0, 0.0, 0.0], [0, 0, 0, 0]),  # nothing seen
    ],
)
def test_weights_against_the_authors_rule(kappa_sums, counts):
    previous = torch.tensor([1.0, 1.7, 0.9, 1.1])
    sums, n = torch.tensor(kappa_sums, dtype=torch.float64), torch.tensor(counts, dtype=torch.float64)
    got = vulnerability_weights(previous, sums / n.clamp_min(1), n > 0)
    want = _weights_reference(previous.tolist(), kappa_sums, counts)
    assert_close(got, torch.tensor(want), rtol=1e-6, atol=1e-7)
    assert got.dtype == torch.float32


def test_the_clamp_comes_after_the_normalisation():
    got = vulnerability_weights(torch.ones(3), torch.tensor([1.0, 2.0, 4.0]), torch.ones(3, dtype=torch.bool))
    r = [1 / (1 + 1e-5) ** 2, 1 / (2 + 1e-5) ** 2, 1 / (4 + 1e-5) ** 2]
    assert math.isclose(float(got[0]), 3 * r[0] / sum(r), rel_tol=1e-6)  # 2.2857, inside the bounds
    assert_close(got[1:], torch.full((2,), 5 / 6))  # 0.571 and 0.143 clamped up, not renormalised
    assert float(got.mean()) > 1


def test_controller_accumulates_and_steps_per_epoch():
    ctrl = VulnerabilityWeights(4, beta=1.0, max_weight=3.0)
    assert torch.equal(ctrl(torch.tensor([0, 3])), torch.ones(2))  # the first epoch: all weights 1
    ctrl.update(torch.tensor([1.0, 3.0, 2.0, 6.0]), torch.tensor([0, 0, 1, 2]))
    ctrl.update(torch.tensor([4.0]), torch.tensor([2]))
    kappa, present = ctrl.mean()[0], ctrl.sample_counts > 0
    assert_close(kappa[:3], torch.tensor([2.0, 2.0, 5.0], dtype=torch.float64))
    assert present.tolist() == [True, True, True, False]
    weights = ctrl.step()
    assert_close(
        weights, torch.tensor(_weights_reference([1.0] * 4, [4.0, 2.0, 10.0, 0.0], [2, 1, 2, 0], 1.0, 5 / 6, 3.0))
    )
    assert ctrl.accumulator.sum() == 0  # reset for the next epoch
    assert ctrl.epochs_stepped == 1
    assert_close(ctrl(torch.tensor([2, 0])), weights[[2, 0]])


def test_state_dict_round_trip_mid_epoch_and_rejected_loads():
    ctrl = VulnerabilityWeights(3)
    ctrl.update(torch.tensor([1.0, 2.0, 5.0]), torch.tensor([0, 1, 2]))
    ctrl.step()
    ctrl.update(torch.tensor([3.0]), torch.tensor([1]))  # a partial epoch
    state = copy.deepcopy(ctrl.state_dict())
    fresh = VulnerabilityWeights(3)
    fresh.load_state_dict(state)
    assert torch.equal(fresh.weights, ctrl.weights)
    assert torch.equal(fresh.accumulator, ctrl.accumulator)
    assert fresh.epochs_stepped == 1
    assert torch.equal(fresh.step(), ctrl.step())
    bad = dict(state, weights=torch.tensor([1.0, float("nan"), 1.0]))
    untouched = VulnerabilityWeights(3)
    with pytest.raises(ValueError, match=r"loaded `weights` to be finite, in \[0.833333, 2.5\], or 1.0"):
        untouched.load_state_dict(bad)
    assert untouched.accumulator.sum() == 0
    assert torch.equal(untouched.weights, torch.ones(3))
    with pytest.raises(ValueError, match=r"loaded `weights` of shape \(3,\)"):
        untouched.load_state_dict(dict(state, weights=torch.ones(4)))
    with pytest.raises(ValueError, match=r"`_extra_state\['epochs_stepped'\]` in \[0, inf\] \(integers\)"):
        untouched.load_state_dict(dict(state, _extra_state={"epochs_stepped": -1}))


def test_dtypes_under_casts_and_argument_errors():
    ctrl = VulnerabilityWeights(3).half()
    assert ctrl.weights.dtype == torch.float32
    assert ctrl.accumulator.dtype == torch.float64
    with pytest.raises(ValueError, match="`min_weight` <= `max_weight`"):
        VulnerabilityWeights(3, min_weight=2.0, max_weight=1.0)
    with pytest.raises(ValueError, match="`max_weight` > 0"):
        VulnerabilityWeights(3, max_weight=0.0)
    with pytest.raises(ValueError, match=r"`target` values in \[0, 3\)"):
        VulnerabilityWeights(3).update(torch.ones(2), torch.tensor([0, 3]))
    nonfinite = VulnerabilityWeights(3)
    nonfinite._update(torch.tensor([float("inf")]), torch.tensor([0]))  # unchecked, as a training step
    with pytest.raises(ValueError, match="finite accumulated statistics"):
        nonfinite.step()
    assert torch.equal(nonfinite.weights, torch.ones(3))
