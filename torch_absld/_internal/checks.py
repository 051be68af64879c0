"""Argument checks shared by the public modules.

Checks that read only shapes, dtypes, devices and configuration always run: they cost nothing
and are constant under ``torch.compile``. Checks that read tensor values force a host sync;
callers run them only when :func:`values_checkable` says so, once per step at the boundary.

Numbers may be Python or NumPy scalars (``numbers.Real`` / ``numbers.Integral``); they come back
as Python ``float`` / ``int``. Labels may have any integer dtype; they come back as ``int64``.
"""

from __future__ import annotations

import difflib
import math
import numbers
from collections.abc import Iterable, Mapping, Sequence
from typing import Literal, TypeGuard

import torch
import torch.distributed as dist
from torch import Tensor

__all__ = [
    "ProcessGroupArg",
    "at_least_float32",
    "check_bool",
    "check_choice",
    "check_device",
    "check_finite_number",
    "check_integer",
    "check_integer_labels",
    "check_logits",
    "check_logits_alike",
    "check_num_classes",
    "check_options",
    "check_positive",
    "check_process_group",
    "check_unit_interval",
    "values_checkable",
]

ProcessGroupArg = dist.ProcessGroup | Literal[False] | None
"""A process group, ``None`` (the default group) or ``False`` (this rank alone: no collective)."""


def at_least_float32(tensor: Tensor) -> Tensor:
    """``tensor`` in float32, or unchanged when it is already float32 or float64.

    Loss math runs in float32 whatever the autocast dtype of the logits (bf16/fp16 logits are
    upcast); float64 inputs stay float64 so gradients can be checked in double precision.
    """
    if tensor.dtype in (torch.float32, torch.float64):
        return tensor
    return tensor.float()


def values_checkable(validate_args: bool) -> bool:
    """Whether value checks (which sync with the host) should run now.

    They run when ``validate_args`` is set and the caller is not being traced by
    ``torch.compile``, where a data-dependent branch would break the graph.
    """
    return validate_args and not torch.compiler.is_compiling()


def _is_integer(value: object) -> TypeGuard[numbers.Integral]:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool) and type(value).__name__ != "bool_"


def check_finite_number(value: object, name: str) -> float:
    """Return ``value`` as a float, or raise if it is not a finite real number."""
    if not isinstance(value, numbers.Real) or isinstance(value, bool) or type(value).__name__ == "bool_":
        raise TypeError(f"Expected `{name}` to be a real number, but got {type(value).__name__}.")
    number = float(value)
    if not math.isfinite(number):
        raise ValueError(f"Expected `{name}` to be finite, but got {number}.")
    return number


def check_positive(value: object, name: str, *, allow_zero: bool = False) -> float:
    """Return ``value`` as a float, or raise if it is not ``> 0`` (``>= 0`` with ``allow_zero``)."""
    number = check_finite_number(value, name)
    if number < 0 or (number == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"Expected `{name}` {bound}, but got {number}.")
    return number


def check_integer(value: object, name: str, *, minimum: int) -> int:
    """Return ``value`` as an int, or raise if it is not an integer ``>= minimum``."""
    if not _is_integer(value) or int(value) < minimum:
        raise ValueError(f"Expected `{name}` to be an int >= {minimum}, but got {value!r}.")
    return int(value)


def check_num_classes(value: object, minimum: int) -> int:
    """Return ``num_classes`` as an int, or raise if it is not an integer ``>= minimum``."""
    if not _is_integer(value):
        raise TypeError(f"Expected `num_classes` to be an int, but got {type(value).__name__}.")
    number = int(value)
    if number < minimum:
        raise ValueError(f"Expected `num_classes` >= {minimum}, but got {number}.")
    return number


def check_unit_interval(value: object, name: str) -> float:
    """Return ``value`` as a float, or raise if it is outside ``[0, 1]``."""
    number = check_finite_number(value, name)
    if not 0.0 <= number <= 1.0:
        raise ValueError(f"Expected `{name}` in [0, 1], but got {number}.")
    return number


def check_bool(value: object, name: str) -> bool:
    """Return ``value``, or raise if it is not a bool."""
    if not isinstance(value, bool):
        raise TypeError(f"Expected `{name}` to be a bool, but got {type(value).__name__}.")
    return value


def check_choice(value: object, name: str, choices: Sequence[object]) -> None:
    """Raise if ``value`` is not one of ``choices``."""
    if value not in choices:
        options = ", ".join(repr(c) for c in choices)
        raise ValueError(f"Expected `{name}` to be one of {options}, but got {value!r}.")


def check_options(options: Mapping[str, object], accepted: Iterable[str], owner: str) -> None:
    """Raise a ``TypeError`` naming ``owner`` and the accepted names when ``options`` holds an unknown keyword."""
    names = sorted(accepted)
    unknown = sorted(set(options) - set(names))
    if not unknown:
        return
    close = difflib.get_close_matches(unknown[0], names, n=1)
    hint = f" Did you mean `{close[0]}`?" if close else ""
    listed = ", ".join(f"`{name}`" for name in unknown)
    raise TypeError(
        f"Expected the keyword options of {owner} to be among {', '.join(names)}, but got unknown {listed}.{hint}"
    )


