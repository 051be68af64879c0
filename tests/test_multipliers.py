from __future__ import annotations

import copy
import math

import pytest
import torch
from torch.testing import assert_close

from torch_absld.multipliers import FRLMultipliers, frl_class_weights

C = 10  # the official code hard-codes ten classes; the reference below follows its loops


def _normalize(lam, lim):
    lam = [max(v, 0.0) for v in lam]
    total = sum(lam)
    return [lim * v / total for v in lam] if total > lim else lam


def _frl_reference(epochs, tau=0.05, rate1=0.05, rate2=0.2, lim=0.5, halve_every=40):
    """``frlrmrw.py`` + ``utils_frl2.py`` in plain Python: per update (``now_epoch`` from 1) halve rate1 when
    ``now_epoch % halve_every == 0``, take the validation errors (``evaluate``), update the multipliers
    (``frl_train``) and turn them into weights and radius scales (``cost_sensitive``)."""
    lam0, lam1, lam2 = [0.0] * C, [0.0] * C, [0.0] * C
    out = []
    for now_epoch, (clean_correct, robust_correct, counts) in enumerate(epochs, start=1):
        if now_epoch % halve_every == 0:
            rate1 = rate1 / 2
        acc = [clean_correct[k] / counts[k] for k in range(C)]
        acc_adv = [robust_correct[k] / counts[k] for k in range(C)]
        total = sum(counts)
        total_clean_error = 1 - sum(clean_correct) / total
        total_bndy_error = sum(clean_correct) / total - sum(robust_correct) / total
        gamma0 = [(1 - acc[k]) - total_clean_error - tau for k in range(C)]
        gamma1 = [(acc[k] - acc_adv[k]) - total_bndy_error - tau for k in range(C)]
        lam0 = _normalize([lam0[k] + rate1 * max(gamma0[k], -1000) for k in range(C)], lim)
        lam1 = _normalize([lam1[k] + rate1 * 2 * max(gamma1[k], -1000) for k in range(C)], lim)
        lam2 = [lam2[k] + rate2 * gamma1[k] for k in range(C)]
        diff0 = [1 / 10 + 9 / 10 * lam0[i] - sum(1 / 10 * lam0[j] for j in range(C) if j != i) for i in range(C)]
        diff1 = [1 / 10 + 9 / 10 * lam1[i] - sum(1 / 10 * lam1[j] for j in range(C) if j != i) for i in range(C)]
        diff2 = [min(max(math.exp(2 * v), 0.98), 3.0) for v in lam2]
        out.append((diff0, diff1, diff2))
    return out


def _validation_epoch(seed: int, n: int = 60):
    """Clean and adversarial logits of a validation split with every class, and the per-class counts."""
    g = torch.Generator().manual_seed(seed)
    target = torch.cat([torch.arange(C), torch.randint(0, C, (n - C,), generator=g)])
    # Class-dependent accuracy, so that some constraints are violated and others not.
    one_hot = torch.nn.functional.one_hot(target, C).float()
    clean = torch.randn(n, C, generator=g) + 3.0 * one_hot * (target % 3 != 0).float().unsqueeze(1)
    robust = clean - 2.5 * one_hot * (target < 4).float().unsqueeze(1) + 0.3 * torch.randn(n, C, generator=g)
    counts = [int((target == k).sum()) for k in range(C)]
    correct = [[int(((z.argmax(1) == target) & (target == k)).sum()) for k in range(C)] for z in (clean, robust)]
    return clean, robust, target, (correct[0], correct[1], counts)


def test_updates_follow_the_official_code_over_several_epochs():
    ctrl = FRLMultipliers(C, halve_every=3, limit=0.2)
    stats, got = [], []
    for seed in range(7):
        clean, robust, target, counts = _validation_epoch(seed)
        ctrl.record(clean[:25], robust[:25], target[:25])
        ctrl.record(clean[25:], robust[25:], target[25:])
        stats.append(counts)
        scale = ctrl.step().clone()
        got.append((ctrl.natural_weights.clone(), ctrl.boundary_weights.clone(), scale))
    want = _frl_reference(stats, halve_every=3, lim=0.2)
    for epoch, (mine, theirs) in enumerate(zip(got, want, strict=True)):
        for a, b in zip(mine, theirs, strict=True):
            assert_close(a, torch.tensor(b, dtype=torch.float64), rtol=1e-12, atol=1e-12, msg=f"epoch {epoch}")
    lam = ctrl.multipliers
    assert abs(float(lam[1].sum()) - 0.2) < 1e-12  # the projection onto sum <= lim acted
    assert (ctrl.scale == 0.98).any()
    assert (ctrl.scale > 1.0).any()
    assert float(ctrl.natural_weights.sum()) == pytest.approx(1.0)
    assert (ctrl.natural_weights > 0).all()


def test_class_weights_are_the_code_formula_for_any_number_of_classes():
    lam = torch.tensor([0.1, 0.0, 0.25, 0.05, 0.0], dtype=torch.float64)
    want = [1 / 5 + 4 / 5 * lam[i] - sum(1 / 5 * lam[j] for j in range(5) if j != i) for i in range(5)]
    assert_close(frl_class_weights(lam), torch.tensor(want, dtype=torch.float64))


def test_begin_epoch_and_the_missing_class_error():
    ctrl = FRLMultipliers(C, begin_epoch=2)
    assert not ctrl.calibrating
    assert torch.equal(ctrl.step(), torch.ones(C, dtype=torch.float64))  # nothing measured, nothing changed
    assert ctrl.calibrating
    clean, robust, target, _ = _validation_epoch(0)
    keep = target != 7
    ctrl.record(clean[keep], robust[keep], target[keep])
    with pytest.raises(ValueError, match=r"classes \[7\] have no sample"):
        ctrl.step()
    assert torch.equal(ctrl.multipliers, torch.zeros(3, C, dtype=torch.float64))
    assert ctrl.sample_counts.sum() == int(keep.sum())  # the sums are kept too
    assert ctrl.updates == 0


def test_state_dict_round_trip_and_rejected_loads():
    ctrl = FRLMultipliers(C)
    clean, robust, target, _ = _validation_epoch(1)
    ctrl.record(clean, robust, target)
    ctrl.step()
    ctrl.record(clean[:20], robust[:20], target[:20])  # a partial pass
    state = copy.deepcopy(ctrl.state_dict())
    fresh = FRLMultipliers(C)
    fresh.load_state_dict(state)
    for name in ("multipliers", "natural_weights", "boundary_weights", "scale", "accumulator"):
        assert torch.equal(getattr(fresh, name), getattr(ctrl, name)), name
    fresh.record(clean[20:], robust[20:], target[20:])
    ctrl.record(clean[20:], robust[20:], target[20:])
    assert torch.equal(fresh.step(), ctrl.step())
    untouched = FRLMultipliers(C)
    with pytest.raises(ValueError, match=r"loaded `multipliers\[0\]` to be finite"):
        untouched.load_state_dict(dict(state, multipliers=torch.full((3, C), float("inf"))))
    assert torch.equal(untouched.multipliers, torch.zeros(3, C, dtype=torch.float64))
    with pytest.raises(ValueError, match="`limit` in"):
        FRLMultipliers(C, limit=1.5)
    with pytest.raises(ValueError, match="`threshold` to be a number or a pair"):
        FRLMultipliers(C, threshold=(0.1, 0.1, 0.1))  # type: ignore[arg-type]
