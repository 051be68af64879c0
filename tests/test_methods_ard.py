from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from _baselines import assert_same_steps, hand_pgd, train_epoch, uniform_start
from _models import tiny_batch, tiny_cnn
from torch.testing import assert_close

from torch_absld import methods, pgd
from torch_absld.losses.ard import ARDLoss
from torch_absld.methods.ard import ARD_ATTACK, ARDOutput, ARDStep

C = 5


def test_defaults_are_the_authors():
    distiller = ARDStep(tiny_cnn(C, 1), tiny_cnn(C, 2), C)
    assert (distiller.loss_fn.temperature, distiller.loss_fn.alpha) == (30.0, 1.0)
    assert distiller.attack.config == ARD_ATTACK
    assert (ARD_ATTACK.eps, ARD_ATTACK.step_size, ARD_ATTACK.steps, ARD_ATTACK.random_start) == (
        8 / 255,
        2 / 255,
        10,
        "uniform",
    )


def test_step_equals_the_hand_written_step():
    student, teacher = tiny_cnn(C, seed=1), tiny_cnn(C, seed=2)
    reference, ref_teacher = copy.deepcopy(student), copy.deepcopy(teacher).eval()
    batches = [tiny_batch(8, C, seed=s) for s in range(2)]
    options = {"temperature": 4.0, "alpha": 0.7}
    step = ARDStep(student, teacher, C, steps=3, generator=torch.Generator().manual_seed(0), **options).train()
    torch.manual_seed(5)
    got = train_epoch(step, torch.optim.SGD(student.parameters(), lr=0.1), batches)

    optimizer, generator = torch.optim.SGD(reference.parameters(), lr=0.1), torch.Generator().manual_seed(0)
    loss_fn = ARDLoss(**options)

    def loss_of_batch(x, y):
        with torch.no_grad():
            t = ref_teacher(x)
        x_adv = pgd(reference, x, y, config=ARD_ATTACK.replace(steps=3), objective="ce", generator=generator)
        return loss_fn(reference(x_adv), reference(x), t, y)

    torch.manual_seed(5)
    assert_same_steps(got, reference, optimizer, batches, loss_of_batch)


def test_attack_is_on_the_students_own_cross_entropy_and_the_teacher_sees_the_clean_batch():
    student, teacher = tiny_cnn(C, seed=2), tiny_cnn(C, seed=3)
    before = copy.deepcopy(student).eval()
    x, y = tiny_batch(8, C)
    distiller = ARDStep(student, teacher, C, steps=4, alpha=0.5, generator=torch.Generator().manual_seed(1))
    out = distiller.train()(x, y)
    assert isinstance(out, ARDOutput)
    start = uniform_start(x, 8 / 255, seed=1)
    want = hand_pgd(before, x, start, lambda z: F.cross_entropy(z, y, reduction="sum"), 4, 8 / 255, 2 / 255)
    assert torch.equal(out.x_adv, want)
    assert_close(out.teacher_logits, teacher(x))
    assert_close(out.loss, 0.5 * out.adv_kl + 0.5 * out.clean_ce)
    assert all(p.grad is None for p in teacher.parameters())


@pytest.mark.parametrize("name", ["ard", "adaad", "fair-ard"])
def test_create_needs_a_teacher(name):
    with pytest.raises(ValueError, match=f"Expected a `teacher` for the method '{name}'"):
        methods.create(name, tiny_cnn(C), num_classes=C)
    with pytest.raises(TypeError, match=r"`teacher` to be an nn\.Module, but got NoneType"):
        ARDStep(tiny_cnn(C), None, C)  # type: ignore[arg-type]
