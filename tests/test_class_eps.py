from __future__ import annotations

import copy

import pytest
import torch
from torch import nn
from torch.testing import assert_close

from torch_absld import pgd
from torch_absld.class_eps import CalibratedEpsilon

C = 4


def _cfa_reference(epochs, lambda1=0.3, lambda2=0.5, beta=6.0, begin=0):
    """CFA's ``train.py`` loop in plain Python: for epoch e >= begin, eps_k = (lambda1 + t_k) * eps and
    beta_k = (lambda2 + t_k) * beta from the previous epoch's per-class robust accuracy t_k (a class absent from
    that epoch keeps its values). Returns the scales and betas in force during each epoch after the first."""
    scale, betas, out = [1.0] * C, [beta] * C, []
    for e, (correct, counts) in enumerate(epochs):
        if e + 1 >= begin:
            for k in range(C):
                if counts[k]:
                    t = correct[k] / counts[k]
                    scale[k], betas[k] = lambda1 + t, (lambda2 + t) * beta
        out.append((list(scale), list(betas)))
    return out


def _epoch_batches(seed: int, n: int = 24):
    """Adversarial logits and labels whose per-class correct counts are known; class 3 absent in odd epochs."""
    g = torch.Generator().manual_seed(seed)
    target = torch.randint(0, C if seed % 2 == 0 else C - 1, (n,), generator=g)
    logits = torch.randn(n, C, generator=g)
    correct = [int(((logits.argmax(1) == target) & (target == k)).sum()) for k in range(C)]
    counts = [int((target == k).sum()) for k in range(C)]
    return logits, target, correct, counts


@pytest.mark.parametrize(("begin", "lambda_beta"), [(0, 0.5), (2, 0.5), (0, None)])
def test_calibration_follows_the_authors_rule(begin, lambda_beta):
    ctrl = CalibratedEpsilon(C, begin_epoch=begin, lambda_beta=lambda_beta)
    epochs, got = [], []
    for seed in range(4):
        logits, target, correct, counts = _epoch_batches(seed)
        ctrl.update(logits[:10], target[:10])
        ctrl.update(logits[10:], target[10:])
        epochs.append((correct, counts))
        got.append((ctrl.step().clone(), ctrl.class_beta.clone()))
        assert ctrl.accumulator.sum() == 0
    want = _cfa_reference(epochs, lambda2=lambda_beta or 0.0, begin=begin)
    for (scale, betas), (want_scale, want_betas) in zip(got, want, strict=True):
        assert_close(scale, torch.tensor(want_scale, dtype=torch.float64))
        assert_close(betas, torch.tensor(want_betas if lambda_beta is not None else [6.0] * C, dtype=torch.float64))
    assert ctrl.epochs_stepped == 4
    assert ctrl.updates == 4 - max(begin - 1, 0)


def test_per_sample_radii_and_steps():
    ctrl = CalibratedEpsilon(C)
    ctrl.scale.copy_(torch.tensor([0.5, 1.0, 1.25, 0.0], dtype=torch.float64))
    target = torch.tensor([2, 0, 3, 2])
    radii, step = ctrl(target, 0.1, 0.02)
    assert_close(radii, torch.tensor([0.125, 0.05, 0.0, 0.125], dtype=torch.float64))
    assert step == 0.02  # CFA: the common step
    ctrl.scale_step = True  # FRL's rule: step_size times the largest scale in the batch
    assert_close(ctrl(target, 0.1, 0.02)[1], torch.full((4,), 0.025, dtype=torch.float64))
    union = torch.tensor([True, True, False, True])  # the classes of all ranks' batches: class 2 is not there
    assert_close(ctrl(target, 0.1, 0.02, present=union)[1], torch.full((4,), 0.02, dtype=torch.float64))
    assert_close(ctrl.radii(0.1), torch.tensor([0.05, 0.1, 0.125, 0.0], dtype=torch.float64))


