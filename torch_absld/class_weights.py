r"""Per-class loss weights from each class's vulnerability (Fair-ARD), updated once per epoch."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import Tensor
from typing_extensions import Self

from ._internal.checks import (
    ProcessGroupArg,
    ValueCheck,
    check_positive,
    label_range_flag,
    raise_first,
    values_checkable,
)
from ._internal.modules import loaded_tensor
from .stats import ClassStatistics, class_means

__all__ = ["VulnerabilityWeights", "vulnerability_weights"]

DEFAULT_BETA = 2.0
r"""Fair-ARD's exponent $\beta$ (``--beta 2.0``, ``Fair-ARD.py`` and the README's commands)."""
DEFAULT_MIN_WEIGHT = 5 / 6
"""Lower clamp of a class weight (hard-coded in ``weight_assign`` of every official Fair-* script)."""
DEFAULT_MAX_WEIGHT = 5 / 2
"""Upper clamp of a class weight (hard-coded in ``weight_assign``)."""
KAPPA_EPS = 1e-5
"""Added to the mean kappa before the power, as ``weight_assign`` does (a class never classified correctly)."""


def vulnerability_weights(
    weights: Tensor,
    mean_kappa: Tensor,
    present: Tensor,
    *,
    beta: float = DEFAULT_BETA,
    min_weight: float = DEFAULT_MIN_WEIGHT,
    max_weight: float = DEFAULT_MAX_WEIGHT,
) -> Tensor:
    r"""Fair-ARD's class weights from each class's mean $\bar\kappa_k$ (``weight_assign`` of the official code).

    $r_k = \big(1 / (\bar\kappa_k + 10^{-5})\big)^{\beta}$, then
    $w_k = \mathrm{clip}\big(|P|\, r_k / \sum_{j \in P} r_j,\ w_{\min},\ w_{\max}\big)$ over the set $P$
    of classes seen this epoch: the weights are normalised to mean 1 **before** the clamp and not
    renormalised after it, as in the official code. A class with a lower $\bar\kappa$ (its samples
    lose their label after fewer attack steps: more vulnerable) gets a larger weight. Classes
    outside $P$ keep their weight and stay out of the normalisation (the official code assumes every
    class is present: with all $C$ present, $|P| = C$ is its ``sum_value``).

    Args:
        weights: current class weights (kept for the classes outside ``present``).
        mean_kappa: per-class mean $\kappa$ of the epoch; entries outside ``present`` are ignored.
        present: which classes had at least one sample.
        beta: the exponent $\beta$.
        min_weight: lower clamp.
        max_weight: upper clamp.

    Shape:
        - weights, mean_kappa, present: $(C,)$
        - Output: $(C,)$, dtype of ``weights``

    Example:
        >>> vulnerability_weights(torch.ones(3), torch.tensor([1.0, 2.0, 4.0]), torch.ones(3, dtype=torch.bool))
        tensor([2.2857, 0.8333, 0.8333])
    """
    beta, min_weight, max_weight = _check_rule_options(beta, min_weight, max_weight)
    _check_class_vectors(weights, mean_kappa, present)
    detached = mean_kappa.detach()
    bad = (present & ~(torch.isfinite(detached) & (detached >= 0))).any()
    any_present, bad_kappa = torch.stack([present.any(), bad]).tolist()
    if bad_kappa:
        raise ValueError(
            f"Expected `mean_kappa` finite and >= 0 for every class in `present`, but got {detached.tolist()}."
        )
    if not any_present:
        return weights.clone()
    return _weights(weights, mean_kappa, present, beta, min_weight, max_weight)


def _check_rule_options(beta: object, min_weight: object, max_weight: object) -> tuple[float, float, float]:
    beta = check_positive(beta, "beta", allow_zero=True)
    low, high = check_positive(min_weight, "min_weight"), check_positive(max_weight, "max_weight")
    if low > high:
        raise ValueError(f"Expected `min_weight` <= `max_weight`, but got {low} > {high}.")
    return beta, low, high


def _check_class_vectors(weights: Tensor, mean_kappa: Tensor, present: Tensor) -> None:
    for name, value in (("weights", weights), ("mean_kappa", mean_kappa), ("present", present)):
        if not isinstance(value, Tensor):
            raise TypeError(f"Expected `{name}` to be a torch.Tensor, but got {type(value).__name__}.")
    if not weights.is_floating_point() or weights.dim() != 1:
        raise ValueError(
            f"Expected `weights` to be a floating point tensor of shape (C,), but got {weights.dtype} "
            f"of shape {tuple(weights.shape)}."
        )
    for name, value in (("mean_kappa", mean_kappa), ("present", present)):
        if value.shape != weights.shape:
            raise ValueError(
                f"Expected `{name}` of the shape of `weights`, {tuple(weights.shape)}, but got {tuple(value.shape)}."
            )
    if present.dtype != torch.bool:
        raise TypeError(f"Expected `present` to be a bool tensor (which classes were seen), but got {present.dtype}.")


def _weights(
    weights: Tensor, mean_kappa: Tensor, present: Tensor, beta: float, min_weight: float, max_weight: float
) -> Tensor:
    """:func:`vulnerability_weights` without its checks (the arguments are checked by the caller)."""
    kappa = torch.where(present, mean_kappa.to(torch.float64), torch.zeros_like(mean_kappa, dtype=torch.float64))
    ratio = torch.where(present, (1 / (kappa + KAPPA_EPS)) ** beta, torch.zeros_like(kappa))
    normalised = ratio * present.sum() / ratio.sum()
    clamped = normalised.clamp(min_weight, max_weight)
    return torch.where(present, clamped, weights.to(torch.float64)).to(weights.dtype)


class VulnerabilityWeights(ClassStatistics):
    r"""Fair-ARD's per-class weights $w \in \mathbb{R}^C$, driven by each class's vulnerability $\bar\kappa$.

    A :class:`~torch_absld.stats.ClassStatistics` of one quantity, $\kappa_i$: the number of
    iterates of the training attack (the start and the first $K - 1$ steps) at which the student
    still classifies sample $i$ correctly (see :class:`~torch_absld.attack.CountingObjective`).
    During an epoch :meth:`update` adds each sample's $\kappa_i$ into its class's sums (no
    gradient, no host sync, compile-friendly); :meth:`step` at the end of the epoch all-reduces
    the sums across ranks, sets $\bar\kappa_k$ to the per-class mean and the weights by
    :func:`vulnerability_weights`, and resets the sums. The weights start at 1 (the first epoch
    is plain ARD / RSLAD) and serve the whole next epoch. The authors divide the class sums by
    $N / C$ (a balanced training set); the per-class mean is the same there and right on
    imbalanced data.

    Args:
        num_classes: number of classes $C$.
        beta: the exponent $\beta$ (2, ``Fair-ARD.py``).
        min_weight: lower clamp (5/6, ``weight_assign``).
        max_weight: upper clamp (5/2, ``weight_assign``).
        process_group: group whose ranks share one epoch; ``None`` is the default group.
        validate_args: check label values in eager mode (one host sync per call).

    Shape:
        - ``forward(target)``: target $(N,)$ -> $(N,)$ float32, each sample's class weight
        - ``update(kappa, target)``: kappa $(N,)$, target $(N,)$

    Example:
        >>> ctrl = VulnerabilityWeights(3)
        >>> ctrl.update(torch.tensor([1.0, 2.0, 4.0]), torch.tensor([0, 1, 2]))
        >>> ctrl.step()
        tensor([2.2857, 0.8333, 0.8333])
    """

    weights: Tensor

    def __init__(
        self,
        num_classes: int,
        *,
        beta: float = DEFAULT_BETA,
        min_weight: float = DEFAULT_MIN_WEIGHT,
        max_weight: float = DEFAULT_MAX_WEIGHT,
        process_group: ProcessGroupArg = None,
        validate_args: bool = True,
    ) -> None:
        super().__init__(num_classes, process_group=process_group, validate_args=validate_args)
        self.beta, self.min_weight, self.max_weight = _check_rule_options(beta, min_weight, max_weight)
        self.epochs_stepped = 0
        self.register_buffer("weights", torch.ones(self.num_classes, dtype=torch.float32))

    def _apply(self, fn: Callable[[Tensor], Tensor], recurse: bool = True) -> Self:
        """Follow device moves but keep the weights in float32 under whole-module casts (``.half()``)."""
        weights = self.weights
        super()._apply(fn, recurse)
        self.weights = weights.to(device=self.weights.device)
        return self

    def forward(self, target: Tensor) -> Tensor:
        """Each sample's class weight $w_{y_i}$.

        Shape:
            - target: $(N,)$ integer classes
            - Output: $(N,)$ float32
        """
        return self.weights[self._checked_labels(target)]

    def update(self, values: Tensor, target: Tensor) -> None:
        r"""Add each sample's $\kappa_i$ (a count, as a floating point tensor) into its class's sums.

        In eager mode with ``validate_args``: the labels' range and the counts ($\ge 0$) in one read.

        Shape:
            - values: $(N,)$ floating point; target: $(N,)$ integer classes
        """
        self._check_values(values)
        target = self._checked_labels(target, values.shape[0], check_values=False)
        if values_checkable(self.validate_args):
            raise_first([label_range_flag(target, self.num_classes), _count_flag(values)])
        self._update(values, target)

    def _update(self, values: Tensor, target: Tensor) -> None:
        self.accumulate(values, target, validate=False)

    def class_kappa(self) -> tuple[Tensor, Tensor]:
        r"""This epoch's per-class mean $\bar\kappa$ so far on this rank, and which classes were seen.

        Shape:
            - Output: mean $(C,)$ float64 (``NaN`` for unseen classes), present $(C,)$ bool
        """
        means, present = class_means(self.accumulator)
        return means[0], present

    @torch.no_grad()
    def step(self) -> Tensor:
        r"""End the epoch: sync the sums across ranks, set the weights, reset the sums.

        Raises:
            ValueError: if an accumulated $\kappa$ is not finite (weights and sums are left as they are).

        Returns:
            The new weights, shape $(C,)$ (the buffer itself).
        """
        synced = self.synced()
        if not bool(torch.isfinite(synced).all()):
            raise ValueError(
                f"Expected finite accumulated `kappa` at `step()`, but got sums {synced[0].tolist()}; "
                "the weights were left unchanged."
            )
        means, present = class_means(synced)
        new = _weights(self.weights, means[0], present, self.beta, self.min_weight, self.max_weight)
        self.weights.copy_(new)
        self.reset()
        self.epochs_stepped += 1
        return self.weights

    def get_extra_state(self) -> dict[str, Any]:
        """The epoch counter."""
        return {"epochs_stepped": self.epochs_stepped}

    def set_extra_state(self, state: Any) -> None:
        """Restore what :meth:`get_extra_state` saved."""
        self.epochs_stepped = _checked_epochs(state)

    def _check_loaded_state(self, state_dict: Mapping[str, Any], prefix: str) -> None:
        """Reject corrupt weights or extra state before anything of the checkpoint is copied."""
        weights = loaded_tensor(state_dict, prefix, "weights", self.weights)
        if weights is not None:
            values = weights.detach().to("cpu", torch.float64)
            # A weight is 1 (never set) or clamped into [min_weight, max_weight] (float32 rounding allowed).
            inside = (values >= self.min_weight * (1 - 1e-6)) & (values <= self.max_weight * (1 + 1e-6))
            if not bool((torch.isfinite(values) & (inside | (values == 1))).all()):
                raise ValueError(
                    f"Expected the loaded `weights` to be finite and > 0, each 1 or in [min_weight, max_weight] = "
                    f"[{self.min_weight:.4g}, {self.max_weight:.4g}], but got {values.tolist()}. The checkpoint is "
                    "corrupt or comes from a run with other bounds."
                )
        if prefix + "_extra_state" in state_dict:
            _checked_epochs(state_dict[prefix + "_extra_state"])

    def extra_repr(self) -> str:
        return (
            f"num_classes={self.num_classes}, beta={self.beta:.4g}, min_weight={self.min_weight:.4g}, "
            f"max_weight={self.max_weight:.4g}"
        )


def _count_flag(values: Tensor) -> ValueCheck:
    detached = values.detach()
    flag = (detached < 0).any()  # a non-finite count is caught by `step()`, which then changes nothing

    def raise_error() -> None:
        raise ValueError(
            f"Expected `values` (each sample's kappa, a count of attack iterates) >= 0, but got "
            f"{detached.cpu().tolist()}."
        )

    return flag, raise_error


def _checked_epochs(state: Any) -> int:
    epochs = state.get("epochs_stepped") if isinstance(state, dict) else None
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 0:
        raise ValueError(f"Expected the extra state to be a dict with an int 'epochs_stepped' >= 0, but got {state!r}.")
    return epochs
