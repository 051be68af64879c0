"""What the baseline losses share: the reduction, the per-sample terms, the batch check, the term-weighted module."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any, Literal

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
    check_logits_alike,
    label_range_flag,
    logit_flag,
    raise_first,
    values_checkable,
)

__all__ = ["REDUCTIONS", "SampleReduction", "WeightedTerms", "check_batch", "kl_rows", "per_sample_ce", "reduce"]

SampleReduction = Literal["mean", "sum", "none"]
REDUCTIONS = ("mean", "sum", "none")


def reduce(per_sample: Tensor, reduction: SampleReduction) -> Tensor:
    """``"none"``: ``per_sample``; ``"mean"``: its mean (0 in the graph for an empty batch); ``"sum"``: its sum."""
    if reduction == "none":
        return per_sample
    return per_sample.sum() if reduction == "sum" or per_sample.numel() == 0 else per_sample.mean()


def per_sample_ce(logits: Tensor, target: Tensor) -> Tensor:
    """Each sample's cross-entropy $(N,)$, in float32 whatever the dtype of ``logits``."""
    return F.cross_entropy(at_least_float32(logits), target, reduction="none")


def kl_rows(p_logits: Tensor, q_logits: Tensor) -> Tensor:
    r"""Each row's $\mathrm{KL}(\mathrm{softmax}\,p \,\|\, \mathrm{softmax}\,q)$, $(N,)$, with gradients through both.

    (:func:`torch_absld.kl.soft_label_kl` detaches $p$.) A $-\infty$ in ``p_logits`` masks its class: $0 \log 0 = 0$
    with finite gradients (the masked entries are replaced before the arithmetic).
    """
    log_p = torch.log_softmax(at_least_float32(p_logits), dim=1)
    log_q = torch.log_softmax(at_least_float32(q_logits), dim=1)
    masked = log_p == -math.inf
    safe_p, safe_q = (torch.where(masked, torch.zeros_like(t), t) for t in (log_p, log_q))
    return F.kl_div(safe_q, safe_p, reduction="none", log_target=True).sum(dim=1)


def check_batch(
    logits: Mapping[str, Tensor],
    target: Tensor | None = None,
    *,
    validate_args: bool = True,
    num_classes: int | None = None,
    class_vectors: Mapping[str, Tensor] | None = None,
    owner: tuple[torch.device, str] | None = None,
    reduction: str = "mean",
) -> Tensor:
    r"""Check logits $(N, C)$ of one shape and device, labels $(N,)$ and per-class vectors $(C,)$.

    ``reduction``, shapes, dtypes and devices always (on ``owner``'s device); with ``validate_args`` and
    not while compiling, the values in one read: labels in $[0, C)$, logits finite ($-\infty$ masks
    a class), vectors finite and $\ge 0$. Returns the labels as int64 (``target`` unchanged when None).
    """
    check_choice(reduction, "reduction", REDUCTIONS)
    (first_name, first), *_ = logits.items()
    check_logits(first, first_name, num_classes)
    device, where = owner if owner is not None else (None, "")
    classes = check_logits_alike(list(logits.items()), device, where)
    flags = [logit_flag(value, name) for name, value in logits.items()]
    if target is not None:
        target = check_integer_labels(
            target, classes, batch_size=first.shape[0], check_values=False, device=first.device, owner="the logits"
        )
        flags.append(label_range_flag(target, classes))
    for name, vector in (class_vectors or {}).items():
        if not isinstance(vector, Tensor) or not vector.is_floating_point() or vector.shape != (classes,):
            got = f"{vector.dtype} {tuple(vector.shape)}" if isinstance(vector, Tensor) else type(vector).__name__
            raise ValueError(f"Expected `{name}` to be a floating point tensor of shape ({classes},), but got {got}.")
        check_device(vector, first.device, name, "the logits")
        flags.append(_class_vector_flag(vector, name))
    if values_checkable(validate_args):
        raise_first(flags)
    return target  # type: ignore[return-value]


def _class_vector_flag(vector: Tensor, name: str) -> ValueCheck:
    detached = vector.detach()

    def raise_error() -> None:
        raise ValueError(f"Expected `{name}` to hold finite values >= 0, but got {detached.cpu().tolist()}.")

    return ~torch.isfinite(detached).all() | (detached < 0).any(), raise_error


class WeightedTerms(nn.Module):
    """Base of a loss that is a weighted sum of reduced terms: ``forward(...) = combine(*terms(...))``.

    Subclasses set :attr:`coefficients` and implement ``terms`` (checks once, then ``_terms``) and
    ``_terms`` (unchecked); ``_forward`` is ``forward`` without the checks. ``validate_args``: check the
    values in eager mode (one read from the device per call).
    """

    coefficients: tuple[float, ...]
    shown: tuple[str, ...] = ()  # options in the repr, before ``reduction``
    terms: Callable[..., tuple[Tensor, ...]]
    _terms: Callable[..., tuple[Tensor, ...]]

    def __init__(self, reduction: SampleReduction, validate_args: bool) -> None:
        super().__init__()
        check_choice(reduction, "reduction", REDUCTIONS)
        self.reduction: SampleReduction = reduction
        self.validate_args = check_bool(validate_args, "validate_args")

    def forward(self, *args: Any, **kwargs: Any) -> Tensor:
        """The loss: ``combine(*terms(...))``, with the arguments of ``terms``."""
        return self.combine(*self.terms(*args, **kwargs))

    def _forward(self, *args: Any, **kwargs: Any) -> Tensor:
        return self.combine(*self._terms(*args, **kwargs))

    def extra_repr(self) -> str:
        shown = {name: getattr(self, name) for name in self.shown} | {"reduction": self.reduction}
        return ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v!r}" for k, v in shown.items())

    def combine(self, *terms: Tensor) -> Tensor:
        r"""$\sum_k c_k \cdot \mathrm{term}_k$ with the loss's coefficients."""
        total = self.coefficients[0] * terms[0]
        for coefficient, term in zip(self.coefficients[1:], terms[1:]):
            total = total + coefficient * term
        return total
