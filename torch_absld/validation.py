r"""One pass over a validation split: clean and PGD logits of every batch, for per-class rules (FRL, FAWA)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import Tensor, nn

from ._internal.checks import (
    check_integer,
    check_logits,
    check_logits_alike,
)
from ._internal.keyed import keyed_uniform
from ._internal.modules import frozen_model, module_device, unwrap_model
from .attack import PGDConfig
from .attack.engine import run_pgd
from .class_eps import EpochController

__all__ = ["check_validation_attack", "record_correct", "validation_pass"]


def record_correct(stats: EpochController, clean_logits: Tensor, robust_logits: Tensor, target: Tensor) -> None:
    """Add whether each sample is classified correctly, clean and under attack, into ``stats`` (2 quantities)."""
    check_logits(clean_logits, "clean_logits", stats.num_classes)
    named = (("clean_logits", clean_logits), ("robust_logits", robust_logits))
    check_logits_alike(named, stats.accumulator.device, f"the {type(stats).__name__}")
    _record_correct(stats, clean_logits, robust_logits, stats._checked(target, clean_logits.shape[0]))


def _record_correct(stats: EpochController, clean_logits: Tensor, robust_logits: Tensor, target: Tensor) -> None:
    stats.accumulate(_correct(clean_logits, robust_logits, target), target, validate=False)


def _correct(clean_logits: Tensor, robust_logits: Tensor, target: Tensor) -> Tensor:
    predictions = torch.stack([clean_logits.detach().argmax(dim=1), robust_logits.detach().argmax(dim=1)], dim=1)
    return (predictions == target.unsqueeze(1)).to(torch.float64)


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

    The model is in eval mode, frozen, during the pass (both restored). The attack ascends the
    cross-entropy with ``config`` (``random_start`` ``"uniform"`` or ``None``); a uniform start is drawn
    from a hash of ``seed`` and the sample (as :func:`~torch_absld.evaluate_robustness`): ranks with
    their own shards and an all-reducing ``record`` see the numbers of one process on the whole split.
    ``batches`` are ``(input, target)`` pairs, moved to ``device`` (``None``: the model's); a DDP
    wrapper is unwrapped; ``record(clean_logits, robust_logits, target)`` checks the labels.
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
            start = None
            if config.random_start == "uniform":
                start = x.float() + (2 * keyed_uniform(x, seed) - 1) * config.eps
            x_adv = run_pgd(evaluated, x, y, attack, "ce", attack.eps, attack.step_size, start=start)
            record(evaluated(x), evaluated(x_adv), y)
            seen += int(y.shape[0])
    return seen
