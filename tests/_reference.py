"""Slow, readable float64 references of ABSLD's equations, written independently of the package."""

from __future__ import annotations

import math

import torch
from torch import Tensor


def softmax_row(row: list[float], temperature: float) -> list[float]:
    scaled = [v / temperature for v in row]
    top = max(scaled)
    exps = [math.exp(v - top) for v in scaled]
    total = sum(exps)
    return [e / total for e in exps]


def absld_loss_reference(
    student_adv: Tensor,
    student_clean: Tensor,
    teacher: Tensor,
    target: Tensor,
    tau_adv: Tensor,
    tau_clean: Tensor,
    alpha: float,
    student_temperature: float = 1.0,
    reduction: str = "mean",
    coupling: str = "separate",
) -> float:
    """Eq. 12 with Python loops: alpha * M[KL_adv] + (1 - alpha) * M[KL_clean].

    ``coupling="separate"``: sample i's adversarial term uses tau_adv[y_i], its clean term
    tau_clean[y_i]; ``"product"``: both use tau_adv[y_i] * tau_clean[y_i].
    """
    n, c = teacher.shape
    totals = {"adv": 0.0, "clean": 0.0}
    for kind, student, tau in (("adv", student_adv, tau_adv), ("clean", student_clean, tau_clean)):
        for i in range(n):
            y = int(target[i])
            temperature = float(tau_adv[y]) * float(tau_clean[y]) if coupling == "product" else float(tau[y])
            p = softmax_row(teacher[i].tolist(), temperature)
            q = softmax_row(student[i].tolist(), student_temperature)
            totals[kind] += sum(p[k] * (math.log(p[k]) - math.log(q[k])) for k in range(c) if p[k] > 0)
    divisor = {"mean": n * c, "sum": c}[reduction]  # each sample's loss is its KL / C
    return (alpha * totals["adv"] + (1 - alpha) * totals["clean"]) / divisor


def script_elementwise_loss(student: Tensor, soft: Tensor) -> Tensor:
    """The authors' written form: mean of p * log(p + 1e-5) - p * log(softmax(student))."""
    return torch.mean(soft * torch.log(soft + 1e-5) - soft * torch.log(torch.softmax(student, dim=1)))


def eq11_reference(
    temperatures: list[float],
    risk_sums: list[float],
    counts: list[int],
    beta: float,
    low: float,
    high: float,
) -> list[float]:
    """Eq. 11 on per-class mean risks, absent classes skipped, equal risks leave tau unchanged."""
    present = [k for k, n in enumerate(counts) if n > 0]
    if not present:
        return list(temperatures)
    risk = {k: risk_sums[k] / counts[k] for k in present}
    mean = sum(risk.values()) / len(present)
    largest = max(abs(risk[k] - mean) for k in present)
    if largest == 0:
        return list(temperatures)
    out = list(temperatures)
    for k in present:
        out[k] = min(max(temperatures[k] - beta * (risk[k] - mean) / largest, low), high)
    return out


def cross_entropy_reference(logits: Tensor, target: Tensor) -> list[float]:
    """Per-sample cross-entropy with Python loops."""
    out = []
    for i in range(logits.shape[0]):
        row = logits[i].tolist()
        top = max(row)
        log_z = top + math.log(sum(math.exp(v - top) for v in row))
        out.append(log_z - row[int(target[i])])
    return out


def round_into_ball(x_adv: Tensor, x: Tensor, eps: float, low: float = 0.0, high: float = 1.0) -> Tensor:
    """``x_adv`` clamped to the exact ball and range, with each bound rounded toward ``x`` in ``x_adv``'s dtype.

    The largest value of the dtype <= min(x + eps, high) and the smallest >= max(x - eps, low),
    bounds computed in float64 (what a returned adversarial example must satisfy exactly).
    """
    upper64 = torch.clamp(x.double() + eps, max=high)
    lower64 = torch.clamp(x.double() - eps, min=low)
    upper, lower = upper64.to(x_adv.dtype), lower64.to(x_adv.dtype)
    upper = torch.where(upper.double() > upper64, torch.nextafter(upper, torch.full_like(upper, -math.inf)), upper)
    lower = torch.where(lower.double() < lower64, torch.nextafter(lower, torch.full_like(lower, math.inf)), lower)
    return torch.minimum(torch.maximum(x_adv, lower), upper)
