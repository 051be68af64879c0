"""What every training-step module promises (:class:`TrainingStep`), and the DDP marking of its frozen teacher."""

from __future__ import annotations

import functools
import inspect
import warnings
from collections.abc import Callable
from typing import Any, Protocol

from torch import Tensor, nn
from typing_extensions import Self

from .._internal.checks import check_choice
from .._internal.modules import check_state_first
from ..precision import PRECISIONS, Precision, precision_scope
from ..stats import ClassStatistics

__all__ = ["StepOutput", "TrainingStep", "mark_ddp_local_state"]


class StepOutput(Protocol):
    """What a training step's ``forward`` returns: at least the ``loss`` to call ``backward()`` on."""

    @property
    def loss(self) -> Tensor: ...


class TrainingStep(nn.Module):
    """Base of the training steps: ``step(input, target).loss``; ``on_epoch_end()``, the method's epoch rule.

    The teacher is frozen in place, stays in eval mode, is not synced by DDP (:func:`mark_ddp_local_state`)
    and is neither saved nor loaded unless ``teacher_in_state_dict`` (a load skips a checkpoint's teacher
    keys with a warning). A checkpoint is checked whole before anything is copied.

    Args:
        precision: ``None`` (the caller's autocast), ``"auto"`` (:func:`~torch_absld.precision.fastest_settings`
            for the input's device), or ``"float32"`` / ``"bfloat16"`` / ``"float16"`` (warns where emulated).
        needs_teacher: the method distils from the teacher: ``None`` is a ``TypeError``.
    """

    teacher: nn.Module | None

    def __init__(
        self,
        student: nn.Module,
        teacher: nn.Module | None = None,
        *,
        teacher_in_state_dict: bool = False,
        precision: Precision | None = None,
        needs_teacher: bool = False,
    ) -> None:
        super().__init__()
        if not isinstance(student, nn.Module):
            raise TypeError(f"Expected `student` to be an nn.Module, but got {type(student).__name__}.")
        if (teacher is not None or needs_teacher) and not isinstance(teacher, nn.Module):
            raise TypeError(f"Expected `teacher` to be an nn.Module, but got {type(teacher).__name__}.")
        if student is teacher:
            raise ValueError("Expected `student` and `teacher` to be different modules, but got the same object.")
        self.student = student
        self.teacher = None if teacher is None else teacher.requires_grad_(False).eval()
        if precision is not None:
            if not isinstance(precision, str):
                raise TypeError(
                    f"Expected `precision` to be None or one of {PRECISIONS}, but got {type(precision).__name__}. "
                    "Pass the dtype's name, e.g. 'bfloat16'."
                )
            check_choice(precision, "precision", PRECISIONS)
        self.teacher_in_state_dict = teacher_in_state_dict
        self.precision: Precision | None = precision
        self.register_state_dict_post_hook(_drop_teacher_state)  # type: ignore[no-untyped-call]
        self.register_load_state_dict_pre_hook(_fill_teacher_state)  # type: ignore[no-untyped-call]
        self.register_load_state_dict_pre_hook(check_state_first)  # type: ignore[no-untyped-call]
        self.register_load_state_dict_pre_hook(_check_keys_and_shapes)  # type: ignore[no-untyped-call]
        mark_ddp_local_state(self)

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        forward = cls.__dict__.get("forward")
        if forward is not None and not getattr(forward, "_in_precision_scope", False):
            cls.forward = _in_precision_scope(forward)

    @classmethod
    def option_names(cls) -> frozenset[str]:
        """The keyword-only arguments of the step's constructors."""
        names: set[str] = set()
        for klass in cls.__mro__:
            if klass is not TrainingStep and issubclass(klass, TrainingStep) and "__init__" in vars(klass):
                names |= keywords(klass.__init__)
        return frozenset(names)

    def train(self, mode: bool = True) -> Self:
        """Set the student (and the method's own modules) to ``mode``; the teacher stays in eval."""
        super().train(mode)
        if self.teacher is not None:
            self.teacher.eval()
        return self

    def on_epoch_end(self) -> Any:
        """The method's end-of-epoch rule (nothing by default)."""


def keywords(function: Callable[..., Any]) -> set[str]:
    """The keyword-only parameters of ``function`` (of a class: of its constructor)."""
    parameters = inspect.signature(function).parameters.values()
    return {parameter.name for parameter in parameters if parameter.kind is parameter.KEYWORD_ONLY}


