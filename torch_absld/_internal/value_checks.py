"""Value checks: they read tensor values, so each is a host sync; several are read back at once.

Each check gives a 0-d bool tensor that is True when the values are bad, and a function that
raises the error (it may read more, for its message, but only when the check failed):
:func:`raise_first` reads every flag of a step in **one** transfer from the device. Callers run
them only when :func:`~torch_absld._internal.checks.values_checkable` says so, once per step at
the boundary. Shape, dtype and device checks live in :mod:`~torch_absld._internal.checks`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor

from .checks import _raise_for_labels, check_device, check_logits

__all__ = [
    "ValueCheck",
    "check_input_and_label_values",
    "check_probabilities",
    "check_temperature_values",
    "input_flag",
    "label_range_flag",
    "logit_flag",
    "probability_flag",
    "raise_first",
    "temperature_flag",
]

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


def raise_first(checks: Sequence[ValueCheck]) -> None:
    """Read every flag of ``checks`` back in one transfer and raise the error of the first bad one."""
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
