r"""Per-class loss weights from each class's vulnerability (Fair-ARD), updated once per epoch."""

from __future__ import annotations

import torch
from torch import Tensor

from ._internal.checks import (
    ProcessGroupArg,
    ValueCheck,
    check_positive,
    check_values_shape,
    raise_first,
    values_checkable,
)
from .class_eps import EpochController
from .stats import Bound, Bounds, class_means

__all__ = ["VulnerabilityWeights", "vulnerability_weights"]

DEFAULT_BETA = 2.0  # Fair-ARD's exponent $\beta$ (``--beta 2.0``, ``Fair-ARD.py``).
DEFAULT_MIN_WEIGHT = 5 / 6  # Lower clamp of a class weight (``weight_assign`` of every official Fair-* script).
DEFAULT_MAX_WEIGHT = 5 / 2  # Upper clamp of a class weight (``weight_assign``).
KAPPA_EPS = 1e-5  # Added to the mean kappa before the power (``weight_assign``).


def vulnerability_weights(
    weights: Tensor,
    mean_kappa: Tensor,
    present: Tensor,
    *,
    beta: float = DEFAULT_BETA,
    min_weight: float = DEFAULT_MIN_WEIGHT,
    max_weight: float = DEFAULT_MAX_WEIGHT,
    validate_args: bool = True,
) -> Tensor:
    r"""Fair-ARD's class weights from each class's mean $\bar\kappa_k$ (``weight_assign`` of the official code).

    $r_k = (\bar\kappa_k + 10^{-5})^{-\beta}$, $w_k = \mathrm{clip}(|P| r_k / \sum_{j \in P} r_j, w_{\min}, w_{\max})$
    over the classes $P$ seen (``present``); the others keep ``weights``. All $(C,)$, in the dtype of ``weights``.

    Example:
        >>> vulnerability_weights(torch.ones(3), torch.tensor([1.0, 2.0, 4.0]), torch.ones(3, dtype=torch.bool))
        tensor([2.2857, 0.8333, 0.8333])
    """
    beta, min_weight, max_weight = _check_rule_options(beta, min_weight, max_weight)
    for name, value in (("weights", weights), ("mean_kappa", mean_kappa), ("present", present)):
        if not isinstance(value, Tensor) or value.dim() != 1 or value.shape != weights.shape:
            got = tuple(value.shape) if isinstance(value, Tensor) else type(value).__name__
            raise ValueError(f"Expected `{name}` of shape (C,), one value per class like `weights`, but got {got}.")
    if present.dtype != torch.bool or not weights.is_floating_point():
        dtypes = f"{present.dtype} and {weights.dtype}"
        raise TypeError(f"Expected a bool `present` and floating point `weights`, but got {dtypes}.")
    if values_checkable(validate_args):
        detached = mean_kappa.detach()

        def raise_error() -> None:
            got = detached.tolist()
            raise ValueError(f"Expected `mean_kappa` finite and >= 0 for every class in `present`, but got {got}.")

        raise_first([((present & ~(torch.isfinite(detached) & (detached >= 0))).any(), raise_error)])
    return _weights(weights, mean_kappa, present, beta, min_weight, max_weight)


def _check_rule_options(beta: object, min_weight: object, max_weight: object) -> tuple[float, float, float]:
    beta = check_positive(beta, "beta", allow_zero=True)
    low, high = check_positive(min_weight, "min_weight"), check_positive(max_weight, "max_weight")
    if low > high:
        raise ValueError(f"Expected `min_weight` <= `max_weight`, but got {low} > {high}.")
    return beta, low, high


def _weights(
    weights: Tensor, mean_kappa: Tensor, present: Tensor, beta: float, min_weight: float, max_weight: float
) -> Tensor:
    kappa = torch.where(present, mean_kappa.to(torch.float64), torch.zeros_like(mean_kappa, dtype=torch.float64))
    ratio = torch.where(present, (1 / (kappa + KAPPA_EPS)) ** beta, torch.zeros_like(kappa))
    clamped = (ratio * present.sum() / ratio.sum()).clamp(min_weight, max_weight)
    return torch.where(present, clamped, weights.to(torch.float64)).to(weights.dtype)


class VulnerabilityWeights(EpochController):
    r"""Fair-ARD's per-class weights $w \in \mathbb{R}^C$, driven by each class's vulnerability $\bar\kappa$.

    Per-class sums of $\kappa_i$ (attack iterates still correct, :class:`~torch_absld.attack.CountingObjective`);
    :meth:`step` syncs them and sets the weights (start: 1) by :func:`vulnerability_weights` of the means.
    """

    value_bound = Bound(0, integer=True)  # kappa, a count of attack iterates
    shown = ("num_classes", "beta", "min_weight", "max_weight")
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

    def forward(self, target: Tensor) -> Tensor:
        """Each sample's class weight $w_{y_i}$, $(N,)$ float32, for labels $(N,)$."""
        return self.weights[self._checked(target)]

    def update(self, values: Tensor, target: Tensor) -> None:
        r"""Add each sample's $\kappa_i$ (a count, as a floating point tensor) into its class's sums."""
        check_values_shape(values, self.num_stats)
        self._update(values, self._checked(target, values.shape[0], self._value_flag("values", values, target)))

    def _update(self, values: Tensor, target: Tensor) -> None:
        self._accumulate(values, target)

    def step(self) -> Tensor:
        """End the epoch: sync the sums, set the weights by :meth:`rule` (not on non-finite sums), reset them."""
        self._end_epoch()
        return self.weights

    def rule(self, synced: Tensor) -> tuple[dict[str, Tensor], list[ValueCheck]]:
        means, present = class_means(synced)
        return {"weights": _weights(self.weights, means[0], present, self.beta, self.min_weight, self.max_weight)}, []

    def state_bounds(self) -> dict[str, Bounds]:
        return {**super().state_bounds(), "weights": Bound(self.min_weight, self.max_weight, start=1.0)}
