"""What the steps share whose end-of-epoch rule reads a validation split (FRL, CFA)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from torch import nn
from typing_extensions import Unpack

from .._internal.checks import check_integer
from ..attack import PGDConfig
from .adversarial import AdversarialStep, StepOptions

__all__ = ["ValidatedStep"]


class ValidatedStep(AdversarialStep):
    r"""Base of the teacher-free TRADES-style steps that measure the student on a validation split each epoch.

    The attack ascends TRADES' KL to the student's clean soft labels (the ``"kl"`` objective). The
    split comes as ``(input, target)`` batches (a ``DataLoader`` over a
    :func:`~torch_absld.stratified_split` of the training set, this rank's shard under
    ``torch.distributed``), given once to the constructor (``validation=``), so that
    ``on_epoch_end()`` keeps the contract of every step and works in any loop, or to
    ``on_epoch_end(validation)`` for one epoch. The batches are data, not state: they are
    not in ``state_dict()``.

    Args:
        student: the network being trained.
        num_classes: number of classes $C$.
        default_attack: the method's training attack.
        validation: the validation batches, or ``None`` to give them to ``on_epoch_end``.
        validation_seed: seed of the validation attack's per-sample uniform starts.
        **options: the attack and the checks (:class:`~torch_absld.methods.adversarial.StepOptions`).
    """

    validation: Iterable[Any] | None

    def __init__(
        self,
        student: nn.Module,
        num_classes: int,
        *,
        default_attack: PGDConfig,
        validation: Iterable[Any] | None = None,
        validation_seed: int = 0,
        **options: Unpack[StepOptions],
    ) -> None:
        super().__init__(student, None, num_classes, default_attack=default_attack, objective="kl", **options)
        if validation is not None and (isinstance(validation, (str, bytes)) or not isinstance(validation, Iterable)):
            raise TypeError(
                f"Expected `validation` to be an iterable of (input, target) batches or None, but got "
                f"{type(validation).__name__}."
            )
        self.validation = validation  # data: neither a submodule nor state
        self.validation_seed = check_integer(validation_seed, "validation_seed", minimum=0)

    def validation_attack(self, steps: int) -> PGDConfig:
        """The validation PGD: the training attack's radius and step, ``steps`` steps, a uniform start."""
        steps = check_integer(steps, "validation_steps", minimum=1)
        return self.attack.config.replace(steps=steps, random_start="uniform")

    def validation_batches(self, validation: Iterable[Any] | None) -> Iterable[Any]:
        """``validation`` if given, else the constructor's; a ``RuntimeError`` naming the method when there is none."""
        batches = validation if validation is not None else self.validation
        if batches is None:
            raise RuntimeError(
                f"{type(self).__name__} measures the student on a validation split at the end of each epoch: pass "
                "`validation=` (an iterable of (input, target) batches, e.g. a DataLoader over a `stratified_split` "
                "of the training set) to the constructor or to `on_epoch_end(validation)`."
            )
        return batches

    @property
    def evaluation_model(self) -> nn.Module:
        """The network to evaluate and select checkpoints on: the student (or the method's weight average)."""
        return self.student
