r"""Fairness-aware weight averaging (CFA's FAWA): an EMA of the weights over epochs whose worst class passes a gate."""

from __future__ import annotations

import copy
import math
from collections.abc import Iterable, Mapping
from typing import Any

import torch
from torch import Tensor, nn
from typing_extensions import Self

from ._internal.checks import ProcessGroupArg, check_finite_number, check_integer, check_unit_interval
from ._internal.modules import unwrap_model
from .attack import PGDConfig
from .class_eps import missing_classes
from .stats import COUNTER, Bound, Bounds, class_means
from .validation import CorrectCounts, check_validation_attack, validation_pass

__all__ = ["FAWA_ATTACK", "FairnessAwareAveraging"]

DEFAULT_DECAY = 0.85  # FAWA's decay (CFA paper Sec. 5.1; the official ``--decay-rate`` default is 0.88).
DEFAULT_THRESHOLD = 0.2  # the gate on the worst class (paper Sec. 5.1; ``--threshold`` is 0.24)
DEFAULT_START_EPOCH = 50  # first epoch averaged (paper Sec. 5.1; the code has none)
# The gate's attack, ``pgd_loss`` of CFA's ``train.py``:
FAWA_ATTACK = PGDConfig(eps=8 / 255, step_size=2 / 255, steps=10, random_start="uniform")


class FairnessAwareAveraging(CorrectCounts):
    r"""An exponential moving average of a model's weights over the epochs that pass a fairness gate (CFA's FAWA).

    :meth:`step` measures the per-class robust accuracy $R_k$ on a validation split (summed across ranks)
    and, when the worst class passes ($\min_k R_k \ge \delta$ = ``threshold``) from ``start_epoch`` on,
    updates $\bar\theta \leftarrow d\,\bar\theta + (1 - d)\,\theta$ over the ``state_dict`` (first accepted
    epoch and integer buffers: copied), as CFA's ``train.py``. :attr:`module`: the average (frozen, eval).
    ``model`` is held by reference (DDP unwrapped); ``worst_fraction`` gates on the worst $\lceil f C \rceil$
    classes' mean; ``attack``/``seed``: the gate's attack and its uniform starts.
    """

    module: nn.Module
    shown = ("num_classes", "decay", "threshold", "start_epoch", "worst_fraction")
    model: nn.Module

    def __init__(
        self,
        model: nn.Module,
        num_classes: int,
        *,
        decay: float = DEFAULT_DECAY,
        threshold: float = DEFAULT_THRESHOLD,
        start_epoch: int = DEFAULT_START_EPOCH,
        worst_fraction: float | None = None,
        attack: PGDConfig = FAWA_ATTACK,
        seed: int = 0,
        process_group: ProcessGroupArg = None,
        validate_args: bool = True,
    ) -> None:
        if not isinstance(model, nn.Module):
            raise TypeError(f"Expected `model` to be an nn.Module, but got {type(model).__name__}.")
        check_validation_attack(attack, "attack")
        super().__init__(num_classes, 2, process_group=process_group, validate_args=validate_args)
        self.decay = check_finite_number(decay, "decay")
        if not 0 < self.decay < 1:
            raise ValueError(f"Expected `decay` in (0, 1), but got {self.decay}: 0 or 1 is no average.")
        self.threshold = check_unit_interval(threshold, "threshold")
        self.start_epoch = check_integer(start_epoch, "start_epoch", minimum=0)
        if worst_fraction is not None and not check_unit_interval(worst_fraction, "worst_fraction") > 0:
            raise ValueError(f"Expected `worst_fraction` in (0, 1], but got {worst_fraction}.")
        self.worst_count = 1 if worst_fraction is None else max(1, math.ceil(worst_fraction * self.num_classes))
        self.worst_fraction = worst_fraction
        self.attack = attack
        self.seed = check_integer(seed, "seed", minimum=0)
        source = unwrap_model(model)
        object.__setattr__(self, "model", source)  # by reference: its weights are not part of this state
        self.module = copy.deepcopy(source).requires_grad_(False).eval()
        self.epochs_stepped = 0
        self.accepted = 0
        self.last_worst = float("nan")

    def train(self, mode: bool = True) -> Self:
        """The averaged network stays in eval mode whatever ``mode`` says."""
        super().train(mode)
        self.module.eval()
        return self

    @property
    def due(self) -> bool:
        """Whether the epoch that :meth:`step` ends may enter the average (``start_epoch`` reached)."""
        return self.epochs_stepped >= self.start_epoch

    @torch.no_grad()
    def step(self, validation: Iterable[Any] | None = None) -> bool:
        r"""End of epoch (every rank): gate on ``validation`` (``None``: what :meth:`record` added); averaged?"""
        if isinstance(validation, (str, bytes)) or not isinstance(validation, Iterable | None):
            raise TypeError(
                f"Expected `validation` to be an iterable of batches or None, got {type(validation).__name__}."
            )
        if validation is not None and self.due:
            self.reset()
            validation_pass(self.model, validation, self.record, config=self.attack, seed=self.seed)
        accepted = False
        if self.due:
            worst = self._worst(self.synced(), validation is None)
            accepted = worst >= self.threshold
            if accepted:
                self._average()
            self.last_worst = worst
        self.reset()
        self.epochs_stepped += 1
        return accepted

    def _worst(self, synced: Tensor, recorded: bool) -> float:
        means, present = class_means(synced)
        worst = means[1].sort().values[: self.worst_count].mean()
        missing, none, value = torch.stack([(~present).any(), ~present.any(), worst]).tolist()  # one read
        if none and recorded:
            raise ValueError(
                "Expected a validation split at `step()`, but got `validation=None` and no sample was added with "
                "`record()` this epoch: pass the validation batches (or record them first)."
            )
        if missing:
            missing_classes(present)[1]()
        return float(value)

    def _average(self) -> None:
        current = self.model.state_dict()
        first = self.accepted == 0
        for key, averaged in self.module.state_dict().items():
            value = current[key].detach().to(averaged.device)
            if first or not averaged.is_floating_point():
                averaged.copy_(value)
            else:
                averaged.mul_(self.decay).add_(value.to(averaged.dtype), alpha=1 - self.decay)
        self.accepted += 1

    def state_bounds(self) -> dict[str, Bounds]:
        return {**super().state_bounds(), "accepted": COUNTER, "last_worst": Bound(0, 1, start=math.nan)}

    def _check_loaded_state(self, state_dict: Mapping[str, Any], prefix: str) -> None:
        for key, own in self.module.state_dict().items():
            value = state_dict.get(f"{prefix}module.{key}")
            if isinstance(value, Tensor) and value.shape != own.shape:
                raise ValueError(
                    f"Expected the loaded averaged weights `module.{key}` of shape {tuple(own.shape)}, but got "
                    f"{tuple(value.shape)}. The checkpoint comes from another model."
                )
            if isinstance(value, Tensor) and value.is_floating_point() and not bool(torch.isfinite(value).all()):
                raise ValueError(f"Expected the loaded averaged weights `module.{key}` to be finite.")
