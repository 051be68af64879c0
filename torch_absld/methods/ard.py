"""ARD, Adversarially Robust Distillation (Goldblum et al. 2020), as a training-step module."""

from __future__ import annotations

from typing import NamedTuple

from torch import Tensor

from ..losses.ard import ARDLoss, ard_loss
from .adversarial import AdversarialStep
from .registry import Method, register
from .sat import SAT_ATTACK

__all__ = ["ARD_ATTACK", "ARDOutput", "ARDStep"]

ARD_ATTACK = SAT_ATTACK
"""ARD's training attack (``main.py``): :data:`~torch_absld.methods.sat.SAT_ATTACK`'s settings."""


class ARDOutput(NamedTuple):
    r"""What :meth:`ARDStep.forward` returns: the loss, its terms (detached, before $\alpha$), the forwards."""

    loss: Tensor
    adv_kl: Tensor
    clean_ce: Tensor
    student_adv_logits: Tensor
    student_clean_logits: Tensor
    teacher_logits: Tensor
    x_adv: Tensor


class ARDStep(AdversarialStep):
    r"""ARD: $\alpha T^2\,\mathbb{E}[\mathrm{KL}(p_T(f_t(x)) \| q_T(f_s(x')))] + (1 - \alpha)\,\mathrm{CE}(f_s(x), y)$.

    ``out = step(x, y)`` is exactly (the attack on the student alone, in ``model_mode``, a uniform start)::

        t = teacher(x).detach()
        x_adv = pgd(student, x, y, config=ARD_ATTACK, objective="ce")
        loss = ard_loss(student(x_adv), student(x), t, y, temperature=30.0, alpha=1.0)

    Args:
        **options: ``temperature`` (30), ``alpha`` (1), ``reduction`` and the attack's (:data:`ARD_ATTACK`).
            ``model_mode``: attack in ``"eval"`` (batch-norm statistics untouched) or ``"train"`` (moved).
    """

    loss_type = ARDLoss
    default_attack = ARD_ATTACK
    objective = "ce"

    def forward(self, input: Tensor, target: Tensor) -> ARDOutput:
        """One step's forward work: teacher, attack, both student forwards, loss."""
        target = self.check_inputs(input, target, values=False)
        out = self.distillation_forwards(input, target, target)
        kl, ce = self.loss_fn._terms(*out[:3], target)
        return ARDOutput(self.loss_fn.combine(kl, ce), kl.detach(), ce.detach(), *out)


register(Method("ard", "ARD", ARDStep, ard_loss, needs_teacher=True, summary=__doc__ or ""))
