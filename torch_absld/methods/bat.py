"""BAT, Balance Adversarial Training (Sun et al. 2023), as a training-step module."""

from __future__ import annotations

from typing import Any, NamedTuple

from torch import Tensor, nn
from typing_extensions import Unpack

from ..attack import PGDConfig
from ..attack.early_stopping import EarlyStopping, LogitsAndInput
from ..attack.engine import run_pgd
from ..losses import BATLoss, SampleReduction
from ..losses.bat import DEFAULT_UNIFORM_WEIGHT
from ..losses.trades import DEFAULT_BETA
from .adversarial import AdversarialStep, StepOptions

__all__ = ["BAT_ATTACK", "BATOutput", "BATStep", "build_bat"]

BAT_ATTACK = PGDConfig(eps=0.031, step_size=0.007, steps=10, random_start="normal", init_std=0.001)
r"""BAT's training attacks (``train.py``: ``--epsilon 0.031 --num-steps 10 --step-size 0.007``; both
``stop_to_*`` start from ``clamp(x + 0.001 N(0, 1), 0, 1)``). The ABSLD paper's radius, 8/255, is 0.03137."""


class BATOutput(NamedTuple):
    r"""What :meth:`BATStep.forward` returns.

    Attributes:
        loss: the BAT loss, to call ``backward()`` on.
        natural_ce: the cross-entropy on the last-clean points, detached.
        robust_kl: the TRADES KL on the first-adversarial points (before $\beta$), detached.
        uniform_kl: the two KLs to the uniform distribution (before their weight), detached.
        student_clean_logits: the student's logits on the clean batch (the step's mode).
        student_adv_logits: the student's logits on the first-adversarial points ``x_adv``.
        student_last_clean_logits: the student's logits on the last-clean points.
        x_adv: the first-adversarial points (detached).
        x_last_clean: the last-clean points (detached).
    """

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

    ``out = step(x, y)`` runs, in this order:

    1. the student on ``x`` in eval mode without gradient: $p = \mathrm{softmax} f(x)$;
    2. two early-stopped KL-PGD attacks to $p$ (:class:`~torch_absld.attack.EarlyStopping`, student in
       eval mode, each from its own start $x + 0.001\,\mathcal{N}(0, 1)$): the **last clean** points (the
       last iterate each sample is still classified correctly at) and the **first adversarial** points
       (a sample found misclassified takes ``patience`` more steps, then stops where it is misclassified);
    3. the student on the last-clean points, the first-adversarial points and ``x``, in the step's mode;
    4. :func:`~torch_absld.losses.bat_loss` ($\beta = 6$, uniform terms of weight 1).

    Stopping each sample where its prediction turns adapts the attack's strength to each sample
    (BAT's source-class fairness); the uniform terms are its target-class fairness. It is exactly::

        p = torch.softmax(student.eval()(x), dim=1)  # no gradient
        points = []
        for stopper in (EarlyStopping("last_clean"), EarlyStopping("first_adversarial", patience=1)):
            stopper.reset(y, x)
            final = pgd(LogitsAndInput(student), x, p, config=BAT_ATTACK, objective=stopper)
            points.append(stopper.emitted(final))
        x_lc, x_fa = points
        loss = bat_loss(student.train()(x), student(x_fa), student(x_lc), y)

    Args:
        student: the network being trained.
        num_classes: number of classes $C$.
        beta: weight $\beta$ of the TRADES term (6, ``--beta 6.0``).
        uniform_weight: weight of the uniform terms (1, hard-coded in ``BAT_loss``).
        patience: the first-adversarial attack's extra steps after a misclassification (1: FAT's
            $\tau = 1$ in ``stop_to_firstadv``).
        reduction: of the loss, ``"mean"`` (default: the authors' scale), ``"sum"`` or ``"none"``.
        **options: the attack and the checks (:class:`~torch_absld.methods.adversarial.StepOptions`):
            ``attack`` (default :data:`BAT_ATTACK`: ``eps`` 0.031, ``step_size`` 0.007), ``generator``,
            ``eps``, ``step_size``, ``steps``, ``compile``, ``validate_args``, ...

    Shape:
        - input: $(N, \dots)$ in ``[clip_min, clip_max]``; target: $(N,)$ integer classes
        - Output: a :class:`BATOutput`

    Example:
        >>> import torch
        >>> x, y = torch.rand(4, 12), torch.tensor([0, 1, 2, 0])
        >>> out = BATStep(nn.Linear(12, 3), 3, beta=2.0, steps=2)(x, y)
        >>> torch.allclose(out.loss, out.natural_ce + 2.0 * out.robust_kl + out.uniform_kl)
        True
    """

    def __init__(
        self,
        student: nn.Module,
        num_classes: int,
        *,
        beta: float = DEFAULT_BETA,
        uniform_weight: float = DEFAULT_UNIFORM_WEIGHT,
        patience: int = 1,
        reduction: SampleReduction = "mean",
        **options: Unpack[StepOptions],
    ) -> None:
        last_clean, first_adversarial = (
            EarlyStopping("last_clean"),
            EarlyStopping("first_adversarial", patience=patience),
        )
        super().__init__(
            student,
            None,
            num_classes,
            default_attack=BAT_ATTACK,
            objective=last_clean,
            attacked=LogitsAndInput(student),
            **options,
        )
        self.stoppers = (last_clean, first_adversarial)
        self.loss_fn = BATLoss(
            beta=beta, uniform_weight=uniform_weight, reduction=reduction, validate_args=self.validate_args
        )

    def _stopped_points(self, stopper: EarlyStopping, input: Tensor, soft_labels: Tensor, target: Tensor) -> Tensor:
        """One early-stopped attack with the step's attack settings and generator; each sample's point."""
        stopper.reset(target, input, validated=True)
        attack = self.attack
        final = run_pgd(
            attack.model,
            input,
            soft_labels,
            attack.config,
            stopper,
            attack.eps,
            attack.step_size,
            generator=attack.generator,
            validated=True,
        )
        return stopper.emitted(final).to(input.dtype).detach()

    def forward(self, input: Tensor, target: Tensor) -> BATOutput:
        """One step's forward work: clean target, both early-stopped attacks, three student forwards, loss."""
        target = self.check_inputs(input, target)
        clean_probabilities = self.student_eval_probabilities(input)
        x_last_clean, x_adv = (self._stopped_points(s, input, clean_probabilities, target) for s in self.stoppers)
        last_clean, adv, clean = self.student_logits(x_last_clean, x_adv, input)
        natural, robust, uniform = self.loss_fn.terms(clean, adv, last_clean, target, validated=True)
        loss = self.loss_fn.combine(natural, robust, uniform)
        return BATOutput(
            loss, natural.detach(), robust.detach(), uniform.detach(), clean, adv, last_clean, x_adv, x_last_clean
        )


def build_bat(
    student: nn.Module, *, num_classes: int, teacher: nn.Module | None = None, **hyperparameters: Any
) -> BATStep:
    """``methods.create("bat", ...)``: a :class:`BATStep`; BAT has no teacher, a given one is ignored."""
    return BATStep(student, num_classes, **hyperparameters)
