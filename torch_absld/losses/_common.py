"""What the baseline losses share: per-sample reductions, the cross-entropy term, checks, the term-weighted module."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .._internal.checks import (
    ValueCheck,
    at_least_float32,
    check_bool,
    check_choice,
    check_device,
    check_integer_labels,
    check_logits,
    label_range_flag,
    logit_flag,
    raise_first,
    values_checkable,
)

__all__ = [
    "SAMPLE_REDUCTIONS",
    "SampleReduction",
    "WeightedTerms",
    "check_batch",
    "check_class_vector",
    "check_logit_batch",
    "check_logit_values",
    "class_vector_flag",
    "masked_kl_elements",
    "masked_kl_rows",
    "per_sample_ce",
    "reduce_samples",
]

SampleReduction = Literal["mean", "sum", "none"]
SAMPLE_REDUCTIONS = ("mean", "sum", "none")


def reduce_samples(per_sample: Tensor, reduction: SampleReduction) -> Tensor:
    """``"mean"`` over the batch, ``"sum"``, or ``"none"`` (the per-sample values themselves).

    An empty batch gives 0 for ``"mean"`` (still part of the autograd graph), not NaN.

    Shape:
        - per_sample: $(N,)$
        - Output: scalar, or $(N,)$ with ``"none"``
    """
    if reduction == "mean":
        return per_sample.sum() if per_sample.numel() == 0 else per_sample.mean()
    if reduction == "sum":
        return per_sample.sum()
    return per_sample


def per_sample_ce(logits: Tensor, target: Tensor) -> Tensor:
    """Each sample's cross-entropy, in float32 whatever the dtype of ``logits``.

    Shape:
        - logits: $(N, C)$
        - target: $(N,)$ int64 classes (checked and cast by the caller)
        - Output: $(N,)$
    """
    return F.cross_entropy(at_least_float32(logits), target, reduction="none")


def masked_kl_elements(log_p: Tensor, log_q: Tensor) -> Tensor:
    r"""The elements $p_c (\log p_c - \log q_c)$ from log-probabilities, 0 where $p_c = 0$.

    A logit of $-\infty$ masks its class: $0 \log 0 = 0$, with finite gradients (the masked
    entries are replaced before the arithmetic, so neither the value nor the gradient is NaN).
    Elsewhere it is exactly ``F.kl_div(log_q, log_p, reduction="none", log_target=True)``.

    Shape:
        - log_p, log_q: $(N, C)$
        - Output: $(N, C)$
    """
    masked = log_p == -math.inf
    safe_p = torch.where(masked, torch.zeros_like(log_p), log_p)
    safe_q = torch.where(masked, torch.zeros_like(log_q), log_q)
    return F.kl_div(safe_q, safe_p, reduction="none", log_target=True)


def masked_kl_rows(log_p: Tensor, log_q: Tensor) -> Tensor:
    r"""Each row's KL, $\sum_c$ of :func:`masked_kl_elements`.

    Shape:
        - log_p, log_q: $(N, C)$
        - Output: $(N,)$
    """
    return masked_kl_elements(log_p, log_q).sum(dim=1)


def check_logit_batch(logits: Mapping[str, Tensor], *, num_classes: int | None = None, hint: str = "") -> int:
    """Check logits of one shape $(N, C)$ on one device (shapes only); return $C$.

    ``num_classes``, when given, is the $C$ they must have; ``hint`` ends a shape error.
    """
    (first_name, first), *others = logits.items()
    check_logits(first, first_name, num_classes)
    for name, value in others:
        check_logits(value, name)
        if value.shape != first.shape:
            raise ValueError(
                f"Expected `{name}` of the shape of `{first_name}`, {tuple(first.shape)}, but got "
                f"{tuple(value.shape)}.{hint}"
            )
        check_device(value, first.device, name, f"`{first_name}`")
    check_device(first, None, first_name, "")
    return int(first.shape[1])


def check_logit_values(logits: Mapping[str, Tensor], *others: ValueCheck) -> None:
    r"""Read the logits' value checks (finite; $-\infty$ masks a class) and ``others`` in one transfer.

    Skipped while compiling (a data-dependent branch would break the graph).
    """
    if values_checkable(True):
        raise_first([*others, *(logit_flag(value, name) for name, value in logits.items())])


def check_batch(
    logits: Mapping[str, Tensor],
    target: Tensor,
    *,
    num_classes: int | None = None,
    check_values: bool = True,
    class_vectors: Mapping[str, Tensor] | None = None,
    hint: str = "",
) -> tuple[int, Tensor]:
    r"""Check logits $(N, C)$ of one shape, labels $(N,)$ and per-class vectors $(C,)$; return $C$ and the labels.

    Shapes, dtypes and devices are always checked; labels of any integer dtype come back as
    int64. With ``check_values`` (and not while compiling) the values are read from the device
    once, all together: labels in $[0, C)$, logits finite ($-\infty$ masks a class), and each
    per-class vector finite and $\ge 0$.
    """
    classes = check_logit_batch(logits, num_classes=num_classes, hint=hint)
    first = next(iter(logits.values()))
    target = check_integer_labels(
        target, classes, batch_size=first.shape[0], check_values=False, device=first.device, owner="the logits"
    )
    vectors = class_vectors or {}
    for name, vector in vectors.items():
        check_class_vector(vector, name, classes, first.device)
    if check_values:
        flags = [class_vector_flag(vector, name) for name, vector in vectors.items()]
        check_logit_values(logits, label_range_flag(target, classes), *flags)
    return classes, target


def check_class_vector(value: Tensor, name: str, num_classes: int, device: torch.device | None = None) -> None:
    """Raise unless ``value`` is a floating point tensor of shape $(C,)$ (one number per class) on ``device``."""
    if not isinstance(value, Tensor) or not value.is_floating_point() or value.shape != (num_classes,):
        got = f"{value.dtype} of shape {tuple(value.shape)}" if isinstance(value, Tensor) else type(value).__name__
        raise ValueError(f"Expected `{name}` to be a floating point tensor of shape ({num_classes},), but got {got}.")
    check_device(value, device, name, "the logits")


def class_vector_flag(value: Tensor, name: str) -> ValueCheck:
    """Whether a per-class weight is not finite or is negative, and the error."""
    detached = value.detach()
    flag = ~torch.isfinite(detached).all() | (detached < 0).any()

    def raise_error() -> None:
        raise ValueError(
            f"Expected `{name}` to hold finite values >= 0, but got {detached.cpu().tolist()}. Pass per-class "
            "weights, e.g. the controller's buffer."
        )

    return flag, raise_error


class WeightedTerms(nn.Module):
    """Base of a loss that is a weighted sum of terms: ``loss = combine(*terms(...))``.

    Subclasses set :attr:`coefficients` and implement ``terms`` (each term reduced as the
    loss's ``reduction`` says) and ``forward`` (``self.combine(*self.terms(...))``).
    """

    coefficients: tuple[float, ...]
    reduction: str
    validate_args: bool

    def __init__(self, reduction: str, reductions: tuple[str, ...], validate_args: bool) -> None:
        """Check and keep ``reduction`` (one of ``reductions``) and ``validate_args``."""
        super().__init__()
        check_choice(reduction, "reduction", reductions)
        self.reduction = reduction
        self.validate_args = check_bool(validate_args, "validate_args")

    def combine(self, *terms: Tensor) -> Tensor:
        r"""The loss from its terms: $\sum_k c_k \cdot \mathrm{term}_k$ with the loss's coefficients."""
        if len(terms) != len(self.coefficients):
            raise ValueError(f"Expected {len(self.coefficients)} terms, but got {len(terms)}.")
        total = self.coefficients[0] * terms[0]
        for coefficient, term in zip(self.coefficients[1:], terms[1:]):
            total = total + coefficient * term
        return total
