"""``torch.compile(fullgraph=True)`` for functions that take input gradients (``torch.autograd.grad``)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

import torch

__all__ = ["MIN_TORCH_VERSION", "compiled", "trace_input_gradients"]

MIN_TORCH_VERSION = "2.11"
"""The first PyTorch release whose TorchDynamo has the ``trace_autograd_ops`` option."""

_FLAG = "trace_autograd_ops"
_cache: dict[tuple[Callable[..., Any], str | None], Callable[..., Any]] = {}


def require_input_gradient_tracing() -> None:
    """Raise a ``RuntimeError`` naming the PyTorch version needed if dynamo cannot trace ``autograd.grad``."""
    import torch._dynamo  # imported only when compiling: it is slow to import

    if not hasattr(torch._dynamo.config, _FLAG):
        raise RuntimeError(
            f"Compiled attack steps (`compile=True`) need PyTorch >= {MIN_TORCH_VERSION}, whose TorchDynamo can "
            f"trace torch.autograd.grad (`torch._dynamo.config.{_FLAG}`), but torch {torch.__version__} is "
            "installed. Upgrade PyTorch or pass compile=False."
        )


def trace_input_gradients() -> contextlib.AbstractContextManager[None]:
    """Let ``torch.compile`` trace ``torch.autograd.grad`` inside the block (off by default in dynamo)."""
    require_input_gradient_tracing()
    return torch._dynamo.config.patch(_FLAG, True)  # type: ignore[no-any-return]


def compiled(fn: Callable[..., Any], mode: str | None = None) -> Callable[..., Any]:
    """``torch.compile(fn, fullgraph=True, mode=mode)``, built once per ``(fn, mode)``."""
    if (key := (fn, mode)) not in _cache:
        _cache[key] = torch.compile(fn, fullgraph=True, mode=mode)
    return _cache[key]
