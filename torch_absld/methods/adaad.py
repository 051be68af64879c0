"""AdaAD, Adaptive Adversarial Distillation (Huang et al. 2023), as a training-step module."""

from __future__ import annotations

from typing import NamedTuple, cast

from torch import Tensor, nn

from ..attack import PGDConfig
from ..attack.objectives import Objective
from ..losses.adaad import AdaADLoss, adaad_attack_objective, adaad_loss
from .adversarial import AdversarialStep
from .registry import Method, register

__all__ = ["ADAAD_ATTACK", "AdaADOutput", "AdaADStep", "StudentAndTeacher"]

ADAAD_ATTACK = PGDConfig(eps=8 / 255, step_size=2 / 255, steps=10, random_start="normal", init_std=0.001)
"""AdaAD's training attack: the README's command (``--epsilon 8 --step_size 2 --num_steps 10``), ``AT_helper.py``."""


class StudentAndTeacher(nn.Module):
    """Both networks on one input: ``forward(x)`` returns ``(student(x), teacher(x))``, what AdaAD's attack ascends."""

    def __init__(self, student: nn.Module, teacher: nn.Module) -> None:
        super().__init__()
        self.student = student
        self.teacher = teacher

    def train(self, mode: bool = True) -> StudentAndTeacher:
        """The student in ``mode`` (a ``model_mode="train"`` attack); the teacher stays in eval mode."""
        super().train(mode)
        self.teacher.eval()
        return self

    def forward(self, input: Tensor) -> tuple[Tensor, Tensor]:
        return self.student(input), self.teacher(input)


class AdaADOutput(NamedTuple):
    """What :meth:`AdaADStep.forward` returns: the loss, its two KL terms (detached), the logits and ``x_adv``."""

    loss: Tensor
    adv_kl: Tensor
    clean_kl: Tensor
    student_adv_logits: Tensor
    student_clean_logits: Tensor
    teacher_adv_logits: Tensor
    teacher_clean_logits: Tensor
    x_adv: Tensor


class AdaADStep(AdversarialStep):
    r"""AdaAD: the attack maximises the teacher-student KL with the **teacher inside the loop**.

    ``out = step(x, y)`` is exactly (the student in ``model_mode``, the teacher in eval mode in the attack, from
    $x + 0.001\,\mathcal{N}(0, 1)$; the labels are only checked)::

        x_adv = pgd(StudentAndTeacher(student, teacher), x, y, config=ADAAD_ATTACK,
                    objective=adaad_attack_objective)
        t_adv, t_clean = teacher(x_adv).detach(), teacher(x).detach()
        s_clean, s_adv = student(x), student(x_adv)
        loss = adaad_loss(s_adv, s_clean, t_adv, t_clean, alpha=1.0)

    Args:
        **options: ``alpha`` (1), ``reduction`` and the attack's (:data:`ADAAD_ATTACK`).
            ``model_mode``: attack in ``"eval"`` (batch-norm statistics untouched) or ``"train"`` (moved).
    """

    loss_type = AdaADLoss
    default_attack = ADAAD_ATTACK

    def _attack_parts(self) -> tuple[PGDConfig, Objective, nn.Module]:
        return ADAAD_ATTACK, adaad_attack_objective, StudentAndTeacher(self.student, cast(nn.Module, self.teacher))

    def forward(self, input: Tensor, target: Tensor) -> AdaADOutput:
        """One step's forward work: the joint attack, both teacher forwards, both student forwards, loss."""
        target = self.check_inputs(input, target, values=False)
        x_adv = self.run_attack(input, target)
        teacher_adv, teacher_clean = self.teacher_logits(x_adv), self.teacher_logits(input)
        self.check_values(input, target, (teacher_adv, teacher_clean))
        student_clean, student_adv = self.student_logits(input, x_adv)
        adv_kl, clean_kl = self.loss_fn._terms(
            student_adv=student_adv, student_clean=student_clean, teacher_adv=teacher_adv, teacher_clean=teacher_clean
        )
        loss = self.loss_fn.combine(adv_kl, clean_kl)
        return AdaADOutput(
            loss, adv_kl.detach(), clean_kl.detach(), student_adv, student_clean, teacher_adv, teacher_clean, x_adv
        )


register(Method("adaad", "AdaAD", AdaADStep, adaad_loss, needs_teacher=True, summary=__doc__ or ""))
