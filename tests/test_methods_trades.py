from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from _baselines import assert_same_steps, hand_pgd, normal_start, train_epoch
from _models import tiny_batch, tiny_cnn
from torch import nn
from torch.testing import assert_close

from torch_absld import PGDConfig, methods, pgd
from torch_absld.losses.trades import TRADESLoss
from torch_absld.methods.trades import TRADES_ATTACK, TRADESOutput, TRADESStep

C = 5


def test_defaults_are_the_authors():
    step = TRADESStep(tiny_cnn(C), C)
    assert step.attack.config == PGDConfig(eps=0.031, step_size=0.007, steps=10, random_start="normal", init_std=1e-3)
    assert step.loss_fn.beta == 6.0


def test_step_equals_the_hand_written_step():
    student = tiny_cnn(C, seed=1)
    reference = copy.deepcopy(student)
    batches = [tiny_batch(8, C, seed=s) for s in range(2)]
    step = TRADESStep(student, C, beta=3.0, steps=3, generator=torch.Generator().manual_seed(0)).train()
    torch.manual_seed(5)
    got = train_epoch(step, torch.optim.SGD(student.parameters(), lr=0.1), batches)

    optimizer, generator = torch.optim.SGD(reference.parameters(), lr=0.1), torch.Generator().manual_seed(0)

    def loss_of_batch(x, y):
        with torch.no_grad():
            p = torch.softmax(reference.eval()(x), dim=1)
        reference.train()
        x_adv = pgd(reference, x, p, config=TRADES_ATTACK.replace(steps=3), objective="kl", generator=generator)
        clean = reference(x)
        return TRADESLoss(beta=3.0)(student_clean=clean, student_adv=reference(x_adv), target=y)

    torch.manual_seed(5)
    assert_same_steps(got, reference, optimizer, batches, loss_of_batch)


def test_attack_equals_the_authors_loop():
    """``trades.py``: eval mode, ``KLDivLoss(size_average=False)(log_softmax(model(x_adv)), softmax(model(x)))``
    with ``model(x)`` recomputed at every step, from the unprojected ``x + 0.001 N(0, 1)``."""
    student = tiny_cnn(C, seed=2)
    before = copy.deepcopy(student).eval()
    x, y = tiny_batch(8, C)
    x[:, 0] = 0.0  # at the bound: the unprojected start leaves [0, 1]
    step = TRADESStep(student, C, steps=5, project_start=False, generator=torch.Generator().manual_seed(4)).train()
    out = step(x, y)
    assert isinstance(out, TRADESOutput)
    assert student.training
    kl = nn.KLDivLoss(reduction="sum")
    want = hand_pgd(
        before,
        x,
        normal_start(x, 1e-3, seed=4),
        lambda z: kl(F.log_softmax(z, dim=1), F.softmax(before(x), dim=1)),
        5,
        0.031,
        0.007,
    )
    assert_close(out.x_adv, want, rtol=0, atol=1e-6)
    assert_close(out.loss, out.natural_ce + 6.0 * out.robust_kl)
    assert not out.robust_kl.requires_grad


def test_create_ignores_a_teacher():
    step = methods.create("trades", tiny_cnn(C), num_classes=C, teacher=tiny_cnn(C, 2), beta=1.0, eps=8 / 255, steps=2)
    assert isinstance(step, TRADESStep)
    assert step.teacher is None
    assert (step.loss_fn.beta, step.attack.eps) == (1.0, 8 / 255)
