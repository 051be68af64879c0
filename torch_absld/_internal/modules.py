"""Module helpers: the module inside a data-parallel wrapper, and modes restored on exit."""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import torch
from torch import Tensor, nn


def settings_repr(module: object, names: Iterable[str]) -> str:
    """``extra_repr`` text of ``module``'s attributes ``names``: ``name=value``, floats to 4 significant digits."""
    values = ((name, getattr(module, name)) for name in names)
    return ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v!r}" for k, v in values)


def unwrap_model(model: nn.Module) -> nn.Module:
    """The module inside ``DistributedDataParallel`` / ``DataParallel`` (attacking DDP itself would hang it)."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"Expected `model` to be an nn.Module, but got {type(model).__name__}.")
    inner = getattr(model, "module", None)
    wrapped = isinstance(model, (nn.parallel.DistributedDataParallel, nn.DataParallel)) and isinstance(inner, nn.Module)
    return inner if wrapped else model  # type: ignore[return-value]


def module_device(model: nn.Module) -> torch.device | None:
    """The device of the model's first parameter (or buffer); ``None`` for a model without tensors."""
    return next((tensor.device for tensor in itertools.chain(model.parameters(), model.buffers())), None)


def module_dtype(model: nn.Module) -> torch.dtype | None:
    """The dtype of the model's first floating point parameter (or buffer); ``None`` if it has none."""
    tensors = itertools.chain(model.parameters(), model.buffers())
    return next((tensor.dtype for tensor in tensors if tensor.is_floating_point()), None)


def as_model_input(model: nn.Module, input: Tensor) -> Tensor:
    """``input`` in the dtype of ``model``'s parameters: a model cast to bf16 / fp16 takes float32 batches too."""
    dtype = module_dtype(model)
    return input if dtype is None or dtype == input.dtype else input.to(dtype)


@contextlib.contextmanager
def eval_mode(model: nn.Module) -> Iterator[None]:
    """Every submodule in eval mode; each gets its own previous mode back on exit (also on errors)."""
    modes = [(module, module.training) for module in model.modules()]
    model.eval()
    try:
        yield
    finally:
        for module, training in modes:
            module.training = training


@contextlib.contextmanager
def frozen_model(model: nn.Module) -> Iterator[None]:
    """Eval mode and ``requires_grad=False`` on every parameter (``.grad`` untouched); both restored on exit."""
    flags = [(param, param.requires_grad) for param in model.parameters()]
    with eval_mode(model):
        for param, _ in flags:
            param.requires_grad_(False)
        try:
            yield
        finally:
            for param, requires_grad in flags:
                param.requires_grad_(requires_grad)


def check_state_first(module: nn.Module, state_dict: Mapping[str, Any], prefix: str, *_: Any) -> None:
    """A ``load_state_dict`` pre-hook: every ``_check_state_dict`` in ``module`` runs before anything loads."""
    for name, sub in module.named_modules():
        check = getattr(sub, "_check_state_dict", None)
        if callable(check):
            check(state_dict, f"{prefix}{name}." if name else prefix)


def loaded_tensor(state_dict: Mapping[str, Any], prefix: str, name: str, current: Tensor) -> Tensor | None:
    """The checkpoint's tensor for ``name`` (``None`` if absent); a ``ValueError`` unless shaped like ``current``."""
    loaded = state_dict.get(prefix + name)
    if not isinstance(loaded, Tensor):
        return None
    if loaded.shape != current.shape:
        raise ValueError(
            f"Expected the loaded `{name}` of shape {tuple(current.shape)}, but got {tuple(loaded.shape)}."
        )
    return loaded
