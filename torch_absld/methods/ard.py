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
"""ARD's training attack (``main.py``: ``epsilon 8/255, num_steps 10, step_size 2/255``, a uniform
start, the student's cross-entropy): the settings of :data:`~torch_absld.methods.sat.SAT_ATTACK`."""


class ARDOutput(NamedTuple):
    r"""What :meth:`ARDStep.forward` returns.

    Attributes:
        loss: the ARD loss, to call ``backward()`` on.
        adv_kl: the distillation term $T^2\,\mathbb{E}[\mathrm{KL}]$ alone (before $\alpha$), detached.
        clean_ce: the clean cross-entropy term alone (before $1 - \alpha$), detached.

    The other fields are those of :class:`~torch_absld.methods.adversarial.DistillationForwards`.
    """

    loss: Tensor
    adv_kl: Tensor
    clean_ce: Tensor
    student_adv_logits: Tensor
    student_clean_logits: Tensor
    teacher_logits: Tensor
    x_adv: Tensor


class ARDStep(AdversarialStep):
    r"""ARD: $\alpha T^2\,\mathbb{E}[\mathrm{KL}(p_T(f_t(x)) \| q_T(f_s(x')))] + (1 - \alpha)\,\mathrm{CE}(f_s(x), y)$.

    ``out = step(x, y)`` runs the teacher on the clean batch (eval mode, no gradient), the
    CE-PGD attack on the **student alone** (its cross-entropy to the labels, a uniform start,
    eval mode), the student on ``x_adv`` then on ``x`` in the step's mode, and
    :func:`~torch_absld.losses.ard.ard_loss` ($T = 30$, $\alpha = 1$). It is exactly::

        with torch.no_grad():
            t = teacher(x)
        x_adv = pgd(student, x, y, config=ARD_ATTACK, objective="ce")
        loss = ard_loss(student(x_adv), student(x), t, y, temperature=30.0, alpha=1.0)

    Args:
        student: the network being trained.
        teacher: the frozen teacher.
        num_classes: number of classes $C$.
        **options: ``temperature`` (30), ``alpha`` (1) and ``reduction`` of
            :class:`~torch_absld.losses.ard.ARDLoss`, and those of
            :class:`~torch_absld.methods.adversarial.AdversarialStep` (``attack``, default :data:`ARD_ATTACK`).

    Shape:
        - input: $(N, \dots)$ in ``[clip_min, clip_max]``; target: $(N,)$ integer classes
        - Output: an :class:`ARDOutput`

    Example:
        >>> import torch
        >>> from torch import nn
        >>> step = ARDStep(nn.Linear(12, 3), nn.Linear(12, 3), 3, steps=2)
        >>> out = step(torch.rand(4, 12), torch.tensor([0, 1, 2, 0]))
        >>> torch.equal(out.loss, out.adv_kl)  # alpha = 1
        True
    """

    loss_type = ARDLoss
    default_attack = ARD_ATTACK
    objective = "ce"

    def forward(self, input: Tensor, target: Tensor) -> ARDOutput:
        """One step's forward work: teacher, attack, both student forwards, loss."""
        target = self.check_inputs(input, target, values=False)
        out = self.distillation_forwards(input, target, target)
        student_adv, student_clean, teacher = out[:3]
        kl, ce = self.loss_fn._terms(
            student_adv=student_adv, student_clean=student_clean, teacher=teacher, target=target
        )
        return ARDOutput(self.loss_fn.combine(kl, ce), kl.detach(), ce.detach(), *out)


register(
    Method(
        name="ard",
        title="ARD",
        step=ARDStep,
        loss=ard_loss,
        needs_teacher=True,
        summary="Goldblum et al. 2020: the student's adversarial outputs distilled to the teacher's clean ones.",
    )
)
