"""Every argument check: static ones, and value flags ``*_flag(...) -> (flag, raise_error)`` read by ``raise_first``."""

from __future__ import annotations

import difflib
import math
import numbers
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Literal, TypeGuard

import torch
import torch.distributed as dist
from torch import Tensor

ProcessGroupArg = dist.ProcessGroup | Literal[False] | None
"""A process group, ``None`` (the default group) or ``False`` (this rank alone: no collective)."""

ValueCheck = tuple[Tensor, Callable[[], None]]
"""A 0-d bool tensor (True when the values are bad) and a function that raises the error."""


def at_least_float32(tensor: Tensor) -> Tensor:
    """``tensor`` in float32 (bf16 / fp16 upcast), or unchanged when float32 or float64."""
    return tensor if tensor.dtype in (torch.float32, torch.float64) else tensor.float()


def values_checkable(validate_args: bool) -> bool:
    """Whether value checks (host reads) run: ``validate_args`` and not traced by ``torch.compile``."""
    return validate_args and not torch.compiler.is_compiling()


def _is_integer(value: object) -> TypeGuard[numbers.Integral]:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool) and type(value).__name__ != "bool_"


def check_finite_number(value: object, name: str) -> float:
    """``value`` as a float; raise unless it is a finite real number (NumPy scalars too, bools not)."""
    if not isinstance(value, numbers.Real) or isinstance(value, bool) or type(value).__name__ == "bool_":
        raise TypeError(f"Expected `{name}` to be a real number, but got {type(value).__name__}.")
    if not math.isfinite(number := float(value)):
        raise ValueError(f"Expected `{name}` to be finite, but got {number}.")
    return number


def check_positive(value: object, name: str, *, allow_zero: bool = False) -> float:
    """``value`` as a float; raise unless ``> 0`` (``>= 0`` with ``allow_zero``)."""
    if (number := check_finite_number(value, name)) < 0 or (number == 0 and not allow_zero):
        raise ValueError(f"Expected `{name}` {'>= 0' if allow_zero else '> 0'}, but got {number}.")
    return number


def check_integer(value: object, name: str, *, minimum: int) -> int:
    """``value`` as an int; raise unless an integer ``>= minimum``."""
    if not _is_integer(value) or int(value) < minimum:
        raise ValueError(f"Expected `{name}` to be an int >= {minimum}, but got {value!r}.")
    return int(value)


def check_num_classes(value: object, minimum: int) -> int:
    """``num_classes`` as an int; ``TypeError`` unless an integer, ``ValueError`` below ``minimum``."""
    if not _is_integer(value):
        raise TypeError(f"Expected `num_classes` to be an int, but got {type(value).__name__}.")
    if int(value) < minimum:
        raise ValueError(f"Expected `num_classes` >= {minimum}, but got {int(value)}.")
    return int(value)


def check_unit_interval(value: object, name: str) -> float:
    """``value`` as a float; raise unless in ``[0, 1]``."""
    if not 0.0 <= (number := check_finite_number(value, name)) <= 1.0:
        raise ValueError(f"Expected `{name}` in [0, 1], but got {number}.")
    return number


def check_bool(value: object, name: str) -> bool:
    """``value``; raise unless a bool."""
    if not isinstance(value, bool):
        raise TypeError(f"Expected `{name}` to be a bool, but got {type(value).__name__}.")
    return value


def check_choice(value: object, name: str, choices: Sequence[object]) -> None:
    """Raise unless ``value`` is one of ``choices``."""
    if value not in choices:
        raise ValueError(f"Expected `{name}` to be one of {', '.join(map(repr, choices))}, but got {value!r}.")


def check_options(options: Mapping[str, object], accepted: Iterable[str], owner: str) -> None:
    """Raise a ``TypeError`` naming ``owner``, the accepted names and a close match for an unknown keyword."""
    names = sorted(accepted)
    if unknown := sorted(set(options) - set(names)):
        close = difflib.get_close_matches(unknown[0], names, n=1)
        hint = f" Did you mean `{close[0]}`?" if close else ""
        listed = ", ".join(f"`{name}`" for name in unknown)
        raise TypeError(
            f"Expected the keyword options of {owner} to be among {', '.join(names)}, but got unknown {listed}.{hint}"
        )


