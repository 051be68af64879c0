from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from _baselines import assert_same_steps, hand_pgd, train_epoch, uniform_start
from _models import tiny_batch, tiny_cnn
from torch.testing import assert_close

from torch_absld import PGDConfig, methods, pgd
from torch_absld.losses.sat import sat_loss
from torch_absld.methods.sat import SAT_ATTACK, SATOutput, SATStep

C = 5


def test_defaults_are_madrys_attack():
    step = SATStep(tiny_cnn(C), C)
    assert step.attack.config == PGDConfig(eps=8 / 255, step_size=2 / 255, steps=10, random_start="uniform")
    assert step.attack.objective == "ce"
    assert step.teacher is None


def test_step_equals_the_hand_written_step():
    student = tiny_cnn(C, seed=1)
    reference = copy.deepcopy(student)
    batches = [tiny_batch(8, C, seed=s) for s in range(2)]
    step = SATStep(student, C, steps=3, generator=torch.Generator().manual_seed(0)).train()
    torch.manual_seed(5)  # dropout
    got = train_epoch(step, torch.optim.SGD(student.parameters(), lr=0.1), batches)

    optimizer, generator = torch.optim.SGD(reference.parameters(), lr=0.1), torch.Generator().manual_seed(0)

    def loss_of_batch(x, y):
        x_adv = pgd(reference, x, y, config=SAT_ATTACK.replace(steps=3), objective="ce", generator=generator)
        return sat_loss(reference(x_adv), y)

    torch.manual_seed(5)
    assert_same_steps(got, reference, optimizer, batches, loss_of_batch)


def test_attack_ascends_the_students_cross_entropy_from_a_uniform_start():
    student = tiny_cnn(C, seed=2)
    before = copy.deepcopy(student).eval()  # the train-mode forward after the attack moves BatchNorm's statistics
    x, y = tiny_batch(8, C)
    step = SATStep(student, C, steps=4, generator=torch.Generator().manual_seed(3)).train()
    out = step(x, y)
    assert isinstance(out, SATOutput)
    assert student.training  # the attack's eval mode was undone
    start = uniform_start(x, 8 / 255, seed=3)
    want = hand_pgd(before, x, start, lambda z: F.cross_entropy(z, y, reduction="sum"), 4, 8 / 255, 2 / 255)
    assert torch.equal(out.x_adv, want)
    assert_close(out.loss, F.cross_entropy(out.student_adv_logits, y))


def test_create_ignores_a_teacher_and_takes_the_common_options():
    generator = torch.Generator().manual_seed(0)
    step = methods.create(
        "sat", tiny_cnn(C), num_classes=C, teacher=tiny_cnn(C, 2), eps=0.1, step_size=0.02, steps=2, generator=generator
    )
    assert isinstance(step, SATStep)
    assert step.teacher is None
    assert (step.attack.eps, step.attack.step_size, step.attack.steps) == (0.1, 0.02, 2)
    assert step.attack.generator is generator


def test_a_train_mode_step_equals_the_hand_written_train_mode_step():
    """``model_mode="train"`` (Madry's): batch statistics in the attack, running averages moved by every forward."""
    student = tiny_cnn(C, seed=2)
    reference = copy.deepcopy(student).train()
    x, y = tiny_batch(8, C)
    step = SATStep(student, C, steps=4, model_mode="train", generator=torch.Generator().manual_seed(3)).train()
    torch.manual_seed(7)  # dropout
    out = step(x, y)
    torch.manual_seed(7)
    start = uniform_start(x, 8 / 255, seed=3)
    want = hand_pgd(reference, x, start, lambda z: F.cross_entropy(z, y, reduction="sum"), 4, 8 / 255, 2 / 255)
    logits = reference(want)
    assert torch.equal(out.x_adv, want)
    assert torch.equal(out.student_adv_logits, logits)
    assert_close(out.loss, F.cross_entropy(logits, y))
    for (name, got), wanted in zip(student.named_buffers(), reference.buffers(), strict=True):
        assert torch.equal(got, wanted), name
    assert student[1].num_batches_tracked == 5  # 4 attack steps and the training forward
