"""CFA, Class-wise Calibrated Fair Adversarial Training (Wei et al. 2023), TRADES + CFA, as a training-step module."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, NamedTuple

from torch import Tensor, nn
from typing_extensions import Unpack

from ..attack import PGDConfig
from ..averaging import FairnessAwareAveraging, FAWAOptions
from ..losses import CFALoss
from ._loss import loss_module, pop_loss_argument
from .adversarial import StepOptions
from .base import mark_ddp_local_state
from .validated import ValidatedStep

__all__ = ["CFA_ATTACK", "CFA_VALIDATION_STEPS", "CFAOutput", "CFAStep", "build_cfa"]

CFA_ATTACK = PGDConfig(eps=8 / 255, step_size=2 / 255, steps=10, random_start="normal", init_std=0.001)
r"""CFA's training attack for TRADES (``cw_trades_loss`` of ``attack.py``, ``--epsilon 8 --pgd-alpha 2
--attack-iters 10``): TRADES' KL from $x + 0.001\,\mathcal{N}(0, 1)$, radius $s_{y_i} \cdot 8/255$, a fixed step."""
CFA_VALIDATION_STEPS = 10
"""Steps of FAWA's validation PGD (``train.py``: ``pgd_loss`` with 10 steps of 2/255 in 8/255, a uniform start)."""


class CFAOutput(NamedTuple):
    r"""What :meth:`CFAStep.forward` returns.

    Attributes:
        loss: the CFA loss, to call ``backward()`` on.
        natural_term: $\mathrm{CE}_i / (1 + \beta_{y_i})$ reduced, detached.
        robust_term: $\beta_{y_i}\,\mathrm{KL}_i / (1 + \beta_{y_i})$ reduced, detached.
        student_clean_logits: the student's logits on the clean batch (the step's mode).
        student_adv_logits: the student's logits on ``x_adv``.
        x_adv: the adversarial batch (detached).
        radii: each sample's attack radius $\epsilon_{y_i}$.
    """

    loss: Tensor
    natural_term: Tensor
    robust_term: Tensor
    student_clean_logits: Tensor
    student_adv_logits: Tensor
    x_adv: Tensor
    radii: Tensor