def check_process_group(value: object) -> ProcessGroupArg:
    """``process_group``; raise unless a process group, ``None`` or ``False``."""
    if value is None or value is False or isinstance(value, dist.ProcessGroup):
        return value
    raise TypeError(
        f"Expected `process_group` to be a ProcessGroup, None or False (this rank alone), but got {value!r}."
    )


def check_device(tensor: Tensor, device: torch.device | None, name: str, owner: str) -> None:
    """Raise unless ``tensor`` is on ``device`` (the device of ``owner``) and holds data (not meta)."""
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
    """``target`` as int64 class indices $(N,)$ (``N == batch_size`` when given), values read if ``check_values``."""
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
        raise_first([label_range_flag(target, num_classes, name)])
    return target.long()


def check_logits(
    logits: Tensor, name: str, num_classes: int | None = None, *, device: torch.device | None = None, owner: str = ""
) -> None:
    """Raise unless ``logits`` is floating point $(N, C)$ (``C == num_classes``, on ``device`` when given)."""
    if not isinstance(logits, Tensor):
        raise TypeError(f"Expected `{name}` to be a torch.Tensor, but got {type(logits).__name__}.")
    if not logits.is_floating_point():
        raise TypeError(f"Expected `{name}` to be floating point logits, but got dtype {logits.dtype}.")
    if logits.dim() != 2:
        raise ValueError(f"Expected `{name}` of shape (N, C), but got {tuple(logits.shape)}.")
    if num_classes is not None and logits.shape[1] != num_classes:
        expected = f"(N, {num_classes}) for num_classes = {num_classes}"
        raise ValueError(f"Expected `{name}` of shape {expected}, but got {tuple(logits.shape)}.")
    check_device(logits, device, name, owner)


def check_logits_alike(named: Sequence[tuple[str, Tensor]], device: torch.device | None = None, owner: str = "") -> int:
    """Check several ``(name, logits)``: each $(N, C)$ floating point, one shape, one device; return ``C``."""
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


def check_values_shape(values: Tensor, num_stats: int) -> None:
    """Raise unless ``values`` is floating point $(N, S)$, or $(N,)$ when ``num_stats`` $S = 1$."""
    shape = "(N,) or (N, S)" if num_stats == 1 else "(N, S)"
    if not isinstance(values, Tensor) or not values.is_floating_point():
        got = values.dtype if isinstance(values, Tensor) else type(values).__name__
        raise TypeError(f"Expected `values` to be a floating point tensor of shape {shape}, but got {got}.")
    if not ((values.dim() == 2 and values.shape[1] == num_stats) or (values.dim() == 1 and num_stats == 1)):
        raise ValueError(f"Expected `values` of shape {shape} with S = {num_stats}, but got {tuple(values.shape)}.")


def check_temperature_argument(temperature: object, name: str, logits: Tensor) -> list[ValueCheck]:
    """Check a temperature: a positive number, or a tensor $(N,)$ or 0-d; return its value flags."""
    if not isinstance(temperature, Tensor):
        check_positive(temperature, name)
        return []
    batch = logits.shape[0]
    if temperature.dim() > 1 or (temperature.dim() == 1 and temperature.shape[0] != batch):
        raise ValueError(
            f"Expected `{name}` of shape (N,) = ({batch},) or a scalar, but got {tuple(temperature.shape)}."
        )
    if temperature.dim() == 1:  # a 0-d tensor may live on the CPU, as torch allows
        check_device(temperature, logits.device, name, "the logits")
    return [temperature_flag(temperature, name)] if temperature.numel() > 0 else []


_pending = threading.local()