def test_the_attack_with_class_radii_equals_a_loop_with_each_samples_own_radius():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(12, 16), nn.Tanh(), nn.Linear(16, C)).double()
    ctrl = CalibratedEpsilon(C)
    ctrl.scale.copy_(torch.tensor([0.3, 1.0, 1.3, 0.8], dtype=torch.float64))
    g = torch.Generator().manual_seed(1)
    x = torch.rand(8, 3, 2, 2, generator=g, dtype=torch.float64)
    x[0] = 0.0  # at the bounds
    y = torch.tensor([0, 1, 2, 3, 2, 1, 0, 3])
    radii, step = ctrl(y, 8 / 255, 2 / 255)
    batched = pgd(model, x, y, objective="ce", eps=radii, step_size=step, steps=5, random_start=None)
    for i in range(8):
        one = slice(i, i + 1)
        want = pgd(
            model, x[one], y[one], objective="ce", eps=float(radii[i]), step_size=step, steps=5, random_start=None
        )
        assert torch.equal(batched[one], want), i
        assert (batched[i] - x[i]).abs().max() <= (8 / 255) * float(ctrl.scale[y[i]]) + 1e-12
    assert batched.min() >= 0
    assert batched.max() <= 1
    assert (batched[2] - x[2]).abs().max() > 8 / 255  # class 2's radius is larger than the common one


def test_state_dict_round_trip_mid_epoch_and_rejected_loads():
    ctrl = CalibratedEpsilon(C, begin_epoch=1)
    logits, target, *_ = _epoch_batches(0)
    ctrl.update(logits, target)
    ctrl.step()
    ctrl.update(logits[:5], target[:5])  # a partial epoch
    state = copy.deepcopy(ctrl.state_dict())
    fresh = CalibratedEpsilon(C, begin_epoch=1)
    fresh.load_state_dict(state)
    assert (fresh.epochs_stepped, fresh.updates) == (1, 1)
    for name in ("scale", "class_beta", "accumulator"):
        assert torch.equal(getattr(fresh, name), getattr(ctrl, name)), name
    assert torch.equal(fresh.step(), ctrl.step())
    untouched = CalibratedEpsilon(C)
    bad = [
        (
            dict(state, scale=torch.tensor([1.0, -0.1, 1.0, 1.0])),
            r"loaded `scale` in \[0.3, 1.3\]",
        ),
        (
            dict(state, class_beta=torch.tensor([1.0, float("nan"), 1.0, 1.0])),
            "loaded `class_beta` to be finite",
        ),
        (dict(state, scale=torch.ones(3)), r"loaded `scale` of shape \(4,\)"),
        (dict(state, _extra_state={"epochs_stepped": 1}), r"keys \['epochs_stepped', 'updates'\]"),
    ]
    for corrupt, match in bad:
        with pytest.raises(ValueError, match=match):
            untouched.load_state_dict(corrupt)
        assert torch.equal(untouched.scale, torch.ones(C, dtype=torch.float64))
        assert untouched.accumulator.sum() == 0


def test_dtypes_under_casts_and_errors():
    ctrl = CalibratedEpsilon(C).half()
    assert ctrl.scale.dtype == ctrl.class_beta.dtype == ctrl.accumulator.dtype == torch.float64
    with pytest.raises(ValueError, match="`lambda_eps` >= 0"):
        CalibratedEpsilon(C, lambda_eps=-0.1)
    with pytest.raises(ValueError, match="`begin_epoch` to be an int >= 0"):
        CalibratedEpsilon(C, begin_epoch=-1)
    with pytest.raises(ValueError, match=r"`target` values in \[0, 4\)"):
        CalibratedEpsilon(C)(torch.tensor([0, 4]), 0.1, 0.01)
    nonfinite = CalibratedEpsilon(C)
    nonfinite._accumulate(torch.tensor([float("inf")]), torch.tensor([1]))  # unchecked, as a training step
    with pytest.raises(ValueError, match="finite accumulated statistics"):
        nonfinite.step()
    assert torch.equal(nonfinite.scale, torch.ones(C, dtype=torch.float64))
