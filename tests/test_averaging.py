from __future__ import annotations

import copy

import pytest
import torch
from _models import tiny_batch, tiny_cnn
from torch.testing import assert_close

from torch_absld.averaging import FairnessAwareAveraging

C = 4
DECAY = 0.8
# Per epoch: the validation robust accuracy of each class, as (correct, count) pairs.
GATES = [
    [(3, 4), (2, 4), (4, 4), (3, 4)],  # worst 0.5: passes, but before start_epoch
    [(3, 4), (1, 4), (4, 4), (3, 4)],  # worst 0.25: refused
    [(4, 4), (2, 4), (3, 4), (2, 4)],  # worst 0.5: the first accepted epoch (a copy)
    [(4, 4), (3, 4), (3, 4), (4, 4)],  # accepted
    [(0, 4), (4, 4), (4, 4), (4, 4)],  # refused
    [(2, 4), (2, 4), (2, 4), (2, 4)],  # accepted
]
ACCEPTED = [False, False, True, True, False, True]


def _logits_for(gate):
    """Clean and robust logits with class k robustly correct on exactly ``correct`` of its ``count`` samples."""
    target = torch.cat([torch.full((count,), k) for k, (_, count) in enumerate(gate)])
    wrong = torch.cat([torch.arange(count) >= correct for correct, count in gate])
    robust = torch.nn.functional.one_hot(torch.where(wrong, (target + 1) % C, target), C).float()
    return torch.nn.functional.one_hot(target, C).float(), robust, target


def _train_a_little(model, epoch):
    """Move the weights and the batch-norm statistics, as an epoch of training would."""
    with torch.no_grad():
        for param in model.parameters():
            param.add_(0.1 * torch.randn(param.shape, generator=torch.Generator().manual_seed(epoch)))
    model.train()(tiny_batch(8, seed=epoch)[0])


def _run(fawa, model, epochs):
    decisions = []
    for epoch in epochs:
        _train_a_little(model, epoch)
        clean, robust, target = _logits_for(GATES[epoch])
        fawa.record(clean[:5], robust[:5], target[:5])
        fawa.record(clean[5:], robust[5:], target[5:])
        decisions.append(fawa.step())
    return decisions


def test_the_average_is_the_ema_over_the_accepted_epochs_only():
    model = tiny_cnn(seed=1)
    fawa = FairnessAwareAveraging(model, C, decay=DECAY, threshold=0.5, start_epoch=1)
    initial = copy.deepcopy(fawa.module.state_dict())
    snapshots, decisions = [], []
    for epoch in range(len(GATES)):
        decisions += _run(fawa, model, [epoch])
        snapshots.append({k: v.detach().double().clone() for k, v in model.state_dict().items()})
    assert decisions == ACCEPTED
    assert fawa.accepted == 3
    assert fawa.last_worst == 0.5
    # By hand, in float64: the first accepted epoch is copied, then avg <- d * avg + (1 - d) * theta.
    accepted = [snapshots[e] for e, ok in enumerate(ACCEPTED) if ok]
    want = dict(accepted[0])
    for state in accepted[1:]:
        want = {k: DECAY * want[k] + (1 - DECAY) * state[k] for k in want}
    got = fawa.module.state_dict()
    for key, value in got.items():
        if value.is_floating_point():
            assert_close(value.double(), want[key], rtol=1e-6, atol=1e-6, msg=key)
        else:  # num_batches_tracked: copied from the last accepted epoch
            assert torch.equal(value, accepted[-1][key].long()), key
    assert not torch.equal(got["0.weight"], initial["0.weight"])
    assert not fawa.module.training
    assert not fawa.train().module.training
    assert not any(p.requires_grad for p in fawa.module.parameters())


def test_worst_fraction_gates_on_the_mean_of_the_worst_classes():
    fawa = FairnessAwareAveraging(tiny_cnn(seed=1), C, threshold=0.4, start_epoch=0, worst_fraction=0.5)
    clean, robust, target = _logits_for(GATES[1])  # classes at 0.75, 0.25, 1.0, 0.75: worst two average 0.5
    fawa.record(clean, robust, target)
    assert fawa.step()
    assert fawa.last_worst == 0.5


def test_resume_is_exact():
    model = tiny_cnn(seed=1)
    fawa = FairnessAwareAveraging(model, C, decay=DECAY, threshold=0.5, start_epoch=1)
    _run(fawa, model, range(6))
    want = fawa.state_dict()

    model = tiny_cnn(seed=1)
    fawa = FairnessAwareAveraging(model, C, decay=DECAY, threshold=0.5, start_epoch=1)
    _run(fawa, model, range(4))
    clean, robust, target = _logits_for(GATES[4])
    fawa.record(clean[:3], robust[:3], target[:3])  # part of the next pass
    saved = copy.deepcopy((fawa.state_dict(), model.state_dict()))

    model = tiny_cnn(seed=7)
    model.load_state_dict(saved[1])
    resumed = FairnessAwareAveraging(model, C, decay=DECAY, threshold=0.5, start_epoch=1)
    resumed.load_state_dict(saved[0])
    assert (resumed.epochs_stepped, resumed.accepted) == (4, 2)
    _train_a_little(model, 4)
    resumed.record(clean[3:], robust[3:], target[3:])
    resumed.step()
    _run(resumed, model, [5])
    got = resumed.state_dict()
    assert got.keys() == want.keys()
    for key, value in want.items():
        assert torch.equal(got[key], value) if isinstance(value, torch.Tensor) else got[key] == value, key


def test_rejected_loads_and_missing_classes_change_nothing():
    fawa = FairnessAwareAveraging(tiny_cnn(seed=1), C, start_epoch=0)
    state = copy.deepcopy(fawa.state_dict())
    before = copy.deepcopy(fawa.module.state_dict())
    bad_weights = dict(state, **{"module.0.weight": torch.full_like(state["module.0.weight"], float("nan"))})
    with pytest.raises(ValueError, match=r"averaged weights `module\.0\.weight` to be finite"):
        fawa.load_state_dict(bad_weights)
    with pytest.raises(ValueError, match=r"`_extra_state\['accepted'\]` in \[0, inf\] \(integers\)"):
        fawa.load_state_dict(dict(state, _extra_state={"epochs_stepped": 0, "accepted": -1, "last_worst": 0.0}))
    clean, robust, target = _logits_for(GATES[0])
    keep = target != 2
    fawa.record(clean[keep], robust[keep], target[keep])
    with pytest.raises(ValueError, match=r"classes \[2\] have no sample"):
        fawa.step()
    assert fawa.epochs_stepped == 0
    assert fawa.accepted == 0
    for key, value in fawa.module.state_dict().items():
        assert torch.equal(value, before[key]), key
    with pytest.raises(ValueError, match="`decay` in"):
        FairnessAwareAveraging(tiny_cnn(), C, decay=1.5)
    with pytest.raises(ValueError, match="`worst_fraction` in"):
        FairnessAwareAveraging(tiny_cnn(), C, worst_fraction=0.0)


def test_follows_casts_and_device_moves():
    fawa = FairnessAwareAveraging(tiny_cnn(seed=1), C).double()
    assert fawa.module[0].weight.dtype == torch.float64
    assert fawa.accumulator.dtype == torch.float64
    assert "decay=0.85, threshold=0.2, start_epoch=50" in repr(fawa)
