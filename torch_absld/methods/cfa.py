"""CFA, Class-wise Calibrated Fair Adversarial Training (Wei et al. 2023), TRADES + CFA, as a training-step module."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, NamedTuple

from torch import Tensor, nn

from ..attack import PGDConfig
from ..averaging import FairnessAwareAveraging
from ..class_eps import CalibratedEpsilon
from ..losses.cfa import CFALoss, cfa_loss
from .adversarial import ValidatedStep
from .base import mark_ddp_local_state
from .registry import Method, register

__all__ = ["CFA_ATTACK", "CFA_VALIDATION_STEPS", "CFAOutput", "CFAStep"]

CFA_ATTACK = PGDConfig(eps=8 / 255, step_size=2 / 255, steps=10, random_start="normal", init_std=0.001)
r"""CFA's training attack for TRADES (``cw_trades_loss`` of ``attack.py``): radius $s_{y_i}\epsilon$, a fixed step."""
CFA_VALIDATION_STEPS = 10
"""Steps of FAWA's validation PGD (``train.py``: ``pgd_loss`` with 10 steps of 2/255 in 8/255, a uniform start)."""


class CFAOutput(NamedTuple):
    """What :meth:`CFAStep.forward` returns: the loss, its two terms (detached), the logits, ``x_adv`` and the radii."""

    loss: Tensor
    natural_term: Tensor
    robust_term: Tensor
    student_clean_logits: Tensor
    student_adv_logits: Tensor
    x_adv: Tensor
    radii: Tensor


class CFAStep(ValidatedStep):
    r"""TRADES + CFA: class-wise radii (CCM) and TRADES weights (CCR), and fairness-aware weight averaging (FAWA).

    ``out = step(x, y)`` is exactly (the attack in ``model_mode``, radius $\epsilon_{y_i} = s_{y_i}\,\epsilon$)::

        radii, step = loss_fn.calibration(y, eps, step_size)  # loss_fn = CFALoss(C)
        p = torch.softmax(student.eval()(x), dim=1)  # no gradient
        x_adv = pgd(student, x, p, config=CFA_ATTACK, objective="kl", eps=radii)
        clean, adv = student.train()(x), student(x_adv)
        loss = loss_fn(adv, clean, y)
        loss_fn.record(adv, y)  # in training mode

    ``on_epoch_end(validation=None)`` updates the weight average :attr:`fawa` (:attr:`evaluation_model`),
    then $\epsilon_k = (\lambda_1 + t_k)\,\epsilon$, $\beta_k = (\lambda_2 + t_k)\,\beta$.

    Args:
        fawa: average the weights (:class:`~torch_absld.averaging.FairnessAwareAveraging`), or ``False``.
        decay, threshold, start_epoch, worst_fraction: FAWA's options (``None``: the paper's 0.85, 0.2, 50).
        **options: :class:`~torch_absld.losses.cfa.CFALoss`'s (``beta`` 6, ``lambda_eps`` 0.3, ...), ``validation``,
            ``validation_steps`` (10) and the attack's (:data:`CFA_ATTACK`).
            ``model_mode``: attack in ``"eval"`` (batch-norm statistics untouched) or ``"train"`` (moved).

    Example:
        >>> import torch
        >>> x, y = torch.rand(6, 12), torch.tensor([0, 1, 2, 0, 1, 2])
        >>> step = CFAStep(nn.Linear(12, 3), 3, start_epoch=0, threshold=0.0, steps=2, validation=[(x, y)])
        >>> step(x, y).loss.backward()
        >>> step.on_epoch_end().shape, step.fawa.accepted
        (torch.Size([3]), 1)
    """

    loss_type = CFALoss
    loss_parts = (CalibratedEpsilon,)
    default_attack = CFA_ATTACK
    default_validation_steps = CFA_VALIDATION_STEPS
    fawa: FairnessAwareAveraging | None

    def __init__(
        self,
        student: nn.Module,
        num_classes: int,
        *,
        fawa: bool = True,
        decay: float | None = None,
        threshold: float | None = None,
        start_epoch: int | None = None,
        worst_fraction: float | None = None,
        **options: Any,
    ) -> None:
        super().__init__(student, num_classes, **options)
        if not isinstance(fawa, bool):
            raise TypeError(f"Expected `fawa` to be a bool, but got {type(fawa).__name__}.")
        given = {"decay": decay, "threshold": threshold, "start_epoch": start_epoch, "worst_fraction": worst_fraction}
        averaging: dict[str, Any] = {key: value for key, value in given.items() if value is not None}
        if averaging and not fawa:
            raise ValueError(f"Expected no weight-averaging options {sorted(averaging)} with `fawa=False`.")
        self.fawa = None
        if fawa:
            self.fawa = FairnessAwareAveraging(
                student,
                self.num_classes,
                attack=self.validation_config,
                seed=self.validation_seed,
                process_group=self.loss_fn.calibration.process_group,
                validate_args=self.validate_args,
                **averaging,
            )
        mark_ddp_local_state(self)  # again, now with the average

    @property
    def evaluation_model(self) -> nn.Module:
        """The weight average once an epoch was accepted into it; the student before (or without FAWA)."""
        return self.fawa.module if self.fawa is not None and self.fawa.accepted else self.student

    def forward(self, input: Tensor, target: Tensor) -> CFAOutput:
        """One step's forward work: clean target, the per-class attack, both student forwards, the loss."""
        target = self.check_inputs(input, target)
        config = self.attack.config
        radii, step = self.loss_fn.calibration._forward(target, config.eps, config.step_size)
        x_adv = self.run_attack(input, self.student_eval_probabilities(input), eps=radii, step_size=step)
        clean, adv = self.student_logits(input, x_adv)
        natural, robust = self.loss_fn._terms(student_adv=adv, student_clean=clean, target=target)
        if self.training:
            self.loss_fn._record(student_adv=adv, target=target)
        loss = self.loss_fn.combine(natural, robust)
        return CFAOutput(loss, natural.detach(), robust.detach(), clean, adv, x_adv, radii)

    def on_epoch_end(self, validation: Iterable[Any] | None = None) -> Tensor:
        """FAWA's gate and average (from its ``start_epoch``), then CCM and CCR for the next epoch; the scales."""
        if self.fawa is not None:
            self.fawa.step(self.validation_batches(validation) if self.fawa.due else None)
        return self.loss_fn.step()  # type: ignore[no-any-return]


register(Method("cfa", "CFA", CFAStep, cfa_loss, needs_teacher=False, needs_validation=True, summary=__doc__ or ""))
