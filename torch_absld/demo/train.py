"""Training of the demo: the PGD-AT teacher and the distillation loop of the students.

The student loop is the plain loop the README shows: a training-step module from the library
(:class:`~torch_absld.ABSLDDistiller`: teacher, KL-PGD attack, both student forwards, loss),
Adam with a step schedule, and :func:`~torch_absld.follow_optimizer_lr` so that beta drops
with the learning rate. Methods differ only in the step module they build.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset

from .. import (
    ABSLDDistiller,
    BestCheckpoint,
    RobustnessReport,
    evaluate_robustness,
    follow_optimizer_lr,
    pgd,
    stratified_split,
)
from ..methods import TrainingStep, ValidatedStep
from .config import DemoConfig, derive_seed
from .methods import METHODS, build_step

__all__ = ["EVAL_ATTACKS", "EpochCallback", "StudentRun", "distill", "evaluate", "train_teacher"]

EVAL_ATTACKS = ("clean", "fgsm", "pgd", "cw")
_APGD = {"version": "custom", "attacks": ["apgd-ce", "apgd-t"]}

#: ``callback(epoch, metrics)`` after every epoch (progress display).
EpochCallback = Callable[[int, dict[str, float]], None]


def evaluate(
    model: nn.Module,
    loader: DataLoader[Any],
    num_classes: int,
    eps: float,
    attacks: tuple[str, ...] = EVAL_ATTACKS,
    autoattack: str = "none",
) -> RobustnessReport:
    """The library's class-wise evaluation of ``model``, deterministic (seed 0).

    FGSM (one step of ``eps``), PGD-20 and CW-inf-30, both with steps of ``eps / 4``: the
    paper's protocol (2/255 for eps 8/255) scaled to the demo's radius. ``autoattack`` adds
    AutoAttack: ``"standard"`` (APGD-CE, APGD-T, FAB-T, Square) or ``"apgd"`` (its first two).
    """
    steps = {"step_size": eps / 4}
    overrides: dict[str, dict[str, Any]] = {name: steps for name in ("pgd", "cw") if name in attacks}
    if autoattack != "none":
        attacks = (*attacks, "autoattack")
        if autoattack == "apgd":
            overrides["autoattack"] = _APGD
    return evaluate_robustness(
        model, loader, num_classes, attacks=attacks, eps=eps, progress=False, seed=0, attack_overrides=overrides
    )


def train_teacher(
    config: DemoConfig,
    model: nn.Module,
    train_set: Dataset[Any],
    eps: float,
    seed: int,
    *,
    on_epoch: EpochCallback | None = None,
) -> nn.Module:
    """Adversarial training (PGD-AT, Madry et al.) of ``model``; returns it frozen, in eval mode.

    PGD with a uniform random start, ``teacher_attack_steps`` steps of ``eps / 4`` on the
    cross-entropy; eps grows linearly over the first ``eps_ramp`` of the epochs. SGD with
    momentum, constant learning rate. ``seed`` fixes the data order and the attack noise.
    """
    device = torch.device(config.device)
    model.to(device)
    order = torch.Generator().manual_seed(derive_seed(seed, "teacher-order"))
    loader = DataLoader(train_set, batch_size=config.batch_size, shuffle=True, generator=order)
    noise = torch.Generator().manual_seed(derive_seed(seed, "teacher-attack"))
    optimizer = torch.optim.SGD(
        model.parameters(),
        lr=config.teacher_lr,
        momentum=config.teacher_momentum,
        weight_decay=config.teacher_weight_decay,
    )
    ramp = max(1, math.ceil(config.eps_ramp * config.teacher_epochs))
    for epoch in range(config.teacher_epochs):
        epoch_eps = eps * min(1.0, (epoch + 1) / ramp)
        model.train()
        total, count = 0.0, 0
        for x, y in loader:
            x, y = x.to(device), y.to(device)
            x_adv = pgd(
                model,
                x,
                y,
                objective="ce",
                eps=epoch_eps,
                step_size=epoch_eps / 4,
                steps=config.teacher_attack_steps,
                random_start="uniform",
                generator=noise,
            )
            loss = F.cross_entropy(model(x_adv), y)
            optimizer.zero_grad()
            torch.autograd.backward(loss)
            optimizer.step()
            total += float(loss.detach()) * y.shape[0]
            count += y.shape[0]
        if on_epoch is not None:
            on_epoch(epoch, {"loss": total / count, "eps": epoch_eps})
    model.eval()
    model.requires_grad_(False)
    return model


@dataclass
class StudentRun:
    """What one student's training produced.

    Attributes:
        method: a name from :data:`~torch_absld.demo.methods.METHODS`.
        seed: its run seed.
        best_epoch: the epoch (0-based) with the best PGD-20 Overall on the evaluation split.
        best_state, last_state: the student's weights at that epoch and at the end.
        history: per epoch: ``loss``, ``lr``, ``pgd_avg``, ``pgd_worst``, ``pgd_overall``, and for
            ABSLD-family methods ``tau_adv``, ``tau_clean`` (after the epoch's update), ``risk_adv``,
            ``risk_clean`` (the class risks that update used; NaN for a class without samples).
        seconds: wall-clock training time.
    """

    method: str
    seed: int
    best_epoch: int = -1
    best_state: dict[str, Any] = field(default_factory=dict)
    last_state: dict[str, Any] = field(default_factory=dict)
    history: dict[str, list[Any]] = field(default_factory=dict)
    seconds: float = 0.0


def distill(
    config: DemoConfig,
    method: str,
    seed: int,
    student: nn.Module,
    teacher: nn.Module,
    train_set: Dataset[Any],
    eval_loader: DataLoader[Any],
    num_classes: int,
    eps: float,
    *,
    on_epoch: EpochCallback | None = None,
) -> StudentRun:
    """Distil ``teacher`` into ``student`` with ``method``; the student is trained in place.

    ``seed`` fixes the data order and the attack's random start, so two calls with the same
    seed and the same initial student differ only by ``method``. At the end of each epoch the
    learning-rate scheduler steps first, then the temperatures (so beta drops together with the
    learning rate, as in the authors' script); then the student is evaluated with PGD-20 on
    ``eval_loader`` and the best Overall is kept. A method that reads a validation split (FRL,
    CFA) holds a stratified share of ``train_set`` out for it (drawn with ``seed``) and trains
    on the rest; the model evaluated is the step's ``evaluation_model`` (CFA's weight average).
    """
    start = time.perf_counter()
    device = torch.device(config.device)
    student.to(device)
    spec = METHODS[method]
    validation = None
    if spec.validation:
        train_set, held_out = stratified_split(train_set, spec.validation, seed=derive_seed(seed, "validation"))
        validation = DataLoader(held_out, batch_size=config.batch_size, shuffle=False)
    order = torch.Generator().manual_seed(derive_seed(seed, "student-order"))
    loader = DataLoader(train_set, batch_size=config.batch_size, shuffle=True, generator=order)
    step = build_step(
        spec,
        student,
        teacher,
        num_classes,
        eps=eps,
        attack_steps=config.attack_steps,
        beta=config.beta,
        min_temperature=config.min_temperature,
        max_temperature=config.max_temperature,
        generator=torch.Generator().manual_seed(derive_seed(seed, "student-attack")),
        validation=validation,
    ).to(device)
    optimizer = torch.optim.Adam(student.parameters(), lr=config.student_lr, weight_decay=config.student_weight_decay)
    scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones=config.student_milestones, gamma=0.1)
    if spec.temperatures:
        follow_optimizer_lr(step, optimizer)  # beta x0.1 whenever the learning rate drops x0.1
    run = StudentRun(method, seed)
    keys = ("loss", "lr", "pgd_avg", "pgd_worst", "pgd_overall")
    history: dict[str, list[Any]] = {key: [] for key in keys}
    best = BestCheckpoint("pgd")  # the best PGD-20 Overall, as the paper selects
    model: nn.Module = student  # what is evaluated: the student, or the method's weight average
    for epoch in range(config.epochs):
        step.train()
        total, count = 0.0, 0
        for x, y in loader:
            out = step(x.to(device), y.to(device))
            optimizer.zero_grad()
            out.loss.backward()
            optimizer.step()
            total += float(out.loss.detach()) * y.shape[0]
            count += y.shape[0]
        history["lr"].append(optimizer.param_groups[0]["lr"])
        scheduler.step()
        step.on_epoch_end()  # per-class rules (Eq. 11), with beta following the new learning rate
        _record_temperatures(step, history)
        history["loss"].append(total / count)
        model = step.evaluation_model if isinstance(step, ValidatedStep) else student
        report = evaluate(model, eval_loader, num_classes, eps, attacks=("pgd",))
        best.update(report, model, epoch)
        result = report["pgd"]
        history["pgd_avg"].append(result.avg)
        history["pgd_worst"].append(result.worst)
        history["pgd_overall"].append(result.overall)
        if on_epoch is not None:
            on_epoch(epoch, {"loss": total / count, "pgd_avg": result.avg, "pgd_worst": result.worst})
    run.best_epoch = int(best.best_epoch or 0)
    run.best_state = best.state_dict if best.state_dict is not None else {}
    run.last_state = copy.deepcopy(model.state_dict())
    run.history = history
    run.seconds = time.perf_counter() - start
    return run


def _record_temperatures(step: TrainingStep, history: dict[str, list[Any]]) -> None:
    """Append the temperatures after the epoch's update and the class risks it used (ABSLD-family steps)."""
    if not isinstance(step, ABSLDDistiller):
        return
    loss_fn = step.loss_fn
    for key, values in (
        ("tau_adv", loss_fn.adv.temperatures),
        ("tau_clean", loss_fn.clean.temperatures),
        ("risk_adv", loss_fn.adv.last_risk),
        ("risk_clean", loss_fn.clean.last_risk),
    ):
        history.setdefault(key, []).append(values.tolist())
