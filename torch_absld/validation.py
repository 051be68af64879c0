r"""One pass over a validation split: clean and PGD logits of every batch, for per-class rules (FRL, FAWA)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import Tensor, nn

from ._internal.checks import (
    check_integer,
    check_integer_labels,
    check_logits_alike,
    label_range_flag,
    raise_first,
    values_checkable,
)
from ._internal.keyed import keyed_uniform
from ._internal.modules import frozen_model, unwrap_model
from .attack import PGDConfig
from .attack.engine import run_pgd
from .class_eps import checked_labels
from .stats import ClassStatistics

__all__ = ["Record", "check_validation_attack", "class_correct", "record_correct", "validation_pass"]

Record = Callable[[Tensor, Tensor, Tensor], None]
"""``record(clean_logits, robust_logits, target)``: what a validation pass hands each batch to."""


def class_correct(clean_logits: Tensor, robust_logits: Tensor, target: Tensor, *, validate_args: bool = True) -> Tensor:
    """Whether each sample is classified correctly, clean and under attack, as float64 columns (no gradient).

    Shape:
        - clean_logits, robust_logits: $(N, C)$; target: $(N,)$ integer classes
        - Output: $(N, 2)$ float64 of 0 and 1
    """
    classes = check_logits_alike((("clean_logits", clean_logits), ("robust_logits", robust_logits)))
    target = check_integer_labels(
        target,
        classes,
        batch_size=clean_logits.shape[0],
        check_values=False,
        device=clean_logits.device,
        owner="the logits",
    )
    if values_checkable(validate_args):
        raise_first([label_range_flag(target, classes)])
    return _correct(clean_logits, robust_logits, target)


def record_correct(stats: ClassStatistics, clean_logits: Tensor, robust_logits: Tensor, target: Tensor) -> None:
    """Add :func:`class_correct` of a batch into ``stats`` (2 quantities), checked against it.

    Shape:
        - clean_logits, robust_logits: $(N, C)$ with $C$ the class count of ``stats``; target: $(N,)$
    """
    named = (("clean_logits", clean_logits), ("robust_logits", robust_logits))
    if check_logits_alike(named, stats.accumulator.device, f"the {type(stats).__name__}") != stats.num_classes:
        raise ValueError(
            f"Expected `clean_logits` and `robust_logits` of shape (N, {stats.num_classes}) for num_classes = "
            f"{stats.num_classes}, but got {tuple(clean_logits.shape)}."
        )
    target, flag = checked_labels(stats, target, clean_logits.shape[0])
    if values_checkable(stats.validate_args):
        raise_first([flag])
    _record_correct(stats, clean_logits, robust_logits, target)


def _record_correct(stats: ClassStatistics, clean_logits: Tensor, robust_logits: Tensor, target: Tensor) -> None:
    stats.accumulate(_correct(clean_logits, robust_logits, target), target, validate=False)


def _correct(clean_logits: Tensor, robust_logits: Tensor, target: Tensor) -> Tensor:
    predictions = torch.stack([clean_logits.detach().argmax(dim=1), robust_logits.detach().argmax(dim=1)], dim=1)
    return (predictions == target.unsqueeze(1)).to(torch.float64)


def check_validation_attack(config: object) -> None:
    """Raise unless ``config`` is a :class:`~torch_absld.PGDConfig` with a uniform start or none."""
    if not isinstance(config, PGDConfig):
        raise TypeError(f"Expected `config` to be a PGDConfig, but got {type(config).__name__}.")
    if config.random_start not in ("uniform", None):
        raise ValueError(
            f"Expected the validation attack's `random_start` to be 'uniform' or None, but got {config.random_start!r}."
        )


def _device(device: torch.device | str) -> torch.device:
    try:
        return torch.device(device)
    except (RuntimeError, TypeError) as error:
        raise ValueError(f"Expected `device` to be a torch.device or a device string, but got {device!r}.") from error


def _model_device(model: nn.Module) -> torch.device:
    for tensor in (*model.parameters(), *model.buffers()):
        return tensor.device
    return torch.device("cpu")


def _pair(batch: Any, index: int) -> tuple[Tensor, Tensor]:
    if not isinstance(batch, (tuple, list)) or len(batch) < 2:
        raise TypeError(
            f"Expected the validation batches to be (input, target) pairs, but batch {index} is {type(batch).__name__}."
        )
    x, y = batch[0], batch[1]
    if not isinstance(x, Tensor) or not isinstance(y, Tensor):
        raise TypeError(
            f"Expected tensors in validation batch {index}, but got {type(x).__name__}, {type(y).__name__}."
        )
    return x, y


@torch.no_grad()
def validation_pass(
    model: nn.Module,
    batches: Iterable[Any],
    record: Record,
    *,
    config: PGDConfig,
    seed: int = 0,
    device: torch.device | str | None = None,
) -> int:
    r"""Run ``model`` on every batch, clean and under PGD, and hand the logits to ``record``; return the sample count.

    The model is in eval mode with frozen parameters during the pass (both restored; ``.grad``
    untouched). The attack ascends the cross-entropy with ``config``; with a ``"uniform"`` start each
    sample's start is drawn from a hash of ``seed`` and the sample (as
    :func:`~torch_absld.evaluate_robustness`), independent of batching and rank: under
    ``torch.distributed`` give each rank its own shard, and an all-reducing ``record`` sees the numbers
    of one process on the whole split. Labels are checked by ``record``.

    Args:
        model: the network (a DDP wrapper is unwrapped).
        batches: iterable of ``(input, target)`` pairs (extra elements ignored).
        record: called once per batch with the clean logits, the adversarial logits and the labels.
        config: the attack (``random_start`` ``"uniform"`` or ``None``).
        seed: seed of the uniform starts.
        device: where batches go; ``None`` is the device of the model's parameters.

    Shape:
        - input batches: $(N, \dots)$; target batches: $(N,)$
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
    target_device = _device(device) if device is not None else _model_device(evaluated)
    attack = config.replace(random_start=None)
    seen = 0
    with frozen_model(evaluated):
        for index, batch in enumerate(batches):
            x, y = (value.to(target_device) for value in _pair(batch, index))
            start = None
            if config.random_start == "uniform":
                start = x.float() + (2 * keyed_uniform(x, seed) - 1) * config.eps
            x_adv = run_pgd(evaluated, x, y, attack, "ce", attack.eps, attack.step_size, start=start)
            record(evaluated(x), evaluated(x_adv), y)
            seen += int(y.shape[0])
    return seen
