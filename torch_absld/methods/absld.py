"""ABSLD (and RSLAD, its frozen-temperature special case) as a training-step module."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

import torch
from torch import Tensor, nn
from typing_extensions import Unpack

from .._internal.checks import (
    check_bool,
    check_input_and_label_values,
    check_num_classes,
    values_checkable,
)
from .._internal.modules import as_model_input
from ..attack import KLPGDAttack, PGDConfig
from ..attack.config import AttackSettings
from ..attack.engine import configured
from ..loss import ABSLDLoss
from ..precision import Precision
from ._loss import loss_module, pop_loss_argument
from .adversarial import check_batch, check_model_output
from .base import TrainingStep, mark_ddp_local_state

__all__ = ["ABSLDDistiller", "DistillerOutput", "build_absld", "build_rslad"]


class DistillerOutput(NamedTuple):
    """What :meth:`ABSLDDistiller.forward` returns.

    Attributes:
        loss: the ABSLD loss (Eq. 12) to call ``backward()`` on.
        adv_kl: the adversarial KL term alone, detached (same reduction as ``loss``).
        clean_kl: the clean KL term alone, detached.
        student_adv_logits: the student's logits on ``x_adv`` (train-mode forward).
        student_clean_logits: the student's logits on the clean batch.
        teacher_logits: the teacher's logits on the clean batch (no gradient).
        x_adv: the adversarial batch (detached, float32 within ``eps`` of the input).
    """

    loss: Tensor
    adv_kl: Tensor
    clean_kl: Tensor
    student_adv_logits: Tensor
    student_clean_logits: Tensor
    teacher_logits: Tensor
    x_adv: Tensor


class ABSLDDistiller(TrainingStep):
    r"""ABSLD's per-step forward work in one module; ``on_epoch_end()`` adapts the temperatures.

    ``out = distiller(x, y)`` runs, in this order:

    1. the teacher on the clean batch, in eval mode, without gradient;
    2. the KL-PGD attack (Eq. 13) against the student (in eval mode for its duration) to the
       teacher's adversarial soft labels ``loss_fn.soft_labels(teacher_logits, y, "adv")``;
    3. the student on ``x_adv`` then on ``x``, in the distiller's mode (train mode for training);
    4. the loss (Eq. 12), which in training mode records each sample's risk.

    It is exactly the explicit loop of the three modules::

        with torch.no_grad():
            teacher_logits = teacher(x)
        x_adv = attack(x, loss_fn.soft_labels(teacher_logits, y, kind="adv"))
        loss = loss_fn(student(x_adv), student(x), teacher_logits, y)

    Then ``out.loss.backward()``, the optimizer step, and ``distiller.on_epoch_end()`` once per
    epoch (after the learning-rate scheduler's step when beta follows the learning rate, as in
    the authors' script).
    The labels and the input range are checked once per step, in one read from the device.

    The teacher is frozen and, by default, not in ``state_dict()`` (see
    :class:`~torch_absld.methods.base.TrainingStep`): a checkpoint holds the student and the
    temperatures (``loss_fn``). Optimise ``distiller.student.parameters()``.

    Mixed precision: ``precision="auto"`` runs the step in bf16 where the device has bf16
    arithmetic (CUDA compute capability >= 8.0, CPUs with AVX512-BF16 or AMX) and in float32
    elsewhere, with ``channels_last`` inputs where that pays
    (:func:`~torch_absld.precision.fastest_settings`); ``"bfloat16"`` / ``"float16"`` force a
    dtype (with a ``UserWarning`` where the device emulates it, as for a bf16 ``torch.autocast``
    around the call). The attack iterates in float32 and the loss is computed in float32
    whatever the logits' dtype. With fp16, scale the loss with a ``torch.amp.GradScaler`` as
    usual (the attack scales its own loss against underflow).

    Multi-GPU: wrap the distiller in ``DistributedDataParallel`` and keep a reference to it for
    ``on_epoch_end()`` and checkpoints. The per-rank risk sums are not buffers, so DDP leaves
    them alone, and the teacher is marked so DDP neither broadcasts nor reduces it; the
    temperatures are synchronised by the controllers' all-reduce in ``on_epoch_end()``, so
    every rank ends the epoch with the temperatures one process would compute on all the data.

    Args:
        student: the network being trained.
        teacher: the frozen teacher; any ``nn.Module`` mapping the same inputs to $(N, C)$ logits.
        num_classes: number of classes $C$.
        loss: an :class:`~torch_absld.ABSLDLoss` (its ``num_classes`` must match), or a mapping of
            keyword arguments for one (e.g. ``{"lr": 0.1, "coupling": "product"}``), or ``None``
            for the defaults.
        attack: the attack's :class:`~torch_absld.PGDConfig` (default: the paper's, eps 8/255,
            10 steps of 2/255 from $x + 0.001\,\mathcal{N}(0, 1)$); its ``student_temperature``
            is the loss's, its ``validate_args`` the distiller's.
        generator: random generator for the attack's start.
        teacher_in_state_dict: include the teacher's weights in ``state_dict()``.
        validate_args: check label and input values once per step in eager mode (one host sync).
        precision: ``None`` (default: the caller's autocast applies), ``"auto"``, ``"float32"``,
            ``"bfloat16"`` or ``"float16"`` (see above and
            :class:`~torch_absld.methods.base.TrainingStep`).
        eps: L-inf radius of the attack (changes ``attack``).
        step_size: attack step (changes ``attack``).
        **attack_settings: other attack settings (``steps``, ``random_start``, ``init_std``,
            ``project_start``, ``clip_min``, ``clip_max``, ``loss_scale``, ``compile``,
            ``compile_mode``). ``compile=True`` also compiles the student's and the teacher's
            forwards with ``torch.compile`` (the registered modules and ``state_dict`` keys stay).

    Shape:
        - input: $(N, \dots)$ in ``[clip_min, clip_max]``
        - target: $(N,)$ integer classes in $[0, C)$
        - Output: a :class:`DistillerOutput`; ``loss`` is a scalar (or $(N,)$ with the loss's
          ``reduction="none"``)

    Example:
        >>> student = nn.Sequential(nn.Flatten(), nn.Linear(12, 3))
        >>> teacher = nn.Sequential(nn.Flatten(), nn.Linear(12, 3))
        >>> distiller = ABSLDDistiller(student, teacher, 3, steps=2)
        >>> out = distiller(torch.rand(4, 12), torch.tensor([0, 1, 2, 0]))
        >>> out.loss.backward()
        >>> tau_adv, tau_clean = distiller.on_epoch_end()
        >>> sorted(distiller.state_dict())[:2]
        ['loss_fn.adv._extra_state', 'loss_fn.adv.accumulator']
    """

    teacher: nn.Module

    def __init__(
        self,
        student: nn.Module,
        teacher: nn.Module,
        num_classes: int,
        *,
        loss: ABSLDLoss | Mapping[str, Any] | None = None,
        attack: PGDConfig | None = None,
        generator: torch.Generator | None = None,
        teacher_in_state_dict: bool = False,
        validate_args: bool = True,
        precision: Precision | None = None,
        eps: float | None = None,
        step_size: float | None = None,
        **attack_settings: Unpack[AttackSettings],
    ) -> None:
        super().__init__(
            student, teacher, teacher_in_state_dict=teacher_in_state_dict, precision=precision, needs_teacher=True
        )
        num_classes = check_num_classes(num_classes, minimum=2)
        validate_args = check_bool(validate_args, "validate_args")
        self.loss_fn = loss_module(loss, ABSLDLoss, num_classes, validate_args)
        self.num_classes = num_classes
        self.validate_args = validate_args
        settings = {**attack_settings, "student_temperature": self.loss_fn.student_temperature}
        config = configured(attack, eps, step_size, {**settings, "validate_args": validate_args})[0]  # type: ignore[typeddict-item]
        self.attack = KLPGDAttack(student, config=config, objective="kl", generator=generator)
        self.attack._model_name = "student"
        # Compiled views are plain attributes: the registered modules (and state_dict keys) stay as given.
        mode = config.compile_mode
        student_forward = torch.compile(student, mode=mode) if config.compile else student
        teacher_forward = torch.compile(teacher, mode=mode) if config.compile else teacher
        object.__setattr__(self, "_student_forward", student_forward)
        object.__setattr__(self, "_teacher_forward", teacher_forward)
        mark_ddp_local_state(self)  # again, now with the loss: the names of 0.1

    _student_forward: nn.Module
    _teacher_forward: nn.Module

    @property
    def use_compile(self) -> bool:
        """Whether the forwards and the attack steps are compiled."""
        return self.attack.use_compile

    def forward(self, input: Tensor, target: Tensor) -> DistillerOutput:
        """One step's forward work: teacher, attack, both student forwards, loss.

        The arguments are checked once, here: shapes, dtypes and devices always; in eager mode
        with ``validate_args`` the label range, the input range and the teacher's logits in one
        read from the device. Labels of any integer dtype are cast to int64 once. An empty batch
        gives a zero loss (part of the graph) and records nothing.
        """
        config = self.attack.config
        target = check_batch(input, target, self.student, self.num_classes)
        with torch.no_grad():
            teacher_logits = self._teacher_forward(as_model_input(self.teacher, input))
        check_model_output(teacher_logits, "teacher", input.shape[0], self.num_classes)
        if values_checkable(self.validate_args):
            check_input_and_label_values(
                input, config.clip_min, config.clip_max, target, self.num_classes, teacher_logits
            )
        soft = self.loss_fn.soft_labels(teacher_logits, target, "adv", validated=True)
        x_adv = self.attack(input, soft, validated=True)
        student_adv_logits = self._student_forward(as_model_input(self.student, x_adv))
        student_clean_logits = self._student_forward(as_model_input(self.student, input))
        adv_kl, clean_kl = self.loss_fn.terms(
            student_adv_logits, student_clean_logits, teacher_logits, target, validated=True
        )
        return DistillerOutput(
            self.loss_fn.combine(adv_kl, clean_kl),
            adv_kl.detach(),
            clean_kl.detach(),
            student_adv_logits,
            student_clean_logits,
            teacher_logits,
            x_adv.detach(),
        )

    def on_epoch_end(self) -> tuple[Tensor, Tensor]:
        """End of epoch: all-reduce the risks, apply Eq. 11, return ``(tau_adv, tau_clean)``."""
        return self.loss_fn.step()

    @property
    def temperatures(self) -> tuple[Tensor, Tensor]:
        """The current ``(tau_adv, tau_clean)``, each of shape $(C,)$."""
        return self.loss_fn.adv.temperatures, self.loss_fn.clean.temperatures

    def extra_repr(self) -> str:
        return (
            f"num_classes={self.num_classes}, compile={self.use_compile}, precision={self.precision!r}, "
            f"teacher_in_state_dict={self.teacher_in_state_dict}"
        )


# The registry's builders -------------------------------------------------------------------

_LOSS_OPTIONS = frozenset(
    {
        "alpha",
        "student_temperature",
        "init_temperature",
        "lr",
        "min_temperature",
        "max_temperature",
        "adapt",
        "coupling",
        "reduction",
        "risk_reduction",
        "record_risk",
        "process_group",
    }
)


def build_absld(
    student: nn.Module, *, num_classes: int, teacher: nn.Module | None = None, **hyperparameters: Any
) -> ABSLDDistiller:
    """``methods.create("absld", ...)``: the :class:`ABSLDLoss` options and the distiller's, as one flat set."""
    if teacher is None:
        raise ValueError("Expected a `teacher` for the method 'absld' (it distils a teacher), but got None.")
    loss = pop_loss_argument(hyperparameters, _LOSS_OPTIONS)
    return ABSLDDistiller(student, teacher, num_classes, loss=loss, **hyperparameters)


def build_rslad(
    student: nn.Module, *, num_classes: int, teacher: nn.Module | None = None, **hyperparameters: Any
) -> ABSLDDistiller:
    """``methods.create("rslad", ...)``: RSLAD (Zi et al. 2021) is ABSLD with frozen temperatures."""
    adapt = hyperparameters.pop("adapt", "none")
    if adapt != "none":
        raise ValueError(f"Expected `adapt` = 'none' for the method 'rslad' (frozen temperatures), but got {adapt!r}.")
    if teacher is None:
        raise ValueError("Expected a `teacher` for the method 'rslad' (it distils a teacher), but got None.")
    return build_absld(student, num_classes=num_classes, teacher=teacher, adapt="none", **hyperparameters)
