"""Whole-module dtype casts and low-precision models (e.g. Lightning's ``precision="bf16-true"``)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from _models import small_gradient_mlp, tiny_batch, tiny_cnn
from torch import nn
from torch.testing import assert_close

from torch_absld import ABSLDDistiller, ABSLDLoss, ClassTemperatureController, pgd

C = 5
EPS, STEP = 8 / 255, 2 / 255


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16, torch.float64])
def test_module_dtype_cast_keeps_the_controller_precision(dtype):
    g = torch.Generator().manual_seed(0)
    n = 600  # more samples per class than bf16 / fp16 count exactly (256 / 2048)
    logits = torch.randn(n, 3, generator=g)
    target = torch.randint(0, 2, (n,), generator=g)  # class 2 stays absent
    cast = ClassTemperatureController(3, lr=0.2).to(dtype)
    assert cast.temperatures.dtype == torch.float32
    assert cast.accumulator.dtype == torch.float64
    low = logits.to(dtype)
    cast.update(low, target)
    counts = torch.bincount(target, minlength=3).to(torch.float64)
    assert torch.equal(cast.count, counts)
    risk = F.cross_entropy(low if dtype == torch.float64 else low.float(), target, reduction="none").double()
    assert_close(cast.risk_sum, torch.zeros(3, dtype=torch.float64).index_add_(0, target, risk))
    cast.step()
    assert cast.temperatures.dtype == torch.float32
    assert not torch.equal(cast.temperatures, torch.ones(3)), "the temperatures should have moved"
    assert cast.temperatures[2] == 1.0


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_loss_cast_to_low_precision_records_and_steps(dtype):
    g = torch.Generator().manual_seed(1)
    s_adv, s_clean, t = torch.randn(3, 8, C, generator=g).unbind()
    y = torch.arange(8) % C
    reference = ABSLDLoss(C, lr=0.3)
    cast = ABSLDLoss(C, lr=0.3).to(dtype)
    want = reference(s_adv, s_clean, t, y)
    got = cast(s_adv, s_clean, t, y)
    assert_close(got, want)
    assert torch.equal(cast.adv.accumulator, reference.adv.accumulator)
    for got_tau, want_tau in zip(cast.step(), reference.step(), strict=True):
        assert got_tau.dtype == torch.float32
        assert torch.equal(got_tau, want_tau)


def _reference_pgd_through_cast(model, x, y, dtype, steps):
    """Madry CE-PGD by hand: iterate in float32, feed the model the iterate cast to ``dtype``."""
    x32 = x.float()
    x_adv = x32.clone()
    for _ in range(steps):
        x_adv.requires_grad_(True)
        loss = F.cross_entropy(model(x_adv.to(dtype)).float(), y, reduction="sum")
        grad = torch.autograd.grad(loss, [x_adv])[0]
        with torch.no_grad():
            x_adv = x_adv + STEP * grad.sign()
            x_adv = torch.min(torch.max(x_adv, x32 - EPS), x32 + EPS).clamp(0, 1)
    return x_adv.detach().to(dtype)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_attack_on_a_model_cast_to_low_precision(dtype):
    model = tiny_cnn(C).to(dtype).eval()
    x, y = tiny_batch(8, C)
    x = x.to(dtype)
    want = _reference_pgd_through_cast(model, x, y, dtype, steps=3)
    got = pgd(model, x, y, steps=3, random_start=None)
    assert got.dtype == dtype
    assert torch.equal(got, want)


def test_distiller_cast_to_bf16_trains_and_records():
    student = nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, 16), nn.ReLU(), nn.Linear(16, C))
    teacher = nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, C))
    distiller = ABSLDDistiller(student, teacher, C, steps=2, loss={"lr": 0.3}).to(torch.bfloat16).train()
    x, y = tiny_batch(10, C)
    out = distiller(x.to(torch.bfloat16), y)
    assert torch.isfinite(out.loss)
    out.loss.backward()
    assert all(p.grad is not None for p in distiller.student.parameters())
    assert torch.equal(distiller.loss_fn.adv.count, torch.bincount(y, minlength=C).double())
    tau_adv, _ = distiller.on_epoch_end()
    assert tau_adv.dtype == torch.float32
    assert (out.x_adv.float() - x.to(torch.bfloat16).float()).abs().max() <= EPS + 2**-8


def test_fp16_model_gets_the_loss_scaling_of_fp16_autocast():
    model = small_gradient_mlp()  # input gradients around 1e-7, below fp16's range
    model = model.half()
    x = torch.rand(32, 1, 8, 8).half()
    soft = torch.softmax(torch.randn(32, 10) * 0.01, 1)

    def zero_fraction(loss_scale):
        x_adv = pgd(model, x, soft, steps=1, random_start=None, eps=0.1, step_size=0.1, loss_scale=loss_scale)
        return ((x_adv - x) == 0).float().mean().item()

    assert zero_fraction(1.0) > 0.2  # unscaled: the gradient underflows for many pixels
    assert zero_fraction(None) < 0.01  # default: scaled for fp16 inputs


@pytest.mark.parametrize("objective", ["kl", "ce", "cw"])
def test_attack_inside_inference_mode_equals_outside(objective):
    model = tiny_cnn(C).eval()
    x, y = tiny_batch(8, C)
    target = torch.softmax(torch.randn(8, C, generator=torch.Generator().manual_seed(3)), 1) if objective == "kl" else y
    want = pgd(model, x, target, objective=objective, steps=3, random_start="uniform", seed=0)
    with torch.inference_mode():
        x_inf, target_inf = x.clone(), target.clone()  # inference tensors
        got = pgd(model, x_inf, target_inf, objective=objective, steps=3, random_start="uniform", seed=0)
    assert torch.equal(got, want)
    # inference tensors passed in from outside inference mode
    again = pgd(model, x_inf, target_inf, objective=objective, steps=3, random_start="uniform", seed=0)
    assert torch.equal(again, want)


def test_evaluation_inside_inference_mode_equals_outside():
    from torch_absld import evaluate_robustness

    model = tiny_cnn(C)
    loader = [tiny_batch(10, C, seed=s) for s in range(2)]
    attacks = ("clean", "fgsm", "pgd", "cw")
    overrides = {"pgd": {"steps": 3}, "cw": {"steps": 3}}
    want = evaluate_robustness(model, loader, C, attacks, progress=False, attack_overrides=overrides)
    with torch.inference_mode():
        got = evaluate_robustness(model, loader, C, attacks, progress=False, attack_overrides=overrides)
    assert got.to_dict() == want.to_dict()


def test_autoattack_inside_inference_mode_equals_outside():
    pytest.importorskip("pyautoattack")
    from torch_absld import auto_attack

    model = tiny_cnn(C).eval()
    x, y = tiny_batch(8, C)
    kwargs = {"num_classes": C, "version": "custom", "attacks": ["apgd-ce"], "seed": 0}
    want = auto_attack(model, x, y, **kwargs)
    with torch.inference_mode():
        got = auto_attack(model, x.clone(), y.clone(), **kwargs)
    assert torch.equal(got, want)