def defer(checks: Sequence[ValueCheck]) -> None:
    """Keep ``checks`` for the next :func:`raise_first` of this thread: the next checked call of the step.

    At most one call's flags wait: flags still pending from an earlier ``defer`` are read now,
    with ``checks``, in one read (so no error is lost and no tensor is held past one step).
    """
    if getattr(_pending, "checks", None):
        raise_first(checks)
    elif checks:
        _pending.checks = list(checks)


def raise_first(checks: Sequence[ValueCheck] = ()) -> None:
    """Read the deferred flags and ``checks`` in one transfer; raise the error of the first bad one."""
    checks = [*getattr(_pending, "checks", ()), *checks]
    _pending.checks = []
    if checks:
        device = checks[0][0].device
        flags = torch.stack([flag.reshape(()).to(device=device, dtype=torch.bool) for flag, _ in checks]).tolist()
        for bad, (_, raise_error) in zip(flags, checks):
            if bad:
                raise_error()


def label_range_flag(target: Tensor, num_classes: int | None, name: str = "target") -> ValueCheck:
    """Whether a label lies outside ``[0, num_classes)``; the error reads the range for its message."""
    flag = (target < 0).any() if num_classes is None else ((target < 0) | (target >= num_classes)).any()

    def raise_error() -> None:
        low, high = torch.stack(list(torch.aminmax(target))).tolist()
        bound = "N" if num_classes is None else num_classes
        raise ValueError(
            f"Expected `{name}` values in [0, {bound}), but got values in [{low}, {high}]. "
            "Check `num_classes` and the labels."
        )

    return flag, raise_error


def logit_flag(logits: Tensor, name: str, verb: str = "hold") -> ValueCheck:
    """Whether ``logits`` hold NaN, +inf or a row of -inf only (``verb``: "return" for a model's output)."""
    detached = logits.detach()
    flag = (torch.isnan(detached) | (detached == math.inf)).any() | (detached == -math.inf).all(dim=1).any()

    def raise_error() -> None:
        raise ValueError(
            f"Expected `{name}` to {verb} finite logits (-inf allowed to mask a class), but got NaN, +inf, or a row "
            "that is -inf everywhere. Check the teacher and its input."
        )

    return flag, raise_error


def input_flag(input: Tensor, clip_min: float, clip_max: float, name: str = "input") -> ValueCheck:
    """Whether ``input`` holds a non-finite value or one outside ``[clip_min, clip_max]``."""
    detached = input.detach()
    flag = ~torch.isfinite(detached).all() | (detached < clip_min).any() | (detached > clip_max).any()

    def raise_error() -> None:
        low, high = torch.stack([v.double() for v in torch.aminmax(detached)]).tolist()
        if not (math.isfinite(low) and math.isfinite(high)):
            raise ValueError(
                f"Expected `{name}` to be finite, but it holds NaN or infinite values (range [{low}, {high}]). "
                "Check the data pipeline."
            )
        raise ValueError(
            f"Expected `{name}` values in [clip_min, clip_max] = [{clip_min}, {clip_max}], but got values in "
            f"[{low:.4g}, {high:.4g}]. Attack in pixel space and put the normalisation inside the model "
            "(torch_absld.Normalize)."
        )

    return flag, raise_error


def probability_flag(probs: Tensor, name: str) -> ValueCheck:
    """Whether a row of ``probs`` is not a finite probability vector (non-negative, summing to 1 within 1e-3)."""
    detached = probs.detach()
    flag = ~torch.isfinite(detached).all() | (detached < 0).any() | ((detached.float().sum(1) - 1).abs() > 1e-3).any()

    def raise_error() -> None:
        raise ValueError(
            f"Expected `{name}` to hold probability vectors (finite, non-negative rows summing to 1), "
            "but some rows are not. Pass softmax outputs, not logits."
        )

    return flag, raise_error


def temperature_flag(temperature: Tensor, name: str) -> ValueCheck:
    """Whether a temperature is not finite or not ``> 0``."""

    def raise_error() -> None:
        got = temperature.detach().cpu().tolist()
        raise ValueError(f"Expected `{name}` to hold finite temperatures > 0, but got {got}.")

    return ~(torch.isfinite(temperature) & (temperature > 0)).all(), raise_error