class CFAStep(ValidatedStep):
    r"""TRADES + CFA: class-wise radii (CCM) and TRADES weights (CCR), and fairness-aware weight averaging (FAWA).

    ``out = step(x, y)`` runs, in this order:

    1. the student on ``x`` in eval mode without gradient: $p = \mathrm{softmax} f(x)$;
    2. the KL-PGD attack to $p$ with each sample's radius $\epsilon_{y_i} = s_{y_i}\,\epsilon$ and the
       common step (the controller ``loss_fn.calibration``), student in eval mode;
    3. the student on ``x`` then on ``x_adv`` in the step's mode;
    4. :func:`~torch_absld.losses.cfa_loss` with the class-wise $\beta_y$; in training mode, whether
       the adversarial logits predict $y$ is recorded (the epoch's robust accuracy).

    ``on_epoch_end(validation=None)`` updates the weight average :attr:`fawa` (from its
    ``start_epoch``: PGD-10 on the validation split, the gate on the worst class), then sets
    $\epsilon_k = (\lambda_1 + t_k)\,\epsilon$ and $\beta_k = (\lambda_2 + t_k)\,\beta$ from each class's
    training robust accuracy $t_k$ of the epoch (one ``all_reduce`` each); it returns the scales
    $s$. CFA's model is the average: :attr:`evaluation_model`. It is exactly::

        radii, step = loss_fn.calibration(y, eps, step_size)  # loss_fn = CFALoss(C)
        p = torch.softmax(student.eval()(x), dim=1)  # no gradient
        x_adv = pgd(student, x, p, config=CFA_ATTACK, objective="kl", eps=radii)
        clean, adv = student.train()(x), student(x_adv)
        loss = loss_fn(clean, adv, y)
        loss_fn.record(adv, y)

    Args:
        student: the network being trained.
        num_classes: number of classes $C$.
        loss: a :class:`~torch_absld.CFALoss` (its ``num_classes`` must match), a mapping of keyword
            arguments for one (``reduction`` and the options of :class:`~torch_absld.class_eps.CalibratedEpsilon`:
            ``beta`` 6, ``lambda_eps`` 0.3, ``lambda_beta`` 0.5, the paper's TRADES + CFA;
            ``begin_epoch``, ``process_group``), or ``None`` for the defaults.
        fawa: ``True`` (the defaults of :class:`~torch_absld.averaging.FairnessAwareAveraging`: decay
            0.85, threshold 0.2, start epoch 50, the paper's), a mapping of its ``decay``,
            ``threshold``, ``start_epoch``, ``worst_fraction``, or ``False``: TRADES + CCM + CCR only
            (no validation split needed). It synchronises over the loss's ``process_group``.
        validation: the validation batches (see :class:`~torch_absld.methods.validated.ValidatedStep`).
        validation_steps: steps of FAWA's validation PGD (10); ``fawa.attack`` is the training attack's
            radius and step, these steps and a uniform start (replace it to change it).
        validation_seed: seed of its per-sample uniform starts.
        **options: the attack and the checks (:class:`~torch_absld.methods.adversarial.StepOptions`):
            ``attack`` (default :data:`CFA_ATTACK`), ``generator``, ``eps``, ``step_size``, ``steps``, ...

    Shape:
        - input: $(N, \dots)$ in ``[clip_min, clip_max]``
        - target: $(N,)$ integer classes
        - Output: a :class:`CFAOutput`

    Example:
        >>> import torch
        >>> x, y = torch.rand(6, 12), torch.tensor([0, 1, 2, 0, 1, 2])
        >>> fawa = {"start_epoch": 0, "threshold": 0.0}
        >>> step = CFAStep(nn.Sequential(nn.Flatten(), nn.Linear(12, 3)), 3, fawa=fawa, steps=2, validation=[(x, y)])
        >>> step(x, y).loss.backward()
        >>> step.on_epoch_end().shape, step.fawa.accepted
        (torch.Size([3]), 1)
    """

    fawa: FairnessAwareAveraging | None

    def __init__(
        self,
        student: nn.Module,
        num_classes: int,
        *,
        loss: CFALoss | Mapping[str, Any] | None = None,
        fawa: bool | FAWAOptions = True,
        validation: Iterable[Any] | None = None,
        validation_steps: int = CFA_VALIDATION_STEPS,
        validation_seed: int = 0,
        **options: Unpack[StepOptions],
    ) -> None:
        loss_fn = loss_module(loss, CFALoss, num_classes, options.get("validate_args", True))
        super().__init__(
            student,
            num_classes,
            default_attack=CFA_ATTACK,
            validation=validation,
            validation_seed=validation_seed,
            **options,
        )
        self.loss_fn = loss_fn
        attack = self.validation_attack(validation_steps)  # checked also without FAWA
        if not isinstance(fawa, (bool, Mapping)):
            raise TypeError(f"Expected `fawa` to be a bool or a mapping of its options, but got {type(fawa).__name__}.")
        self.fawa = None
        if fawa is not False:
            averaging: FAWAOptions = {} if fawa is True else fawa
            self.fawa = FairnessAwareAveraging(
                student,
                num_classes,
                attack=attack,
                seed=self.validation_seed,
                process_group=loss_fn.calibration.process_group,
                validate_args=self.validate_args,
                **averaging,
            )
        mark_ddp_local_state(self)  # again, now with the controllers

    @property
    def evaluation_model(self) -> nn.Module:
        """The weight average once an epoch was accepted into it; the student before (or without FAWA)."""
        return self.fawa.module if self.fawa is not None and self.fawa.accepted else self.student

    def forward(self, input: Tensor, target: Tensor) -> CFAOutput:
        """One step's forward work: clean target, the per-class attack, both student forwards, the loss."""
        target = self.check_inputs(input, target)
        config = self.attack.config
        radii, step = self.loss_fn.calibration(target, config.eps, config.step_size, validated=True)
        clean_probabilities = self.student_eval_probabilities(input)
        x_adv = self.attack(input, clean_probabilities, eps=radii, step_size=step, validated=True).detach()
        clean, adv = self.student_logits(input, x_adv)
        natural, robust = self.loss_fn.terms(clean, adv, target, validated=True)
        if self.training:
            self.loss_fn.record(adv, target, validated=True)
        loss = self.loss_fn.combine(natural, robust)
        return CFAOutput(loss, natural.detach(), robust.detach(), clean, adv, x_adv, radii)

    def on_epoch_end(self, validation: Iterable[Any] | None = None) -> Tensor:
        r"""End of epoch: FAWA's gate and average, then CCM and CCR for the next epoch; return the scales $(C,)$.

        The validation split is needed from FAWA's ``start_epoch`` on.
        """
        if self.fawa is not None:
            self.fawa.step(self.validation_batches(validation) if self.fawa.due else None)
        return self.loss_fn.step()


_LOSS_OPTIONS = frozenset({"reduction", "beta", "lambda_eps", "lambda_beta", "begin_epoch", "process_group"})
_FAWA_OPTIONS = frozenset({"decay", "threshold", "start_epoch", "worst_fraction"})


def build_cfa(
    student: nn.Module, *, num_classes: int, teacher: nn.Module | None = None, **hyperparameters: Any
) -> CFAStep:
    """``methods.create("cfa", ...)``: a :class:`CFAStep`; CFA has no teacher, a given one is ignored.

    The options of :class:`~torch_absld.CFALoss` (``beta``, ``lambda_eps``, ...), of the weight average
    (``decay``, ``threshold``, ``start_epoch``, ``worst_fraction``) and the step's come as one flat set of
    keywords.
    """
    loss = pop_loss_argument(hyperparameters, _LOSS_OPTIONS)
    averaging = {key: hyperparameters.pop(key) for key in list(hyperparameters) if key in _FAWA_OPTIONS}
    fawa = hyperparameters.pop("fawa", True)
    if averaging and fawa is False:
        raise ValueError(f"Expected no weight-averaging options {sorted(averaging)} with `fawa=False`.")
    if averaging:
        fawa = {**(fawa if isinstance(fawa, Mapping) else {}), **averaging}
    return CFAStep(student, num_classes, loss=loss, fawa=fawa, **hyperparameters)
