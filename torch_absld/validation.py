r"""One pass over a validation split: clean and PGD logits of every batch, for per-class rules (FRL, FAWA)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import Tensor, nn

from ._internal.keyed import keyed_uniform
from ._internal.modules import frozen_model, unwrap_model
from .attack import PGDConfig
from .attack.engine import run_pgd

__all__ = ["Record", "class_correct", "validation_pass"]

Record = Callable[[Tensor, Tensor, Tensor], None]
"""``record(clean_logits, robust_logits, target)``: what a validation pass hands each batch to."""


def class_correct(clean_logits: Tensor, robust_logits: Tensor, target: Tensor) -> Tensor:
    """Whether each sample is classified correctly, clean and under attack, as float64 columns (no gradient).

    Shape:
        - clean_logits, robust_logits: $(N, C)$
        - target: $(N,)$ integer classes
        - Output: $(N, 2)$ float64 of 0 and 1
    """
    predictions = torch.stack([clean_logits.detach().argmax(dim=1), robust_logits.detach().argmax(dim=1)], dim=1)
    return (predictions == target.unsqueeze(1)).to(torch.float64)


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
    r"""Run ``model`` on every batch, clean and under PGD, and hand the logits to ``record``.

    The model is in eval mode with its parameters frozen for the pass (both restored after it;
    parameters' ``.grad`` untouched). The attack ascends the cross-entropy with ``config``'s
    radius, step and number of steps; with ``config.random_start == "uniform"`` each sample's
    start is drawn from a hash of ``seed`` and the sample itself (the evaluation protocol's
    start, :func:`~torch_absld.evaluate_robustness`), so the result depends neither on the
    batching nor on the rank a sample is on: under ``torch.distributed`` give each rank its own
    shard of the split, and a controller that all-reduces (``record`` = its ``update``) sees the
    numbers of one process on the whole split. Labels are checked by ``record``; inputs must lie
    in ``[clip_min, clip_max]`` (checked once per batch).

    Args:
        model: the network (a DDP wrapper is unwrapped).
        batches: iterable of ``(input, target)`` pairs (a ``DataLoader``; extra elements ignored).
        record: called once per batch with the clean logits, the adversarial logits and the labels.
        config: the attack (``random_start`` ``"uniform"`` or ``None``).
        seed: seed of the uniform starts.
        device: where batches go; ``None`` is the device of the model's parameters.

    Returns:
        The number of samples passed.

    Shape:
        - input batches: $(N, \dots)$; target batches: $(N,)$
    """
    if config.random_start not in ("uniform", None):
        raise ValueError(
            f"Expected the validation attack's `random_start` to be 'uniform' or None, but got {config.random_start!r}."
        )
    evaluated = unwrap_model(model)
    target_device = torch.device(device) if device is not None else _model_device(evaluated)
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
