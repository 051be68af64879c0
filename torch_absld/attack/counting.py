""":class:`CountingObjective`: a named attack objective that also counts correctly classified iterates."""

from __future__ import annotations

import torch
from torch import Tensor

from .._internal import checks
from .objectives import ObjectiveName, _attack_objective, check_output_width, check_target, target_flag

__all__ = ["CountingObjective"]


class CountingObjective:
    r"""The objective ``objective`` of :func:`~torch_absld.attack_objective`, counting correct predictions on the way.

    The callable ``objective`` of :func:`~torch_absld.pgd`: each ascent step adds 1 to :attr:`counts`
    for each sample still predicted as its label, so after $K$ steps ``counts`` holds Fair-ARD's
    $\kappa_i \in \{0, \dots, K\}$ (``AttackPGD.forward`` of the official ``Fair-ARD.py``). Call
    :meth:`reset` before each attack. ``objective``: ``"ce"`` or ``"cw"`` (labels as the target) or
    ``"kl"`` (soft labels, temperature ``student_temperature``).

    Example:
        >>> from torch_absld import pgd
        >>> counter, y = CountingObjective("ce"), torch.tensor([0, 1, 2, 0, 1])
        >>> counter.reset(y)
        >>> _ = pgd(torch.nn.Linear(4, 3), torch.rand(5, 4), y, objective=counter, eps=0.1, steps=3)
        >>> bool(counter.counts.max() <= 3)
        True
    """

    def __init__(self, objective: ObjectiveName = "ce", *, student_temperature: float = 1.0) -> None:
        checks.check_choice(objective, "objective", ("ce", "kl", "cw"))
        self.objective: ObjectiveName = objective
        self.student_temperature = checks.check_positive(student_temperature, "student_temperature")
        self._reset(torch.zeros(0, dtype=torch.long))

    def reset(self, labels: Tensor) -> None:
        """Start counting for a new attack on samples with labels $(N,)$ (any integer dtype): zero ``counts``."""
        self._reset(labels)
        self._unchecked = True

    def _reset(self, labels: Tensor) -> None:
        """:meth:`reset` without the value checks of the coming attack (the caller checked the labels)."""
        self.labels = checks.check_integer_labels(labels, None, name="labels", check_values=False).detach()
        self.counts = torch.zeros(labels.shape, dtype=torch.float32, device=labels.device)
        self._unchecked = False

    def __call__(self, output: Tensor, target: Tensor) -> Tensor:
        """Count the correct predictions in ``output``, then return the summed objective."""
        checks.check_logits(output, "output")
        if output.shape[:1] != self.labels.shape:
            raise RuntimeError(
                f"Expected logits for {self.labels.shape[0]} samples as given to `reset(labels)`, but got "
                f"{tuple(output.shape)}. Call `reset(labels)` before each attack."
            )
        target = check_target(target, self.objective, output.shape[0], device=output.device)
        if self.objective == "kl":
            check_output_width(output, target, self.objective, "output")
        with torch.no_grad():
            self.counts.add_((output.detach().argmax(dim=1) == self.labels).to(self.counts.dtype))
        return _attack_objective(output, target, self.objective, student_temperature=self.student_temperature)

    def _value_checks(self, output: Tensor, target: Tensor) -> list[checks.ValueCheck]:
        """The flags of the labels and the attack's target after :meth:`reset` (``output``: logits of any batch)."""
        if not self._unchecked:
            return []
        self._unchecked = False
        checks.check_logits(output, "output")
        batch = target.shape[0] if isinstance(target, Tensor) and target.dim() else -1  # rows: checked per step
        target = check_target(target, self.objective, batch, device=output.device)
        classes = output.shape[1]
        return [checks.label_range_flag(self.labels, classes, "labels"), target_flag(target, self.objective, classes)]

    def __repr__(self) -> str:
        return f"CountingObjective({self.objective!r})"