def check_process_group(value: object) -> ProcessGroupArg:
    """Return ``process_group``, or raise unless it is a process group, ``None`` or ``False``."""
    if value is None or value is False or isinstance(value, dist.ProcessGroup):
        return value
    raise TypeError(
        "Expected `process_group` to be a ProcessGroup, None or False (this rank alone, no collective), "
        f"but got {value!r}."
    )


def check_device(tensor: Tensor, device: torch.device | None, name: str, owner: str) -> None:
    """Raise if ``tensor`` is not on ``device`` (the device of ``owner``), or holds no data (meta)."""
    if tensor.device.type == "meta" and (device is None or device.type != "meta"):
        where = "" if device is None else f" of {owner} ({device})"
        raise ValueError(f"Expected `{name}` on the device{where}, but got a tensor on the meta device (no data).")
    if device is not None and tensor.device != device:
        raise ValueError(
            f"Expected `{name}` on the device of {owner} ({device}), but got {tensor.device}. "
            f"Move it there first (`{name}.to('{device}')`)."
        )


def check_integer_labels(
    target: Tensor,
    num_classes: int | None,
    *,
    name: str = "target",
    batch_size: int | None = None,
    check_values: bool = True,
    device: torch.device | None = None,
    owner: str = "the model",
) -> Tensor:
    """Check that ``target`` holds integer class indices in ``[0, num_classes)``; return them as int64.

    Every integer dtype is accepted (``uint8`` and ``int32`` labels too) and cast once here;
    ``bool`` and floating point labels are rejected. With ``num_classes=None`` only the lower
    bound is checked. ``device`` (when given) is where the labels must be.

    Shape:
        - target: $(N,)$, integer dtype. ``N`` must equal ``batch_size`` when given.
    """
    if not isinstance(target, Tensor):
        raise TypeError(f"Expected `{name}` to be a torch.Tensor, but got {type(target).__name__}.")
    if target.is_floating_point() or target.is_complex() or target.dtype == torch.bool:
        raise TypeError(
            f"Expected `{name}` to hold integer class indices (any integer dtype), but got dtype "
            f"{target.dtype}. Pass class indices, e.g. `{name}.long()`, not probabilities or masks."
        )
    if target.dim() != 1:
        raise ValueError(
            f"Expected `{name}` of shape (N,), but got {tuple(target.shape)}. Pass class indices, not one-hot vectors."
        )
    if batch_size is not None and target.shape[0] != batch_size:
        raise ValueError(f"Expected `{name}` of shape (N,) with N = {batch_size}, but got {tuple(target.shape)}.")
    check_device(target, device, name, owner)
    if check_values and target.numel() > 0:
        low, high = (int(v) for v in torch.aminmax(target))
        _raise_for_labels(name, num_classes, low, high)
    return target.long()


def _raise_for_labels(name: str, num_classes: int | None, low: int, high: int) -> None:
    upper = float("inf") if num_classes is None else num_classes
    if low < 0 or high >= upper:
        bound = "N" if num_classes is None else num_classes
        raise ValueError(
            f"Expected `{name}` values in [0, {bound}), but got values in "
            f"[{low}, {high}]. Check `num_classes` and the labels."
        )


def check_logits(
    logits: Tensor, name: str, num_classes: int | None = None, *, device: torch.device | None = None, owner: str = ""
) -> None:
    """Check that ``logits`` is a floating point tensor of shape ``(N, C)`` (on ``device`` when given).

    Shape:
        - logits: $(N, C)$ with ``C == num_classes`` when given.
    """
    if not isinstance(logits, Tensor):
        raise TypeError(f"Expected `{name}` to be a torch.Tensor, but got {type(logits).__name__}.")
    if not logits.is_floating_point():
        raise TypeError(f"Expected `{name}` to be floating point logits, but got dtype {logits.dtype}.")
    if logits.dim() != 2:
        raise ValueError(f"Expected `{name}` of shape (N, C), but got {tuple(logits.shape)}.")
    if num_classes is not None and logits.shape[1] != num_classes:
        raise ValueError(
            f"Expected `{name}` of shape (N, {num_classes}) for num_classes = {num_classes}, "
            f"but got {tuple(logits.shape)}."
        )
    check_device(logits, device, name, owner)


def check_logits_alike(named: Sequence[tuple[str, Tensor]], device: torch.device | None = None, owner: str = "") -> int:
    """Check several logits: each ``(N, C)`` floating point, all of one shape, on one device; return ``C``.

    ``device`` (when given) is where they must be, the device of ``owner``.
    """
    for name, logits in named:
        check_logits(logits, name, device=device, owner=owner)
    (first_name, first), *others = named
    if any(logits.shape != first.shape for _, logits in others):
        names = ", ".join(f"`{name}`" for name, _ in named)
        shapes = ", ".join(str(tuple(logits.shape)) for _, logits in named)
        raise ValueError(f"Expected {names} of one shape (N, C), but got {shapes}.")
    for name, logits in others:
        check_device(logits, first.device, name, f"`{first_name}`")
    return int(first.shape[1])
