"""AdaAD, Adaptive Adversarial Distillation (Huang et al. 2023), as a training-step module."""

from __future__ import annotations

from typing import Any, NamedTuple

from torch import Tensor, nn
from typing_extensions import Unpack

from ..attack import PGDConfig
from ..kl import Reduction
from ..losses import AdaADLoss, adaad_attack_objective
from ..losses.adaad import DEFAULT_ALPHA
from .adversarial import AdversarialStep, StepOptions, require_teacher

__all__ = ["ADAAD_ATTACK", "AdaADDistiller", "AdaADOutput", "StudentAndTeacher", "build_adaad"]

ADAAD_ATTACK = PGDConfig(eps=8 / 255, step_size=2 / 255, steps=10, random_start="normal", init_std=0.001)
r"""AdaAD's training attack: the README's main command (``--epsilon 8 --step_size 2 --num_steps 10``; the
argparse defaults 16 and 4 are its "larger search radius" variant) and ``AT_helper.py``'s start
$x + 0.001\,\mathcal{N}(0, 1)$."""


class StudentAndTeacher(nn.Module):
    """Both networks on one input: ``forward(x)`` returns ``(student(x), teacher(x))``, what AdaAD's attack ascends."""

    def __init__(self, student: nn.Module, teacher: nn.Module) -> None:
        super().__init__()
        self.student = student
        self.teacher = teacher

    def forward(self, input: Tensor) -> tuple[Tensor, Tensor]:
        return self.student(input), self.teacher(input)


class AdaADOutput(NamedTuple):
    """What :meth:`AdaADDistiller.forward` returns.

    Attributes:
        loss: the AdaAD loss, to call ``backward()`` on.
        adv_kl: the adversarial KL term alone, detached.
        clean_kl: the clean KL term alone, detached.
        student_adv_logits: the student's logits on ``x_adv`` (the step's mode).
        student_clean_logits: the student's logits on the clean batch.
        teacher_adv_logits: the teacher's logits on ``x_adv`` (no gradient).
        teacher_clean_logits: the teacher's logits on the clean batch (no gradient).
        x_adv: the adversarial batch (detached).
    """

    loss: Tensor
    adv_kl: Tensor
    clean_kl: Tensor
    student_adv_logits: Tensor
    student_clean_logits: Tensor
    teacher_adv_logits: Tensor
    teacher_clean_logits: Tensor
    x_adv: Tensor


class AdaADDistiller(AdversarialStep):
    r"""AdaAD: the attack maximises the teacher-student KL with the **teacher inside the loop**.

    ``out = distiller(x, y)`` runs, in this order:

    1. the attack on :class:`StudentAndTeacher`: PGD ascending
       :func:`~torch_absld.losses.adaad_attack_objective`,
       $\sum_i \mathrm{KL}(\mathrm{softmax} f_t(x'_i) \,\|\, \mathrm{softmax} f_s(x'_i))$, the gradient
       through both networks (both in eval mode), start $x + 0.001\,\mathcal{N}(0, 1)$;
    2. the teacher on ``x_adv`` and on ``x``, without gradient (the input, the labels and both
       teacher outputs are then checked, in one read from the device);
    3. the student on ``x`` then on ``x_adv``, in the distiller's mode;
    4. :func:`~torch_absld.losses.adaad_loss` ($\alpha = 1$, mean over the $N \times C$ elements).

    It is exactly::

        x_adv = pgd(StudentAndTeacher(student, teacher), x, y, config=ADAAD_ATTACK,
                    objective=adaad_attack_objective)
        with torch.no_grad():
            t_adv, t_clean = teacher(x_adv), teacher(x)
        s_clean, s_adv = student(x), student(x_adv)
        loss = adaad_loss(s_adv, s_clean, t_adv, t_clean, alpha=1.0)

    Unlike ARD, RSLAD and ABSLD, the teacher sees the adversarial input, in the attack and in the
    loss; the labels are used only for the checks. The official CIFAR-100 branch uses the
    batch-mean KL: ``reduction="batchmean"``.

    Args:
        student: the network being trained.
        teacher: the frozen teacher.
        num_classes: number of classes $C$.
        alpha: weight $\alpha$ of the adversarial term (1, ``main.py``).
        reduction: of the loss, ``"mean"`` (default; official CIFAR-10), ``"batchmean"``
            (official CIFAR-100), ``"sum"`` or ``"none"``.
        **options: the attack and the checks (:class:`~torch_absld.methods.adversarial.StepOptions`):
            ``attack`` (default :data:`ADAAD_ATTACK`), ``generator``, ``eps``, ``step_size``,
            ``steps``, ``compile``, ``validate_args``, ``teacher_in_state_dict``, ...

    Shape:
        - input: $(N, \dots)$ in ``[clip_min, clip_max]``
        - target: $(N,)$ integer classes
        - Output: an :class:`AdaADOutput`

    Example:
        >>> import torch
        >>> distiller = AdaADDistiller(nn.Linear(12, 3), nn.Linear(12, 3), 3, alpha=0.5, steps=2)
        >>> out = distiller(torch.rand(4, 12), torch.tensor([0, 1, 2, 0]))
        >>> out.teacher_adv_logits.requires_grad, torch.allclose(out.loss, (out.adv_kl + out.clean_kl) / 2)
        (False, True)
    """

    def __init__(
        self,
        student: nn.Module,
        teacher: nn.Module,
        num_classes: int,
        *,
        alpha: float = DEFAULT_ALPHA,
        reduction: Reduction = "mean",
        **options: Unpack[StepOptions],
    ) -> None:
        both = StudentAndTeacher(student, teacher) if isinstance(teacher, nn.Module) else None
        objective = adaad_attack_objective
        super().__init__(
            student,
            teacher,
            num_classes,
            default_attack=ADAAD_ATTACK,
            objective=objective,
            attacked=both,
            needs_teacher=True,
            **options,
        )
        self.loss_fn = AdaADLoss(alpha=alpha, reduction=reduction, validate_args=self.validate_args)

    def forward(self, input: Tensor, target: Tensor) -> AdaADOutput:
        """One step's forward work: the joint attack, both student forwards, both teacher forwards, loss."""
        target = self.check_inputs(input, target, values=False)
        x_adv = self.attack(input, target, validated=True).detach()
        teacher_adv, teacher_clean = self.teacher_logits(x_adv), self.teacher_logits(input)
        # One read: the input, the labels and both teacher outputs (before the student's train-mode forwards).
        self.check_values(input, target, (teacher_adv, teacher_clean))
        student_clean, student_adv = self.student_logits(input, x_adv)
        adv_kl, clean_kl = self.loss_fn.terms(student_adv, student_clean, teacher_adv, teacher_clean, validated=True)
        return AdaADOutput(
            self.loss_fn.combine(adv_kl, clean_kl),
            adv_kl.detach(),
            clean_kl.detach(),
            student_adv,
            student_clean,
            teacher_adv,
            teacher_clean,
            x_adv,
        )


def build_adaad(
    student: nn.Module, *, num_classes: int, teacher: nn.Module | None = None, **hyperparameters: Any
) -> AdaADDistiller:
    """``methods.create("adaad", ...)``: an :class:`AdaADDistiller` (a teacher is required)."""
    return AdaADDistiller(student, require_teacher("adaad", teacher), num_classes, **hyperparameters)
