"""ARD, Adversarially Robust Distillation (Goldblum et al. 2020), as a training-step module."""

from __future__ import annotations

from typing import Any, NamedTuple

from torch import Tensor, nn
from typing_extensions import Unpack

from ..losses import ARDLoss, SampleReduction
from ..losses.ard import DEFAULT_ALPHA, DEFAULT_TEMPERATURE
from .adversarial import AdversarialStep, StepOptions, require_teacher
from .sat import SAT_ATTACK

__all__ = ["ARD_ATTACK", "ARDDistiller", "ARDOutput", "build_ard"]

ARD_ATTACK = SAT_ATTACK
"""ARD's training attack (``main.py``: ``epsilon 8/255, num_steps 10, step_size 2/255``, a uniform
start, the student's summed cross-entropy): Madry et al.'s, the same settings as :data:`SAT_ATTACK`."""


class ARDOutput(NamedTuple):
    r"""What :meth:`ARDDistiller.forward` returns.

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


class ARDDistiller(AdversarialStep):
    r"""ARD: $\alpha T^2\,\mathbb{E}[\mathrm{KL}(p_T(f_t(x)) \| q_T(f_s(x')))] + (1 - \alpha)\,\mathrm{CE}(f_s(x), y)$.

    ``out = distiller(x, y)`` runs, in this order:

    1. the teacher on the clean batch, in eval mode, without gradient;
    2. the CE-PGD attack on the **student alone** (its own cross-entropy to the true labels, a
       uniform start), student in eval mode;
    3. the student on ``x_adv`` then on ``x``, in the distiller's mode;
    4. :func:`~torch_absld.losses.ard_loss` ($T = 30$, $\alpha = 1$).

    It is exactly::

        with torch.no_grad():
            t = teacher(x)
        x_adv = pgd(student, x, y, config=ARD_ATTACK, objective="ce")
        loss = ard_loss(student(x_adv), student(x), t, y, temperature=30.0, alpha=1.0)

    The authors' ``main.py`` attacks with the student in train mode (batch statistics, running
    averages updated by every attack step); this step follows the library's convention (eval
    mode during the attack). With $\alpha = 1$ the clean forward does not enter the loss; it is
    run as in ``main.py`` (it updates batch norm's running statistics and gives ``clean_ce``).

    Args:
        student: the network being trained.
        teacher: the frozen teacher.
        num_classes: number of classes $C$.
        temperature: $T$ (30, ``main.py``).
        alpha: weight $\alpha$ of the KL term (1, ``main.py``).
        reduction: of the loss, ``"mean"`` (default: the authors' scale), ``"sum"`` or ``"none"``.
        **options: the attack and the checks (:class:`~torch_absld.methods.adversarial.StepOptions`):
            ``attack`` (default :data:`ARD_ATTACK`), ``generator``, ``eps``, ``step_size``,
            ``steps``, ``compile``, ``validate_args``, ``teacher_in_state_dict``, ...

    Shape:
        - input: $(N, \dots)$ in ``[clip_min, clip_max]``
        - target: $(N,)$ integer classes
        - Output: an :class:`ARDOutput`

    Example:
        >>> import torch
        >>> student, teacher = nn.Linear(12, 3), nn.Linear(12, 3)
        >>> distiller = ARDDistiller(student, teacher, 3, steps=2)
        >>> out = distiller(torch.rand(4, 12), torch.tensor([0, 1, 2, 0]))
        >>> torch.equal(out.loss, out.adv_kl)  # alpha = 1
        True
    """

    def __init__(
        self,
        student: nn.Module,
        teacher: nn.Module,
        num_classes: int,
        *,
        temperature: float = DEFAULT_TEMPERATURE,
        alpha: float = DEFAULT_ALPHA,
        reduction: SampleReduction = "mean",
        **options: Unpack[StepOptions],
    ) -> None:
        super().__init__(
            student, teacher, num_classes, default_attack=ARD_ATTACK, objective="ce", needs_teacher=True, **options
        )
        self.loss_fn = ARDLoss(
            temperature=temperature, alpha=alpha, reduction=reduction, validate_args=self.validate_args
        )

    def forward(self, input: Tensor, target: Tensor) -> ARDOutput:
        """One step's forward work: teacher, attack, both student forwards, loss."""
        target = self.check_inputs(input, target, values=False)
        out = self.distillation_forwards(input, target, labels=target)
        kl, ce = self.loss_fn.terms(
            out.student_adv_logits, out.student_clean_logits, out.teacher_logits, target, validated=True
        )
        loss = self.loss_fn.combine(kl, ce)
        return ARDOutput(loss, kl.detach(), ce.detach(), out.student_adv_logits, out.student_clean_logits, *out[:2])


def build_ard(
    student: nn.Module, *, num_classes: int, teacher: nn.Module | None = None, **hyperparameters: Any
) -> ARDDistiller:
    """``methods.create("ard", ...)``: an :class:`ARDDistiller` (a teacher is required)."""
    return ARDDistiller(student, require_teacher("ard", teacher), num_classes, **hyperparameters)
