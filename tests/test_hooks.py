from __future__ import annotations

import pytest
import torch
from _models import tiny_cnn
from torch import nn
from torch.testing import assert_close

from torch_absld import ABSLDLoss, ABSLDStep, ClassTemperatureController, follow_optimizer_lr
from torch_absld.integrations.hooks import LRFollowHandle


def test_beta_follows_multistep_lr():
    model = torch.nn.Linear(2, 2)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones=[2, 4], gamma=0.1)
    loss_fn = ABSLDLoss(2, lr=0.1, max_temperature=100.0, min_temperature=0.001)
    follow_optimizer_lr(loss_fn, optimizer)
    betas, moves = [], []
    for _ in range(6):
        optimizer.step()
        loss_fn.adv.accumulate(torch.tensor([1.0, 3.0]), torch.tensor([0, 1]))
        before = loss_fn.adv.temperatures.clone()
        loss_fn.step()
        betas.append(loss_fn.adv.lr)
        moves.append((loss_fn.adv.temperatures - before)[0].item())
        scheduler.step()
    assert_close(betas, [0.1, 0.1, 0.01, 0.01, 0.001, 0.001])
    assert_close(moves, [0.1, 0.1, 0.01, 0.01, 0.001, 0.001], rtol=1e-4, atol=1e-6)


def test_beta_follow_survives_resume_from_a_decayed_optimizer():
    model = torch.nn.Linear(2, 2)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones=[1], gamma=0.1)
    optimizer.step()
    scheduler.step()
    saved = optimizer.state_dict()
    optimizer2 = torch.optim.SGD(model.parameters(), lr=0.1)
    optimizer2.load_state_dict(saved)  # lr is now 0.01, initial_lr 0.1
    ctrl = ClassTemperatureController(2, lr=0.5)
    follow_optimizer_lr(ctrl, optimizer2)
    ctrl.accumulate(torch.tensor([1.0, 3.0]), torch.tensor([0, 1]))
    ctrl.step()
    assert ctrl.lr == pytest.approx(0.05)


def _decayed_optimizer(params) -> torch.optim.Optimizer:
    optimizer = torch.optim.SGD(params, lr=0.1)
    scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones=[1], gamma=0.1)
    optimizer.step()
    scheduler.step()  # lr 0.01 of an initial 0.1
    return optimizer


def test_any_module_attaches_every_controller_inside_it():
    distiller = ABSLDStep(tiny_cnn(3, seed=1), tiny_cnn(3, seed=2), 3, lr=0.4)
    handle = follow_optimizer_lr(distiller, _decayed_optimizer(distiller.student.parameters()))
    assert isinstance(handle, LRFollowHandle)
    assert handle.controllers == [distiller.loss_fn.adv, distiller.loss_fn.clean]
    distiller.on_epoch_end()
    assert distiller.loss_fn.adv.lr == pytest.approx(0.04)
    assert distiller.loss_fn.clean.lr == pytest.approx(0.04)
    # A user's module holding a loss somewhere inside.
    holder = nn.ModuleDict({"net": nn.Linear(2, 2), "parts": nn.ModuleList([ABSLDLoss(2, lr=0.2)])})
    handle = follow_optimizer_lr(holder, _decayed_optimizer(holder.parameters()))
    assert len(handle.controllers) == 2
    holder["parts"][0].step()
    assert holder["parts"][0].adv.lr == pytest.approx(0.02)
    handle.remove()
    holder["parts"][0].adv.lr = 0.3
    holder["parts"][0].step()
    assert holder["parts"][0].adv.lr == 0.3


def test_controllers_alone_or_listed():
    controllers = [ClassTemperatureController(2, lr=0.5), ClassTemperatureController(2, lr=0.1)]
    follow_optimizer_lr(controllers, _decayed_optimizer(nn.Linear(1, 1).parameters()))
    for ctrl, want in zip(controllers, [0.05, 0.01], strict=True):
        ctrl.step()
        assert_close(ctrl.lr, want)


@pytest.mark.parametrize(
    ("target", "error", "match"),
    [
        (nn.Linear(2, 2), ValueError, "`target` to hold at least one ClassTemperatureController, but the Linear"),
        (None, TypeError, "`target` to be an nn.Module holding ClassTemperatureControllers"),
        ("loss", TypeError, "`target` to be an nn.Module holding ClassTemperatureControllers"),
        ([nn.Linear(2, 2)], TypeError, "an item of type Linear"),
    ],
)
def test_bad_target(target, error, match):
    with pytest.raises(error, match=match):
        follow_optimizer_lr(target, torch.optim.SGD(nn.Linear(1, 1).parameters(), lr=0.1))
