from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from _baselines import assert_same_steps, hand_pgd, normal_start, train_epoch
from _models import tiny_batch, tiny_cnn
from torch.testing import assert_close

from torch_absld import methods, pgd
from torch_absld.losses.adaad import AdaADLoss, adaad_attack_objective
from torch_absld.methods.adaad import ADAAD_ATTACK, AdaADOutput, AdaADStep, StudentAndTeacher

C = 5
EPS, STEP = 8 / 255, 2 / 255


def _kl_teacher_to_student(output):
    student, teacher = output
    return F.kl_div(F.log_softmax(student, dim=1), F.softmax(teacher, dim=1), reduction="sum")


def test_defaults_are_the_authors():
    distiller = AdaADStep(tiny_cnn(C, 1), tiny_cnn(C, 2), C)
    assert distiller.attack.config == ADAAD_ATTACK
    assert (ADAAD_ATTACK.eps, ADAAD_ATTACK.step_size, ADAAD_ATTACK.random_start) == (EPS, STEP, "normal")
    assert (distiller.loss_fn.alpha, distiller.loss_fn.reduction) == (1.0, "mean")


def test_step_equals_the_hand_written_step():
    student, teacher = tiny_cnn(C, seed=1), tiny_cnn(C, seed=2)
    reference, ref_teacher = copy.deepcopy(student), copy.deepcopy(teacher).eval()
    batches = [tiny_batch(8, C, seed=s) for s in range(2)]
    distiller = AdaADStep(student, teacher, C, alpha=0.6, steps=3, generator=torch.Generator().manual_seed(0))
    torch.manual_seed(5)
    got = train_epoch(distiller.train(), torch.optim.SGD(student.parameters(), lr=0.1), batches)

    optimizer, generator = torch.optim.SGD(reference.parameters(), lr=0.1), torch.Generator().manual_seed(0)
    both = StudentAndTeacher(reference, ref_teacher)

    def loss_of_batch(x, y):
        config = ADAAD_ATTACK.replace(steps=3)
        x_adv = pgd(both, x, y, config=config, objective=adaad_attack_objective, generator=generator)
        s_clean, s_adv = reference(x), reference(x_adv)
        with torch.no_grad():
            t_adv, t_clean = ref_teacher(x_adv), ref_teacher(x)
        return AdaADLoss(alpha=0.6)(s_adv, s_clean, t_adv, t_clean)

    torch.manual_seed(5)
    assert_same_steps(got, reference, optimizer, batches, loss_of_batch)


def test_attack_differentiates_through_the_teacher_inside_the_loop():
    """``adaad_inner_loss``: both in eval mode, the summed KL(softmax t(x') || softmax s(x')) as objective."""
    student, teacher = tiny_cnn(C, seed=2), tiny_cnn(C, seed=3)
    before, frozen = copy.deepcopy(student).eval(), copy.deepcopy(teacher).eval()
    for p in teacher.parameters():
        p.grad = torch.full_like(p, 0.5)
    x, y = tiny_batch(8, C)
    distiller = AdaADStep(student, teacher, C, steps=4, generator=torch.Generator().manual_seed(1)).train()
    out = distiller(x, y)
    assert isinstance(out, AdaADOutput)
    assert student.training
    assert not teacher.training
    both = lambda z: (before(z), frozen(z))  # noqa: E731
    start = torch.clamp(normal_start(x, 1e-3, seed=1), 0, 1)
    want = hand_pgd(both, x, start, _kl_teacher_to_student, 4, EPS, STEP)
    assert torch.equal(out.x_adv, want)
    # With the teacher detached (a soft label fixed per step) the attack goes elsewhere.
    detached = lambda z: (before(z), frozen(z).detach())  # noqa: E731
    assert not torch.equal(hand_pgd(detached, x, start, _kl_teacher_to_student, 4, EPS, STEP), want)
    assert_close(out.teacher_adv_logits, teacher(out.x_adv))
    assert_close(out.teacher_clean_logits, teacher(x))
    assert all(torch.equal(p.grad, torch.full_like(p, 0.5)) for p in teacher.parameters())  # untouched


def test_create_takes_the_common_options():
    step = methods.create("adaad", tiny_cnn(C), num_classes=C, teacher=tiny_cnn(C, 2), eps=16 / 255, step_size=4 / 255)
    assert isinstance(step, AdaADStep)
    assert (step.attack.eps, step.attack.step_size) == (16 / 255, 4 / 255)
    assert not any(key.startswith("teacher.") for key in step.state_dict())
