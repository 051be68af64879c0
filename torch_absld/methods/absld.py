"""ABSLD (and RSLAD, its frozen-temperature special case) as a training-step module."""

from __future__ import annotations

from typing import Any, NamedTuple

from torch import Tensor, nn

from ..attack import PGDConfig
from ..loss import ABSLDLoss, absld_loss
from .adversarial import AdversarialStep
from .registry import Method, register

__all__ = ["ABSLDOutput", "ABSLDStep"]


class ABSLDOutput(NamedTuple):
    """What :meth:`ABSLDStep.forward` returns.

    Attributes:
        loss: the ABSLD loss (Eq. 12) to call ``backward()`` on.
        adv_kl: the adversarial KL term alone, detached (same reduction as ``loss``).
        clean_kl: the clean KL term alone, detached.
        student_adv_logits: the student's logits on ``x_adv`` (train-mode forward).
        student_clean_logits: the student's logits on the clean batch.
        teacher_logits: the teacher's logits on the clean batch (no gradient).
        x_adv: the adversarial batch (detached, float32 within ``eps`` of the input).
    """

    loss: Tensor
    adv_kl: Tensor
    clean_kl: Tensor
    student_adv_logits: Tensor
    student_clean_logits: Tensor
    teacher_logits: Tensor
    x_adv: Tensor


class ABSLDStep(AdversarialStep):
    r"""ABSLD's per-step forward work in one module; ``on_epoch_end()`` adapts the temperatures.

    ``out = step(x, y)`` runs the teacher on the clean batch (eval mode, no gradient), the
    KL-PGD attack (Eq. 13) against the student (eval mode) to the teacher's adversarial soft
    labels, the student on ``x_adv`` then on ``x`` in the step's mode, and the loss (Eq. 12),
    which in training mode records each sample's risk. It is exactly::

        with torch.no_grad():
            teacher_logits = teacher(x)
        x_adv = attack(x, loss_fn.soft_labels(teacher_logits, y, kind="adv"))
        loss = loss_fn(student(x_adv), student(x), teacher_logits, y)

    Then ``out.loss.backward()``, the optimizer step, and ``step.on_epoch_end()`` once per epoch
    (after the learning-rate scheduler's step when beta follows the learning rate); it returns
    ``(tau_adv, tau_clean)``. A checkpoint holds the student and the temperatures (``loss_fn``);
    optimise ``step.student.parameters()``. Under ``DistributedDataParallel`` the temperatures
    are synchronised by the controllers' all-reduce in ``on_epoch_end()``.

    Args:
        student: the network being trained.
        teacher: the frozen teacher; any ``nn.Module`` mapping the same inputs to $(N, C)$ logits.
        num_classes: number of classes $C$.
        **options: those of :class:`~torch_absld.ABSLDLoss` (``lr``, ``coupling``, ``adapt``, ...;
            or ``loss=ABSLDLoss(...)``) and of :class:`~torch_absld.methods.adversarial.AdversarialStep`
            (``attack``, default: the paper's, eps 8/255, 10 steps of 2/255 from
            $x + 0.001\,\mathcal{N}(0, 1)$, at the loss's ``student_temperature``).

    Shape:
        - input: $(N, \dots)$ in ``[clip_min, clip_max]``; target: $(N,)$ integer classes in $[0, C)$
        - Output: an :class:`ABSLDOutput`; ``loss`` is a scalar (or $(N,)$ with ``reduction="none"``)

    Example:
        >>> import torch
        >>> student = nn.Sequential(nn.Flatten(), nn.Linear(12, 3))
        >>> teacher = nn.Sequential(nn.Flatten(), nn.Linear(12, 3))
        >>> step = ABSLDStep(student, teacher, 3, steps=2)
        >>> out = step(torch.rand(4, 12), torch.tensor([0, 1, 2, 0]))
        >>> out.loss.backward()
        >>> tau_adv, tau_clean = step.on_epoch_end()
        >>> sorted(step.state_dict())[:2]
        ['loss_fn.adv._extra_state', 'loss_fn.adv.accumulator']
    """

    loss_type = ABSLDLoss
    default_attack = PGDConfig()

    def __init__(self, student: nn.Module, teacher: nn.Module, num_classes: int, **options: Any) -> None:
        super().__init__(student, teacher, num_classes, **options)
        self.attack.student_temperature = self.loss_fn.student_temperature

    def forward(self, input: Tensor, target: Tensor) -> ABSLDOutput:
        """One step's forward work: teacher, attack, both student forwards, loss.

        An empty batch gives a zero loss (part of the graph) and records nothing.
        """
        target = self.check_inputs(input, target, values=False)
        out = self.distillation_forwards(input, target, lambda t: self.loss_fn._soft_labels(t, target))
        adv_kl, clean_kl = self.loss_fn._terms(*out[:3], target)
        return ABSLDOutput(self.loss_fn.combine(adv_kl, clean_kl), adv_kl.detach(), clean_kl.detach(), *out)

    @property
    def temperatures(self) -> tuple[Tensor, Tensor]:
        """The current ``(tau_adv, tau_clean)``, each of shape $(C,)$."""
        return self.loss_fn.adv.temperatures, self.loss_fn.clean.temperatures


register(
    Method(
        name="absld",
        title="ABSLD",
        step=ABSLDStep,
        loss=absld_loss,
        needs_teacher=True,
        summary="Zhao et al. 2024: RSLAD with class-wise temperatures that balance the classes' robust risks.",
    )
)
register(
    Method(
        name="rslad",
        title="RSLAD",
        step=ABSLDStep,
        loss=absld_loss,
        needs_teacher=True,
        defaults={"adapt": "none"},
        summary="Zi et al. 2021: the student's outputs distilled to the teacher's soft labels (frozen temperatures).",
    )
)
