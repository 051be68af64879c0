"""One ABSLD training step's forward work as a module: teacher, KL-PGD attack, student, loss."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

import torch
from torch import Tensor, nn
from typing_extensions import Self

from ._checks import check_integer_labels, values_checkable
from .attack import KLPGDAttack, RandomStart
from .loss import ABSLDLoss
from .temperature import ClassTemperatureController

__all__ = ["ABSLDDistiller", "DistillerOutput", "mark_ddp_local_state"]


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


def mark_ddp_local_state(module: nn.Module) -> list[str]:
    """Keep ABSLD's per-rank state out of ``DistributedDataParallel``'s broadcasts.

    ``DistributedDataParallel`` (and Lightning's DDP strategy) copies every buffer from rank 0
    to the other ranks before each forward (``broadcast_buffers=True``, the default). The
    per-class risk sums of a :class:`ClassTemperatureController` must stay local to each rank
    until ``step()`` all-reduces them; overwritten by rank 0's they give wrong temperatures
    without any error. Call this on the module **before** wrapping it in DDP (an
    :class:`ABSLDDistiller` does it on itself). The weights and buffers of an
    :class:`ABSLDDistiller`'s frozen teacher are left out too: every rank loads the same teacher.

    Args:
        module: the module that will be wrapped in ``DistributedDataParallel``.

    Returns:
        The names added to ``module._ddp_params_and_buffers_to_ignore``.
    """
    names: list[str] = []
    for prefix, sub in module.named_modules():
        dot = f"{prefix}." if prefix else ""
        if isinstance(sub, ClassTemperatureController):
            names.append(f"{dot}accumulator")
        elif isinstance(sub, ABSLDDistiller):
            names.extend(f"{dot}teacher.{name}" for name, _ in sub.teacher.named_parameters())
            names.extend(f"{dot}teacher.{name}" for name, _ in sub.teacher.named_buffers())
    existing = list(getattr(module, "_ddp_params_and_buffers_to_ignore", []))
    added = [name for name in names if name not in existing]
    module._ddp_params_and_buffers_to_ignore = existing + added  # type: ignore[assignment]
    return added


class ABSLDDistiller(nn.Module):
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
    epoch (before the learning-rate scheduler's step when beta follows the learning rate).

    The teacher is frozen (``requires_grad_(False)``, in place) and stays in eval mode whatever
    ``distiller.train()`` says. It is a registered submodule, so ``distiller.to(device)`` moves
    it, but by default its weights are **not** in ``distiller.state_dict()``: a checkpoint holds
    the student and the temperatures (``loss_fn``), and loading one leaves the teacher as it is.
    ``teacher_in_state_dict=True`` saves and loads the teacher too. Optimise
    ``distiller.student.parameters()``.

    Mixed precision: run the call under ``torch.autocast``; the attack iterates in float32 and
    the loss is computed in float32 whatever the logits' dtype. With fp16, scale the loss with a
    ``torch.amp.GradScaler`` as usual (the attack scales its own loss against underflow).

    Multi-GPU: wrap the distiller in ``DistributedDataParallel`` and keep a reference to it for
    ``on_epoch_end()`` and checkpoints. The distiller marks its per-rank risk sums and its
    teacher so DDP neither broadcasts nor reduces them (see :func:`mark_ddp_local_state`); the
    temperatures are synchronised by the controllers' all-reduce in ``on_epoch_end()``, so
    every rank ends the epoch with the temperatures one process would compute on all the data.

    Args:
        student: the network being trained.
        teacher: the frozen teacher; any ``nn.Module`` mapping the same inputs to $(N, C)$ logits.
        num_classes: number of classes $C$.
        loss: an :class:`ABSLDLoss` (its ``num_classes`` must match), or a mapping of keyword
            arguments for one (e.g. ``{"lr": 0.1, "min_temperature": 0.8}``), or ``None`` for
            the defaults.
        eps: L-inf radius of the attack (8/255).
        step_size: attack step (2/255).
        steps: number of attack steps (10).
        random_start: ``"normal"`` (ABSLD's $x + 0.001\,\mathcal{N}(0, 1)$), ``"uniform"`` or ``None``.
        init_std: std of the normal start.
        clip_min: lower end of the valid input range.
        clip_max: upper end of the valid input range.
        generator: random generator for the attack's start.
        compile: compile the student's and the teacher's forwards with ``torch.compile`` and
            each attack step with ``torch.compile(fullgraph=True)``. The modules themselves
            are not replaced: ``state_dict`` keys stay the same.
        compile_mode: ``mode`` passed to ``torch.compile``.
        teacher_in_state_dict: include the teacher's weights in ``state_dict()``.
        validate_args: run the value checks of the attack and the loss (host syncs) in eager mode.

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

    def __init__(
        self,
        student: nn.Module,
        teacher: nn.Module,
        num_classes: int,
        *,
        loss: ABSLDLoss | Mapping[str, Any] | None = None,
        eps: float = 8 / 255,
        step_size: float = 2 / 255,
        steps: int = 10,
        random_start: RandomStart | None = "normal",
        init_std: float = 1e-3,
        clip_min: float = 0.0,
        clip_max: float = 1.0,
        generator: torch.Generator | None = None,
        compile: bool = False,
        compile_mode: str | None = None,
        teacher_in_state_dict: bool = False,
        validate_args: bool = True,
    ) -> None:
        super().__init__()
        for name, value in (("student", student), ("teacher", teacher)):
            if not isinstance(value, nn.Module):
                raise TypeError(f"Expected `{name}` to be an nn.Module, but got {type(value).__name__}.")
        if student is teacher:
            raise ValueError("Expected `student` and `teacher` to be different modules, but got the same object.")
        self.loss_fn = _make_loss(loss, num_classes, validate_args)
        self.num_classes = num_classes
        self.student = student
        self.teacher = teacher.requires_grad_(False).eval()
        self.attack = KLPGDAttack(
            student,
            eps=eps,
            step_size=step_size,
            steps=steps,
            random_start=random_start,
            init_std=init_std,
            clip_min=clip_min,
            clip_max=clip_max,
            objective="kl",
            student_temperature=self.loss_fn.student_temperature,
            generator=generator,
            validate_args=validate_args,
            compile=compile,
            compile_mode=compile_mode,
        )
        self.use_compile = compile
        self.teacher_in_state_dict = teacher_in_state_dict
        self.validate_args = validate_args
        # Compiled views are plain attributes: the registered modules (and state_dict keys) stay as given.
        student_forward: nn.Module = torch.compile(student, mode=compile_mode) if compile else student  # type: ignore[assignment]
        teacher_forward: nn.Module = torch.compile(teacher, mode=compile_mode) if compile else teacher  # type: ignore[assignment]
        object.__setattr__(self, "_student_forward", student_forward)
        object.__setattr__(self, "_teacher_forward", teacher_forward)
        self.register_state_dict_post_hook(_drop_teacher_state)  # type: ignore[no-untyped-call]
        self.register_load_state_dict_pre_hook(_fill_teacher_state)  # type: ignore[no-untyped-call]
        mark_ddp_local_state(self)

    _student_forward: nn.Module
    _teacher_forward: nn.Module

    def train(self, mode: bool = True) -> Self:
        """Set the student and the loss's risk recording to ``mode``; the teacher stays in eval."""
        super().train(mode)
        self.teacher.eval()
        return self

    def forward(self, input: Tensor, target: Tensor) -> DistillerOutput:
        """One step's forward work: teacher, attack, both student forwards, loss."""
        check_integer_labels(
            target,
            self.num_classes,
            batch_size=input.shape[0],
            check_values=values_checkable(self.validate_args),
        )
        with torch.no_grad():
            teacher_logits = self._teacher_forward(input)
        x_adv = self.attack(input, self.loss_fn.soft_labels(teacher_logits, target, "adv"))
        student_adv_logits = self._student_forward(x_adv)
        student_clean_logits = self._student_forward(input)
        adv_kl, clean_kl = self.loss_fn.terms(student_adv_logits, student_clean_logits, teacher_logits, target)
        loss = self.loss_fn.alpha * adv_kl + (1 - self.loss_fn.alpha) * clean_kl
        return DistillerOutput(
            loss,
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
            f"num_classes={self.num_classes}, compile={self.use_compile}, "
            f"teacher_in_state_dict={self.teacher_in_state_dict}"
        )


def _make_loss(loss: ABSLDLoss | Mapping[str, Any] | None, num_classes: int, validate_args: bool) -> ABSLDLoss:
    if isinstance(loss, ABSLDLoss):
        if loss.num_classes != num_classes:
            raise ValueError(
                f"Expected `loss` for num_classes = {num_classes}, but got an ABSLDLoss with "
                f"num_classes = {loss.num_classes}."
            )
        return loss
    if loss is None:
        return ABSLDLoss(num_classes, validate_args=validate_args)
    if isinstance(loss, Mapping):
        kwargs = {"validate_args": validate_args, **loss}
        return ABSLDLoss(num_classes, **kwargs)
    raise TypeError(
        f"Expected `loss` to be an ABSLDLoss, a mapping of its arguments or None, but got {type(loss).__name__}."
    )


def _drop_teacher_state(module: nn.Module, state_dict: dict[str, Any], prefix: str, local_metadata: Any) -> None:
    if getattr(module, "teacher_in_state_dict", True):
        return
    teacher_prefix = f"{prefix}teacher."
    for key in [key for key in state_dict if key.startswith(teacher_prefix)]:
        del state_dict[key]
    metadata = getattr(state_dict, "_metadata", None)
    if metadata is not None:
        for key in [key for key in metadata if key == f"{prefix}teacher" or key.startswith(teacher_prefix)]:
            del metadata[key]


def _fill_teacher_state(
    module: nn.Module,
    state_dict: dict[str, Any],
    prefix: str,
    local_metadata: Any,
    strict: bool,
    missing_keys: list[str],
    unexpected_keys: list[str],
    error_msgs: list[str],
) -> None:
    """A state dict without the teacher loads into the distiller and leaves the teacher as it is."""
    teacher_prefix = f"{prefix}teacher."
    if any(key.startswith(teacher_prefix) for key in state_dict):
        return
    teacher: nn.Module = module.teacher  # type: ignore[assignment]
    for key, value in teacher.state_dict(keep_vars=True).items():
        state_dict[f"{teacher_prefix}{key}"] = value
