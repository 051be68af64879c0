"""What the steps share whose end-of-epoch rule reads a validation split (FRL, CFA)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, ClassVar

from torch import nn

from .._internal.checks import check_integer
from .adversarial import AdversarialStep

__all__ = ["ValidatedStep"]


class ValidatedStep(AdversarialStep):
    r"""Base of the teacher-free TRADES-style steps that measure the student on a validation split each epoch.

    The attack ascends TRADES' KL to the student's clean soft labels. The split comes as
    ``(input, target)`` batches (a ``DataLoader`` over a :func:`~torch_absld.stratified_split`
    of the training set, this rank's shard under ``torch.distributed``), given to the
    constructor (``validation=``) or to ``on_epoch_end(validation)`` for one epoch. The batches
    are data, not state: they are not in ``state_dict()``.

    Args:
        student: the network being trained.
        num_classes: number of classes $C$.
        validation: the validation batches, or ``None`` to give them to ``on_epoch_end``.
        validation_steps: steps of the validation PGD (``None``: the method's); :attr:`validation_config`
            is the training attack's radius and step, these steps and a uniform start.
        validation_seed: seed of the validation attack's per-sample uniform starts.
        **options: those of :class:`~torch_absld.methods.adversarial.AdversarialStep`.
    """

    needs_teacher = False
    default_validation_steps: ClassVar[int]
    validation: Iterable[Any] | None

    def __init__(
        self,
        student: nn.Module,
        num_classes: int,
        *,
        validation: Iterable[Any] | None = None,
        validation_steps: int | None = None,
        validation_seed: int = 0,
        **options: Any,
    ) -> None:
        super().__init__(student, None, num_classes, **options)
        if validation is not None and (isinstance(validation, (str, bytes)) or not isinstance(validation, Iterable)):
            raise TypeError(
                f"Expected `validation` to be an iterable of (input, target) batches or None, but got "
                f"{type(validation).__name__}."
            )
        self.validation = validation  # data: neither a submodule nor state
        self.validation_seed = check_integer(validation_seed, "validation_seed", minimum=0)
        steps = self.default_validation_steps if validation_steps is None else validation_steps
        steps = check_integer(steps, "validation_steps", minimum=1)
        self.validation_config = self.attack.config.replace(steps=steps, random_start="uniform")

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
