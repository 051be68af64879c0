"""What the tests of FRL, CFA and BAT share: a validation split, its class accuracies measured by the evaluation
protocol (an independent peer of the steps' validation pass), and the authors' per-class rules in float64."""

from __future__ import annotations

import math

import torch
from _models import tiny_batch

from torch_absld import evaluate_robustness

C = 5


def validation_split(n: int = 15, seed: int = 50):
    """One batch with every class."""
    x, y = tiny_batch(n, C, seed=seed)
    y[:C] = torch.arange(C)
    return [(x, y)]


def class_accuracies(model, batches, *, eps, step_size, steps, seed=0):
    """Per-class clean and PGD accuracy (uniform start, CE), and the overall ones, by `evaluate_robustness`."""
    overrides = {"pgd": {"steps": steps, "step_size": step_size}}
    report = evaluate_robustness(
        model, batches, C, attacks=("clean", "pgd"), eps=eps, progress=False, seed=seed, attack_overrides=overrides
    )
    return [report[a].per_class for a in ("clean", "pgd")], [report[a].avg for a in ("clean", "pgd")]


class FRLReference:
    """``frl_train`` + ``normalize_lambda`` + ``cost_sensitive`` of ``utils_frl2.py``, for any number of classes."""

    def __init__(self, tau=0.05, rate=0.05, eps_rate=0.2, lim=0.5):
        self.tau, self.rate, self.eps_rate, self.lim = tau, rate, eps_rate, lim
        self.lam = [[0.0] * C for _ in range(3)]

    def weights(self, row):
        return [1 / C + self.lam[row][i] - sum(self.lam[row]) / C for i in range(C)]

    def scale(self):
        return [min(max(math.exp(2 * v), 0.98), 3.0) for v in self.lam[2]]

    def update(self, per_class, overall):
        (acc, rob), (total_acc, total_rob) = per_class, overall
        gamma0 = [(1 - acc[k]) - (1 - total_acc) - self.tau for k in range(C)]
        gamma1 = [(acc[k] - rob[k]) - (total_acc - total_rob) - self.tau for k in range(C)]
        self.lam[0] = self._normalize([self.lam[0][k] + self.rate * gamma0[k] for k in range(C)])
        self.lam[1] = self._normalize([self.lam[1][k] + 2 * self.rate * gamma1[k] for k in range(C)])
        self.lam[2] = [self.lam[2][k] + self.eps_rate * gamma1[k] for k in range(C)]

    def _normalize(self, lam):
        lam = [max(v, 0.0) for v in lam]
        return [self.lim * v / sum(lam) for v in lam] if sum(lam) > self.lim else lam


def tensor64(values):
    return torch.tensor(values, dtype=torch.float64)
