r"""FRL's Lagrange multipliers (Xu et al. 2021, Reweight + Remargin): class weights and radii from validation errors."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

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
from .validation import _record_correct, record_correct

__all__ = ["FRLMultipliers", "frl_class_weights"]

DEFAULT_THRESHOLD = 0.05  # tau of both constraints, the ABSLD paper's Reweight+Remargin setting
DEFAULT_RATE = 0.05  # Step $\alpha_1$ of the weight multipliers (``--rate1 0.05``, ``frlrmrw.py``).
DEFAULT_EPS_RATE = 0.2  # Step $\alpha_2$ of the radius multipliers (``--rate2 0.2``, ``frlrmrw.py``).
DEFAULT_LIMIT = 0.5  # Bound on the sum of each set of weight multipliers (``--lim 0.5``, ``frlrmrw.py``).
DEFAULT_HALVE_EVERY = 40  # alpha_1 halves when ``now_epoch % 40 == 0`` (``frlrmrw.py``)
SCALE_BOUNDS = (0.98, 3.0)  # clamp of the radius scale (``cost_sensitive``, ``utils_frl2.py``)


def _project(multipliers: Tensor, limit: float) -> Tensor:
    """Non-negative, then scaled down onto ``sum <= limit`` (``normalize_lambda`` of the official code)."""
    positive = multipliers.clamp_min(0)
    total = positive.sum()
    return torch.where(total > limit, positive * (limit / total), positive)


def _threshold_pair(threshold: Any) -> tuple[float, float]:
    pair = threshold if isinstance(threshold, Sequence) and not isinstance(threshold, str) else (threshold, threshold)
    if len(pair) != 2:
        raise ValueError(f"Expected `threshold` to be a number or a pair of numbers, but got {threshold!r}.")
    return check_unit_interval(pair[0], "threshold"), check_unit_interval(pair[1], "threshold")


def _multiplier_update(
    lam: Tensor, accuracy: Tensor, overall: Tensor, threshold: tuple[float, float], *rates: float
) -> Tensor:
    r"""One update of FRL's multipliers from validation accuracies (``frl_train`` of ``utils_frl2.py``), unchecked.

    With each class's natural error $e_k = 1 - a_k$ and boundary error $b_k = a_k - r_k$ (clean minus robust
    accuracy; ``accuracy`` $(2, C)$), and $E$, $B$ the same over the whole split (``overall`` $(2,)$):
    $\gamma^{nat}_k = e_k - E - \tau_1$, $\gamma^{bndy}_k = b_k - B - \tau_2$,
    $\lambda^{nat} \leftarrow \Pi(\lambda^{nat} + \alpha_1 \gamma^{nat})$,
    $\lambda^{bndy} \leftarrow \Pi(\lambda^{bndy} + 2\alpha_1 \gamma^{bndy})$ and
    $\lambda^{\epsilon} \leftarrow \lambda^{\epsilon} + \alpha_2 \gamma^{bndy}$, with $\Pi$ clamping at 0 and scaling
    down to a sum of ``limit`` when above it. ``lam``: $(\lambda^{nat}, \lambda^{bndy}, \lambda^{\epsilon})$,
    $(3, C)$; ``rates``: $\alpha_1$, $\alpha_2$, ``limit``. Output $(3, C)$ float64.
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


