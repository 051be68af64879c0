from __future__ import annotations

import copy

import pytest
import torch
from _models import tiny_batch, tiny_cnn
from torch import nn

from torch_absld import ABSLDDistiller, PGDConfig, methods
from torch_absld.methods import TrainingStep

C = 5


def test_available_lists_the_methods():
    assert methods.available() == ("absld", "rslad")


@pytest.mark.parametrize("name", ["absld", "rslad"])
def test_every_method_keeps_the_step_contract(name):
    step = methods.create(name, tiny_cnn(C, seed=1), num_classes=C, teacher=tiny_cnn(C, seed=2), steps=1)
    assert isinstance(step, TrainingStep)
    x, y = tiny_batch(8, C)
    out = step.train()(x, y)
    out.loss.backward()
    step.on_epoch_end()
    assert not any(key.startswith("teacher.") for key in step.state_dict())
    fresh = methods.create(name, tiny_cnn(C, seed=3), num_classes=C, teacher=tiny_cnn(C, seed=2), steps=1)
    fresh.load_state_dict(step.state_dict())


def test_create_absld_routes_loss_and_attack_options():
    student, teacher = tiny_cnn(C, seed=1), tiny_cnn(C, seed=2)
    step = methods.create(
        "absld", student, num_classes=C, teacher=teacher, lr=0.3, coupling="product", eps=0.1, steps=2, generator=None
    )
    assert isinstance(step, ABSLDDistiller)
    assert (step.loss_fn.adv.lr, step.loss_fn.coupling) == (0.3, "product")
    assert step.attack.config == PGDConfig(eps=0.1, steps=2)
    # One step of the created module equals the same module built by hand (on copies of the networks).
    by_hand = ABSLDDistiller(
        copy.deepcopy(student), copy.deepcopy(teacher), C, loss={"lr": 0.3, "coupling": "product"}, eps=0.1, steps=2
    )
    x, y = tiny_batch(8, C)
    torch.manual_seed(0)
    got = step(x, y).loss
    torch.manual_seed(0)
    assert torch.equal(got, by_hand(x, y).loss)


def test_rslad_is_absld_with_frozen_temperatures():
    rslad = methods.create("rslad", tiny_cnn(C, seed=1), num_classes=C, teacher=tiny_cnn(C, seed=2), steps=1)
    assert rslad.loss_fn.adapt == "none"
    x, y = tiny_batch(8, C)
    rslad.train()(x, y)
    assert torch.equal(rslad.on_epoch_end()[0], torch.ones(C))


@pytest.mark.parametrize(
    ("name", "kwargs", "match"),
    [
        ("sat2", {"teacher": nn.Linear(2, 2)}, "`name` to be one of 'absld', 'rslad', but got 'sat2'"),
        ("absld", {}, "Expected a `teacher` for the method 'absld'"),
        ("rslad", {}, "Expected a `teacher` for the method 'rslad'"),
        ("rslad", {"teacher": nn.Linear(2, 2), "adapt": "both"}, "`adapt` = 'none' for the method 'rslad'"),
        ("absld", {"teacher": nn.Linear(2, 2), "loss": {}, "lr": 0.1}, r"either `loss` or loss options \['lr'\]"),
    ],
)
def test_create_errors(name, kwargs, match):
    with pytest.raises(ValueError, match=match):
        methods.create(name, nn.Linear(2, 2), num_classes=2, **kwargs)
