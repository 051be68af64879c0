r""":class:`EarlyStopping`: a KL attack objective that stops each sample near the decision boundary (BAT)."""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .._internal.checks import (
    at_least_float32,
    check_choice,
    check_device,
    check_integer,
    check_integer_labels,
    check_logits,
    label_range_flag,
    probability_flag,
    raise_first,
    values_checkable,
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

    Pass it as the callable ``objective`` of :func:`~torch_absld.pgd` on a :class:`LogitsAndInput`
    module, with the clean soft labels $p$ as the target. At each ascent step it reads the
    prediction at the current iterate $x^k$ (the forward that gives the gradient) and stops the
    samples whose prediction is not their label any more; the objective is
    $\sum_i m_i\,\mathrm{KL}(p_i \,\|\, \mathrm{softmax} f(x^k_i))$ with $m_i = 0$ for stopped
    samples, so their gradient is zero and the engine's signed step leaves them where they are
    (eval mode: a sample's gradient depends on that sample only). After the attack,
    :meth:`emitted` gives each sample's point:

    - ``"last_clean"`` (BAT's ``stop_to_lastclean``): the last iterate still classified correctly,
      $x^{k-1}$ for a sample first misclassified at $x^k$ ($x^0$ when already at $x^0$);
    - ``"first_adversarial"`` (``stop_to_firstadv``, FAT with $\tau$ = ``patience``): a sample found
      misclassified is stepped ``patience`` more times before it stops at the next misclassified
      iterate.

    Samples that never stop get the attack's last iterate $x^K$; predictions are read at
    $x^0, \dots, x^{K-1}$. Call :meth:`reset` with the labels and the clean batch before each attack.
    Shapes are checked at every step (free under compile); the labels' range and the soft labels
    once per attack, at its first step, in eager mode.

    Args:
        stop_at: ``"last_clean"`` or ``"first_adversarial"``.
        patience: extra steps after the first misclassification (``"first_adversarial"``; BAT: 1).

    Example:
        >>> from torch_absld import pgd
        >>> model = nn.Linear(4, 3)
        >>> x, y = torch.rand(5, 4), torch.tensor([0, 1, 2, 0, 1])
        >>> stopper = EarlyStopping("last_clean")
        >>> stopper.reset(y, x)
        >>> p = torch.softmax(model(x), dim=1).detach()
        >>> final = pgd(LogitsAndInput(model), x, p, objective=stopper, eps=0.3, steps=4, seed=0)
        >>> stopper.emitted(final).shape
        torch.Size([5, 4])
    """

    def __init__(self, stop_at: StopAt = "last_clean", *, patience: int = 1) -> None:
        check_choice(stop_at, "stop_at", ("last_clean", "first_adversarial"))
        self.stop_at: StopAt = stop_at
        self.patience = check_integer(patience, "patience", minimum=0)
        self.labels = torch.zeros(0, dtype=torch.long)
        self.active = torch.zeros(0, dtype=torch.bool)
        self.remaining = torch.zeros(0, dtype=torch.long)
        self.checks = torch.zeros((), dtype=torch.long)
        self.kept = torch.zeros(0)
        self._unchecked = False

    def reset(self, labels: Tensor, input: Tensor) -> None:
        r"""Start a new attack on the clean batch ``input`` with labels ``labels``: every sample active.

        Labels of any integer dtype are accepted (as int64).

        Shape:
            - labels: $(N,)$ integer classes
            - input: $(N, \dots)$, the batch to be attacked
        """
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
        if not (isinstance(output, (tuple, list)) and len(output) == 2 and all(isinstance(t, Tensor) for t in output)):
            got = f"a tuple of {len(output)}" if isinstance(output, (tuple, list)) else type(output).__name__
            raise TypeError(
                f"Expected the attacked module to return (logits, input), but got {got}. Attack "
                "`LogitsAndInput(model)`, which keeps the iterates."
            )
        logits, iterate = output
        check_logits(logits, "logits")
        if logits.shape[:1] != self.labels.shape or iterate.shape != self.kept.shape:
            raise RuntimeError(
                f"Expected logits for {self.labels.shape[0]} samples as given to `reset`, but got "
                f"{tuple(logits.shape)}. Call `reset(labels, input)` before each attack."
            )
        if not isinstance(target, Tensor) or target.shape != logits.shape or not target.is_floating_point():
            got = f"{target.dtype} of shape {tuple(target.shape)}" if isinstance(target, Tensor) else type(target)
            raise ValueError(
                f"Expected `target` to be soft labels of the logits' shape {tuple(logits.shape)}, but got {got}. "
                "Pass the clean predictions' probabilities."
            )
        if self._unchecked and values_checkable(True):
            classes = logits.shape[1]
            raise_first([label_range_flag(self.labels, classes, "labels"), probability_flag(target, "target")])
            self._unchecked = False
        with torch.no_grad():
            point = iterate.detach()
            correct = logits.detach().argmax(dim=1) == self.labels
            turned = self.active & ~correct
            stopping = turned & (self.remaining == 0)
            # last clean: keep every iterate still classified correctly (and the start); first adversarial:
            # keep the iterate a sample stops at.
            keep = self.active & (correct | (self.checks == 0)) if self.stop_at == "last_clean" else stopping
            self.kept.copy_(torch.where(keep.view(point.shape[0], *([1] * (point.dim() - 1))), point, self.kept))
            self.remaining.sub_((turned & (self.remaining > 0)).long())
            self.active.logical_and_(~stopping)
            self.checks.add_(1)
        log_q = torch.log_softmax(at_least_float32(logits), dim=1)
        per_sample = F.kl_div(log_q, target.to(log_q.dtype), reduction="none").sum(dim=1)
        return (per_sample * self.active.to(per_sample.dtype)).sum()

    def emitted(self, final: Tensor) -> Tensor:
        r"""Each sample's point: its kept iterate if it stopped, else ``final`` (the attack's result).

        Shape:
            - final: $(N, \dots)$, the attack's output
            - Output: like ``final``
        """
        if self.kept.shape != final.shape:
            raise RuntimeError(
                f"Expected `final` of the attacked batch's shape {tuple(self.kept.shape)}, but got "
                f"{tuple(final.shape)}."
            )
        mask = self.active.view(final.shape[0], *([1] * (final.dim() - 1)))
        return torch.where(mask, final, self.kept.to(final.dtype))

    def __repr__(self) -> str:
        return f"EarlyStopping({self.stop_at!r}, patience={self.patience})"
