r""":class:`CountingObjective`: a named attack objective that also counts correctly classified iterates."""

from __future__ import annotations

import torch
from torch import Tensor

from .._internal.checks import (
    ValueCheck,
    check_choice,
    check_integer_labels,
    check_logits,
    check_positive,
    label_range_flag,
    probability_flag,
    raise_first,
    values_checkable,
)
from .objectives import ObjectiveName, check_output_width, check_target, objective_value

__all__ = ["CountingObjective"]


class CountingObjective:
    r"""The objective ``objective`` of :func:`~torch_absld.attack_objective`, counting correct predictions on the way.

    Pass it as a callable ``objective`` to :func:`~torch_absld.pgd` (or
    :class:`~torch_absld.KLPGDAttack`). Every ascent step evaluates the model once at its current
    iterate; this objective adds 1 to :attr:`counts` for each sample whose prediction there
    (arg-max of the logits) is its label. After a $K$-step attack, ``counts`` holds Fair-ARD's
    $\kappa_i \in \{0, \dots, K\}$: the number of iterates among the start and the first $K - 1$
    steps (not the returned one) that the model still classifies correctly, from the same
    forward that gives the gradient (``AttackPGD.forward`` of the official ``Fair-ARD.py``).
    Call :meth:`reset` with the labels before each attack. Shapes are checked at every step (free
    under compile); the values of the labels and of the attack's target once per attack, at its
    first step, in eager mode (one read from the device).

    Args:
        objective: what the attack ascends: ``"ce"`` (integer labels as the attack's target),
            ``"kl"`` (soft labels as the attack's target) or ``"cw"``.
        student_temperature: $\tau_s$ of the ``"kl"`` objective.

    Example:
        >>> from torch_absld import pgd
        >>> model = torch.nn.Linear(4, 3)
        >>> x, y = torch.rand(5, 4), torch.tensor([0, 1, 2, 0, 1])
        >>> counter = CountingObjective("ce")
        >>> counter.reset(y)
        >>> x_adv = pgd(model, x, y, objective=counter, eps=0.1, steps=3)
        >>> counter.counts.shape, int(counter.counts.max()) <= 3
        (torch.Size([5]), True)
    """

    counts: Tensor
    labels: Tensor

    def __init__(self, objective: ObjectiveName = "ce", *, student_temperature: float = 1.0) -> None:
        check_choice(objective, "objective", ("ce", "kl", "cw"))
        self.objective: ObjectiveName = objective
        self.student_temperature = check_positive(student_temperature, "student_temperature")
        self.labels = torch.zeros(0, dtype=torch.long)
        self.counts = torch.zeros(0)
        self._unchecked = False

    def reset(self, labels: Tensor) -> None:
        """Start counting for a new attack on samples with these labels (``counts`` become zeros).

        Labels of any integer dtype are accepted (as int64).

        Shape:
            - labels: $(N,)$ integer classes
        """
        self._reset(labels)
        self._unchecked = True

    def _reset(self, labels: Tensor) -> None:
        """:meth:`reset` without the value checks of the coming attack (the caller checked the labels)."""
        self.labels = check_integer_labels(labels, None, name="labels", check_values=False).detach()
        self.counts = torch.zeros(labels.shape, dtype=torch.float32, device=labels.device)
        self._unchecked = False

    def __call__(self, output: Tensor, target: Tensor) -> Tensor:
        """Count the correct predictions in ``output``, then return the summed objective."""
        check_logits(output, "output")
        if output.shape[:1] != self.labels.shape:
            raise RuntimeError(
                f"Expected logits for {self.labels.shape[0]} samples as given to `reset(labels)`, but got "
                f"{tuple(output.shape)}. Call `reset(labels)` before each attack."
            )
        checking = self._unchecked and values_checkable(True)
        target = check_target(target, self.objective, output.shape[0], False, device=output.device)
        if self.objective == "kl":
            check_output_width(output, target, self.objective, "output")
        if checking:
            self._check_values(output, target)
        with torch.no_grad():
            self.counts.add_((output.detach().argmax(dim=1) == self.labels).to(self.counts.dtype))
        return objective_value(output, target, self.objective, self.student_temperature)

    def _check_values(self, output: Tensor, target: Tensor) -> None:
        """The labels and the attack's target against the model's class count, in one read; once per attack."""
        classes = output.shape[1]
        checks: list[ValueCheck] = [label_range_flag(self.labels, classes, "labels")]
        if self.objective == "kl":
            checks.append(probability_flag(target, "target"))
        else:
            checks.append(label_range_flag(target, classes))
        raise_first(checks)
        self._unchecked = False

    def __repr__(self) -> str:
        return f"CountingObjective({self.objective!r})"
