r"""FRL's Lagrange multipliers (Xu et al. 2021, Reweight + Remargin): class weights and radii from validation errors."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.distributed as dist
from torch import Tensor

from ._internal.checks import (
    ProcessGroupArg,
    ValueCheck,
    check_bool,
    check_integer,
    check_positive,
    check_unit_interval,
)
from ._internal.distributed import all_reduce_sum, is_distributed
from .class_eps import ClassEpsilon, missing_classes
from .stats import Bound, Bounds
from .validation import CorrectCounts

__all__ = ["FRLMultipliers", "frl_class_weights"]

DEFAULT_THRESHOLD = 0.05  # tau of both constraints, the ABSLD paper's Reweight+Remargin setting
DEFAULT_RATE = 0.05  # Step $\alpha_1$ of the weight multipliers (``--rate1 0.05``, ``frlrmrw.py``).
DEFAULT_EPS_RATE = 0.2  # Step $\alpha_2$ of the radius multipliers (``--rate2 0.2``, ``frlrmrw.py``).
DEFAULT_LIMIT = 0.5  # Bound on the sum of each set of weight multipliers (``--lim 0.5``, ``frlrmrw.py``).
DEFAULT_HALVE_EVERY = 40  # alpha_1 halves when ``now_epoch % 40 == 0`` (``frlrmrw.py``)
SCALE_BOUNDS = (0.98, 3.0)  # clamp of the radius scale (``cost_sensitive``, ``utils_frl2.py``)


def _project(multipliers: Tensor, limit: float) -> Tensor:
    """Clamped at 0, scaled down to ``sum <= limit`` (``normalize_lambda``)."""
    positive = multipliers.clamp_min(0)
    total = positive.sum()
    return torch.where(total > limit, positive * (limit / total), positive)


def _multiplier_update(
    lam: Tensor, accuracy: Tensor, overall: Tensor, threshold: tuple[float, float], *rates: float
) -> Tensor:
    r"""FRL's multipliers' update from validation accuracies (``frl_train`` of ``utils_frl2.py``).

    Natural error $e_k = 1 - a_k$, boundary error $b_k = a_k - r_k$ (``accuracy`` $(2, C)$), $E$, $B$ over
    the split (``overall`` $(2,)$): $\gamma^{nat}_k = e_k - E - \tau_1$, $\gamma^{bndy}_k = b_k - B - \tau_2$,
    $\lambda^{nat} \leftarrow \Pi(\lambda^{nat} + \alpha_1 \gamma^{nat})$, $\lambda^{bndy} \leftarrow
    \Pi(\lambda^{bndy} + 2\alpha_1 \gamma^{bndy})$, $\lambda^{\epsilon} \mathrel{+}= \alpha_2 \gamma^{bndy}$
    ($\Pi$: clamp at 0, scale to sum <= ``limit``). ``lam``, output $(3, C)$; ``rates``: $\alpha_1, \alpha_2$, limit.
    """
    (rate, eps_rate, limit), lam = rates, lam.to(torch.float64)
    (class_clean, class_robust), (clean, robust) = accuracy, overall
    natural_gap = (1 - class_clean) - (1 - clean) - threshold[0]
    boundary_gap = (class_clean - class_robust) - (clean - robust) - threshold[1]
    natural, boundary = _project(lam[0] + rate * natural_gap, limit), _project(lam[1] + 2 * rate * boundary_gap, limit)
    return torch.stack([natural, boundary, lam[2] + eps_rate * boundary_gap])


def frl_class_weights(multipliers: Tensor) -> Tensor:
    r"""Class weights $w_k = 1/C + \lambda_k - \frac1C \sum_j \lambda_j$ (``cost_sensitive``, for any $C$), $(..., C)$.

    Example:
        >>> frl_class_weights(torch.tensor([0.3, 0.0, 0.0]))
        tensor([0.5333, 0.2333, 0.2333])
    """
    if not isinstance(multipliers, Tensor) or not multipliers.is_floating_point() or multipliers.dim() < 1:
        got = f"{multipliers.dtype} {tuple(multipliers.shape)}" if isinstance(multipliers, Tensor) else multipliers
        raise ValueError(f"Expected `multipliers` to be a floating point tensor of shape (..., C), but got {got}.")
    return 1 / multipliers.shape[-1] + multipliers - multipliers.mean(dim=-1, keepdim=True)


class FRLMultipliers(ClassEpsilon, CorrectCounts):
    r"""FRL's Reweight + Remargin: per-class loss weights and radii from class-wise errors on a validation split.

    :meth:`step` updates the multipliers (:func:`_multiplier_update`; $\alpha_1$ = ``rate`` halves every
    ``halve_every`` updates) from the counts of :meth:`record`, summed across ranks, and sets :attr:`scale`
    $= \mathrm{clip}(\exp(2\lambda^\epsilon), 0.98, 3)$ and the weights $w(\lambda^{nat})$, $w(\lambda^{bndy})$
    (:func:`frl_class_weights`). Start: $\lambda = 0$ (TRADES). ``threshold``: $\tau_1, \tau_2$ (or one).

    Example:
        >>> ctrl = FRLMultipliers(2)
        >>> clean, adv = torch.tensor([[2.0, 0.0], [0.0, 1.0]]), torch.tensor([[1.0, 0.0], [1.0, 0.0]])
        >>> ctrl.record(clean, adv, torch.tensor([0, 1]))
        >>> ctrl.step()
        tensor([0.9800, 1.1972], dtype=torch.float64)
    """

    multipliers: Tensor
    shown = ("num_classes", "threshold", "rate", "eps_rate", "limit", "halve_every", "begin_epoch")
    natural_weights: Tensor
    boundary_weights: Tensor

    def __init__(
        self,
        num_classes: int,
        *,
        threshold: float | tuple[float, float] = DEFAULT_THRESHOLD,
        rate: float = DEFAULT_RATE,
        eps_rate: float = DEFAULT_EPS_RATE,
        limit: float = DEFAULT_LIMIT,
        halve_every: int | None = DEFAULT_HALVE_EVERY,
        begin_epoch: int = 0,
        scale_step: bool = True,
        process_group: ProcessGroupArg = None,
        validate_args: bool = True,
    ) -> None:
        super().__init__(num_classes, 2, begin_epoch=begin_epoch, scale_step=scale_step, process_group=process_group)
        self.validate_args = check_bool(validate_args, "validate_args")
        pair = threshold if isinstance(threshold, Sequence) and not isinstance(threshold, str) else (threshold,) * 2
        if len(pair) != 2:
            raise ValueError(f"Expected `threshold` to be a number or a pair of numbers, but got {threshold!r}.")
        self.threshold = (check_unit_interval(pair[0], "threshold"), check_unit_interval(pair[1], "threshold"))
        self.rate = check_positive(rate, "rate", allow_zero=True)
        self.eps_rate = check_positive(eps_rate, "eps_rate", allow_zero=True)
        self.limit = check_unit_interval(limit, "limit")
        self.halve_every = None if halve_every is None else check_integer(halve_every, "halve_every", minimum=1)
        uniform = torch.full((self.num_classes,), 1 / self.num_classes, dtype=torch.float64)
        self.register_buffer("multipliers", torch.zeros(3, self.num_classes, dtype=torch.float64))
        self.register_buffer("natural_weights", uniform)
        self.register_buffer("boundary_weights", uniform.clone())

    @torch.no_grad()
    def union_batch(self, target: Tensor) -> tuple[Tensor, tuple[Tensor, Tensor]] | None:
        r"""Under ``torch.distributed``: the classes in all ranks' labels $(C,)$ and the loss's normalizers.

        One ``all_reduce`` of the class counts $n$: normalizers $(n \cdot w^{nat}, n \cdot w^{bndy}) / R$ ($R$ ranks).
        """
        group = self.process_group
        if group is False or not is_distributed(group):
            return None
        target = self._checked_labels(target, check_values=False)
        ones = torch.ones(target.shape, dtype=torch.float64, device=target.device)
        counts = all_reduce_sum(torch.zeros_like(self.scale).index_add_(0, target, ones), group)
        ranks = dist.get_world_size(group)
        return counts > 0, (counts @ self.natural_weights / ranks, counts @ self.boundary_weights / ranks)

    def rate_at(self, update: int) -> float:
        r"""$\alpha_1$ at update number ``update`` (from 1): halved at every multiple of ``halve_every``."""
        halvings = 0 if self.halve_every is None else update // self.halve_every
        return float(self.rate / 2**halvings)

    def rule(self, synced: Tensor) -> tuple[dict[str, Tensor], list[ValueCheck]]:
        correct, counts = synced[:2], synced[2]
        options = (self.threshold, self.rate_at(self.updates + 1), self.eps_rate, self.limit)
        accuracy, overall = correct / counts, correct.sum(dim=1) / counts.sum()
        multipliers = _multiplier_update(self.multipliers, accuracy, overall, *options)
        new = {
            "multipliers": multipliers,
            "natural_weights": frl_class_weights(multipliers[0]),
            "boundary_weights": frl_class_weights(multipliers[1]),
            "scale": torch.exp(2 * multipliers[2]).clamp(*SCALE_BOUNDS),
        }
        return new, [missing_classes(counts > 0)]

    def state_bounds(self) -> dict[str, Bounds]:
        projected, weights = Bound(0, self.limit, sum_high=self.limit), Bound(0, 1, sum_low=1, sum_high=1)
        return {
            **super().state_bounds(),
            "multipliers": (projected, projected, Bound()),
            "natural_weights": weights,
            "boundary_weights": weights,
            "scale": Bound(*SCALE_BOUNDS),
        }
