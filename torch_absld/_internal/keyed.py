"""Per-sample keyed random numbers: random starts that do not depend on the batch a sample is in."""

from __future__ import annotations

import math

import torch
from torch import Tensor

__all__ = ["keyed_start", "keyed_uniform"]

_MASK32 = 0xFFFFFFFF


def _mul32(a: Tensor, m: int) -> Tensor:
    """``(a * m) mod 2**32`` for ``a`` in ``[0, 2**32)`` without overflowing int64."""
    low, high = m & 0xFFFF, m >> 16
    return (a * low + (((a * high) & 0xFFFF) << 16)) & _MASK32


def _hash32(a: Tensor) -> Tensor:
    """A 32-bit integer finaliser (``lowbias32``), element-wise on int64 holding 32-bit values."""
    a = a ^ (a >> 16)
    a = _mul32(a, 0x7FEB352D)
    a = a ^ (a >> 15)
    a = _mul32(a, 0x846CA68B)
    return a ^ (a >> 16)


def keyed_uniform(input: Tensor, seed: int) -> Tensor:
    r"""Uniform noise in ``[0, 1)``, a hash of ``seed`` and each sample's bits: the same in any batch, rank or order.

    Shape:
        - input: $(N, \dots)$ floating point
        - Output: like ``input``, float32
    """
    n = input.shape[0]
    flat = input.detach().float().reshape(n, math.prod(input.shape[1:])).contiguous()  # also for n = 0
    device = flat.device
    bits = flat.view(torch.int32).to(torch.int64) & _MASK32
    position = torch.arange(flat.shape[1], device=device, dtype=torch.int64)
    salt = seed % (1 << 64)
    salt32 = (salt ^ (salt >> 32)) & _MASK32
    weights = _hash32(position ^ salt32)
    key = _hash32(_hash32(bits ^ weights).sum(dim=1) & _MASK32)
    draws = _hash32((key.unsqueeze(1) ^ _hash32(weights ^ 0x9E3779B9)) & _MASK32)
    return ((draws >> 8).to(torch.float32) * 2.0**-24).reshape(input.shape)


def keyed_start(input: Tensor, seed: int, eps: float) -> Tensor:
    """A uniform random start in the L-inf ball of radius ``eps`` around ``input``, keyed on each sample, float32."""
    return input.float() + (2 * keyed_uniform(input, seed) - 1) * eps
