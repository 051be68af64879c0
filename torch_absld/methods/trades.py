"""TRADES (Zhang et al. 2019) as a training-step module."""

from __future__ import annotations

from typing import Any, NamedTuple

from torch import Tensor, nn

from ..attack import PGDConfig
from ..losses.trades import TRADESLoss, trades_loss
from .adversarial import AdversarialStep
from .registry import Method, register

__all__ = ["TRADES_ATTACK", "TRADESOutput", "TRADESStep"]

TRADES_ATTACK = PGDConfig(eps=0.031, step_size=0.007, steps=10, random_start="normal", init_std=0.001)
"""TRADES' training attack (``train_trades_cifar10.py``'s defaults; ``trades.py``'s start)."""


class TRADESOutput(NamedTuple):
    r"""What :meth:`TRADESStep.forward` returns: the loss, its terms (detached, unweighted), the logits."""

    loss: Tensor
    natural_ce: Tensor
    robust_kl: Tensor
    student_clean_logits: Tensor
    student_adv_logits: Tensor
    x_adv: Tensor


class TRADESStep(AdversarialStep):
    r"""TRADES: $\mathrm{CE}(f(x), y) + \beta \max_{x'} \mathrm{KL}(\mathrm{softmax} f(x) \| \mathrm{softmax} f(x'))$.

    ``out = step(x, y)`` is exactly (the attack in ``model_mode``, from $x + 0.001\,\mathcal{N}(0, 1)$)::

        p = torch.softmax(student.eval()(x), dim=1)  # no gradient
        x_adv = pgd(student, x, p, config=TRADES_ATTACK, objective="kl")
        clean = student.train()(x)
        loss = trades_loss(student(x_adv), clean, y, beta=6.0)

    Args:
        **options: ``beta`` (6), ``reduction`` and the attack's (:data:`TRADES_ATTACK`).
            ``model_mode``: attack in ``"eval"`` (batch-norm statistics untouched) or ``"train"`` (moved).
    """

    loss_type = TRADESLoss
    default_attack = TRADES_ATTACK
    needs_teacher = False

    def __init__(self, student: nn.Module, num_classes: int, **options: Any) -> None:
        super().__init__(student, None, num_classes, **options)

    def forward(self, input: Tensor, target: Tensor) -> TRADESOutput:
        """One step's forward work: clean target, attack, both student forwards, loss."""
        target = self.check_inputs(input, target)
        x_adv = self.run_attack(input, self.student_eval_probabilities(input))
        clean, adv = self.student_logits(input, x_adv)
        ce, kl = self.loss_fn._terms(student_adv=adv, student_clean=clean, target=target)
        return TRADESOutput(self.loss_fn.combine(ce, kl), ce.detach(), kl.detach(), clean, adv, x_adv)


register(Method("trades", "TRADES", TRADESStep, trades_loss, needs_teacher=False, summary=__doc__ or ""))
