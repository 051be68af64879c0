"""BAT, Balance Adversarial Training (Sun et al. 2023), as a training-step module."""

from __future__ import annotations

from typing import Any, NamedTuple

from torch import Tensor, nn

from ..attack import PGDConfig
from ..attack.early_stopping import EarlyStopping, LogitsAndInput
from ..attack.engine import _pgd
from ..attack.objectives import Objective
from ..losses.bat import BATLoss, bat_loss
from .adversarial import AdversarialStep
from .registry import Method, register

__all__ = ["BAT_ATTACK", "BATOutput", "BATStep"]

BAT_ATTACK = PGDConfig(eps=0.031, step_size=0.007, steps=10, random_start="normal", init_std=0.001)
"""BAT's training attacks (``train.py``'s defaults; both ``stop_to_*`` start at ``clamp(x + 0.001 N(0, 1), 0, 1)``)."""


class BATOutput(NamedTuple):
    """What :meth:`BATStep.forward` returns: the loss, its terms (detached, unweighted), logits, points."""

    loss: Tensor
    natural_ce: Tensor
    robust_kl: Tensor
    uniform_kl: Tensor
    student_clean_logits: Tensor
    student_adv_logits: Tensor
    student_last_clean_logits: Tensor
    x_adv: Tensor
    x_last_clean: Tensor


class BATStep(AdversarialStep):
    r"""BAT: TRADES on points near the decision boundary, with their predictions pulled towards uniform.

    ``out = step(x, y)`` is exactly (two early-stopped KL-PGD attacks in ``model_mode``, each from its own
    $x + 0.001\,\mathcal{N}(0, 1)$: the last iterates still classified correctly, and the first
    misclassified ones after ``patience`` more steps)::

        p = torch.softmax(student.eval()(x), dim=1)  # no gradient
        points = []
        for stopper in (EarlyStopping("last_clean"), EarlyStopping("first_adversarial", patience=1)):
            stopper.reset(y, x)
            final = pgd(LogitsAndInput(student), x, p, config=BAT_ATTACK, objective=stopper)
            points.append(stopper.emitted(final))
        x_lc, x_fa = points
        last_clean, first_adv = student.train()(x_lc), student(x_fa)
        loss = bat_loss(first_adv, student(x), last_clean, y)

    Args:
        patience: the first-adversarial attack's extra steps (1: FAT's $\tau = 1$ in ``stop_to_firstadv``).
        **options: ``beta`` (6), ``uniform_weight`` (1), ``reduction`` and the attack's (:data:`BAT_ATTACK`).
            ``model_mode``: attack in ``"eval"`` (batch-norm statistics untouched) or ``"train"`` (moved).
    """

    loss_type = BATLoss
    default_attack = BAT_ATTACK
    needs_teacher = False

    def __init__(self, student: nn.Module, num_classes: int, *, patience: int = 1, **options: Any) -> None:
        self.patience = patience
        super().__init__(student, None, num_classes, **options)

    def _attack_parts(self) -> tuple[PGDConfig, Objective, nn.Module]:
        self.stoppers = (EarlyStopping("last_clean"), EarlyStopping("first_adversarial", patience=self.patience))
        return BAT_ATTACK, self.stoppers[0], LogitsAndInput(self.student)

    def forward(self, input: Tensor, target: Tensor) -> BATOutput:
        """One step's forward work: clean target, both early-stopped attacks, three student forwards, loss."""
        target = self.check_inputs(input, target)
        soft_labels = self.student_eval_probabilities(input)
        x_last_clean, x_adv = (self._stopped_points(s, input, soft_labels, target) for s in self.stoppers)
        last_clean, adv, clean = self.student_logits(x_last_clean, x_adv, input)
        natural, robust, uniform = self.loss_fn._terms(
            student_first_adv=adv, student_clean=clean, student_last_clean=last_clean, target=target
        )
        loss = self.loss_fn.combine(natural, robust, uniform)
        return BATOutput(
            loss, natural.detach(), robust.detach(), uniform.detach(), clean, adv, last_clean, x_adv, x_last_clean
        )

    def _stopped_points(self, stopper: EarlyStopping, input: Tensor, soft_labels: Tensor, target: Tensor) -> Tensor:
        stopper._reset(target, input)
        a = self.attack
        final = _pgd(a.model, input, soft_labels, config=a.config, objective=stopper, generator=a.generator)
        return stopper.emitted(final).to(input.dtype).detach()


register(Method("bat", "BAT", BATStep, bat_loss, needs_teacher=False, summary=__doc__ or ""))
