"""One ABSLD training step written with the three public modules, as a user's loop does it.

Teacher forward on the clean batch, the teacher's soft labels for the attack, KL-PGD against
the student, two student forwards in train mode, the loss (which records the class risks),
backward and the optimizer step. It does not use a higher-level trainer on purpose: the
benchmarks measure the building blocks.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable

import torch
from torch import Tensor, nn

from torch_absld import ABSLDLoss, ABSLDStep, KLPGDAttack, fastest_settings

__all__ = ["absld_step", "auto_label", "autocast_context", "distiller_step"]


def autocast_context(
    device: torch.device, dtype: torch.dtype | None
) -> Callable[[], contextlib.AbstractContextManager[object]]:
    """A factory of autocast contexts for ``dtype`` (``None``: no autocast)."""
    if dtype is None:
        return contextlib.nullcontext
    return lambda: torch.autocast(device.type, dtype=dtype)


def absld_step(
    student: nn.Module,
    teacher: nn.Module,
    loss_fn: ABSLDLoss,
    attack: KLPGDAttack,
    optimizer: torch.optim.Optimizer,
    *,
    device: torch.device,
    autocast_dtype: torch.dtype | None = None,
    student_forward: Callable[[Tensor], Tensor] | None = None,
    epoch_end: bool = False,
) -> Callable[[Tensor, Tensor], Tensor]:
    """Return ``step(x, y) -> loss``: one ABSLD training step.

    ``student_forward`` replaces ``student`` for the two train-mode forwards (e.g. a
    ``torch.compile``-d student); ``epoch_end`` also runs the end-of-epoch temperature
    update after every batch (an upper bound on the bookkeeping cost).
    """
    forward = student if student_forward is None else student_forward
    autocast = autocast_context(device, autocast_dtype)
    teacher.eval()

    def step(x: Tensor, y: Tensor) -> Tensor:
        student.train()
        with torch.no_grad(), autocast():
            teacher_logits = teacher(x)
        with autocast():
            x_adv = attack(x, loss_fn.soft_labels(teacher_logits, y, kind="adv"))
            loss = loss_fn(forward(x_adv), forward(x), teacher_logits, y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if epoch_end:
            loss_fn.step()
        return loss.detach()

    return step


def distiller_step(
    distiller: ABSLDStep, optimizer: torch.optim.Optimizer, scaler: torch.amp.GradScaler | None = None
) -> Callable[[Tensor, Tensor], Tensor]:
    """Return ``step(x, y) -> loss``: one training step through :class:`ABSLDStep`, as the examples run it."""
    distiller.train()

    def step(x: Tensor, y: Tensor) -> Tensor:
        out = distiller(x, y)
        optimizer.zero_grad(set_to_none=True)
        if scaler is None:
            out.loss.backward()
            optimizer.step()
        else:
            scaler.scale(out.loss).backward()
            scaler.step(optimizer)
            scaler.update()
        return out.loss.detach()

    return step


def auto_label(device: torch.device) -> str:
    """What ``precision="auto"`` picks on ``device``, e.g. ``bf16 + channels_last``."""
    settings = fastest_settings(device)
    dtype = {torch.bfloat16: "bf16", torch.float16: "fp16"}.get(settings.dtype, "fp32")
    return f"{dtype} + channels_last" if settings.channels_last else dtype