class FRLMultipliers(ClassEpsilon):
    r"""FRL's Reweight + Remargin: per-class loss weights and radii from class-wise errors on a validation split.

    A :class:`~torch_absld.class_eps.ClassEpsilon` of whether each validation sample is classified
    correctly, clean and under attack (:meth:`record`). :meth:`step` sums across ranks, updates the
    multipliers by :func:`_multiplier_update` ($\alpha_1$ halving at every 40th update) and sets, for
    the next epoch, :attr:`natural_weights` $= w(\lambda^{nat})$ and :attr:`boundary_weights`
    $= w(\lambda^{bndy})$ (:func:`frl_class_weights`) and :attr:`scale`
    $= \mathrm{clip}(\exp(2\lambda^\epsilon), 0.98, 3)$. All start at $\lambda = 0$ (plain TRADES).
    Every class must appear in the validation data.

    Args:
        num_classes: number of classes $C$.
        threshold: $\tau_1$ and $\tau_2$, one number or a pair (0.05).
        rate, eps_rate, limit: $\alpha_1$ (0.05), $\alpha_2$ (0.2), the bound of each weights' multipliers' sum (0.5).
        halve_every: halve $\alpha_1$ at updates that are multiples of it (40); ``None`` never.
        begin_epoch: first epoch trained with updated values.
        scale_step: the attack's step scaled by the batch's largest scale (``True``, ``frlrmrw.py``).

    Example:
        >>> ctrl = FRLMultipliers(2)
        >>> clean, adv = torch.tensor([[2.0, 0.0], [0.0, 1.0]]), torch.tensor([[1.0, 0.0], [1.0, 0.0]])
        >>> ctrl.record(clean, adv, torch.tensor([0, 1]))
        >>> ctrl.step()
        tensor([0.9800, 1.1972], dtype=torch.float64)
        >>> ctrl.boundary_weights  # class 1 lost its robustness: a larger weight
        tensor([0.4775, 0.5225], dtype=torch.float64)
    """

    multipliers: Tensor
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
        self.threshold = _threshold_pair(threshold)
        self.rate = check_positive(rate, "rate", allow_zero=True)
        self.eps_rate = check_positive(eps_rate, "eps_rate", allow_zero=True)
        self.limit = check_unit_interval(limit, "limit")
        self.halve_every = None if halve_every is None else check_integer(halve_every, "halve_every", minimum=1)
        uniform = torch.full((self.num_classes,), 1 / self.num_classes, dtype=torch.float64)
        self.register_buffer("multipliers", torch.zeros(3, self.num_classes, dtype=torch.float64))
        self.register_buffer("natural_weights", uniform)
        self.register_buffer("boundary_weights", uniform.clone())

    def record(self, clean_logits: Tensor, robust_logits: Tensor, target: Tensor) -> None:
        """Add a validation batch, logits $(N, C)$ clean and under attack, labels $(N,)$."""
        record_correct(self, clean_logits, robust_logits, target)

    def _record(self, clean_logits: Tensor, robust_logits: Tensor, target: Tensor) -> None:
        _record_correct(self, clean_logits, robust_logits, target)

    @torch.no_grad()
    def union_batch(self, target: Tensor) -> tuple[Tensor, tuple[Tensor, Tensor]] | None:
        r"""Under ``torch.distributed``: what one process on the union of all ranks' batches would use.

        One ``all_reduce`` of the class counts $n$ of the labels $(N,)$ gives the classes present $(C,)$ (for
        :meth:`forward`'s step) and the loss's normalizers $(n \cdot w^{nat}, n \cdot w^{bndy}) / R$ over $R$
        ranks (the gradients DDP averages are then those of one process). ``None`` in a single process.
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
        """The multipliers' update from the split's accuracies, the weights and scales they give; every class seen."""
        correct, counts = synced[:2], synced[2]
        options = (self.threshold, self.rate_at(self.updates + 1), self.eps_rate, self.limit)
        multipliers = _multiplier_update(
            self.multipliers, correct / counts, correct.sum(dim=1) / counts.sum(), *options
        )

        new = {
            "multipliers": multipliers,
            "natural_weights": frl_class_weights(multipliers[0]),
            "boundary_weights": frl_class_weights(multipliers[1]),
            "scale": torch.exp(2 * multipliers[2]).clamp(*SCALE_BOUNDS),
        }
        return new, [missing_classes(counts > 0)]

    def buffer_error(self, name: str, values: Tensor) -> str | None:
        """Also reject multipliers, weights and scales that no update can make (see :meth:`rule`)."""
        (low, high), rows = SCALE_BOUNDS, values[:2]
        if error := super().buffer_error(name, values):
            return error
        if name == "multipliers" and bool((rows < 0).any() | (rows.sum(dim=1) > self.limit + 1e-9).any()):
            return f"with weight rows >= 0 summing to <= limit = {self.limit}"
        if name.endswith("_weights") and (bool((values < -1e-9).any()) or abs(float(values.sum()) - 1) > 1e-6):
            return ">= 0 with sum 1"
        if name == "scale" and bool(((values < low - 1e-9) | (values > high + 1e-9)).any()):
            return f"in [{low}, {high}] (FRL's clamp)"
        return None

    def extra_repr(self) -> str:
        return (
            f"num_classes={self.num_classes}, threshold={self.threshold}, rate={self.rate:.4g}, "
            f"eps_rate={self.eps_rate:.4g}, limit={self.limit:.4g}, halve_every={self.halve_every}, "
            f"begin_epoch={self.begin_epoch}"
        )
