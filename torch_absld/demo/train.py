"""Training of the demo: the PGD-AT teacher, the students' loop around a library training step, evaluation."""

from __future__ import annotations

import copy
import functools
import math
import time
import warnings
from collections.abc import Iterable
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset

from .. import ABSLDLoss, BestCheckpoint, RobustnessReport, evaluate_robustness, follow_optimizer_lr, pgd
from ..evaluation import stratified_split
from ..methods import create
from .config import DemoConfig, derive_seed
from .data import batches
from .methods import VALIDATION_SHARE, students

__all__ = ["EVAL_ATTACKS", "FrozenLogits", "distill", "evaluate", "teacher_statistics", "train_teacher"]

EVAL_ATTACKS = ("clean", "fgsm", "pgd", "cw")
# AutoAttack's own sanity checks ("Square Attack has decreased the robust accuracy"): kept, not printed.
_AUTOATTACK_CHECKS = ("pyautoattack/checks.py", "pyautoattack\\checks.py")


def evaluate(
    model: nn.Module,
    loader: DataLoader[Any],
    num_classes: int,
    eps: float,
    attacks: tuple[str, ...] = EVAL_ATTACKS,
    autoattack: str = "none",
) -> tuple[RobustnessReport, list[str]]:
    """Class-wise evaluation (seed 0), and the messages of AutoAttack's own checks (other warnings re-issued).

    FGSM, PGD-20 and CW-inf-30 take steps of ``eps / 4``; ``autoattack="standard"`` adds all four
    AutoAttack attacks, ``"apgd"`` its first two (APGD-CE, APGD-T).
    """
    overrides: dict[str, dict[str, Any]] = {name: {"step_size": eps / 4} for name in ("pgd", "cw") if name in attacks}
    if autoattack != "none":
        attacks = (*attacks, "autoattack")
        if autoattack == "apgd":
            overrides["autoattack"] = {"version": "custom", "attacks": ["apgd-ce", "apgd-t"]}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        report = evaluate_robustness(
            model, loader, num_classes, attacks=attacks, eps=eps, progress=False, seed=0, attack_overrides=overrides
        )
    checks = [str(w.message) for w in caught if w.filename.endswith(_AUTOATTACK_CHECKS)]
    for other in (w for w in caught if not w.filename.endswith(_AUTOATTACK_CHECKS)):
        warnings.warn_explicit(other.message, other.category, other.filename, other.lineno)
    return report, checks


class FrozenLogits(nn.Module):
    r"""A frozen ``teacher`` whose logits on the training ``images`` $(M, \dots)$ are computed once.

    A batch of those images (rows equal bit for bit) reads its rows of the table: the teacher's logits
    computed in chunks of 512, the numbers it returns in any batch where its kernels treat each row
    alone (the CPUs tested: the demo's results are unchanged). Any other input, or one the caller
    differentiates, runs the teacher. For a CPU: the lookup reads the batch on the host.
    """

    logits: Tensor

    def __init__(self, teacher: nn.Module, images: Tensor) -> None:
        super().__init__()
        self.teacher = teacher
        with torch.no_grad():
            self.register_buffer("logits", torch.cat([teacher(chunk) for chunk in torch.split(images, 512)]))
        self.rows = {row.tobytes(): i for i, row in enumerate(images.flatten(1).cpu().numpy())}

    def forward(self, input: Tensor) -> Tensor:
        if not (torch.is_grad_enabled() and input.requires_grad) and input.dim() > 1:
            found = [self.rows.get(row.tobytes()) for row in input.detach().flatten(1).cpu().numpy()]
            if None not in found:
                return self.logits[torch.tensor(found, device=self.logits.device)]
        out: Tensor = self.teacher(input)
        return out


def expected_calibration_error(confidence: Tensor, correct: Tensor, bins: int = 15) -> float:
    r"""$\sum_b \frac{|B_b|}{N} |\mathrm{acc}(B_b) - \mathrm{conf}(B_b)|$ over ``bins`` equal-width bins of $(0, 1]$.

    Example:
        >>> ece = expected_calibration_error(torch.tensor([0.9, 0.9, 0.6, 0.6]), torch.tensor([1.0, 1.0, 1.0, 0.0]))
        >>> round(ece, 6)  # |0.9 + 0.9 - 2| / 4 + |0.6 + 0.6 - 1| / 4
        0.1
    """
    index = torch.bucketize(confidence.double(), torch.linspace(0, 1, bins + 1, dtype=torch.float64)[1:-1])
    gap = torch.zeros(bins, dtype=torch.float64).index_add_(0, index, confidence.double() - correct.double())
    return float(gap.abs().sum() / confidence.numel())


@torch.no_grad()
def teacher_statistics(
    teacher: nn.Module, loader: Iterable[tuple[Tensor, Tensor]], num_classes: int, device: torch.device
) -> dict[str, Any]:
    """Accuracy, ECE (15 bins), mean top and true-class probability, entropy (nats) and logit std on ``loader``."""
    logits, labels = zip(*((teacher(x.to(device)).float().cpu(), y) for x, y in loader))
    z, y = torch.cat(logits), torch.cat(labels)
    p = z.softmax(dim=1)
    confidence, prediction = p.max(dim=1)
    correct = (prediction == y).double()
    true_probability = p.gather(1, y[:, None]).squeeze(1).double()
    count = torch.bincount(y, minlength=num_classes).double().clamp_min(1)

    def per_class(values: Tensor) -> list[float]:
        return (torch.zeros(num_classes, dtype=torch.float64).index_add_(0, y, values) / count).tolist()

    return {
        "accuracy": float(correct.mean()),
        "per_class_accuracy": per_class(correct),
        "ece": expected_calibration_error(confidence, correct),
        "confidence": float(confidence.mean()),
        "true_probability": float(true_probability.mean()),
        "per_class_true_probability": per_class(true_probability),
        "entropy": float(torch.special.entr(p).sum(dim=1).mean()),
        "logit_std": float(z.std(dim=1).mean()),
    }


