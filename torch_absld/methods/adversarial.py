"""What the adversarial training steps share: the loss, the attack, the (compiled) forwards, the boundary check."""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Callable, Sequence
from typing import Any, ClassVar, NamedTuple

import torch
from torch import Tensor, nn

from .._internal.checks import (
    at_least_float32,
    check_bool,
    check_device,
    check_integer_labels,
    check_num_classes,
    check_options,
    input_flag,
    label_range_flag,
    logit_flag,
    raise_first,
    values_checkable,
)
from .._internal.modules import as_model_input, eval_mode, module_device
from ..attack import KLPGDAttack, PGDConfig
from ..attack.engine import configured
from ..attack.objectives import Objective
from ..precision import Precision
from .base import TrainingStep, keywords, mark_ddp_local_state

__all__ = ["AdversarialStep", "DistillationForwards"]

# The attack's settings a step takes as keywords: all but the two it sets itself.
_ATTACK_OPTIONS = frozenset(f.name for f in dataclasses.fields(PGDConfig)) - {"student_temperature", "validate_args"}


class DistillationForwards(NamedTuple):
    """The forward work of a distillation step before its loss (:meth:`AdversarialStep.distillation_forwards`).

    The student's logits on ``x_adv`` and on the clean batch (the step's mode, with gradient), the teacher's
    logits on the clean batch (eval mode, no gradient), and ``x_adv`` (detached).
    """

    student_adv_logits: Tensor
    student_clean_logits: Tensor
    teacher_logits: Tensor
    x_adv: Tensor


