"""FRL, Fair Robust Learning (Xu et al. 2021), Reweight + Remargin, as a training-step module."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, NamedTuple

from torch import Tensor

from ..attack import PGDConfig
from ..losses.frl import FRLLoss, frl_loss
from ..multipliers import FRLMultipliers
from ..validation import validation_pass
from .adversarial import ValidatedStep
from .registry import Method, register

__all__ = ["FRL_ATTACK", "FRL_VALIDATION_STEPS", "FRLOutput", "FRLStep"]

FRL_ATTACK = PGDConfig(eps=8 / 255, step_size=2 / 255, steps=10, random_start="normal", init_std=0.001)
r"""FRL's training attack (``trades_adv`` of ``utils_frl2.py``): radius $s_{y_i}\epsilon$, step the largest / 4."""
FRL_VALIDATION_STEPS = 20
"""Steps of the validation PGD (``configs1`` of ``frlrmrw.py``: 20 steps of 2/255 in 8/255, a uniform start)."""


class FRLOutput(NamedTuple):
    r"""What :meth:`FRLStep.forward` returns: the loss, its terms (detached, unweighted), logits, radii."""

    loss: Tensor
    natural_ce: Tensor
    boundary_kl: Tensor
    student_clean_logits: Tensor
    student_adv_logits: Tensor
    x_adv: Tensor
    radii: Tensor


class FRLStep(ValidatedStep):
    r"""FRL (Reweight + Remargin): TRADES with class weights and class radii from Lagrange multipliers.

    ``out = step(x, y)`` is exactly (the attack in ``model_mode``, radius $s_{y_i}\,\epsilon$, step
    ``step_size`` $\cdot \max_i s_{y_i}$, over the union of the ranks' batches under ``torch.distributed``)::

        radii, steps = loss_fn.multipliers(y, eps, step_size)  # loss_fn = FRLLoss(C)
        p = torch.softmax(student.eval()(x), dim=1)  # no gradient
        x_adv = pgd(student, x, p, config=FRL_ATTACK, objective="kl", eps=radii, step_size=steps)
        clean = student.train()(x)
        loss = loss_fn(student(x_adv), clean, y)

    ``on_epoch_end(validation=None)`` updates the multipliers from the validation split (TRADES before ``begin_epoch``).

    Args:
        **options: :class:`~torch_absld.losses.frl.FRLLoss`'s (``beta``, ``threshold`` 0.05, ...), ``validation``,
            ``validation_steps`` (20) and the attack's (:data:`FRL_ATTACK`).
            ``model_mode``: attack in ``"eval"`` (batch-norm statistics untouched) or ``"train"`` (moved).

    Example:
        >>> import torch
        >>> x, y = torch.rand(6, 12), torch.tensor([0, 1, 2, 0, 1, 2])
        >>> step = FRLStep(torch.nn.Linear(12, 3), 3, steps=2, validation=[(x, y)])
        >>> step(x, y).loss.backward()
        >>> step.on_epoch_end().shape
        torch.Size([3])
    """

    loss_type = FRLLoss
    loss_parts = (FRLMultipliers,)
    default_attack = FRL_ATTACK
    default_validation_steps = FRL_VALIDATION_STEPS

    @property
    def multipliers(self) -> FRLMultipliers:
        """The controller :class:`~torch_absld.multipliers.FRLMultipliers` (``loss_fn.multipliers``)."""
        return self.loss_fn.multipliers  # type: ignore[no-any-return]

    def forward(self, input: Tensor, target: Tensor) -> FRLOutput:
        """One step's forward work: clean target, the per-class attack, both student forwards, the weighted loss."""
        target = self.check_inputs(input, target)
        config, multipliers = self.attack.config, self.multipliers
        present, normalizers = multipliers.union_batch(target) or (None, None)
        radii, steps = multipliers._forward(target, config.eps, config.step_size, present=present)
        x_adv = self.run_attack(input, self.student_eval_probabilities(input), eps=radii, step_size=steps)
        clean, adv = self.student_logits(input, x_adv)
        natural, boundary = self.loss_fn._terms(
            student_adv=adv, student_clean=clean, target=target, normalizers=normalizers
        )
        loss = self.loss_fn.combine(natural, boundary)
        return FRLOutput(loss, natural.detach(), boundary.detach(), clean, adv, x_adv, radii)

    def on_epoch_end(self, validation: Iterable[Any] | None = None) -> Tensor:
        """Measure the student on the validation split (from ``begin_epoch``), update the multipliers; the scales."""
        multipliers = self.multipliers
        if multipliers.calibrating:
            batches = self.validation_batches(validation)
            multipliers.reset()
            config, seed = self.validation_config, self.validation_seed
            validation_pass(self.student, batches, multipliers.record, config=config, seed=seed)
        return self.loss_fn.step()  # type: ignore[no-any-return]


register(Method("frl", "FRL", FRLStep, frl_loss, needs_teacher=False, needs_validation=True, summary=__doc__ or ""))
