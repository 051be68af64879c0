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
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Literal, TypeGuard

import torch
import torch.distributed as dist
from torch import Tensor

__all__ = [
    "ProcessGroupArg",
    "ValueCheck",
    "at_least_float32",
    "check_bool",
    "check_choice",
    "check_device",
    "check_finite_number",
    "check_input_and_label_values",
    "check_integer",
    "check_integer_labels",
    "check_logits",
    "check_logits_alike",
    "check_num_classes",
    "check_options",
    "check_positive",
    "check_probabilities",
    "check_process_group",
    "check_temperature_values",
    "check_unit_interval",
    "defer",
    "input_flag",
    "label_range_flag",
    "logit_flag",
    "probability_flag",
    "raise_first",
    "temperature_flag",
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
        raise_first([label_range_flag(target, num_classes, name)])
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


# Value checks: each reads tensor values (a host sync); several are read back at once by raise_first.

ValueCheck = tuple[Tensor, Callable[[], None]]
"""A 0-d bool tensor (True when the values are bad) and a function that raises the error."""


def _raise_for_inputs(clip_min: float, clip_max: float, low: float, high: float, name: str = "input") -> None:
    if not (math.isfinite(low) and math.isfinite(high)):
        raise ValueError(
            f"Expected `{name}` to be finite, but it holds NaN or infinite values (range [{low}, {high}]). "
            "Check the data pipeline."
        )
    if low < clip_min or high > clip_max:
        raise ValueError(
            f"Expected `{name}` values in [clip_min, clip_max] = [{clip_min}, {clip_max}], but got "
            f"values in [{low:.4g}, {high:.4g}]. Attack in pixel space and put the "
            "normalisation inside the model (torch_absld.Normalize)."
        )


def _input_bounds(input: Tensor) -> Tensor:
    """``[min, max]`` of ``input`` as float64, NaN when any value is NaN (one reduction each)."""
    low, high = torch.aminmax(input.detach())
    return torch.stack([low.double(), high.double()])


def _bad_logit_rows(logits: Tensor) -> Tensor:
    """Whether any value is NaN or +inf, or any row is entirely -inf (no class has mass), as a 0-d tensor."""
    detached = logits.detach()
    bad = torch.isnan(detached) | (detached == math.inf)
    return bad.any() | (detached == -math.inf).all(dim=1).any()


def _raise_for_logits(name: str, verb: str = "hold") -> None:
    raise ValueError(
        f"Expected `{name}` to {verb} finite logits (-inf allowed to mask a class), but got NaN, +inf, or a row "
        "that is -inf everywhere. Check the teacher and its input."
    )


def check_input_and_label_values(
    input: Tensor,
    clip_min: float,
    clip_max: float,
    target: Tensor,
    num_classes: int,
    teacher_logits: Tensor | None = None,
) -> None:
    r"""The value checks of one training step, read back from the device in one transfer.

    The input range (and finiteness), the label range and, when given, the teacher's logits
    (finite; -inf masks a class). ``target`` must already have passed the shape checks of
    :func:`check_integer_labels`.

    Shape:
        - input: $(N, \dots)$ floating point
        - target: $(N,)$ integers
        - teacher_logits: $(N, C)$
    """
    if target.numel() == 0:
        return
    parts = [_input_bounds(input), torch.stack([value.double() for value in torch.aminmax(target)])]
    if teacher_logits is not None:
        parts.append(_bad_logit_rows(teacher_logits).double().reshape(1))
    values = torch.cat(parts).tolist()
    _raise_for_labels("target", num_classes, int(values[2]), int(values[3]))
    _raise_for_inputs(clip_min, clip_max, values[0], values[1])
    if teacher_logits is not None and values[4]:
        _raise_for_logits("teacher", "return")


def check_probabilities(probs: Tensor, name: str, *, check_values: bool) -> None:
    """Check that ``probs`` holds one finite probability vector per row.

    Shape:
        - probs: $(N, C)$, non-negative rows summing to 1.
    """
    check_logits(probs, name)
    check_device(probs, None, name, "")
    if check_values and probs.numel() > 0:
        raise_first([probability_flag(probs, name)])


def probability_flag(probs: Tensor, name: str) -> ValueCheck:
    """Whether a row of ``probs`` is not a finite probability vector, and the error."""
    detached = probs.detach()
    row_sums = detached.float().sum(dim=1)
    flag = ~torch.isfinite(detached).all() | (detached < 0).any() | ((row_sums - 1).abs() > 1e-3).any()

    def raise_error() -> None:
        raise ValueError(
            f"Expected `{name}` to hold probability vectors (finite, non-negative rows summing to 1), "
            "but some rows are not. Pass softmax outputs, not logits."
        )

    return flag, raise_error


def input_flag(input: Tensor, clip_min: float, clip_max: float, name: str = "input") -> ValueCheck:
    """Whether ``input`` holds a non-finite value or one outside ``[clip_min, clip_max]``, and the error."""
    detached = input.detach()
    flag = ~torch.isfinite(detached).all() | (detached < clip_min).any() | (detached > clip_max).any()

    def raise_error() -> None:
        low, high = _input_bounds(input).tolist()
        _raise_for_inputs(clip_min, clip_max, low, high, name)

    return flag, raise_error


def check_temperature_values(temperature: Any, name: str) -> None:
    """Raise if a temperature tensor holds a value that is not finite and ``> 0`` (one host read)."""
    valid = not isinstance(temperature, Tensor) or bool((torch.isfinite(temperature) & (temperature > 0)).all())
    if not valid:
        raise ValueError(
            f"Expected `{name}` to hold finite temperatures > 0, but got {temperature.detach().cpu().tolist()}."
        )


_pending = threading.local()


def defer(checks: Sequence[ValueCheck]) -> None:
    """Keep ``checks`` to be read with the next :func:`raise_first` of this thread (no read now).

    A public entry point whose result feeds the next call of a training step (``ABSLDLoss.soft_labels``
    into the attack) defers its value checks, so that the step reads the device once.
    """
    if checks:
        _pending.checks = [*getattr(_pending, "checks", ()), *checks]


def raise_first(checks: Sequence[ValueCheck] = ()) -> None:
    """Read the deferred flags and every flag of ``checks`` in one transfer; raise the error of the first bad one."""
    checks = [*getattr(_pending, "checks", ()), *checks]
    _pending.checks = []
    if not checks:
        return
    device = checks[0][0].device
    flags = torch.stack([flag.reshape(()).to(device=device, dtype=torch.bool) for flag, _ in checks]).tolist()
    for bad, (_, raise_error) in zip(flags, checks):
        if bad:
            raise_error()


def label_range_flag(target: Tensor, num_classes: int | None, name: str = "target") -> ValueCheck:
    """Whether a label lies outside ``[0, num_classes)``, and the error (which reads the range for its message)."""
    flag = (target < 0).any()
    if num_classes is not None:
        flag = flag | (target >= num_classes).any()

    def raise_error() -> None:
        low, high = (int(v) for v in torch.aminmax(target))
        _raise_for_labels(name, num_classes, low, high)

    return flag, raise_error


def logit_flag(logits: Tensor, name: str, verb: str = "hold") -> ValueCheck:
    """Whether ``logits`` hold NaN, +inf or a row of -inf only, and the error (``verb``: "return" for a model)."""
    return _bad_logit_rows(logits), lambda: _raise_for_logits(name, verb)


def temperature_flag(temperature: Tensor, name: str) -> ValueCheck:
    """Whether a temperature is not finite or not ``> 0``, and the error."""
    flag = ~(torch.isfinite(temperature) & (temperature > 0)).all()
    return flag, lambda: check_temperature_values(temperature, name)
