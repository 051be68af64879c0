"""Fair-ARD (Yue et al. 2023) as a training-step module: ARD or RSLAD with per-class vulnerability weights."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

import torch
from torch import Tensor, nn
from typing_extensions import Unpack

from .._internal.checks import at_least_float32
from ..attack import CountingObjective, PGDConfig
from ..losses import FairARDLoss
from ._loss import loss_module, pop_loss_argument
from .adversarial import AdversarialStep, StepOptions, require_teacher
from .base import mark_ddp_local_state
from .sat import SAT_ATTACK

__all__ = ["FAIR_ARD_ATTACKS", "FairARDDistiller", "FairARDOutput", "build_fair_ard"]

FAIR_ARD_ATTACKS: dict[str, PGDConfig] = {
    "ard": SAT_ATTACK,
    "rslad": PGDConfig(eps=8 / 255, step_size=2 / 255, steps=10, random_start="normal", init_std=0.001),
}
r"""The base method's training attack: ``Fair-ARD.py`` (ARD's: a uniform start, the student's
cross-entropy) and ``Fair-RSLAD.py`` (RSLAD's: a $0.001\,\mathcal{N}(0, 1)$ start, the KL to
the teacher's clean soft labels); both 10 steps of 2/255 in a radius of 8/255."""


class FairARDOutput(NamedTuple):
    r"""What :meth:`FairARDDistiller.forward` returns.

    Attributes:
        loss: the Fair-ARD loss, to call ``backward()`` on.
        adv_term: the weighted adversarial term alone (before $\alpha$), detached.
        clean_term: the weighted clean term alone (before $1 - \alpha$; the cross-entropy for
            ``base="ard"``, the clean KL for ``"rslad"``), detached.
        kappa: each sample's $\kappa_i$, the attack iterates it was still classified correctly at.

    The other fields are those of :class:`~torch_absld.methods.adversarial.DistillationForwards`.
    """

    loss: Tensor
    adv_term: Tensor
    clean_term: Tensor
    kappa: Tensor
    student_adv_logits: Tensor
    student_clean_logits: Tensor
    teacher_logits: Tensor
    x_adv: Tensor


class FairARDDistiller(AdversarialStep):
    r"""Fair-ARD: the base distillation loss with per-class weights from each class's vulnerability.

    ``out = distiller(x, y)`` runs, in this order:

    1. the teacher on the clean batch, in eval mode, without gradient;
    2. the base method's attack on the student (eval mode), counting each sample's $\kappa_i$
       with a :class:`~torch_absld.attack.CountingObjective`;
    3. the student on ``x_adv`` then on ``x``, in the distiller's mode;
    4. :func:`~torch_absld.losses.fair_ard_loss` with the current class weights; in training
       mode the $\kappa_i$ are added to the :class:`~torch_absld.VulnerabilityWeights` controller.

    ``on_epoch_end()`` all-reduces the per-class $\kappa$ sums and sets the weights for the next
    epoch ($w_k \propto \bar\kappa_k^{-\beta}$, normalised to mean 1, clamped to $[5/6, 5/2]$).
    The first epoch runs with all weights 1, i.e. plain ARD (or RSLAD). It is exactly::

        with torch.no_grad():
            t = teacher(x)
        counter.reset(y)  # counter = CountingObjective("ce")
        x_adv = pgd(student, x, y, config=FAIR_ARD_ATTACKS["ard"], objective=counter)
        loss = loss_fn(student(x_adv), student(x), t, y)  # loss_fn = FairARDLoss(C), base="ard"
        loss_fn.record(counter.counts, y)

    ``base="ard"`` is ``Fair-ARD.py``, whose attack runs with the student in train mode: batch
    statistics, and $\kappa$ from train-mode predictions. This distiller follows the library's
    convention (eval mode during the attack), so $\kappa$ comes from eval-mode predictions, the
    same as for ``base="rslad"`` (``Fair-RSLAD.py`` attacks in eval mode).

    Args:
        student: the network being trained.
        teacher: the frozen teacher.
        num_classes: number of classes $C$.
        loss: a :class:`~torch_absld.FairARDLoss` (its ``num_classes`` must match), a mapping of
            keyword arguments for one (``base``: ``"ard"``, the default and the ABSLD paper's
            CIFAR-10 Fair-ARD, or ``"rslad"``; ``temperature``, ``alpha``, ``beta``, ``min_weight``,
            ``max_weight``, ``reduction``, ``process_group``), or ``None`` for the defaults. For
            ``base="rslad"`` the loss's temperature is also that of the attack's soft labels.
        **options: the attack and the checks (:class:`~torch_absld.methods.adversarial.StepOptions`):
            ``attack`` (default ``FAIR_ARD_ATTACKS[base]``), ``generator``, ``eps``, ``step_size``,
            ``steps``, ``compile``, ``validate_args``, ``teacher_in_state_dict``, ...

    Shape:
        - input: $(N, \dots)$ in ``[clip_min, clip_max]``
        - target: $(N,)$ integer classes
        - Output: a :class:`FairARDOutput`

    Example:
        >>> student, teacher = nn.Linear(12, 3), nn.Linear(12, 3)
        >>> distiller = FairARDDistiller(student, teacher, 3, loss={"base": "rslad"}, steps=2)
        >>> out = distiller(torch.rand(6, 12), torch.tensor([0, 1, 2, 0, 1, 2]))
        >>> out.loss.backward()
        >>> out.kappa.max() <= 2, distiller.on_epoch_end().shape
        (tensor(True), torch.Size([3]))
    """

    def __init__(
        self,
        student: nn.Module,
        teacher: nn.Module,
        num_classes: int,
        *,
        loss: FairARDLoss | Mapping[str, Any] | None = None,
        **options: Unpack[StepOptions],
    ) -> None:
        loss_fn = loss_module(loss, FairARDLoss, num_classes, options.get("validate_args", True))
        counter = CountingObjective("ce" if loss_fn.base == "ard" else "kl", student_temperature=loss_fn.temperature)
        default_attack = FAIR_ARD_ATTACKS[loss_fn.base]
        super().__init__(
            student,
            teacher,
            num_classes,
            default_attack=default_attack,
            objective=counter,
            needs_teacher=True,
            **options,
        )
        self.loss_fn = loss_fn
        self.counter = counter
        mark_ddp_local_state(self)  # again, now with the controller

    @property
    def class_weights(self) -> Tensor:
        """The current class weights $w$, shape $(C,)$."""
        return self.loss_fn.class_weights

    def forward(self, input: Tensor, target: Tensor) -> FairARDOutput:
        r"""One step's forward work: teacher, attack (counting $\kappa$), both student forwards, loss."""
        target = self.check_inputs(input, target, values=False)
        self.counter.reset(target, validated=True)
        attack_target = target if self.loss_fn.base == "ard" else self._soft_labels
        out = self.distillation_forwards(input, attack_target, labels=target)
        kappa = self.counter.counts
        adv, clean = self.loss_fn.terms(
            out.student_adv_logits, out.student_clean_logits, out.teacher_logits, target, validated=True
        )
        if self.loss_fn.training:
            self.loss_fn.record(kappa, target, validated=True)
        loss = self.loss_fn.combine(adv, clean)
        return FairARDOutput(loss, adv.detach(), clean.detach(), kappa, *out[2:], *out[:2])

    def _soft_labels(self, teacher_logits: Tensor) -> Tensor:
        return torch.softmax(at_least_float32(teacher_logits) / self.loss_fn.temperature, dim=1)

    def on_epoch_end(self) -> Tensor:
        r"""End of epoch: all-reduce the $\kappa$ sums, set and return the class weights $(C,)$."""
        return self.loss_fn.step()


_LOSS_OPTIONS = frozenset(
    {"base", "temperature", "alpha", "beta", "min_weight", "max_weight", "reduction", "process_group"}
)


def build_fair_ard(
    student: nn.Module, *, num_classes: int, teacher: nn.Module | None = None, **hyperparameters: Any
) -> FairARDDistiller:
    """``methods.create("fair-ard", ...)``: a :class:`FairARDDistiller` (a teacher is required).

    The options of :class:`~torch_absld.FairARDLoss` (``base``, ``beta``, ...) and the
    distiller's come as one flat set of keywords.
    """
    loss = pop_loss_argument(hyperparameters, _LOSS_OPTIONS)
    return FairARDDistiller(student, require_teacher("fair-ard", teacher), num_classes, loss=loss, **hyperparameters)
