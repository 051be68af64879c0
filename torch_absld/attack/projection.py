"""The L-inf ball of an attack, exactly in every dtype: ``|x_adv - x| <= eps`` and ``clip_min <= x_adv <= clip_max``."""

from __future__ import annotations

import math

import torch
from torch import Tensor

__all__ = ["per_sample_view", "projection_bounds", "round_into_ball"]

PerSample = float | Tensor


def per_sample_view(value: PerSample, x: Tensor) -> PerSample:
    r"""A per-sample tensor $(N,)$ as $(N, 1, \dots)$ in ``x``'s dtype and device; a scalar as it is."""
    if not isinstance(value, Tensor):
        return value
    return value.to(device=x.device, dtype=x.dtype).reshape(-1, *([1] * (x.dim() - 1)))


def projection_bounds(x: Tensor, eps: PerSample, clip_min: float, clip_max: float) -> tuple[Tensor, Tensor]:
    """``(lower, upper)`` of the ball and the range, from float64 rounded toward ``x`` (exact in ``x``'s dtype)."""
    wide = x if x.dtype == torch.float64 or x.device.type == "mps" else x.double()  # MPS has no float64
    radius = per_sample_view(eps, wide)
    lower = torch.sub(wide, radius).clamp_(clip_min, clip_max)  # in place: no temporaries (clip_min < clip_max)
    upper = torch.add(wide, radius).clamp_(clip_min, clip_max)
    if wide is x:
        return lower, upper
    return _rounded_inward(lower, x.dtype, up=True), _rounded_inward(upper, x.dtype, up=False)


def _rounded_inward(bound: Tensor, dtype: torch.dtype, *, up: bool) -> Tensor:
    """``bound`` (float64) in ``dtype``, rounded up (a lower bound) or down (an upper bound) instead of to nearest."""
    rounded = bound.to(dtype)
    wrong = rounded < bound if up else rounded > bound  # compared in float64, exactly
    away = torch.tensor(math.inf if up else -math.inf, dtype=dtype, device=rounded.device)
    return torch.where(wrong, torch.nextafter(rounded, away), rounded)


def round_into_ball(x_adv: Tensor, input: Tensor, eps: PerSample, clip_min: float, clip_max: float) -> Tensor:
    """``x_adv`` cast to ``input``'s dtype; a value the cast rounds out of the ball or range moves one step back."""
    out = x_adv.to(input.dtype)
    if out.dtype == torch.float64 or out.device.type == "mps":
        return out
    origin = input.detach()
    exact, reference = out.double(), origin.double()
    radius = per_sample_view(eps, exact)
    outside = ((exact - reference).abs() > radius) | (exact < clip_min) | (exact > clip_max)
    return torch.where(outside, torch.nextafter(out, origin), out)
