"""FRL, Fair Robust Learning (Xu et al. 2021), Reweight + Remargin, as a training-step module."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, NamedTuple

from torch import Tensor, nn
from typing_extensions import Unpack

from ..attack import PGDConfig
from ..losses import FRLLoss
from ..multipliers import FRLMultipliers
from ..validation import validation_pass
from ._loss import loss_module, pop_loss_argument
from .adversarial import StepOptions
from .base import mark_ddp_local_state
from .validated import ValidatedStep

__all__ = ["FRL_ATTACK", "FRL_VALIDATION_STEPS", "FRLOutput", "FRLStep", "build_frl"]

FRL_ATTACK = PGDConfig(eps=8 / 255, step_size=2 / 255, steps=10, random_start="normal", init_std=0.001)
r"""FRL's training attack (``trades_adv`` of ``utils_frl2.py``): TRADES' KL from $x + 0.001\,\mathcal{N}(0, 1)$,
10 steps, radius $s_{y_i} \cdot 8/255$; the step is the batch's largest radius over 4 (``step_size`` times the
largest scale)."""
FRL_VALIDATION_STEPS = 20
"""Steps of the validation PGD (``configs1`` of ``frlrmrw.py``: 20 steps of 2/255 in 8/255, a uniform start)."""


class FRLOutput(NamedTuple):
    r"""What :meth:`FRLStep.forward` returns.

    Attributes:
        loss: the FRL loss, to call ``backward()`` on.
        natural_ce: the class-weighted cross-entropy term alone, detached.
        boundary_kl: the class-weighted KL term alone (before $\beta$), detached.
        student_clean_logits: the student's logits on the clean batch (the step's mode).
        student_adv_logits: the student's logits on ``x_adv``.
        x_adv: the adversarial batch (detached).
        radii: each sample's attack radius $s_{y_i}\,\epsilon$.
    """

    loss: Tensor
    natural_ce: Tensor
    boundary_kl: Tensor
    student_clean_logits: Tensor
    student_adv_logits: Tensor
    x_adv: Tensor
    radii: Tensor


class FRLStep(ValidatedStep):
    r"""FRL (Reweight + Remargin): TRADES with class weights and class radii from Lagrange multipliers.

    ``out = step(x, y)`` runs, in this order:

    1. the student on ``x`` in eval mode without gradient: $p = \mathrm{softmax} f(x)$;
    2. the KL-PGD attack to $p$ with each sample's radius $s_{y_i}\,\epsilon$ and the step
       ``step_size`` $\cdot \max_i s_{y_i}$ (the controller ``loss_fn.multipliers``), student in eval mode;
    3. the student on ``x`` then on ``x_adv`` in the step's mode;
    4. :func:`~torch_absld.losses.frl_loss` with the current class weights.

    ``on_epoch_end(validation=None)`` measures the student on the validation split (clean, and
    PGD-20 with a uniform start at the common radius, :func:`~torch_absld.validation.validation_pass`),
    updates the multipliers from the class-wise natural and boundary errors
    (:class:`~torch_absld.multipliers.FRLMultipliers`, one ``all_reduce``) and returns the new
    scales. The first epoch runs at $\lambda = 0$: uniform weights and the common radius, i.e.
    TRADES with $\beta = 1.5$. It is exactly::

        radii, steps = loss_fn.multipliers(y, eps, step_size)  # loss_fn = FRLLoss(C)
        p = torch.softmax(student.eval()(x), dim=1)  # no gradient
        x_adv = pgd(student, x, p, config=FRL_ATTACK, objective="kl", eps=radii, step_size=steps)
        loss = loss_fn(student.train()(x), student(x_adv), y)

    The official code fine-tunes a robust model (``hot_start.pt``) and updates the multipliers
    before every epoch, from its first; here they are updated after every epoch from
    ``begin_epoch`` on, so the epochs before it are the hot start (TRADES, $\beta = 1.5$). Under
    ``torch.distributed`` the step's largest scale and the loss's weighted means are those of the
    union of the ranks' batches (:meth:`~torch_absld.multipliers.FRLMultipliers.union_batch`).

    Args:
        student: the network being trained.
        num_classes: number of classes $C$.
        loss: an :class:`~torch_absld.FRLLoss` (its ``num_classes`` must match), a mapping of keyword
            arguments for one (``beta``, ``reduction`` and the options of
            :class:`~torch_absld.multipliers.FRLMultipliers`: ``threshold`` 0.05, the ABSLD paper's,
            ``rate``, ``eps_rate``, ``limit``, ``halve_every``, ``begin_epoch``, ``scale_step``,
            ``process_group``), or ``None`` for the defaults.
        validation: the validation batches (see :class:`~torch_absld.methods.validated.ValidatedStep`).
        validation_steps: steps of the validation PGD (20); :attr:`validation_config` is the training
            attack's radius and step, these steps and a uniform start (replace it to change it).
        validation_seed: seed of its per-sample uniform starts.
        **options: the attack and the checks (:class:`~torch_absld.methods.adversarial.StepOptions`):
            ``attack`` (default :data:`FRL_ATTACK`), ``generator``, ``eps``, ``step_size``, ``steps``, ...

    Shape:
        - input: $(N, \dots)$ in ``[clip_min, clip_max]``
        - target: $(N,)$ integer classes
        - Output: an :class:`FRLOutput`

    Example:
        >>> import torch
        >>> x, y = torch.rand(6, 12), torch.tensor([0, 1, 2, 0, 1, 2])
        >>> step = FRLStep(nn.Sequential(nn.Flatten(), nn.Linear(12, 3)), 3, steps=2, validation=[(x, y)])
        >>> step(x, y).loss.backward()
        >>> step.on_epoch_end().shape
        torch.Size([3])
    """

    def __init__(
        self,
        student: nn.Module,
        num_classes: int,
        *,
        loss: FRLLoss | Mapping[str, Any] | None = None,
        validation: Iterable[Any] | None = None,
        validation_steps: int = FRL_VALIDATION_STEPS,
        validation_seed: int = 0,
        **options: Unpack[StepOptions],
    ) -> None:
        loss_fn = loss_module(loss, FRLLoss, num_classes, options.get("validate_args", True))
        super().__init__(
            student,
            num_classes,
            default_attack=FRL_ATTACK,
            validation=validation,
            validation_seed=validation_seed,
            **options,
        )
        self.loss_fn = loss_fn
        self.validation_config = self.validation_attack(validation_steps)
        mark_ddp_local_state(self)  # again, now with the controller

    @property
    def multipliers(self) -> FRLMultipliers:
        """The controller :class:`~torch_absld.multipliers.FRLMultipliers` (``loss_fn.multipliers``)."""
        return self.loss_fn.multipliers

    def forward(self, input: Tensor, target: Tensor) -> FRLOutput:
        """One step's forward work: clean target, the per-class attack, both student forwards, the weighted loss."""
        target = self.check_inputs(input, target)
        config, multipliers = self.attack.config, self.loss_fn.multipliers
        present, normalizers = multipliers.union_batch(target) or (None, None)
        radii, steps = multipliers(target, config.eps, config.step_size, present=present, validated=True)
        clean_probabilities = self.student_eval_probabilities(input)
        x_adv = self.attack(input, clean_probabilities, eps=radii, step_size=steps, validated=True).detach()
        clean, adv = self.student_logits(input, x_adv)
        natural, boundary = self.loss_fn.terms(clean, adv, target, normalizers=normalizers, validated=True)
        loss = self.loss_fn.combine(natural, boundary)
        return FRLOutput(loss, natural.detach(), boundary.detach(), clean, adv, x_adv, radii)

    def on_epoch_end(self, validation: Iterable[Any] | None = None) -> Tensor:
        """End of epoch: measure the student on the validation split, update the multipliers; return the scales $(C,)$.

        Before ``begin_epoch`` nothing is measured (and no validation data is needed).
        """
        multipliers = self.loss_fn.multipliers
        if multipliers.calibrating:
            batches = self.validation_batches(validation)
            multipliers.reset()
            config, seed = self.validation_config, self.validation_seed
            validation_pass(self.student, batches, multipliers.record, config=config, seed=seed)
        return self.loss_fn.step()


_LOSS_OPTIONS = frozenset(
    {
        "beta",
        "reduction",
        "threshold",
        "rate",
        "eps_rate",
        "limit",
        "halve_every",
        "begin_epoch",
        "scale_step",
        "process_group",
    }
)


def build_frl(
    student: nn.Module, *, num_classes: int, teacher: nn.Module | None = None, **hyperparameters: Any
) -> FRLStep:
    """``methods.create("frl", ...)``: an :class:`FRLStep`; FRL has no teacher, a given one is ignored.

    The options of :class:`~torch_absld.FRLLoss` (``beta``, ``threshold``, ...) and the step's come as
    one flat set of keywords.
    """
    loss = pop_loss_argument(hyperparameters, _LOSS_OPTIONS)
    return FRLStep(student, num_classes, loss=loss, **hyperparameters)
