r"""One pass over a validation split: clean and PGD logits of every batch, for per-class rules (FRL, FAWA)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import Tensor, nn

from ._internal.checks import check_integer, check_logits, check_logits_alike
from ._internal.keyed import keyed_start
from ._internal.modules import frozen_model, module_device, unwrap_model
from .attack import PGDConfig, pgd
from .class_eps import EpochController
from .stats import Bound

__all__ = ["CorrectCounts", "check_validation_attack", "validation_pass"]


class CorrectCounts(EpochController):
    """Per-class counts of the samples classified correctly, clean and under attack (2 quantities)."""

    value_bound = Bound(0, 1, integer=True)  # whether a sample is classified correctly

    def record(self, clean_logits: Tensor, robust_logits: Tensor, target: Tensor) -> None:
        """Add a batch: logits $(N, C)$ clean and under attack, labels $(N,)$."""
        check_logits(clean_logits, "clean_logits", self.num_classes)
        named = (("clean_logits", clean_logits), ("robust_logits", robust_logits))
        check_logits_alike(named, self.accumulator.device, f"the {type(self).__name__}")
        flags = [self._value_flag(name, logits, target, Bound()) for name, logits in named]
        self._record(clean_logits, robust_logits, self._checked(target, clean_logits.shape[0], *flags))

    def _record(self, clean_logits: Tensor, robust_logits: Tensor, target: Tensor) -> None:
        predictions = torch.stack([clean_logits.detach().argmax(dim=1), robust_logits.detach().argmax(dim=1)], dim=1)
        self._accumulate((predictions == target.unsqueeze(1)).to(torch.float64), target)


def check_validation_attack(config: object, name: str = "config") -> None:
    """Raise unless ``config`` is a :class:`~torch_absld.PGDConfig` with a uniform start or none."""
    if not isinstance(config, PGDConfig):
        raise TypeError(f"Expected `{name}` to be a PGDConfig, but got {type(config).__name__}.")
    if config.random_start not in ("uniform", None):
        raise ValueError(f"Expected `{name}.random_start` 'uniform' or None, but got {config.random_start!r}.")


def _pair(batch: Any, index: int, device: torch.device | None) -> tuple[Tensor, Tensor]:
    pair = tuple(batch[:2]) if isinstance(batch, (tuple, list)) else ()
    if len(pair) < 2 or not all(isinstance(value, Tensor) for value in pair):
        got = ", ".join(type(value).__name__ for value in pair) or type(batch).__name__
        raise TypeError(
            f"Expected the validation batches to be (input, target) pairs of tensors, but batch {index} is {got}."
        )
    return pair[0].to(device), pair[1].to(device)


@torch.no_grad()
def validation_pass(
    model: nn.Module,
    batches: Iterable[Any],
    record: Callable[[Tensor, Tensor, Tensor], None],
    *,
    config: PGDConfig,
    seed: int = 0,
    device: torch.device | str | None = None,
) -> int:
    r"""Run ``model`` on every batch, clean and under PGD, and hand the logits to ``record``; return the sample count.

    The model is frozen in eval mode (restored after). The attack ascends the cross-entropy; a uniform start
    comes from a hash of ``seed`` and the sample (as :func:`~torch_absld.evaluate_robustness`): sharded ranks
    see one process's numbers.
    """
    check_validation_attack(config)
    if not callable(record):
        raise TypeError(f"Expected `record` to be a callable (clean, robust, target), but got {type(record).__name__}.")
    if isinstance(batches, (str, bytes, Tensor)) or not isinstance(batches, Iterable):
        raise TypeError(
            f"Expected `batches` to be an iterable of (input, target) pairs, but got {type(batches).__name__}."
        )
    seed = check_integer(seed, "seed", minimum=0)
    evaluated = unwrap_model(model)
    try:
        target_device = torch.device(device) if device is not None else module_device(evaluated) or torch.device("cpu")
    except (RuntimeError, TypeError) as error:
        raise ValueError(f"Expected `device` to be a torch.device or a device string, but got {device!r}.") from error
    attack, seen = config.replace(random_start=None), 0
    with frozen_model(evaluated):
        for index, batch in enumerate(batches):
            x, y = _pair(batch, index, target_device)
            start = keyed_start(x, seed, config.eps) if config.random_start == "uniform" else None
            x_adv = pgd(evaluated, x, y, config=attack, objective="ce", start=start)
            record(evaluated(x), evaluated(x_adv), y)
            seen += int(y.shape[0])
    return seen
