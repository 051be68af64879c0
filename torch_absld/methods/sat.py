"""SAT, PGD adversarial training (Madry et al. 2018), as a training-step module."""

from __future__ import annotations

from typing import Any, NamedTuple

from torch import Tensor, nn

from ..attack import PGDConfig
from ..losses.sat import SATLoss, sat_loss
from .adversarial import AdversarialStep
from .registry import Method, register

__all__ = ["SAT_ATTACK", "SATOutput", "SATStep"]

SAT_ATTACK = PGDConfig(eps=8 / 255, step_size=2 / 255, steps=10, random_start="uniform")
"""Madry et al.'s training attack (``config.json`` of ``MadryLab/cifar10_challenge``: 8, 2, 10 steps in pixels)."""


class SATOutput(NamedTuple):
    """What :meth:`SATStep.forward` returns: the mean cross-entropy on ``x_adv``, the logits, ``x_adv``."""

    loss: Tensor
    student_adv_logits: Tensor
    x_adv: Tensor


class SATStep(AdversarialStep):
    r"""PGD adversarial training: $\min_\theta \mathbb{E}\,\max_{\|x' - x\|_\infty \le \epsilon} \mathrm{CE}(f(x'), y)$.

    ``out = step(x, y)`` is exactly::

        x_adv = pgd(student, x, y, config=SAT_ATTACK, objective="ce")  # student in model_mode
        loss = sat_loss(student(x_adv), y)

    Args:
        **options: ``reduction`` and the attack's (:data:`SAT_ATTACK`).
            ``model_mode``: attack in ``"eval"`` (batch-norm statistics untouched) or ``"train"`` (moved).
    """

    loss_type = SATLoss
    default_attack = SAT_ATTACK
    objective = "ce"
    needs_teacher = False

    def __init__(self, student: nn.Module, num_classes: int, **options: Any) -> None:
        super().__init__(student, None, num_classes, **options)

    def forward(self, input: Tensor, target: Tensor) -> SATOutput:
        """One step's forward work: attack, the student on ``x_adv``, loss."""
        target = self.check_inputs(input, target)
        x_adv = self.run_attack(input, target)
        (logits,) = self.student_logits(x_adv)
        return SATOutput(self.loss_fn._forward(student_adv=logits, target=target), logits, x_adv)


register(Method("sat", "SAT", SATStep, sat_loss, needs_teacher=False, summary=__doc__ or ""))