def train_teacher(config: DemoConfig, model: nn.Module, train_set: Dataset[Any], eps: float, seed: int) -> nn.Module:
    """PGD-AT (Madry et al.) of ``model``, returned frozen in eval mode.

    Uniform start, ``teacher_attack_steps`` steps of ``eps / 4`` on the cross-entropy, eps ramped up
    linearly over the first ``eps_ramp`` of the epochs; SGD with momentum. ``seed`` fixes data order and noise.
    """
    device = torch.device(config.device)
    model.to(device)
    order = torch.Generator().manual_seed(derive_seed(seed, "teacher-order"))
    loader = batches(train_set, config.batch_size, shuffle=True, generator=order)
    noise = torch.Generator().manual_seed(derive_seed(seed, "teacher-attack"))
    lr, momentum, decay = config.teacher_lr, config.teacher_momentum, config.teacher_weight_decay
    optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum, weight_decay=decay)
    ramp = max(1, math.ceil(config.eps_ramp * config.teacher_epochs))
    steps = config.teacher_attack_steps
    attack = functools.partial(pgd, model, objective="ce", steps=steps, random_start="uniform", generator=noise)
    for epoch in range(config.teacher_epochs):
        e = eps * min(1.0, (epoch + 1) / ramp)
        model.train()
        for x, y in loader:
            x, y = x.to(device), y.to(device)
            x_adv = attack(x, y, eps=e, step_size=e / 4)
            loss = F.cross_entropy(model(x_adv), y)
            optimizer.zero_grad()
            torch.autograd.backward(loss)
            optimizer.step()
    return model.eval().requires_grad_(False)


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
) -> dict[str, Any]:
    """Train ``student`` in place; returns ``best_epoch``, ``best_state``, ``last_state``, ``history``, ``seconds``.

    ``seed`` fixes data order and attack noise: the students of a seed differ only by ``method``. Each
    epoch the scheduler steps, then the temperatures (beta follows the learning rate), then the step's
    evaluation model is scored with PGD-20 (best Overall kept). ``history`` holds per epoch ``loss``,
    ``lr``, ``pgd_*`` and, with temperatures, ``tau_*`` after the update and the ``risk_*`` it used.
    """
    start = time.perf_counter()
    device = torch.device(config.device)
    student.to(device)
    spec = students()[method]
    noise = torch.Generator().manual_seed(derive_seed(seed, "student-attack"))
    options: dict[str, Any] = {"eps": eps, "step_size": eps / 4, "steps": config.attack_steps, "generator": noise}
    if spec.method.needs_validation:  # FRL, CFA: a stratified share of the split held out for the step
        train_set, held_out = stratified_split(train_set, VALIDATION_SHARE, seed=derive_seed(seed, "validation"))
        options["validation"] = batches(held_out, config.batch_size)
    order = torch.Generator().manual_seed(derive_seed(seed, "student-order"))
    loader = batches(train_set, config.batch_size, shuffle=True, generator=order)
    if spec.temperatures:  # ABSLD and RSLAD
        options.update(lr=config.beta, min_temperature=config.min_temperature, max_temperature=config.max_temperature)
    options.update(spec.options)  # every method the same attack budget, then its own options
    step = create(spec.method.name, student, num_classes=num_classes, teacher=teacher, **options).to(device)
    optimizer = torch.optim.Adam(student.parameters(), lr=config.student_lr, weight_decay=config.student_weight_decay)
    scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones=config.student_milestones, gamma=0.1)
    if spec.temperatures:
        follow_optimizer_lr(step, optimizer)  # beta x0.1 whenever the learning rate drops x0.1
    history: dict[str, list[Any]] = {key: [] for key in ("loss", "lr", "pgd_avg", "pgd_worst", "pgd_overall")}
    best = BestCheckpoint("pgd")  # the best PGD-20 Overall, as the paper selects
    model: nn.Module = student
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
        step.on_epoch_end()
        if isinstance(loss_fn := getattr(step, "loss_fn", None), ABSLDLoss):
            for key, attribute in (("tau", "temperatures"), ("risk", "last_risk")):
                for side in ("adv", "clean"):
                    history.setdefault(f"{key}_{side}", []).append(getattr(getattr(loss_fn, side), attribute).tolist())
        history["loss"].append(total / count)
        model = getattr(step, "evaluation_model", student)  # CFA evaluates its weight average
        report, _ = evaluate(model, eval_loader, num_classes, eps, attacks=("pgd",))
        best.update(report, model, epoch)
        for key in ("avg", "worst", "overall"):
            history[f"pgd_{key}"].append(getattr(report["pgd"], key))
    return {
        "best_epoch": int(best.best_epoch or 0),
        "best_state": best.state_dict if best.state_dict is not None else {},
        "last_state": copy.deepcopy(model.state_dict()),
        "history": history,
        "seconds": time.perf_counter() - start,
    }
