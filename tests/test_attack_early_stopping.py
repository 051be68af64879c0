from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from torch_absld import pgd
from torch_absld.attack import EarlyStopping, LogitsAndInput

EPS, STEP, STEPS = 0.3, 0.06, 6


def _model() -> nn.Module:
    torch.manual_seed(3)  # no BatchNorm; float64 so that a sample's gradient does not depend on its batch
    return nn.Sequential(nn.Flatten(), nn.Linear(12, 16), nn.Tanh(), nn.Linear(16, 4)).double().eval()


def _data():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(16, 3, 2, 2, generator=g, dtype=torch.float64)
    model = _model()
    with torch.no_grad():
        predicted = model(x).argmax(1)
    y = torch.where(torch.arange(16) % 5 == 0, (predicted + 1) % 4, predicted)  # some wrong from the start
    return model, x, y


def _official_loop(model, x, y, start, stop_at, tau=1):
    """BAT's ``stop_to_lastclean`` / ``stop_to_firstadv`` written as the official code is: the batch shrinks
    to the samples still iterating; emitted samples are collected with their index. Returns the points in
    the original order and each sample's number of steps."""
    with torch.no_grad():
        p = F.softmax(model(x), dim=1)
    index = torch.arange(len(y))
    iter_adv, tmp_adv, control = start.clone(), start.clone(), torch.full((len(y),), tau)
    out, steps = {}, {}
    for k in range(STEPS):
        iter_adv.requires_grad_(True)
        output = model(iter_adv)
        wrong = output.argmax(1) != y[index]
        if stop_at == "last_clean":
            emit, keep = wrong, ~wrong
            emitted = tmp_adv
        else:
            emit = wrong & (control == 0)
            control = control - (wrong & (control > 0)).long()
            keep, emitted = ~emit, iter_adv
        for i in torch.nonzero(emit).flatten().tolist():
            out[int(index[i])], steps[int(index[i])] = emitted[i].detach().clone(), k
        loss = F.kl_div(F.log_softmax(output, dim=1), p[index], reduction="sum")
        (grad,) = torch.autograd.grad(loss, iter_adv)
        if not keep.any():
            break
        index, iter_adv, control, grad = index[keep], iter_adv[keep].detach(), control[keep], grad[keep]
        tmp_adv = iter_adv
        x_i = x[index]
        iter_adv = torch.min(torch.max(iter_adv + STEP * grad.sign(), x_i - EPS), x_i + EPS).clamp(0, 1)
    else:
        for j, i in enumerate(index.tolist()):
            out[i], steps[i] = iter_adv[j].detach(), STEPS
    return torch.stack([out[i] for i in range(len(y))]), steps


@pytest.mark.parametrize("stop_at", ["last_clean", "first_adversarial"])
def test_points_equal_the_official_loops(stop_at):
    model, x, y = _data()
    stopper = EarlyStopping(stop_at, patience=1)
    stopper.reset(y, x)
    with torch.no_grad():
        p = torch.softmax(model(x), dim=1)
    final = pgd(LogitsAndInput(model), x, p, objective=stopper, eps=EPS, step_size=STEP, steps=STEPS, seed=5)
    got = stopper.emitted(final)
    noise = 1e-3 * torch.randn(x.shape, generator=torch.Generator().manual_seed(5))
    start = torch.min(torch.max(x + noise.double(), x - EPS), x + EPS).clamp(0, 1)
    want, steps = _official_loop(model, x, y, start, stop_at)
    torch.testing.assert_close(got, want, rtol=0, atol=1e-12)
    kinds = set(steps.values())
    assert STEPS in kinds
    assert len(kinds) >= 3
    assert min(kinds) == (0 if stop_at == "last_clean" else 1)  # wrong at the start: one more step (patience)
    assert ((got - x).abs().amax(dim=(1, 2, 3)) <= EPS + 1e-12).all()
    wrong = (model(got).argmax(1) != y).tolist()
    if stop_at == "last_clean":  # a sample that stopped after the start is still classified correctly
        assert not any(w for i, w in enumerate(wrong) if 0 < steps[i] < STEPS)
    else:  # and a first-adversarial point that stopped is misclassified
        assert all(w for i, w in enumerate(wrong) if steps[i] < STEPS)


def test_reset_is_needed_and_errors():
    model, x, y = _data()
    stopper = EarlyStopping("last_clean")
    stopper.reset(y[:3], x[:3])
    with pytest.raises(RuntimeError, match=r"Call `reset\(labels, input\)` before each attack"):
        pgd(LogitsAndInput(model), x, torch.softmax(model(x), 1).detach(), objective=stopper, steps=1)
    with pytest.raises(ValueError, match="`stop_at` to be one of"):
        EarlyStopping("first")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="`patience` to be an int >= 0"):
        EarlyStopping("first_adversarial", patience=-1)
