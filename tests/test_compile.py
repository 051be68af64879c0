"""The per-batch paths compile with fullgraph=True (no graph breaks) and match eager."""

from __future__ import annotations

import torch
from _models import tiny_batch
from torch import nn
from torch.testing import assert_close

from torch_absld import ABSLDLoss, ClassTemperatureController, KLPGDAttack
from torch_absld._internal.compile import trace_input_gradients
from torch_absld.attack.engine import _ascent_step
from torch_absld.attack.projection import projection_bounds

C = 5


def test_loss_forward_backward_fullgraph():
    loss_fn = ABSLDLoss(C)
    loss_fn.adv.temperatures.uniform_(0.5, 4)
    eager_fn = ABSLDLoss(C)
    eager_fn.load_state_dict(loss_fn.state_dict())

    s_adv, s_clean, teacher = torch.randn(3, 8, C).unbind()
    target = torch.randint(0, C, (8,))

    def loss_and_grad(module):
        student = s_adv.clone().requires_grad_(True)
        loss = module(student, s_clean, teacher, target)
        loss.backward()
        return loss.detach(), student.grad

    got = loss_and_grad(torch.compile(loss_fn, fullgraph=True))
    want = loss_and_grad(eager_fn)
    assert_close(got, want)
    # Risk recording ran inside the graph as well.
    assert_close(loss_fn.adv.accumulator, eager_fn.adv.accumulator)


def test_controller_forward_and_update_fullgraph():
    ctrl = ClassTemperatureController(C)
    ctrl.temperatures.copy_(torch.linspace(0.5, 2.5, C))
    reference = ClassTemperatureController(C)
    reference.load_state_dict(ctrl.state_dict())
    logits, target = torch.randn(16, C), torch.randint(0, C, (16,))

    compiled_forward = torch.compile(ctrl.forward, fullgraph=True)
    compiled_update = torch.compile(ctrl.update, fullgraph=True)
    assert_close(compiled_forward(target), reference(target))
    compiled_update(logits, target)
    compiled_update(logits, target)
    reference.update(logits, target)
    reference.update(logits, target)
    assert_close(ctrl.accumulator, reference.accumulator)
    assert_close(ctrl.step(), reference.step())


def test_one_attack_step_fullgraph():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(), nn.Linear(256, C))
    model.eval()
    x, _ = tiny_batch(num_classes=C)
    soft = torch.softmax(torch.randn(8, C), 1)
    args = (*projection_bounds(x, 8 / 255, 0.0, 1.0), soft, "kl", 2 / 255, 1.0, 1.0)
    compiled = torch.compile(_ascent_step, fullgraph=True)
    with trace_input_gradients():
        got = compiled(model, x, *args)
    assert_close(got, _ascent_step(model, x, *args))


def test_compiled_attack_matches_eager():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 64, 16), nn.ReLU(), nn.Linear(16, C))
    x, y = tiny_batch(num_classes=C)
    eager = KLPGDAttack(model, random_start=None, steps=4)(x, y)
    compiled = KLPGDAttack(model, random_start=None, steps=4, compile=True)(x, y)
    assert_close(compiled, eager)
    assert model.training


def test_compiled_attack_with_per_sample_eps_and_a_callable_objective_matches_eager():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 64, 16), nn.ReLU(), nn.Linear(16, C))
    x, y = tiny_batch(num_classes=C)
    eps = torch.linspace(0.01, 0.1, 8)

    def margin(output, target):
        return torch.nn.functional.cross_entropy(output, target, reduction="sum")

    eager = KLPGDAttack(model, random_start="uniform", steps=3, objective=margin)(x, y, eps=eps, seed=0)
    compiled = KLPGDAttack(model, random_start="uniform", steps=3, objective=margin, compile=True)(
        x, y, eps=eps, seed=0
    )
    assert_close(compiled, eager)
