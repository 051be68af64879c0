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
from .._internal.modules import settings_repr

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

    A $-\infty$ in ``p_logits`` masks its class: $0 \log 0 = 0$ with finite gradients.
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
    r"""Check logits $(N, C)$ of one shape and device (``owner``'s), labels $(N,)$ and per-class vectors $(C,)$.

    Values with ``validate_args`` in one read: labels in $[0, C)$, logits finite or $-\infty$, vectors finite,
    $\ge 0$. Returns the labels as int64 (None stays None).
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

    Subclasses set :attr:`inputs` (``forward``'s tensors: logits, then ``target`` if used), :attr:`coefficients`
    and ``_sample_terms`` (each term per sample, $(N,)$). ``_terms`` / ``_forward`` skip the checks.
    """

    inputs: tuple[str, ...]
    coefficients: tuple[float, ...]
    shown: tuple[str, ...] = ()  # options in the repr, before ``reduction``
    num_classes: int | None = None
    _sample_terms: Callable[..., tuple[Tensor, ...]]

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

    def terms(self, *args: Any, **kwargs: Any) -> tuple[Tensor, ...]:
        """Each term reduced, before :attr:`coefficients`; arguments :attr:`inputs` (positional or keyword)."""
        named, options = self._bind(args, kwargs)
        logits = {name: value for name, value in named.items() if name != "target"}
        owner = self._owner()
        target = check_batch(
            logits, named.get("target"), num_classes=self.num_classes, owner=owner, validate_args=self.validate_args
        )
        return self._terms(**(named | ({} if target is None else {"target": target})), **options)

    def _terms(self, *args: Any, **kwargs: Any) -> tuple[Tensor, ...]:
        named, options = self._bind(args, kwargs)
        return tuple(reduce(term, self.reduction) for term in self._sample_terms(**named, **options))

    def _bind(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
        named = dict(zip(self.inputs, args)) | {n: kwargs.pop(n) for n in self.inputs[len(args) :] if n in kwargs}
        if len(args) > len(self.inputs) or len(named) < len(self.inputs):
            raise TypeError(
                f"Expected {type(self).__name__} to take {', '.join(self.inputs)}, but got {len(args)} positional "
                f"arguments and the keywords {sorted(named)[len(args) :]}."
            )
        return named, kwargs

    def _owner(self) -> tuple[torch.device, str] | None:
        return None

    def extra_repr(self) -> str:
        return settings_repr(self, (*self.shown, "reduction"))

    def combine(self, *terms: Tensor) -> Tensor:
        r"""$\sum_k c_k \cdot \mathrm{term}_k$ with the loss's coefficients."""
        total = self.coefficients[0] * terms[0]
        for coefficient, term in zip(self.coefficients[1:], terms[1:]):
            total = total + coefficient * term
        return total
