r""":class:`EarlyStopping`: a KL attack objective that stops each sample near the decision boundary (BAT)."""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .._internal.checks import (
    ValueCheck,
    at_least_float32,
    check_choice,
    check_device,
    check_integer,
    check_integer_labels,
    check_logits,
    label_range_flag,
    probability_flag,
)

__all__ = ["EarlyStopping", "LogitsAndInput", "StopAt"]

StopAt = Literal["last_clean", "first_adversarial"]


class LogitsAndInput(nn.Module):
    """``forward(x)`` returns ``(model(x), x)``: the attacked module of :class:`EarlyStopping`, which keeps iterates."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, input: Tensor) -> tuple[Tensor, Tensor]:
        return self.model(input), input


class EarlyStopping:
    r"""TRADES' KL objective, with each sample frozen where the model's prediction first turns (BAT).

    The callable ``objective`` of :func:`~torch_absld.pgd` on a :class:`LogitsAndInput` module,
    with the clean soft labels $p$ as the target: $\sum_i m_i\,\mathrm{KL}(p_i \,\|\,
    \mathrm{softmax} f(x^k_i))$, where $m_i = 0$ once sample $i$ stopped (zero gradient: the
    signed step leaves it in place). Predictions are read at $x^0, \dots, x^{K-1}$ from the
    forward that gives the gradient; :meth:`emitted` gives each sample's point:

    - ``"last_clean"`` (BAT's ``stop_to_lastclean``): the last iterate still classified correctly;
    - ``"first_adversarial"`` (``stop_to_firstadv``, FAT with $\tau$ = ``patience``): a sample
      found misclassified is stepped ``patience`` more times, then stops at the next misclassified iterate.

    Samples that never stop get the attack's result. Call :meth:`reset` with the labels and the
    clean batch before each attack; the values are checked once, with the attack's own checks.

    Args:
        stop_at: ``"last_clean"`` or ``"first_adversarial"``.
        patience: extra steps after the first misclassification (``"first_adversarial"``; BAT: 1).

    Example:
        >>> from torch_absld import pgd
        >>> model, x, y, stopper = nn.Linear(4, 3), torch.rand(5, 4), torch.tensor([0, 1, 2, 0, 1]), EarlyStopping()
        >>> stopper.reset(y, x)
        >>> final = pgd(LogitsAndInput(model), x, model(x).softmax(1).detach(), objective=stopper, eps=0.3, steps=4)
        >>> stopper.emitted(final).shape
        torch.Size([5, 4])
    """

    def __init__(self, stop_at: StopAt = "last_clean", *, patience: int = 1) -> None:
        check_choice(stop_at, "stop_at", ("last_clean", "first_adversarial"))
        self.stop_at: StopAt = stop_at
        self.patience = check_integer(patience, "patience", minimum=0)
        self._reset(torch.zeros(0, dtype=torch.long), torch.zeros(0))

    def reset(self, labels: Tensor, input: Tensor) -> None:
        r"""Start a new attack on the clean batch ``input`` $(N, \dots)$ with labels $(N,)$ (any integer dtype)."""
        self._reset(labels, input)
        self._unchecked = True

    def _reset(self, labels: Tensor, input: Tensor) -> None:
        """:meth:`reset` without the value checks of the coming attack (the caller checked the labels)."""
        if not isinstance(input, Tensor) or not input.is_floating_point() or input.dim() < 1:
            got = f"{input.dtype} of shape {tuple(input.shape)}" if isinstance(input, Tensor) else type(input).__name__
            raise TypeError(f"Expected `input` to be a floating point tensor of shape (N, ...), but got {got}.")
        labels = check_integer_labels(labels, None, name="labels", batch_size=input.shape[0], check_values=False)
        check_device(labels, input.device, "labels", "`input`")
        self._unchecked = False
        self.labels = labels.detach()
        self.active = torch.ones(labels.shape, dtype=torch.bool, device=labels.device)
        patience = self.patience if self.stop_at == "first_adversarial" else 0
        self.remaining = torch.full(labels.shape, patience, dtype=torch.long, device=labels.device)
        self.checks = torch.zeros((), dtype=torch.long, device=labels.device)
        self.kept = at_least_float32(input.detach()).clone()

    def __call__(self, output: tuple[Tensor, Tensor], target: Tensor) -> Tensor:
        """Read the predictions at the iterate, stop the samples that turned, return the masked summed KL."""
        logits, iterate = _logits_and_input(output)
        if logits.shape[:1] != self.labels.shape or iterate.shape != self.kept.shape:
            raise RuntimeError(
                f"Expected logits for {self.labels.shape[0]} samples as given to `reset`, but got "
                f"{tuple(logits.shape)}. Call `reset(labels, input)` before each attack."
            )
        _check_soft_labels(target, logits.shape)
        with torch.no_grad():
            point = iterate.detach()
            correct = logits.detach().argmax(dim=1) == self.labels
            turned = self.active & ~correct
            stopping = turned & (self.remaining == 0)
            # last clean: keep each iterate still classified correctly (and the start); else the stopping one
            keep = self.active & (correct | (self.checks == 0)) if self.stop_at == "last_clean" else stopping
            self.kept.copy_(torch.where(keep.view(point.shape[0], *([1] * (point.dim() - 1))), point, self.kept))
            self.remaining.sub_((turned & (self.remaining > 0)).long())
            self.active.logical_and_(~stopping)
            self.checks.add_(1)
        log_q = torch.log_softmax(at_least_float32(logits), dim=1)
        per_sample = F.kl_div(log_q, target.to(log_q.dtype), reduction="none").sum(dim=1)
        return (per_sample * self.active.to(per_sample.dtype)).sum()

    def _value_checks(self, output: tuple[Tensor, Tensor], target: Tensor) -> list[ValueCheck]:
        """The flags of the labels and the soft labels after :meth:`reset` (``output`` of any batch)."""
        if not self._unchecked:
            return []
        self._unchecked = False
        classes = _logits_and_input(output)[0].shape[1]
        batch = target.shape[0] if isinstance(target, Tensor) and target.dim() else -1  # rows: checked per step
        _check_soft_labels(target, (batch, classes))
        return [label_range_flag(self.labels, classes, "labels"), probability_flag(target, "target")]

    def emitted(self, final: Tensor) -> Tensor:
        r"""Each sample's point: its kept iterate if it stopped, else ``final`` (the attack's result, $(N, \dots)$)."""
        if self.kept.shape != final.shape:
            raise RuntimeError(
                f"Expected `final` of the attacked batch's shape {tuple(self.kept.shape)}, got {tuple(final.shape)}."
            )
        mask = self.active.view(final.shape[0], *([1] * (final.dim() - 1)))
        return torch.where(mask, final, self.kept.to(final.dtype))

    def __repr__(self) -> str:
        return f"EarlyStopping({self.stop_at!r}, patience={self.patience})"


def _logits_and_input(output: object) -> tuple[Tensor, Tensor]:
    if not (isinstance(output, (tuple, list)) and len(output) == 2 and all(isinstance(t, Tensor) for t in output)):
        got = f"a tuple of {len(output)}" if isinstance(output, (tuple, list)) else type(output).__name__
        raise TypeError(
            f"Expected the attacked module to return (logits, input), but got {got}. Attack "
            "`LogitsAndInput(model)`, which keeps the iterates."
        )
    check_logits(output[0], "logits")
    return output[0], output[1]


def _check_soft_labels(target: object, shape: tuple[int, ...]) -> None:
    if not isinstance(target, Tensor) or target.shape != shape or not target.is_floating_point():
        got = f"{target.dtype} of shape {tuple(target.shape)}" if isinstance(target, Tensor) else type(target)
        raise ValueError(
            f"Expected `target` to be soft labels of the logits' shape {tuple(shape)}, but got {got}. "
            "Pass the clean predictions' probabilities."
        )
