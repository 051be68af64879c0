"""What the adversarial training steps share: the attack, the (compiled) forwards, the checks at the boundary."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from typing import NamedTuple

import torch
from torch import Tensor, nn
from typing_extensions import Unpack

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
from ..attack.config import AttackSettings
from ..attack.engine import configured
from ..attack.objectives import Objective
from ..precision import Precision
from .base import TrainingStep

__all__ = [
    "AdversarialStep",
    "DistillationForwards",
    "StepOptions",
    "accepted_options",
    "check_batch",
    "check_model_output",
    "require_teacher",
]


class StepOptions(AttackSettings, total=False):
    """The keyword options of every :class:`AdversarialStep` subclass, besides its method's own.

    ``attack`` (a :class:`~torch_absld.PGDConfig` replacing the method's default attack),
    ``generator`` (the attack's random start), ``eps`` and ``step_size`` (changes to the attack),
    ``validate_args``, ``teacher_in_state_dict``, ``precision``, and the attack settings of
    :class:`~torch_absld.attack.AttackSettings` (``steps``, ``random_start``, ``init_std``,
    ``project_start``, ``clip_min``, ``clip_max``, ``loss_scale``, ``compile``, ``compile_mode``).
    See :class:`AdversarialStep` for each.
    """

    attack: PGDConfig | None
    generator: torch.Generator | None
    eps: float | None
    step_size: float | None
    validate_args: bool
    teacher_in_state_dict: bool
    precision: Precision | None


class DistillationForwards(NamedTuple):
    """The forward work of a distillation step before its loss (see :meth:`AdversarialStep.distillation_forwards`).

    Attributes:
        teacher_logits: the teacher's logits on the clean batch (eval mode, no gradient).
        x_adv: the adversarial batch (detached).
        student_adv_logits: the student's logits on ``x_adv`` (the step's mode, with gradient).
        student_clean_logits: the student's logits on the clean batch.
    """

    teacher_logits: Tensor
    x_adv: Tensor
    student_adv_logits: Tensor
    student_clean_logits: Tensor


class AdversarialStep(TrainingStep):
    r"""Base of the steps that attack the student, then train it on the result.

    It holds the attack (:attr:`attack`, a :class:`~torch_absld.KLPGDAttack` with the method's
    objective and its authors' :class:`~torch_absld.PGDConfig`), the forwards of the student
    and the teacher (compiled with ``torch.compile`` when the config says ``compile=True``; the
    registered modules and ``state_dict`` keys stay as given), and the checks of a batch at the
    boundary: label and input values are read from the device once per step. Subclasses
    implement ``forward(input, target)`` with the helpers below and pass ``validated=True`` inward.

    The attack puts the attacked model in eval mode for its duration (the library's convention),
    also where an official code attacks in train mode; each method's page says where. Every
    model output is checked to be logits $(N, C)$ (free); when the attack ascends a loss of the
    labels, the student's class count is also checked once, on one sample before the first attack.

    Args:
        student: the network being trained.
        teacher: the frozen teacher, or ``None`` for a method without one.
        num_classes: number of classes $C \ge 2$.
        default_attack: the method's attack settings (its authors').
        objective: what the attack ascends (a name or a callable, see :func:`~torch_absld.pgd`).
        attack: settings replacing ``default_attack`` as a whole.
        generator: random generator for the attack's start.
        attacked: the module the attack runs (default: the student), e.g. one returning the
            student's and the teacher's logits.
        needs_teacher: raise a ``TypeError`` unless ``teacher`` is a module.
        teacher_in_state_dict: include the teacher's weights in ``state_dict()``.
        validate_args: check label and input values once per step in eager mode (one host sync).
        precision: ``None`` (the caller's autocast applies), ``"auto"``, ``"float32"``,
            ``"bfloat16"`` or ``"float16"`` (see :class:`~torch_absld.methods.base.TrainingStep`).
        eps: L-inf radius of the attack (changes the settings).
        step_size: attack step (changes the settings).
        **attack_settings: other fields of the settings (``steps``, ``random_start``, ``compile``, ...).
    """

    _student_forward: nn.Module
    _teacher_forward: nn.Module | None

    def __init__(
        self,
        student: nn.Module,
        teacher: nn.Module | None,
        num_classes: int,
        *,
        default_attack: PGDConfig,
        objective: Objective,
        attack: PGDConfig | None = None,
        generator: torch.Generator | None = None,
        attacked: nn.Module | None = None,
        needs_teacher: bool = False,
        teacher_in_state_dict: bool = False,
        validate_args: bool = True,
        precision: Precision | None = None,
        eps: float | None = None,
        step_size: float | None = None,
        **attack_settings: Unpack[AttackSettings],
    ) -> None:
        check_options(attack_settings, accepted_options(type(self)), type(self).__name__)
        super().__init__(
            student,
            teacher,
            teacher_in_state_dict=teacher_in_state_dict,
            precision=precision,
            needs_teacher=needs_teacher,
        )
        self.num_classes = check_num_classes(num_classes, minimum=2)
        self.validate_args = check_bool(validate_args, "validate_args")
        # An attack on the labels indexes the student's logits with them: its width is checked once, first.
        named = objective if isinstance(objective, str) else getattr(objective, "objective", None)
        self._width_unchecked = named in ("ce", "cw")
        changes = {**attack_settings, "validate_args": validate_args}
        config = configured(default_attack if attack is None else attack, eps, step_size, changes)[0]  # type: ignore[arg-type]
        target_model = student if attacked is None else attacked
        self.attack = KLPGDAttack(target_model, config=config, objective=objective, generator=generator)

        # Compiled views are plain attributes: the registered modules (and state_dict keys) stay as given.
        def view(net: nn.Module) -> nn.Module:
            return torch.compile(net, mode=config.compile_mode) if config.compile else net  # type: ignore[return-value]

        object.__setattr__(self, "_student_forward", view(student))
        object.__setattr__(self, "_teacher_forward", None if teacher is None else view(teacher))

    @property
    def use_compile(self) -> bool:
        """Whether the forwards and the attack steps are compiled."""
        return self.attack.use_compile

    def check_inputs(self, input: Tensor, target: Tensor, *, values: bool = True) -> Tensor:
        """The step's boundary checks: shapes, dtypes and devices always, values once (one host read) when enabled.

        Returns the labels as int64 (any integer dtype is accepted and cast once, here).
        ``values=False`` leaves the value read to :meth:`check_values` (with the teacher's logits).
        """
        target = check_batch(input, target, self.student, self.num_classes)
        if values:
            self.check_values(input, target)
        return target

    def check_values(self, input: Tensor, target: Tensor, teacher_logits: Sequence[Tensor] = ()) -> None:
        r"""The teacher's logits' shapes, then one read from the device (eager, ``validate_args``) of every value.

        The input range (and finiteness), the labels' range and the teacher's logits (finite;
        $-\infty$ masks a class). ``target`` must come from :meth:`check_inputs`.
        """
        for logits in teacher_logits:
            check_model_output(logits, "teacher", input.shape[0], self.num_classes)
        if not values_checkable(self.validate_args) or input.shape[0] == 0:
            return
        config = self.attack.config
        checks = [label_range_flag(target, self.num_classes), input_flag(input, config.clip_min, config.clip_max)]
        raise_first([*checks, *(logit_flag(logits, "teacher", "return") for logits in teacher_logits)])
        if self._width_unchecked:
            with torch.no_grad(), eval_mode(self.student):
                probe = self.student(as_model_input(self.student, input[:1]))
            check_model_output(probe, "student", 1, self.num_classes)
            self._width_unchecked = False

    def teacher_logits(self, input: Tensor) -> Tensor:
        """The teacher's logits on ``input``, without gradient (the teacher stays in eval mode)."""
        if self._teacher_forward is None:
            raise RuntimeError(f"{type(self).__name__} has no teacher.")
        with torch.no_grad():
            logits: Tensor = self._teacher_forward(input)
        return logits

    def student_logits(self, *inputs: Tensor) -> tuple[Tensor, ...]:
        """The student's logits on each of ``inputs`` in turn, in the step's mode, with gradient (shapes checked)."""
        outputs = tuple(self._student_forward(x) for x in inputs)
        for x, logits in zip(inputs, outputs):
            check_model_output(logits, "student", x.shape[0], self.num_classes)
        return outputs

    def student_eval_probabilities(self, input: Tensor) -> Tensor:
        """``softmax`` of the student's logits on ``input`` in eval mode, without gradient, in float32."""
        with torch.no_grad(), eval_mode(self.student):
            logits = self._student_forward(input)
        check_model_output(logits, "student", input.shape[0], self.num_classes)
        return torch.softmax(at_least_float32(logits), dim=1)

    def distillation_forwards(
        self,
        input: Tensor,
        attack_target: Tensor | Callable[[Tensor], Tensor],
        *,
        labels: Tensor | None = None,
    ) -> DistillationForwards:
        """The teacher on the clean batch, the attack, then the student on ``x_adv`` and on ``input``.

        ``attack_target`` is the attack's target, or a function of the teacher's logits that makes it.
        ``labels`` (from ``check_inputs(..., values=False)``): the value checks run here, once, with
        the teacher's logits (:meth:`check_values`).
        """
        teacher = self.teacher_logits(input)
        if labels is not None:
            self.check_values(input, labels, (teacher,))
        target = attack_target(teacher) if callable(attack_target) else attack_target
        x_adv = self.attack(input, target, validated=True).detach()
        student_adv, student_clean = self.student_logits(x_adv, input)
        return DistillationForwards(teacher, x_adv, student_adv, student_clean)

    def extra_repr(self) -> str:
        return (
            f"num_classes={self.num_classes}, compile={self.use_compile}, precision={self.precision!r}, "
            f"teacher_in_state_dict={self.teacher_in_state_dict}"
        )


def check_batch(input: Tensor, target: Tensor, student: nn.Module, num_classes: int) -> Tensor:
    """A training step's batch at the boundary: shapes, dtypes and devices (no read from the device).

    ``input`` must be a floating point tensor $(N, ...)$ on the student's device and ``target``
    integer labels $(N,)$ on the same device. Returns the labels as int64 (any integer dtype is
    accepted and cast once, here); their values are checked later, in one read with the rest.
    """
    if not isinstance(input, Tensor) or not input.is_floating_point() or input.dim() < 1:
        got = f"{input.dtype} of shape {tuple(input.shape)}" if isinstance(input, Tensor) else type(input).__name__
        raise TypeError(f"Expected `input` to be a floating point tensor of shape (N, ...), but got {got}.")
    check_device(input, module_device(student), "input", "the student")
    return check_integer_labels(
        target, num_classes, batch_size=input.shape[0], check_values=False, device=input.device, owner="`input`"
    )


def accepted_options(step: type[nn.Module]) -> frozenset[str]:
    """The keyword options a training-step class takes: its own keyword-only arguments and :class:`StepOptions`."""
    parameters = inspect.signature(step.__init__).parameters.values()
    own = {parameter.name for parameter in parameters if parameter.kind is parameter.KEYWORD_ONLY}
    return frozenset(own | StepOptions.__optional_keys__)


def check_model_output(logits: object, name: str, batch_size: int, num_classes: int) -> None:
    """Raise unless a model's output ``logits`` is a tensor of shape ``(batch_size, num_classes)`` (shape only)."""
    if not isinstance(logits, Tensor) or tuple(logits.shape) != (batch_size, num_classes):
        got = tuple(logits.shape) if isinstance(logits, Tensor) else type(logits).__name__
        raise ValueError(
            f"Expected `{name}` to return logits of shape (N, num_classes) = ({batch_size}, {num_classes}), "
            f"but got {got}. Check `num_classes` and that the {name} returns plain logits."
        )


def require_teacher(method: str, teacher: nn.Module | None) -> nn.Module:
    """The teacher of a distillation method, or a ``ValueError`` naming the method when it is missing."""
    if teacher is None:
        raise ValueError(f"Expected a `teacher` for the method {method!r} (it distils a teacher), but got None.")
    return teacher
