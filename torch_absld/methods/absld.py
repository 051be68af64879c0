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
    """What :meth:`ABSLDStep.forward` returns: the loss (Eq. 12) and its two KL terms (detached), then the forwards."""

    loss: Tensor
    adv_kl: Tensor
    clean_kl: Tensor
    student_adv_logits: Tensor
    student_clean_logits: Tensor
    teacher_logits: Tensor
    x_adv: Tensor


class ABSLDStep(AdversarialStep):
    r"""ABSLD's per-step forward work in one module; ``on_epoch_end()`` adapts the temperatures.

    ``out = step(x, y)`` is exactly (the KL-PGD attack, Eq. 13, in ``model_mode``; the loss, Eq. 12,
    records each sample's risk in training mode)::

        teacher_logits = teacher(x).detach()
        x_adv = attack(x, loss_fn.soft_labels(teacher_logits, y, kind="adv"))
        loss = loss_fn(student(x_adv), student(x), teacher_logits, y)

    ``step.on_epoch_end()`` once per epoch (after the scheduler's step when beta follows the
    learning rate) all-reduces the risks and returns ``(tau_adv, tau_clean)``.

    Args:
        **options: :class:`~torch_absld.ABSLDLoss`'s (``lr``, ``coupling``, ``adapt``, ...) and the attack's.
            ``model_mode``: attack in ``"eval"`` (batch-norm statistics untouched) or ``"train"`` (moved).

    Example:
        >>> import torch
        >>> step = ABSLDStep(nn.Linear(12, 3), nn.Linear(12, 3), 3, steps=2)
        >>> step(torch.rand(4, 12), torch.tensor([0, 1, 2, 0])).loss.backward()
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
        """One step's forward work: teacher, attack, both student forwards, loss (zero for an empty batch)."""
        target = self.check_inputs(input, target, values=False)
        out = self.distillation_forwards(input, target, lambda t: self.loss_fn._soft_labels(t, target))
        adv_kl, clean_kl = self.loss_fn._terms(*out[:3], target)
        return ABSLDOutput(self.loss_fn.combine(adv_kl, clean_kl), adv_kl.detach(), clean_kl.detach(), *out)

    @property
    def temperatures(self) -> tuple[Tensor, Tensor]:
        """The current ``(tau_adv, tau_clean)``, each of shape $(C,)$."""
        return self.loss_fn.adv.temperatures, self.loss_fn.clean.temperatures


register(Method("absld", "ABSLD", ABSLDStep, absld_loss, needs_teacher=True, summary=__doc__ or ""))
register(Method("rslad", "RSLAD", ABSLDStep, absld_loss, True, defaults={"adapt": "none"}, summary="Zi et al. 2021."))
