from __future__ import annotations

import copy

import torch
from _baselines import assert_same_steps, train_epoch
from _models import tiny_batch, tiny_cnn
from torch.testing import assert_close

from torch_absld import PGDConfig, methods, pgd
from torch_absld.attack import EarlyStopping, LogitsAndInput
from torch_absld.losses.bat import bat_loss
from torch_absld.methods.bat import BAT_ATTACK, BATOutput, BATStep

C = 5


def test_defaults_are_the_authors():
    step = BATStep(tiny_cnn(C), C)
    assert step.attack.config == PGDConfig(eps=0.031, step_size=0.007, steps=10, random_start="normal", init_std=1e-3)
    assert (step.loss_fn.beta, step.loss_fn.uniform_weight) == (6.0, 1.0)
    assert [(s.stop_at, s.patience) for s in step.stoppers] == [("last_clean", 1), ("first_adversarial", 1)]


def test_step_equals_the_hand_written_step():
    student = tiny_cnn(C, seed=1)
    reference = copy.deepcopy(student)
    batches = [tiny_batch(8, C, seed=s) for s in range(2)]
    options = {"steps": 4, "eps": 32 / 255, "step_size": 8 / 255}
    step = BATStep(student, C, beta=3.0, generator=torch.Generator().manual_seed(0), **options).train()
    torch.manual_seed(5)  # dropout
    got = train_epoch(step, torch.optim.SGD(student.parameters(), lr=0.1), batches)

    optimizer, generator = torch.optim.SGD(reference.parameters(), lr=0.1), torch.Generator().manual_seed(0)
    config = BAT_ATTACK.replace(**options)

    def loss_of_batch(x, y):
        with torch.no_grad():
            p = torch.softmax(reference.eval()(x), dim=1)
        reference.train()
        points = []
        for stopper in (EarlyStopping("last_clean"), EarlyStopping("first_adversarial", patience=1)):
            stopper.reset(y, x)
            final = pgd(LogitsAndInput(reference), x, p, config=config, objective=stopper, generator=generator)
            points.append(stopper.emitted(final))
        last_clean, first_adv = reference(points[0]), reference(points[1])
        clean = reference(x)
        return bat_loss(
            student_clean=clean, student_first_adv=first_adv, student_last_clean=last_clean, target=y, beta=3.0
        )

    torch.manual_seed(5)
    assert_same_steps(got, reference, optimizer, batches, loss_of_batch)


def test_the_points_are_near_the_boundary():
    student = tiny_cnn(C, seed=2)
    x, y = tiny_batch(16, C, seed=3)
    with torch.no_grad():
        y = student.eval()(x).argmax(1)  # correct at the start: each sample turns somewhere on the way
    step = BATStep(student, C, steps=10, eps=64 / 255, step_size=8 / 255, generator=torch.Generator().manual_seed(1))
    out = step.eval()(x, y)
    assert isinstance(out, BATOutput)
    with torch.no_grad():
        last_clean_correct = student(out.x_last_clean).argmax(1) == y
        first_adv_wrong = student(out.x_adv).argmax(1) != y
    assert last_clean_correct.all()  # the last iterate still classified correctly
    moved = (out.x_adv - x).flatten(1).abs().amax(1)
    assert (first_adv_wrong | (moved >= 64 / 255 - 1e-6)).all()  # misclassified, or never turned
    assert first_adv_wrong.sum() >= 4
    assert (out.x_last_clean - x).abs().max() > 0
    assert_close(out.loss, out.natural_ce + 6.0 * out.robust_kl + out.uniform_kl)


def test_create_ignores_a_teacher():
    step = methods.create("bat", tiny_cnn(C), num_classes=C, teacher=tiny_cnn(C, 2), patience=2, steps=2)
    assert isinstance(step, BATStep)
    assert step.teacher is None
    assert step.stoppers[1].patience == 2
