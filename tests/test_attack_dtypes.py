"""The returned adversarial example lies exactly in the eps-ball and the input range, in every dtype.

A bf16 / fp16 value rounded after the projection can land up to half an ulp outside the ball
(for bf16 near 1 an ulp is 0.004, four times eps = 1e-3); the float32 bounds ``x +- eps`` can
too, by a hair. The attack returns each such value moved one step toward the input, in its own
dtype. The checks here are exact: the difference of two values of the returned dtype, taken
in float64, and the comparison the user would write in that dtype.
"""

from __future__ import annotations

import contextlib

import pytest
import torch
from _models import tiny_batch, tiny_cnn

from torch_absld import kl_pgd, pgd

C = 5
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def _setup(dtype: torch.dtype, mode: str, n: int = 16):
    model = tiny_cnn(C)
    x, y = tiny_batch(n, C, seed=3)
    x[0] = 0.0  # on the bounds of the input range
    x[1] = 1.0
    context: contextlib.AbstractContextManager[object] = contextlib.nullcontext()
    if mode == "cast model":
        model, x = model.to(dtype), x.to(dtype)
    elif mode == "cast model, float32 input":
        model = model.to(dtype)
    elif dtype != torch.float32:
        context = torch.autocast("cpu", dtype=dtype)
    return model, x, y, context


def _assert_exactly_inside(x_adv: torch.Tensor, x: torch.Tensor, eps: torch.Tensor | float) -> None:
    assert x_adv.dtype == x.dtype
    radius = eps.double().view(-1, 1, 1, 1) if isinstance(eps, torch.Tensor) else eps
    excess = ((x_adv.double() - x.double()).abs() - radius).clamp_min(0)
    assert excess.max().item() == 0.0, f"outside the ball by up to {excess.max().item():.3g}"
    in_dtype_radius = eps.to(x.dtype).view(-1, 1, 1, 1) if isinstance(eps, torch.Tensor) else eps
    assert ((x_adv - x).abs() <= in_dtype_radius).all()  # the check a user writes, in the returned dtype
    assert x_adv.double().min() >= 0.0
    assert x_adv.double().max() <= 1.0


@pytest.mark.parametrize("eps", [1e-3, 8 / 255, 0.1])
@pytest.mark.parametrize("mode", ["autocast", "cast model", "cast model, float32 input"])
@pytest.mark.parametrize("dtype", list(DTYPES.values()), ids=list(DTYPES))
def test_eps_ball_is_exact_in_the_returned_dtype(dtype, mode, eps):
    model, x, y, context = _setup(dtype, mode)
    with context:
        x_adv = pgd(model, x, y, eps=eps, step_size=eps / 3, steps=6, random_start="uniform", seed=0)
    _assert_exactly_inside(x_adv, x, eps)
    assert (x_adv != x).any(), "the attack should move the input"


@pytest.mark.parametrize("mode", ["autocast", "cast model"])
@pytest.mark.parametrize("dtype", list(DTYPES.values()), ids=list(DTYPES))
def test_kl_attack_eps_ball_is_exact(dtype, mode):
    model, x, _, context = _setup(dtype, mode)
    soft = torch.softmax(torch.randn(x.shape[0], C, generator=torch.Generator().manual_seed(1)), 1)
    with context:
        x_adv = kl_pgd(model, x, soft, eps=8 / 255, steps=5)
    _assert_exactly_inside(x_adv, x, 8 / 255)


@pytest.mark.parametrize("mode", ["autocast", "cast model"])
@pytest.mark.parametrize("dtype", list(DTYPES.values()), ids=list(DTYPES))
def test_per_sample_eps_ball_is_exact(dtype, mode):
    model, x, y, context = _setup(dtype, mode)
    eps = torch.tensor([1e-3, 8 / 255, 0.1, 0.0] * 4, dtype=torch.float64)
    with context:
        x_adv = pgd(model, x, y, eps=eps, step_size=0.02, steps=6, random_start="uniform", seed=0)
    _assert_exactly_inside(x_adv, x, eps)
    assert torch.equal(x_adv[3::4], x[3::4])  # a zero radius leaves its samples alone


def test_bounds_that_are_not_representable_hold_too():
    model = tiny_cnn(C).to(torch.bfloat16)
    x, y = tiny_batch(16, C, seed=4)
    low, high = 0.0123, 0.9876  # not bf16 numbers
    x = (low + (high - low) * x).to(torch.bfloat16).clamp(low, high)
    x = torch.where(x.double() < low, torch.nextafter(x, torch.ones_like(x)), x)
    x = torch.where(x.double() > high, torch.nextafter(x, torch.zeros_like(x)), x)
    x_adv = pgd(
        model, x, y, eps=0.05, step_size=0.02, steps=6, clip_min=low, clip_max=high, random_start="uniform", seed=0
    )
    assert x_adv.double().min() >= low
    assert x_adv.double().max() <= high
    assert (((x_adv.double() - x.double()).abs()) <= 0.05).all()
