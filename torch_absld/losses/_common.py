"""What the baseline losses share: per-sample reductions, the cross-entropy term, checks, the term-weighted module."""

from __future__ import annotations

from typing import Literal

import torch.nn.functional as F
from torch import Tensor, nn

from .._internal.checks import at_least_float32, check_integer_labels, check_logits, values_checkable

__all__ = ["SAMPLE_REDUCTIONS", "SampleReduction", "WeightedTerms", "check_batch", "per_sample_ce", "reduce_samples"]

SampleReduction = Literal["mean", "sum", "none"]
SAMPLE_REDUCTIONS = ("mean", "sum", "none")


def reduce_samples(per_sample: Tensor, reduction: SampleReduction) -> Tensor:
    """``"mean"`` over the batch, ``"sum"``, or ``"none"`` (the per-sample values themselves).

    Shape:
        - per_sample: $(N,)$
        - Output: scalar, or $(N,)$ with ``"none"``
    """
    if reduction == "mean":
        return per_sample.mean()
    if reduction == "sum":
        return per_sample.sum()
    return per_sample


def per_sample_ce(logits: Tensor, target: Tensor) -> Tensor:
    """Each sample's cross-entropy, in float32 whatever the dtype of ``logits``.

    Shape:
        - logits: $(N, C)$
        - target: $(N,)$ integer classes
        - Output: $(N,)$
    """
    return F.cross_entropy(at_least_float32(logits), target, reduction="none")


def check_batch(
    logits: dict[str, Tensor], target: Tensor | None, *, num_classes: int | None = None, check_values: bool = True
) -> int:
    """Check logits of one shape $(N, C)$ and, when given, labels $(N,)$ in $[0, C)$; return $C$.

    ``check_values`` reads the label range from the device (one host sync, skipped while compiling).
    """
    (first_name, first), *others = logits.items()
    check_logits(first, first_name, num_classes)
    for name, value in others:
        check_logits(value, name)
        if value.shape != first.shape:
            raise ValueError(
                f"Expected `{name}` of the shape of `{first_name}`, {tuple(first.shape)}, but got {tuple(value.shape)}."
            )
    classes = int(first.shape[1])
    if target is not None:
        checking = check_values and values_checkable(True)
        check_integer_labels(target, classes, batch_size=first.shape[0], check_values=checking)
    return classes


class WeightedTerms(nn.Module):
    """Base of a loss that is a weighted sum of terms: ``loss = combine(*terms(...))``.

    Subclasses set :attr:`coefficients` and implement ``terms`` (each term reduced as the
    loss's ``reduction`` says) and ``forward`` (``self.combine(*self.terms(...))``).
    """

    coefficients: tuple[float, ...]

    def combine(self, *terms: Tensor) -> Tensor:
        r"""The loss from its terms: $\sum_k c_k \cdot \mathrm{term}_k$ with the loss's coefficients."""
        if len(terms) != len(self.coefficients):
            raise ValueError(f"Expected {len(self.coefficients)} terms, but got {len(terms)}.")
        total = self.coefficients[0] * terms[0]
        for coefficient, term in zip(self.coefficients[1:], terms[1:]):
            total = total + coefficient * term
        return total
