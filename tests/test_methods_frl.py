from __future__ import annotations

import copy

import pytest
import torch
from _baselines import assert_same_steps, train_epoch
from _fair import C, FRLReference, class_accuracies, tensor64, validation_split
from _models import tiny_batch, tiny_cnn
from torch.testing import assert_close

from torch_absld import PGDConfig, methods, pgd
from torch_absld.losses.frl import frl_loss
from torch_absld.methods.frl import FRL_ATTACK, FRLOutput, FRLStep

EPS, STEP = 16 / 255, 4 / 255


def test_defaults_are_the_authors():
    step = FRLStep(tiny_cnn(C), C)
    assert step.attack.config == PGDConfig(
        eps=8 / 255, step_size=2 / 255, steps=10, random_start="normal", init_std=1e-3
    )
    assert (step.loss_fn.beta, step.multipliers.threshold, step.multipliers.rate) == (1.5, (0.05, 0.05), 0.05)
    assert (step.multipliers.eps_rate, step.multipliers.limit, step.multipliers.halve_every) == (0.2, 0.5, 40)
    assert step.multipliers.scale_step
    assert step.validation_config == PGDConfig(eps=8 / 255, step_size=2 / 255, steps=20, random_start="uniform")


def test_two_epochs_equal_the_hand_written_loop():
    student = tiny_cnn(C, seed=1)
    reference = copy.deepcopy(student)
    batches = [tiny_batch(8, C, seed=s) for s in range(3)]
    validation = validation_split()
    options = {"steps": 3, "eps": EPS, "step_size": STEP, "validation_steps": 4, "validation": validation}
    step = FRLStep(
        student, C, eps_rate=1.0, threshold=0.0, generator=torch.Generator().manual_seed(0), **options
    ).train()
    optimizer = torch.optim.SGD(student.parameters(), lr=0.1)
    got = []
    torch.manual_seed(5)  # dropout
    for _ in range(2):
        got.append(train_epoch(step, optimizer, batches))
        step.on_epoch_end()
        got[-1] += (step.multipliers.natural_weights.clone(), step.multipliers.boundary_weights.clone())
        got[-1] += (step.multipliers.scale.clone(),)

    rule = FRLReference(tau=0.0, eps_rate=1.0)
    optimizer, generator = torch.optim.SGD(reference.parameters(), lr=0.1), torch.Generator().manual_seed(0)
    config = FRL_ATTACK.replace(steps=3, eps=EPS, step_size=STEP)

    def loss_of_batch(x, y):
        scale = tensor64(rule.scale())[y]
        with torch.no_grad():
            p = torch.softmax(reference.eval()(x), dim=1)
        reference.train()
        steps = (STEP * scale.max()).expand(len(y))  # the batch's largest radius over 4
        x_adv = pgd(
            reference, x, p, config=config, objective="kl", eps=EPS * scale, step_size=steps, generator=generator
        )
        clean = reference(x)
        weights = {"natural_weights": tensor64(rule.weights(0)), "boundary_weights": tensor64(rule.weights(1))}
        return frl_loss(student_adv=reference(x_adv), student_clean=clean, target=y, **weights)

    torch.manual_seed(5)
    for epoch in range(2):
        assert_same_steps(got[epoch][:2], reference, optimizer, batches, loss_of_batch)
        rule.update(*class_accuracies(reference, validation, eps=EPS, step_size=STEP, steps=4))
        for value, want in zip(got[epoch][2:], (rule.weights(0), rule.weights(1), rule.scale()), strict=True):
            assert_close(value, tensor64(want), rtol=1e-12, atol=1e-12)
    assert not torch.equal(got[1][4], torch.ones(C, dtype=torch.float64))  # the radii moved


def test_output_radii_and_the_batch_step():
    step = FRLStep(tiny_cnn(C, seed=2), C, steps=2, generator=torch.Generator().manual_seed(1))
    step.multipliers.scale.copy_(tensor64([1.0, 2.0, 0.98, 3.0, 1.0]))
    x, y = tiny_batch(8, C)
    y[:3] = torch.tensor([0, 1, 2])
    y[3:] = 0
    out = step.train()(x, y)
    assert isinstance(out, FRLOutput)
    assert_close(out.radii, (8 / 255) * step.multipliers.scale[y])
    assert ((out.x_adv - x).abs().flatten(1).amax(1) <= out.radii.float() + 1e-6).all()
    assert (out.x_adv - x).abs().flatten(1).amax(1)[1] > 8 / 255  # class 1 is attacked with twice the radius
    assert_close(out.loss, out.natural_ce + 1.5 * out.boundary_kl)


def test_validation_is_needed_only_when_the_rule_runs():
    step = FRLStep(tiny_cnn(C), C, steps=1, begin_epoch=2)
    assert torch.equal(step.on_epoch_end(), torch.ones(C, dtype=torch.float64))  # epoch 0: the hot start
    with pytest.raises(RuntimeError, match="FRLStep measures the student on a validation split"):
        step.on_epoch_end()
    assert step.multipliers.epochs_stepped == 1
    step.on_epoch_end(validation_split())
    assert step.multipliers.updates == 1
    with pytest.raises(TypeError, match="`validation` to be an iterable of"):
        FRLStep(tiny_cnn(C), C, validation=3)  # type: ignore[arg-type]


def test_create_ignores_a_teacher_and_routes_the_options():
    step = methods.create("frl", tiny_cnn(C), num_classes=C, teacher=tiny_cnn(C, 2), threshold=0.07, beta=1.0, steps=2)
    assert isinstance(step, FRLStep)
    assert step.teacher is None
    assert (step.multipliers.threshold, step.loss_fn.beta, step.attack.steps) == ((0.07, 0.07), 1.0, 2)