class AdversarialStep(TrainingStep):
    r"""Base of the steps that attack the student, then train it on the result.

    A subclass declares its loss module (:attr:`loss_type`), its authors' attack
    (:attr:`default_attack`) and objective, and implements ``forward(input, target)``. The step
    holds :attr:`loss_fn`, :attr:`attack` (a :class:`~torch_absld.KLPGDAttack`; the attacked
    model is in eval mode for its duration) and the forwards of the student and the teacher
    (compiled when the attack's ``compile=True``; the modules and ``state_dict`` keys stay as
    given). A batch is checked once, at the boundary: shapes, dtypes and devices always; label,
    input and teacher values in one read from the device in eager mode with ``validate_args``.
    Everything after trusts its inputs.

    Args:
        student: the network being trained.
        teacher: the frozen teacher (``None`` for a method without one).
        num_classes: number of classes $C \ge 2$.
        loss: the method's loss module (a :attr:`loss_type` for ``num_classes``), or ``None``:
            one made from the loss's keyword options given here.
        attack: a :class:`~torch_absld.PGDConfig` replacing the method's attack as a whole.
        generator: random generator of the attack's start.
        teacher_in_state_dict: include the teacher's weights in ``state_dict()``.
        validate_args: check label and input values once per step in eager mode (one host sync).
        precision: see :class:`~torch_absld.methods.base.TrainingStep`.
        **options: the loss's keyword options and the attack's settings (``eps``, ``step_size``,
            ``steps``, ``random_start``, ``clip_min``, ``compile``, ...): :meth:`option_names`.
    """

    loss_type: ClassVar[type[nn.Module]]
    default_attack: ClassVar[PGDConfig]
    objective: ClassVar[Objective] = "kl"
    needs_teacher: ClassVar[bool] = True
    loss_fn: Any
    _student_forward: nn.Module
    _teacher_forward: nn.Module | None

    def __init__(
        self,
        student: nn.Module,
        teacher: nn.Module | None,
        num_classes: int,
        *,
        loss: nn.Module | None = None,
        attack: PGDConfig | None = None,
        generator: torch.Generator | None = None,
        teacher_in_state_dict: bool = False,
        validate_args: bool = True,
        precision: Precision | None = None,
        **options: Any,
    ) -> None:
        check_options(options, type(self).option_names(), type(self).__name__)
        super().__init__(
            student,
            teacher,
            teacher_in_state_dict=teacher_in_state_dict,
            precision=precision,
            needs_teacher=self.needs_teacher,
        )
        self.num_classes = check_num_classes(num_classes, minimum=2)
        self.validate_args = check_bool(validate_args, "validate_args")
        loss_keys = keywords(self.loss_type)
        self.loss_fn = self._loss_module(loss, {key: options.pop(key) for key in list(options) if key in loss_keys})
        default, objective, attacked = self._attack_parts()
        # An attack on the labels indexes the student's logits with them: its width is checked once, first.
        named = objective if isinstance(objective, str) else getattr(objective, "objective", None)
        self._width_unchecked = named in ("ce", "cw")
        changes = {**options, "validate_args": self.validate_args}
        config = configured(default if attack is None else attack, None, None, changes)[0]
        self.attack = KLPGDAttack(attacked, config=config, objective=objective, generator=generator)

        def view(net: nn.Module) -> nn.Module:
            return torch.compile(net, mode=config.compile_mode) if config.compile else net  # type: ignore[return-value]

        # Compiled views are plain attributes: the registered modules (and state_dict keys) stay as given.
        object.__setattr__(self, "_student_forward", view(student))
        object.__setattr__(self, "_teacher_forward", None if teacher is None else view(teacher))
        mark_ddp_local_state(self)  # again, now with the loss's controllers

    @classmethod
    def option_names(cls) -> frozenset[str]:
        """The keyword options of the step: its constructors', its loss's and the attack's settings."""
        return super().option_names() | (keywords(cls.loss_type) - {"validate_args"}) | _ATTACK_OPTIONS

    def _loss_module(self, loss: nn.Module | None, options: dict[str, Any]) -> Any:
        kind = self.loss_type
        if loss is None:
            classes = (self.num_classes,) if "num_classes" in inspect.signature(kind).parameters else ()
            return kind(*classes, validate_args=self.validate_args, **options)
        article = "an" if kind.__name__[0] in "AEIOU" else "a"
        if not isinstance(loss, kind):
            raise TypeError(f"Expected `loss` to be {article} {kind.__name__} or None, but got {type(loss).__name__}.")
        if options:
            raise ValueError(f"Expected either `loss` or loss options {sorted(options)}, but got both.")
        width = getattr(loss, "num_classes", self.num_classes)
        if width != self.num_classes:
            raise ValueError(
                f"Expected `loss` for num_classes = {self.num_classes}, but got {article} {kind.__name__} with "
                f"num_classes = {width}."
            )
        return loss

    def _attack_parts(self) -> tuple[PGDConfig, Objective, nn.Module]:
        """The method's attack: its default settings, its objective and the module it attacks."""
        return self.default_attack, type(self).objective, self.student

    @property
    def use_compile(self) -> bool:
        """Whether the forwards and the attack steps are compiled."""
        return self.attack.use_compile

    def check_inputs(self, input: Tensor, target: Tensor, *, values: bool = True) -> Tensor:
        """The step's boundary checks; returns the labels as int64 (any integer dtype is accepted).

        Shapes, dtypes and devices always; ``values=False`` leaves the one value read to
        :meth:`check_values` (with the teacher's logits).
        """
        if not isinstance(input, Tensor) or not input.is_floating_point() or input.dim() < 1:
            got = f"{input.dtype} of shape {tuple(input.shape)}" if isinstance(input, Tensor) else type(input).__name__
            raise TypeError(f"Expected `input` to be a floating point tensor of shape (N, ...), but got {got}.")
        check_device(input, module_device(self.student), "input", "the student")
        n, device = input.shape[0], input.device
        target = check_integer_labels(
            target, self.num_classes, batch_size=n, check_values=False, device=device, owner="`input`"
        )
        if values:
            self.check_values(input, target)
        return target

    def check_values(self, input: Tensor, target: Tensor, teacher_logits: Sequence[Tensor] = ()) -> None:
        r"""The teacher's logits' shapes, then one read (eager, ``validate_args``) of every value.

        The input range (and finiteness), the labels' range and the teacher's logits (finite;
        $-\infty$ masks a class). ``target`` must come from :meth:`check_inputs`.
        """
        for logits in teacher_logits:
            _check_logits(logits, "teacher", input.shape[0], self.num_classes)
        if not values_checkable(self.validate_args) or input.shape[0] == 0:
            return
        config = self.attack.config
        checks = [label_range_flag(target, self.num_classes), input_flag(input, config.clip_min, config.clip_max)]
        raise_first([*checks, *(logit_flag(logits, "teacher", "return") for logits in teacher_logits)])
        if self._width_unchecked:
            with torch.no_grad(), eval_mode(self.student):
                probe = self.student(as_model_input(self.student, input[:1]))
            _check_logits(probe, "student", 1, self.num_classes)
            self._width_unchecked = False

    def run_attack(
        self, input: Tensor, target: Tensor, eps: Tensor | None = None, step_size: Tensor | None = None
    ) -> Tensor:
        """The step's attack on a checked batch (no value checks), detached; ``eps`` / ``step_size`` per sample."""
        return self.attack._forward(input, target, eps=eps, step_size=step_size).detach()

    def teacher_logits(self, input: Tensor) -> Tensor:
        """The teacher's logits on ``input``, without gradient (the teacher stays in eval mode)."""
        if self._teacher_forward is None or self.teacher is None:
            raise RuntimeError(f"{type(self).__name__} has no teacher.")
        with torch.no_grad():
            logits: Tensor = self._teacher_forward(as_model_input(self.teacher, input))
        return logits

    def student_logits(self, *inputs: Tensor) -> tuple[Tensor, ...]:
        """The student's logits on each of ``inputs`` in turn, in the step's mode, with gradient (shapes checked)."""
        outputs = tuple(self._student_forward(as_model_input(self.student, x)) for x in inputs)
        for x, logits in zip(inputs, outputs):
            _check_logits(logits, "student", x.shape[0], self.num_classes)
        return outputs

    def student_eval_probabilities(self, input: Tensor) -> Tensor:
        """``softmax`` of the student's logits on ``input`` in eval mode, without gradient, in float32."""
        with torch.no_grad(), eval_mode(self.student):
            (logits,) = self.student_logits(input)
        return torch.softmax(at_least_float32(logits), dim=1)

    def distillation_forwards(
        self, input: Tensor, target: Tensor, attack_target: Tensor | Callable[[Tensor], Tensor]
    ) -> DistillationForwards:
        """The teacher on the clean batch, the one value read, the attack, the student on ``x_adv`` and on ``input``.

        ``target``: the labels from ``check_inputs(..., values=False)``. ``attack_target``: the
        attack's target, or a function of the teacher's logits that makes it.
        """
        teacher = self.teacher_logits(input)
        self.check_values(input, target, (teacher,))
        x_adv = self.run_attack(input, attack_target(teacher) if callable(attack_target) else attack_target)
        student_adv, student_clean = self.student_logits(x_adv, input)
        return DistillationForwards(student_adv, student_clean, teacher, x_adv)

    def on_epoch_end(self) -> Any:
        """The end-of-epoch rule of the loss's controllers (``loss_fn.step()``), if it has one."""
        step = getattr(self.loss_fn, "step", None)
        return None if step is None else step()

    def extra_repr(self) -> str:
        return (
            f"num_classes={self.num_classes}, compile={self.use_compile}, precision={self.precision!r}, "
            f"teacher_in_state_dict={self.teacher_in_state_dict}"
        )


def _check_logits(logits: object, name: str, batch_size: int, num_classes: int) -> None:
    """Raise unless a model's output is a tensor of shape ``(batch_size, num_classes)`` (shape only)."""
    if not isinstance(logits, Tensor) or tuple(logits.shape) != (batch_size, num_classes):
        got = tuple(logits.shape) if isinstance(logits, Tensor) else type(logits).__name__
        raise ValueError(
            f"Expected `{name}` to return logits of shape (N, num_classes) = ({batch_size}, {num_classes}), "
            f"but got {got}. Check `num_classes` and that the {name} returns plain logits."
        )
