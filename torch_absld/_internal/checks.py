"""Argument checks shared by the public modules.

Checks that read only shapes, dtypes and configuration always run: they cost nothing and
are constant under ``torch.compile``. Checks that read tensor values force a host sync;
callers run them only when :func:`values_checkable` says so.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor

__all__ = [
    "at_least_float32",
    "check_choice",
    "check_finite_number",
    "check_input_and_label_values",
    "check_input_range",
    "check_integer",
    "check_integer_labels",
    "check_logits",
    "check_num_classes",
    "check_positive",
    "check_probabilities",
    "check_unit_interval",
    "values_checkable",
]


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


def check_finite_number(value: object, name: str) -> float:
    """Return ``value`` as a float, or raise if it is not a finite real number."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"Expected `{name}` to be a real number, but got {type(value).__name__}.")
    if not math.isfinite(value):
        raise ValueError(f"Expected `{name}` to be finite, but got {value}.")
    return float(value)


def check_positive(value: object, name: str, *, allow_zero: bool = False) -> float:
    """Return ``value`` as a float, or raise if it is not ``> 0`` (``>= 0`` with ``allow_zero``)."""
    number = check_finite_number(value, name)
    if number < 0 or (number == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"Expected `{name}` {bound}, but got {number}.")
    return number


def check_integer(value: object, name: str, *, minimum: int) -> int:
    """Return ``value`` as an int, or raise if it is not an integer ``>= minimum``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"Expected `{name}` to be an int >= {minimum}, but got {value!r}.")
    return int(value)


def check_num_classes(value: object, minimum: int) -> int:
    """Return ``num_classes`` as an int, or raise if it is not an integer ``>= minimum``."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"Expected `num_classes` to be an int, but got {type(value).__name__}.")
    if value < minimum:
        raise ValueError(f"Expected `num_classes` >= {minimum}, but got {value}.")
    return int(value)


def check_unit_interval(value: object, name: str) -> float:
    """Return ``value`` as a float, or raise if it is outside ``[0, 1]``."""
    number = check_finite_number(value, name)
    if not 0.0 <= number <= 1.0:
        raise ValueError(f"Expected `{name}` in [0, 1], but got {number}.")
    return number


def check_choice(value: object, name: str, choices: Sequence[object]) -> None:
    """Raise if ``value`` is not one of ``choices``."""
    if value not in choices:
        options = ", ".join(repr(c) for c in choices)
        raise ValueError(f"Expected `{name}` to be one of {options}, but got {value!r}.")


def check_integer_labels(
    target: Tensor,
    num_classes: int | None,
    *,
    name: str = "target",
    batch_size: int | None = None,
    check_values: bool = True,
) -> None:
    """Check that ``target`` holds integer class indices in ``[0, num_classes)``.

    With ``num_classes=None`` only the lower bound is checked.

    Shape:
        - target: $(N,)$, integer dtype. ``N`` must equal ``batch_size`` when given.
    """
    if not isinstance(target, Tensor):
        raise TypeError(f"Expected `{name}` to be a torch.Tensor, but got {type(target).__name__}.")
    if target.is_floating_point() or target.is_complex() or target.dtype == torch.bool:
        raise TypeError(
            f"Expected `{name}` to hold integer class indices (torch.long), but got dtype "
            f"{target.dtype}. Pass class indices, e.g. `{name}.long()`, not probabilities."
        )
    if target.dim() != 1:
        raise ValueError(
            f"Expected `{name}` of shape (N,), but got {tuple(target.shape)}. Pass class indices, not one-hot vectors."
        )
    if batch_size is not None and target.shape[0] != batch_size:
        raise ValueError(f"Expected `{name}` of shape (N,) with N = {batch_size}, but got {tuple(target.shape)}.")
    if check_values and target.numel() > 0:
        low, high = (int(v) for v in torch.aminmax(target))
        _raise_for_labels(name, num_classes, low, high)


def _raise_for_labels(name: str, num_classes: int | None, low: int, high: int) -> None:
    upper = float("inf") if num_classes is None else num_classes
    if low < 0 or high >= upper:
        bound = "N" if num_classes is None else num_classes
        raise ValueError(
            f"Expected `{name}` values in [0, {bound}), but got values in "
            f"[{low}, {high}]. Check `num_classes` and the labels."
        )


def _raise_for_inputs(clip_min: float, clip_max: float, low: float, high: float) -> None:
    if low < clip_min or high > clip_max:
        raise ValueError(
            f"Expected `input` values in [clip_min, clip_max] = [{clip_min}, {clip_max}], but got "
            f"values in [{low:.4g}, {high:.4g}]. Attack in pixel space and put the "
            "normalisation inside the model (torch_absld.Normalize)."
        )


def check_input_range(input: Tensor, clip_min: float, clip_max: float) -> None:
    """Raise if a value of ``input`` lies outside ``[clip_min, clip_max]`` (one host read)."""
    if input.numel() > 0:
        low, high = torch.aminmax(input.detach())
        _raise_for_inputs(clip_min, clip_max, float(low), float(high))


def check_input_and_label_values(
    input: Tensor, clip_min: float, clip_max: float, target: Tensor, num_classes: int
) -> None:
    r"""The value checks of one training step, read back from the device in one transfer.

    ``target`` must already have passed the shape checks of :func:`check_integer_labels`.

    Shape:
        - input: $(N, \dots)$ floating point
        - target: $(N,)$ integers
    """
    if target.numel() == 0:
        return
    bounds = torch.stack([value.double() for value in (*torch.aminmax(input.detach()), *torch.aminmax(target))])
    low, high, label_low, label_high = bounds.tolist()
    _raise_for_labels("target", num_classes, int(label_low), int(label_high))
    _raise_for_inputs(clip_min, clip_max, low, high)


def check_logits(logits: Tensor, name: str, num_classes: int | None = None) -> None:
    """Check that ``logits`` is a floating point tensor of shape ``(N, C)``.

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


def check_probabilities(probs: Tensor, name: str, *, check_values: bool) -> None:
    """Check that ``probs`` holds one probability vector per row.

    Shape:
        - probs: $(N, C)$, non-negative rows summing to 1.
    """
    check_logits(probs, name)
    if check_values and probs.numel() > 0:
        row_sums = probs.detach().float().sum(dim=1)
        bad = (probs.detach() < 0).any() | ((row_sums - 1).abs() > 1e-3).any()
        if bool(bad):
            raise ValueError(
                f"Expected `{name}` to hold probability vectors (non-negative rows summing to 1), "
                "but some rows do not. Pass softmax outputs, not logits."
            )
