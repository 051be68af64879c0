"""Mixed precision end to end on the CPU: bf16 autocast (and fp16 with a GradScaler)."""

from __future__ import annotations

import pytest
import torch
from _models import tiny_batch, tiny_cnn
from _reference import absld_loss_reference
from torch.testing import assert_close

from torch_absld import ABSLDStep

C = 5
EPS = 8 / 255


# Forcing a dtype the CPU emulates is slow, not wrong: the warning (tested in test_precision.py) is expected here.
@pytest.mark.filterwarnings("ignore:.*autocast on cpu is not native:UserWarning")
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_autocast_step_end_to_end(dtype):
    distiller = ABSLDStep(tiny_cnn(C, seed=1), tiny_cnn(C, seed=2), C, steps=3, lr=0.5).train()
    optimizer = torch.optim.SGD(distiller.student.parameters(), lr=0.05)
    scaler = torch.amp.GradScaler("cpu", enabled=dtype == torch.float16)
    for seed in range(3):
        x, y = tiny_batch(16, C, seed=seed)
        with torch.autocast("cpu", dtype=dtype):
            out = distiller(x, y)
        # The networks ran in low precision ...
        assert out.student_adv_logits.dtype == dtype
        assert out.teacher_logits.dtype == dtype
        # ... the attack iterated in float32 and stayed exactly inside the eps ball and [0, 1] ...
        assert out.x_adv.dtype == torch.float32
        assert bool((out.x_adv <= x + EPS).all())
        assert bool((out.x_adv >= x - EPS).all())
        assert out.x_adv.min() >= 0
        assert out.x_adv.max() <= 1
        assert (out.x_adv - x).abs().max() > EPS / 2  # it did move
        # ... and the loss math ran in float32 on the low-precision logits (a bf16/fp16 loss would
        # be off by ~1e-3 relative).
        assert out.loss.dtype == torch.float32
        assert torch.isfinite(out.loss)
        tau_adv, tau_clean = (t.double() for t in distiller.temperatures)
        want = absld_loss_reference(
            out.student_adv_logits.detach().double(),
            out.student_clean_logits.detach().double(),
            out.teacher_logits.double(),
            y,
            tau_adv,
            tau_clean,
            alpha=5 / 6,
        )
        assert_close(out.loss.detach().double(), torch.tensor(want, dtype=torch.float64), rtol=2e-5, atol=1e-8)
        optimizer.zero_grad()
        scaler.scale(out.loss).backward()
        scaler.step(optimizer)
        scaler.update()
        assert all(torch.isfinite(p).all() for p in distiller.student.parameters())
    assert distiller.loss_fn.adv.accumulator.dtype == torch.float64
    tau_adv, tau_clean = distiller.on_epoch_end()
    assert torch.isfinite(tau_adv).all()
    assert torch.isfinite(tau_clean).all()
    assert not torch.equal(tau_adv, torch.ones(C))


def test_bf16_close_to_float32():
    """bf16 autocast changes the loss by bf16 rounding of the logits only."""
    x, y = tiny_batch(16, C, seed=3)
    losses = []
    for enabled in (False, True):
        distiller = ABSLDStep(tiny_cnn(C, seed=1), tiny_cnn(C, seed=2), C, steps=2, random_start=None).eval()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=enabled):
            losses.append(distiller(x, y).loss.detach())
    assert_close(losses[1], losses[0], rtol=0.1, atol=1e-3)
