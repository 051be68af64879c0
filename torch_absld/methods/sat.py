"""SAT, PGD adversarial training (Madry et al. 2018), as a training-step module."""

from __future__ import annotations

from typing import Any, NamedTuple

from torch import Tensor, nn
from typing_extensions import Unpack

from ..attack import PGDConfig
from ..losses import SampleReduction, SATLoss
from .adversarial import AdversarialStep, StepOptions

__all__ = ["SAT_ATTACK", "SATOutput", "SATStep", "build_sat"]

SAT_ATTACK = PGDConfig(eps=8 / 255, step_size=2 / 255, steps=10, random_start="uniform")
"""Madry et al.'s training attack: ``config.json`` of ``MadryLab/cifar10_challenge`` (8, 2, 10 steps
in pixels, a uniform random start), CE on the model's own prediction."""


class SATOutput(NamedTuple):
    """What :meth:`SATStep.forward` returns.

    Attributes:
        loss: mean cross-entropy on ``x_adv``, to call ``backward()`` on.
        student_adv_logits: the student's logits on ``x_adv`` (the step's mode).
        x_adv: the adversarial batch (detached).
    """

    loss: Tensor
    student_adv_logits: Tensor
    x_adv: Tensor


class SATStep(AdversarialStep):
    r"""PGD adversarial training: $\min_\theta \mathbb{E}\,\max_{\|x' - x\|_\infty \le \epsilon} \mathrm{CE}(f(x'), y)$.

    ``out = step(x, y)`` runs the CE-PGD attack on the student (eval mode for its duration; a
    uniform start in the eps-ball), the student on ``x_adv`` in the step's mode, and
    :func:`~torch_absld.losses.sat_loss`. It is exactly::

        x_adv = pgd(student, x, y, config=SAT_ATTACK, objective="ce")
        loss = sat_loss(student(x_adv), y)

    Madry et al.'s TensorFlow code runs the attack on the training graph (batch norm with batch
    statistics, its moving averages updated by every attack step); this step follows the
    library's convention (eval mode during the attack), as most PyTorch ports do.

    Args:
        student: the network being trained.
        num_classes: number of classes $C$.
        reduction: of the loss, ``"mean"`` (default), ``"sum"`` or ``"none"``.
        **options: the attack and the checks (:class:`~torch_absld.methods.adversarial.StepOptions`):
            ``attack`` (default :data:`SAT_ATTACK`), ``generator``, ``eps``, ``step_size``,
            ``steps``, ``random_start``, ``compile``, ``validate_args``, ...

    Shape:
        - input: $(N, \dots)$ in ``[clip_min, clip_max]``
        - target: $(N,)$ integer classes
        - Output: a :class:`SATOutput`

    Example:
        >>> import torch
        >>> step = SATStep(nn.Sequential(nn.Flatten(), nn.Linear(12, 3)), 3, steps=2)
        >>> out = step(torch.rand(4, 12), torch.tensor([0, 1, 2, 0]))
        >>> out.loss.backward()
    """

    def __init__(
        self,
        student: nn.Module,
        num_classes: int,
        *,
        reduction: SampleReduction = "mean",
        **options: Unpack[StepOptions],
    ) -> None:
        super().__init__(student, None, num_classes, default_attack=SAT_ATTACK, objective="ce", **options)
        self.loss_fn = SATLoss(reduction=reduction, validate_args=self.validate_args)

    def forward(self, input: Tensor, target: Tensor) -> SATOutput:
        """One step's forward work: attack, the student on ``x_adv``, loss."""
        target = self.check_inputs(input, target)
        x_adv = self.attack(input, target, validated=True).detach()
        (logits,) = self.student_logits(x_adv)
        return SATOutput(self.loss_fn(logits, target, validated=True), logits, x_adv)


def build_sat(
    student: nn.Module, *, num_classes: int, teacher: nn.Module | None = None, **hyperparameters: Any
) -> SATStep:
    """``methods.create("sat", ...)``: a :class:`SATStep`; SAT has no teacher, a given one is ignored."""
    return SATStep(student, num_classes, **hyperparameters)
