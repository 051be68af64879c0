"""Fair-ARD (Yue et al. 2023) as a training-step module: ARD or RSLAD with per-class vulnerability weights."""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor, nn

from .._internal.checks import at_least_float32
from ..attack import CountingObjective, PGDConfig
from ..attack.objectives import Objective
from ..losses.fair_ard import FairARDLoss, fair_ard_loss
from .adversarial import AdversarialStep
from .registry import Method, register
from .sat import SAT_ATTACK

__all__ = ["FAIR_ARD_ATTACKS", "FairARDOutput", "FairARDStep"]

FAIR_ARD_ATTACKS: dict[str, PGDConfig] = {
    "ard": SAT_ATTACK,
    "rslad": PGDConfig(eps=8 / 255, step_size=2 / 255, steps=10, random_start="normal", init_std=0.001),
}
"""The base method's training attack: ``Fair-ARD.py``'s (ARD's) and ``Fair-RSLAD.py``'s (RSLAD's)."""


class FairARDOutput(NamedTuple):
    r"""What :meth:`FairARDStep.forward` returns: the loss, its terms (detached), $\kappa$, the forwards."""

    loss: Tensor
    adv_term: Tensor
    clean_term: Tensor
    kappa: Tensor
    student_adv_logits: Tensor
    student_clean_logits: Tensor
    teacher_logits: Tensor
    x_adv: Tensor


class FairARDStep(AdversarialStep):
    r"""Fair-ARD: the base distillation loss with per-class weights from each class's vulnerability.

    ``out = step(x, y)`` is exactly (``base="ard"``; the attack in ``model_mode``)::

        t = teacher(x).detach()
        counter.reset(y)  # counter = CountingObjective("ce")
        x_adv = pgd(student, x, y, config=FAIR_ARD_ATTACKS["ard"], objective=counter)
        loss = loss_fn(student(x_adv), student(x), t, y)  # loss_fn = FairARDLoss(C)
        loss_fn.record(counter.counts, y)  # in training mode; on_epoch_end() sets the next weights

    Args:
        **options: :class:`~torch_absld.losses.fair_ard.FairARDLoss`'s (``base`` ``"ard"`` or ``"rslad"``, ``beta``,
            ...) and the attack's (``FAIR_ARD_ATTACKS[base]``, at the loss's temperature).
            ``model_mode``: attack in ``"eval"`` (batch-norm statistics untouched) or ``"train"`` (moved).

    Example:
        >>> step = FairARDStep(nn.Linear(12, 3), nn.Linear(12, 3), 3, base="rslad", steps=2)
        >>> step(torch.rand(6, 12), torch.tensor([0, 1, 2, 0, 1, 2])).loss.backward()
        >>> step.on_epoch_end().shape
        torch.Size([3])
    """

    loss_type = FairARDLoss

    def _attack_parts(self) -> tuple[PGDConfig, Objective, nn.Module]:
        base = self.loss_fn.base
        self.counter = CountingObjective("ce" if base == "ard" else "kl", student_temperature=self.loss_fn.temperature)
        return FAIR_ARD_ATTACKS[base], self.counter, self.student

    @property
    def class_weights(self) -> Tensor:
        """The current class weights $w$, shape $(C,)$."""
        return self.loss_fn.class_weights  # type: ignore[no-any-return]

    def forward(self, input: Tensor, target: Tensor) -> FairARDOutput:
        r"""One step's forward work: teacher, attack (counting $\kappa$), both student forwards, loss."""
        target = self.check_inputs(input, target, values=False)
        self.counter._reset(target)
        soft_labels = lambda t: torch.softmax(at_least_float32(t) / self.loss_fn.temperature, dim=1)  # noqa: E731
        out = self.distillation_forwards(input, target, target if self.loss_fn.base == "ard" else soft_labels)
        kappa = self.counter.counts
        adv, clean = self.loss_fn._terms(*out[:3], target)
        if self.loss_fn.training:
            self.loss_fn._record(kappa=kappa, target=target)
        return FairARDOutput(self.loss_fn.combine(adv, clean), adv.detach(), clean.detach(), kappa, *out)


register(Method("fair-ard", "Fair-ARD", FairARDStep, fair_ard_loss, needs_teacher=True, summary=__doc__ or ""))
