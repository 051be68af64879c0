"""The library in script-exact mode equals a step-by-step replay of the authors' training loop.

The reference below follows the authors' public CIFAR script operation by operation: the two
"temperature-scaled" teacher logits are one storage divided in place sample by sample (so both
terms and the attack see ``tau_adv[y] * tau_clean[y]``), the attack starts at the unprojected
``x + 0.001 N(0, 1)`` and projects only after each step, the KL is written as
``p log(p + 1e-5) - p log q`` averaged over all elements, class risks are per-class sums of
cross-entropy, and at the end of an epoch the learning rate and beta drop x0.1 together at the
milestones before the temperature update (Eq. 11). Everything runs in float64 so that the two
implementations agree to rounding error over several epochs.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.testing import assert_close

from torch_absld import ABSLDStep, follow_optimizer_lr

C, N, BATCHES, EPOCHS = 4, 12, 3, 5
MILESTONES = [2, 4]  # 1-based epochs at whose end the lr and beta drop x0.1 (the script: 215, 260, 285)
EPS, STEP, STEPS = 8 / 255, 2 / 255, 3
LR, BETA = 0.1, 0.1


def _model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Flatten(), nn.Linear(3 * 4 * 4, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Linear(16, C)
    ).double()


def _teacher() -> nn.Module:
    torch.manual_seed(1)
    return nn.Sequential(nn.Flatten(), nn.Linear(3 * 4 * 4, C)).double().eval()


def _batches() -> list[tuple[torch.Tensor, torch.Tensor]]:
    g = torch.Generator().manual_seed(2)
    batches = []
    for _ in range(BATCHES):
        x = torch.rand(N, 3, 4, 4, generator=g, dtype=torch.float64)
        x[:, 0, 0] = 0.0  # pixels at the bounds: where the unprojected start matters
        x[:, 1, 1] = 1.0
        batches.append((x, torch.randint(0, C, (N,), generator=g)))
    return batches


def _script_attack(model, teacher_logits_scaled, x, steps):
    model.eval()
    x_adv = x.detach() + 0.001 * torch.randn(x.shape).to(x)
    for _ in range(steps):
        x_adv.requires_grad_()
        with torch.enable_grad():
            loss = F.kl_div(
                F.log_softmax(model(x_adv), dim=1), F.softmax(teacher_logits_scaled, dim=1), reduction="none"
            ).sum()
        grad = torch.autograd.grad(loss, [x_adv])[0]
        x_adv = x_adv.detach() + STEP * torch.sign(grad.detach())
        x_adv = torch.min(torch.max(x_adv, x - EPS), x + EPS)
        x_adv = torch.clamp(x_adv, 0.0, 1.0)
    model.train()
    return torch.clamp(x_adv, 0.0, 1.0)


def _script_loop(student, teacher, batches):
    optimizer = torch.optim.SGD(student.parameters(), lr=LR, momentum=0.9, weight_decay=2e-4)
    tau_adv = torch.ones(C, dtype=torch.float64)
    tau_nat = torch.ones(C, dtype=torch.float64)
    rate = BETA
    history = []
    for epoch in range(1, EPOCHS + 1):
        total_adv = torch.zeros(C, dtype=torch.float64)
        total_nat = torch.zeros(C, dtype=torch.float64)
        for x, y in batches:
            student.train()
            optimizer.zero_grad()
            with torch.no_grad():
                logits = teacher(x).detach()
                scaled_adv = logits.detach()
                scaled_nat = logits.detach()  # the same storage as scaled_adv
                for i in range(y.shape[0]):
                    scaled_adv[i] = scaled_adv[i] / tau_adv[y[i]]
                    scaled_nat[i] = scaled_nat[i] / tau_nat[y[i]]
            x_adv = _script_attack(student, scaled_adv, x, STEPS)
            adv_logits = student(x_adv)
            nat_logits = student(x)
            with torch.no_grad():
                ce_adv = F.cross_entropy(adv_logits.detach(), y, reduction="none")
                ce_nat = F.cross_entropy(nat_logits.detach(), y, reduction="none")
                for i in range(y.shape[0]):
                    total_adv[y[i]] += ce_adv[i]
                    total_nat[y[i]] += ce_nat[i]
            p_adv, p_nat = F.softmax(scaled_adv, dim=1), F.softmax(scaled_nat, dim=1)
            kl_adv = (-torch.log(F.softmax(adv_logits, dim=1)) * p_adv + torch.log(p_adv + 1e-5) * p_adv).mean()
            kl_nat = (-torch.log(F.softmax(nat_logits, dim=1)) * p_nat + torch.log(p_nat + 1e-5) * p_nat).mean()
            loss = 5.0 / 6.0 * kl_adv + 1.0 / 6.0 * kl_nat
            loss.backward()
            optimizer.step()
        if epoch in MILESTONES:
            for group in optimizer.param_groups:
                group["lr"] *= 0.1
                rate *= 0.1
        gap = total_adv - total_adv.mean()
        tau_adv = torch.clamp(tau_adv - rate * gap / gap.abs().max(), 0.5, 5.0)
        gap = total_nat - total_nat.mean()
        tau_nat = torch.clamp(tau_nat - rate * gap / gap.abs().max(), 0.5, 5.0)
        history.append((tau_adv.clone(), tau_nat.clone()))
    return history


def _library_loop(student, teacher, batches, *, project_start=False, scheduler_first=True):
    distiller = ABSLDStep(
        student,
        teacher,
        C,
        coupling="product",
        risk_reduction="sum",
        lr=BETA,
        eps=EPS,
        step_size=STEP,
        steps=STEPS,
        project_start=project_start,
    )
    optimizer = torch.optim.SGD(student.parameters(), lr=LR, momentum=0.9, weight_decay=2e-4)
    scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones=MILESTONES, gamma=0.1)
    follow_optimizer_lr(distiller, optimizer)
    history = []
    for _ in range(EPOCHS):
        distiller.train()
        for x, y in batches:
            out = distiller(x, y)
            optimizer.zero_grad()
            out.loss.backward()
            optimizer.step()
        if scheduler_first:  # the script's order: lr and beta drop together, then Eq. 11
            scheduler.step()
        history.append(tuple(t.double().clone() for t in distiller.on_epoch_end()))
        if not scheduler_first:
            scheduler.step()
    return history


def _both(**library_options):
    batches = _batches()
    teacher = _teacher()
    reference_student, library_student = _model(), _model()
    torch.manual_seed(3)
    want = _script_loop(reference_student, teacher, batches)
    torch.manual_seed(3)
    got = _library_loop(library_student, teacher, batches, **library_options)
    return (got, library_student.state_dict()), (want, reference_student.state_dict())


def test_script_exact_mode_replays_the_authors_loop():
    (got, got_weights), (want, want_weights) = _both()
    for (got_adv, got_nat), (want_adv, want_nat) in zip(got, want, strict=True):
        # The library keeps temperatures in float32, the reference in float64.
        assert_close(got_adv, want_adv.float().double(), rtol=0, atol=1e-6)
        assert_close(got_nat, want_nat.float().double(), rtol=0, atol=1e-6)
    # float32 temperatures (and their product) round the soft labels at about 1e-7 relative.
    assert_close(got_weights, want_weights, rtol=1e-6, atol=1e-9)


def test_projected_start_is_not_the_script():
    (_, got_weights), (_, want_weights) = _both(project_start=True)
    assert any(not torch.allclose(got_weights[k], want_weights[k], rtol=1e-6, atol=1e-9) for k in want_weights), (
        "the projected start should change the run at pixels on the bounds"
    )


def test_stepping_the_temperatures_before_the_scheduler_lags_beta_by_one_epoch():
    (got, _), (want, _) = _both(scheduler_first=False)
    drop = MILESTONES[0]  # the 1-based epoch at whose end the script's lr and beta first drop
    before, at = drop - 2, drop - 1  # 0-based history indices: the update before the drop, and at it
    assert torch.allclose(got[before][0], want[before][0].float().double(), atol=1e-6)
    assert not torch.allclose(got[at][0], want[at][0].float().double(), atol=1e-6)
