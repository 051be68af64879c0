"""What the adversarial training steps share: the loss, the attack, the forwards, the boundary check."""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Callable, Iterable, Sequence
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from .._internal import checks
from .._internal.modules import as_model_input, eval_mode, module_device
from ..attack import KLPGDAttack, PGDConfig
from ..attack.engine import configured
from ..attack.objectives import Objective
from ..precision import Precision
from .base import TrainingStep, keywords, mark_ddp_local_state

__all__ = ["AdversarialStep", "ValidatedStep"]

# The attack's settings a step takes as keywords: all but the two it sets itself.
_ATTACK_OPTIONS = frozenset(f.name for f in dataclasses.fields(PGDConfig)) - {"student_temperature", "validate_args"}


class AdversarialStep(TrainingStep):
    r"""Base of the steps that attack the student, then train it on the result.

    A subclass declares :attr:`loss_type`, its authors' :attr:`default_attack` and :attr:`objective` and implements
    ``forward``; the step holds :attr:`loss_fn` and :attr:`attack`. A batch is checked once, at the boundary (values
    in one read unless ``validate_args=False``); ``compile=True`` compiles the attack and the forwards.

    Args:
        num_classes: $C \ge 2$.
        loss: the method's loss module (a :attr:`loss_type` for $C$), or ``None``: one made from the options.
        attack: a :class:`~torch_absld.PGDConfig` replacing the method's attack as a whole.
        generator: random generator of the attack's start.
        **options: the loss's keyword options and the attack's settings (``eps``, ``step_size``, ``steps``,
            ``random_start``, ``clip_min``, ``compile``, ``model_mode``, ...): :meth:`option_names`.

    Shape:
        - input: $(N, \dots)$ in ``[clip_min, clip_max]``, cast to the student's parameter dtype once.
        - target: $(N,)$ classes; output: the method's ``<Method>Output``.
    """

    loss_type: ClassVar[type[nn.Module]]
    loss_parts: ClassVar[tuple[type, ...]] = ()  # the controllers the loss passes its other options to
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
        checks.check_options(options, type(self).option_names(), type(self).__name__)
        super().__init__(
            student,
            teacher,
            teacher_in_state_dict=teacher_in_state_dict,
            precision=precision,
            needs_teacher=self.needs_teacher,
        )
        self.num_classes = checks.check_num_classes(num_classes, minimum=2)
        self.validate_args = checks.check_bool(validate_args, "validate_args")
        loss_keys = self._loss_options()
        self.loss_fn = self._loss_module(loss, {key: options.pop(key) for key in list(options) if key in loss_keys})
        default, objective, attacked = self._attack_parts()
        # An attack on the labels indexes the student's logits with them: its width is checked once, first.
        named = objective if isinstance(objective, str) else getattr(objective, "objective", None)
        self._width_unchecked = named in ("ce", "cw")
        changes = {**options, "validate_args": self.validate_args}
        config = configured(default if attack is None else attack, None, None, changes)[0]
        self.attack = KLPGDAttack(
            attacked, config=config, objective=objective, generator=generator, model_name="student"
        )

        def view(net: nn.Module) -> nn.Module:
            return torch.compile(net, mode=config.compile_mode) if config.compile else net  # type: ignore[return-value]

        # Compiled views are plain attributes: the registered modules (and state_dict keys) stay as given.
        object.__setattr__(self, "_student_forward", view(student))
        object.__setattr__(self, "_teacher_forward", None if teacher is None else view(teacher))
        mark_ddp_local_state(self)  # again, now with the loss's controllers

    @classmethod
    def option_names(cls) -> frozenset[str]:
        """The keyword options of the step: its constructors', its loss's and the attack's settings."""
        return super().option_names() | cls._loss_options() | _ATTACK_OPTIONS

    @classmethod
    def _loss_options(cls) -> set[str]:
        return set().union(*(keywords(part) for part in (cls.loss_type, *cls.loss_parts))) - {"validate_args"}

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

    def check_inputs(self, input: Tensor, target: Tensor, *, values: bool = True) -> Tensor:
        """Shapes, dtypes and devices, then (unless ``values=False``) :meth:`check_values`; the labels as int64."""
        if not isinstance(input, Tensor) or not input.is_floating_point() or input.dim() < 1:
            got = f"{input.dtype} of shape {tuple(input.shape)}" if isinstance(input, Tensor) else type(input).__name__
            raise TypeError(f"Expected `input` to be a floating point tensor of shape (N, ...), but got {got}.")
        checks.check_device(input, module_device(self.student), "input", "the student")
        n, device = input.shape[0], input.device
        target = checks.check_integer_labels(
            target, self.num_classes, batch_size=n, check_values=False, device=device, owner="`input`"
        )
        if values:
            self.check_values(input, target)
        return target

    def check_values(self, input: Tensor, target: Tensor, teacher_logits: Sequence[Tensor] = ()) -> None:
        """The teacher's logits' shapes; in one read (eager, ``validate_args``) labels, input and teacher values."""
        for logits in teacher_logits:
            _check_logits(logits, "teacher", input.shape[0], self.num_classes)
        if not checks.values_checkable(self.validate_args) or input.shape[0] == 0:
            return
        config = self.attack.config
        flags = [
            checks.label_range_flag(target, self.num_classes),
            checks.input_flag(input, config.clip_min, config.clip_max),
        ]
        checks.raise_first([*flags, *(checks.logit_flag(logits, "teacher", "return") for logits in teacher_logits)])
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
        return torch.softmax(checks.at_least_float32(logits), dim=1)

    def distillation_forwards(
        self, input: Tensor, target: Tensor, attack_target: Tensor | Callable[[Tensor], Tensor]
    ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """Teacher, :meth:`check_values`, attack (on ``attack_target`` or its function of the teacher), student twice.

        Returns ``(student_adv_logits, student_clean_logits, teacher_logits, x_adv)``.
        """
        teacher = self.teacher_logits(input)
        self.check_values(input, target, (teacher,))
        x_adv = self.run_attack(input, attack_target(teacher) if callable(attack_target) else attack_target)
        student_adv, student_clean = self.student_logits(x_adv, input)
        return student_adv, student_clean, teacher, x_adv

    def on_epoch_end(self) -> Any:
        """The end-of-epoch rule of the loss's controllers (``loss_fn.step()``), if it has one."""
        step = getattr(self.loss_fn, "step", None)
        return None if step is None else step()

    def extra_repr(self) -> str:
        settings = f"compile={self.attack.use_compile}, precision={self.precision!r}"
        return f"num_classes={self.num_classes}, {settings}, teacher_in_state_dict={self.teacher_in_state_dict}"


def _check_logits(logits: object, name: str, batch_size: int, num_classes: int) -> None:
    """Raise unless a model's output is a tensor of shape ``(batch_size, num_classes)`` (shape only)."""
    if not isinstance(logits, Tensor) or tuple(logits.shape) != (batch_size, num_classes):
        got = tuple(logits.shape) if isinstance(logits, Tensor) else type(logits).__name__
        raise ValueError(
            f"Expected `{name}` to return logits of shape (N, num_classes) = ({batch_size}, {num_classes}), "
            f"but got {got}. Check `num_classes` and that the {name} returns plain logits."
        )


class ValidatedStep(AdversarialStep):
    r"""Base of the teacher-free steps that measure the student on a validation split at each epoch's end.

    ``validation``: ``(input, target)`` batches (this rank's shard of a :func:`~torch_absld.stratified_split`).
    :attr:`validation_config`: the training attack, ``validation_steps``, a uniform start, eval mode.
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
            got = type(validation).__name__
            raise TypeError(
                f"Expected `validation` to be an iterable of (input, target) batches or None, but got {got}."
            )
        self.validation = validation  # data: neither a submodule nor state
        self.validation_seed = checks.check_integer(validation_seed, "validation_seed", minimum=0)
        steps = self.default_validation_steps if validation_steps is None else validation_steps
        steps = checks.check_integer(steps, "validation_steps", minimum=1)
        self.validation_config = self.attack.config.replace(steps=steps, random_start="uniform", model_mode="eval")

    def validation_batches(self, validation: Iterable[Any] | None) -> Iterable[Any]:
        """``validation`` if given, else the constructor's; a ``RuntimeError`` naming the method when there is none."""
        batches = validation if validation is not None else self.validation
        if batches is None:
            raise RuntimeError(
                f"{type(self).__name__} measures the student on a validation split at the end of each epoch: pass "
                "`validation=` ((input, target) batches, e.g. of a `stratified_split`) to it or to `on_epoch_end`."
            )
        return batches

    @property
    def evaluation_model(self) -> nn.Module:
        """The network to evaluate and select checkpoints on: the student (or the method's weight average)."""
        return self.student
