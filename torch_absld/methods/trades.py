"""TRADES (Zhang et al. 2019) as a training-step module."""

from __future__ import annotations

from typing import Any, NamedTuple

from torch import Tensor, nn
from typing_extensions import Unpack

from ..attack import PGDConfig
from ..losses import SampleReduction, TRADESLoss
from ..losses.trades import DEFAULT_BETA
from .adversarial import AdversarialStep, StepOptions

__all__ = ["TRADES_ATTACK", "TRADESOutput", "TRADESStep", "build_trades"]

TRADES_ATTACK = PGDConfig(eps=0.031, step_size=0.007, steps=10, random_start="normal", init_std=0.001)
r"""TRADES' training attack (``train_trades_cifar10.py``: ``--epsilon 0.031 --num-steps 10 --step-size 0.007``;
``trades.py``: start $x + 0.001\,\mathcal{N}(0, 1)$). The ABSLD paper's radius, 8/255, is 0.03137."""


class TRADESOutput(NamedTuple):
    r"""What :meth:`TRADESStep.forward` returns.

    Attributes:
        loss: the TRADES loss, to call ``backward()`` on.
        natural_ce: the clean cross-entropy term alone, detached.
        robust_kl: the KL term alone (before $\beta$), detached.
        student_clean_logits: the student's logits on the clean batch (the step's mode).
        student_adv_logits: the student's logits on ``x_adv``.
        x_adv: the adversarial batch (detached).
    """

    loss: Tensor
    natural_ce: Tensor
    robust_kl: Tensor
    student_clean_logits: Tensor
    student_adv_logits: Tensor
    x_adv: Tensor


class TRADESStep(AdversarialStep):
    r"""TRADES: $\mathrm{CE}(f(x), y) + \beta \max_{x'} \mathrm{KL}(\mathrm{softmax} f(x) \| \mathrm{softmax} f(x'))$.

    ``out = step(x, y)`` runs, in this order:

    1. the student on ``x`` in eval mode without gradient: $p = \mathrm{softmax} f(x)$;
    2. the KL-PGD attack to $p$ (the ``"kl"`` objective: $\sum_i \mathrm{KL}(p_i \| \mathrm{softmax} f(x'_i))$),
       student in eval mode, start $x + 0.001\,\mathcal{N}(0, 1)$;
    3. the student on ``x`` then on ``x_adv`` in the step's mode;
    4. :func:`~torch_absld.losses.trades_loss` ($\beta = 6$), the gradient flowing through both outputs.

    It is exactly::

        p = torch.softmax(student.eval()(x), dim=1)  # no gradient
        x_adv = pgd(student, x, p, config=TRADES_ATTACK, objective="kl")
        loss = trades_loss(student.train()(x), student(x_adv), y, beta=6.0)

    The official ``trades.py`` recomputes ``model(x_natural)`` at every attack step; in eval mode it
    is the same constant, so the iterates are the same. It also runs a second train-mode forward
    of ``x`` for the KL's target; one forward serves both terms here (the same outputs; batch
    norm's running statistics get one update fewer).

    Args:
        student: the network being trained.
        num_classes: number of classes $C$.
        beta: weight $\beta$ of the KL term (6, ``train_trades_cifar10.py``).
        reduction: of the loss, ``"mean"`` (default: the authors' scale), ``"sum"`` or ``"none"``.
        **options: the attack and the checks (:class:`~torch_absld.methods.adversarial.StepOptions`):
            ``attack`` (default :data:`TRADES_ATTACK`: ``eps`` 0.031, ``step_size`` 0.007),
            ``generator``, ``eps``, ``step_size``, ``steps``, ``compile``, ``validate_args``, ...

    Shape:
        - input: $(N, \dots)$ in ``[clip_min, clip_max]``
        - target: $(N,)$ integer classes
        - Output: a :class:`TRADESOutput`

    Example:
        >>> import torch
        >>> step = TRADESStep(nn.Sequential(nn.Flatten(), nn.Linear(12, 3)), 3, steps=2)
        >>> out = step(torch.rand(4, 12), torch.tensor([0, 1, 2, 0]))
        >>> torch.allclose(out.loss, out.natural_ce + 6.0 * out.robust_kl)
        True
    """

    def __init__(
        self,
        student: nn.Module,
        num_classes: int,
        *,
        beta: float = DEFAULT_BETA,
        reduction: SampleReduction = "mean",
        **options: Unpack[StepOptions],
    ) -> None:
        super().__init__(student, None, num_classes, default_attack=TRADES_ATTACK, objective="kl", **options)
        self.loss_fn = TRADESLoss(beta=beta, reduction=reduction, validate_args=self.validate_args)

    def forward(self, input: Tensor, target: Tensor) -> TRADESOutput:
        """One step's forward work: clean target, attack, both student forwards, loss."""
        target = self.check_inputs(input, target)
        clean_probabilities = self.student_eval_probabilities(input)
        x_adv = self.attack(input, clean_probabilities, validated=True).detach()
        clean, adv = self.student_logits(input, x_adv)
        ce, kl = self.loss_fn.terms(clean, adv, target, validated=True)
        return TRADESOutput(self.loss_fn.combine(ce, kl), ce.detach(), kl.detach(), clean, adv, x_adv)


def build_trades(
    student: nn.Module, *, num_classes: int, teacher: nn.Module | None = None, **hyperparameters: Any
) -> TRADESStep:
    """``methods.create("trades", ...)``: a :class:`TRADESStep`; TRADES has no teacher, a given one is ignored."""
    return TRADESStep(student, num_classes, **hyperparameters)