def _in_precision_scope(forward: Callable[..., Any]) -> Callable[..., Any]:
    """``forward`` run in the step's precision: the input converted, the body under its autocast."""

    @functools.wraps(forward)
    def scoped(self: TrainingStep, input: Any, *args: Any, **kwargs: Any) -> Any:
        if not isinstance(input, Tensor):  # the subclass's own check names the argument
            return forward(self, input, *args, **kwargs)
        # A warning points to the line calling the step: scoped, Module._call_impl, _wrapped_call_impl, caller.
        input, context = precision_scope(self.precision, input, stacklevel=4)
        with context:
            return forward(self, input, *args, **kwargs)

    scoped._in_precision_scope = True  # type: ignore[attr-defined]
    return scoped


def mark_ddp_local_state(module: nn.Module) -> list[str]:
    """Keep the teachers (and controllers' statistics) inside ``module`` out of DDP's broadcasts and reductions.

    Call it on a module holding steps before wrapping it in ``DistributedDataParallel``; returns the
    names added to ``module._ddp_params_and_buffers_to_ignore``.
    """
    names: list[str] = []
    for prefix, sub in module.named_modules():
        dot = f"{prefix}." if prefix else ""
        if isinstance(sub, ClassStatistics):
            names.append(f"{dot}{sub._state_key}")
        elif isinstance(sub, TrainingStep) and sub.teacher is not None:
            names.extend(f"{dot}teacher.{name}" for name, _ in sub.teacher.named_parameters())
            names.extend(f"{dot}teacher.{name}" for name, _ in sub.teacher.named_buffers())
    existing = list(getattr(module, "_ddp_params_and_buffers_to_ignore", []))
    added = [name for name in names if name not in existing]
    module._ddp_params_and_buffers_to_ignore = existing + added  # type: ignore[assignment]
    return added


def _drop_teacher_state(module: nn.Module, state_dict: dict[str, Any], prefix: str, local_metadata: Any) -> None:
    if not getattr(module, "teacher_in_state_dict", True):
        for keys in (state_dict, getattr(state_dict, "_metadata", {})):
            for key in [key for key in keys if key == f"{prefix}teacher" or key.startswith(f"{prefix}teacher.")]:
                del keys[key]


def _check_keys_and_shapes(
    module: nn.Module, state_dict: dict[str, Any], prefix: str, local_metadata: Any, strict: bool, *_: Any
) -> None:
    """Raise before anything is copied where ``load_state_dict`` would raise after copying part of the checkpoint."""
    own = {prefix + key: value for key, value in module.state_dict(keep_vars=True).items()}
    for key, value in own.items():
        loaded = state_dict.get(key)
        lazy = isinstance(value, nn.parameter.UninitializedParameter)
        if isinstance(loaded, Tensor) and isinstance(value, Tensor) and not lazy and loaded.shape != value.shape:
            raise ValueError(
                f"Expected the loaded `{key}` of shape {tuple(value.shape)}, but got {tuple(loaded.shape)}. The "
                "checkpoint comes from another model or method; nothing was loaded."
            )
    if not strict:
        return
    teacher = f"{prefix}teacher."
    missing = [key for key in own if key not in state_dict]
    unexpected = [k for k in state_dict if k.startswith(prefix) and k not in own and not k.startswith(teacher)]
    if missing or unexpected:
        raise RuntimeError(
            f"Error(s) in loading state_dict for {type(module).__name__}: missing key(s) {missing}, unexpected "
            f"key(s) {unexpected}; nothing was loaded. Load a checkpoint of the same method and settings, or pass "
            "`strict=False`."
        )


def _fill_teacher_state(module: nn.Module, state_dict: dict[str, Any], prefix: str, *_: Any) -> None:
    """The step's own teacher state replaces the checkpoint's unless ``teacher_in_state_dict`` (a warning says so)."""
    teacher = getattr(module, "teacher", None)
    teacher_prefix = f"{prefix}teacher."
    given = [key for key in state_dict if key.startswith(teacher_prefix)]
    if teacher is None or (given and getattr(module, "teacher_in_state_dict", True)):
        return
    for key in given:
        del state_dict[key]
    if given:
        name = type(module).__name__
        warnings.warn(
            f"Skipped {len(given)} `{teacher_prefix}*` key(s) of the checkpoint: {name} keeps its teacher out of its "
            "state; build it with `teacher_in_state_dict=True` to load them.",
            stacklevel=4,
        )
    for key, value in teacher.state_dict(keep_vars=True).items():
        state_dict[f"{teacher_prefix}{key}"] = value
