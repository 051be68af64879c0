"""Settings of the demo: one frozen dataclass, validated on construction."""

from __future__ import annotations

import dataclasses
import hashlib
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .methods import DEFAULT_METHODS, students

__all__ = ["AUTOATTACK_MODES", "QUICK_CHANGES", "DemoConfig", "derive_seed"]

AUTOATTACK_MODES = ("standard", "apgd", "none")
#: ``--quick``: one seed, shorter schedules; shows the pipeline, not the effect.
QUICK_CHANGES: dict[str, Any] = {"seeds": 1, "epochs": 40, "teacher_epochs": 8}


@dataclass(frozen=True)
class DemoConfig:
    """Everything the demo does; the defaults are the full run on scikit-learn's digits.

    Run ``i`` uses seed ``seed + i`` for its split, its teacher, and the initial weights, data order
    and attack noise all its students share. ``focus`` is compared with every other method
    (``compare``: ABSLD); ``None`` compares every method with the first. The students' learning
    rate (and beta) drop x0.1 at the ``milestones`` fractions of ``epochs``; ``eps=None`` takes the
    dataset's radius; ``workers=None`` runs one process per usable CPU (the numbers do not depend on it).
    """

    dataset: str = "digits"
    seeds: int = 5
    seed: int = 0
    methods: tuple[str, ...] = DEFAULT_METHODS
    focus: str | None = None
    epochs: int = 120
    teacher_epochs: int = 12
    eps: float | None = None
    batch_size: int = 64
    student_lr: float = 3e-3
    student_weight_decay: float = 2e-4
    student_hidden: tuple[int, ...] = (64,)
    milestones: tuple[float, ...] = (0.6, 0.85)
    beta: float = 0.1
    min_temperature: float = 0.5
    max_temperature: float = 5.0
    attack_steps: int = 10
    teacher_lr: float = 0.05
    teacher_momentum: float = 0.9
    teacher_weight_decay: float = 5e-4
    teacher_attack_steps: int = 7
    eps_ramp: float = 0.3
    autoattack: str = "apgd"
    device: str = "cpu"
    threads: int = 1
    workers: int | None = None
    data_dir: str = str(Path("~/.cache/torch_absld").expanduser())
    progress: bool = True

    def __post_init__(self) -> None:
        counts = ("seeds", "epochs", "teacher_epochs", "batch_size", "attack_steps", "teacher_attack_steps", "threads")
        for name, low in [(n, 1) for n in counts] + [("seed", 0), ("workers", 1)]:
            value = getattr(self, name)
            if name == "workers" and value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                none = " or None" if name == "workers" else ""
                raise ValueError(f"Expected `{name}` to be an integer >= {low}{none}, but got {value!r}.")
        known, methods, eps = students(), self.methods, self.eps
        t_min, t_max = self.min_temperature, self.max_temperature
        names, modes, milestones = ", ".join(methods) or "none", ", ".join(AUTOATTACK_MODES), self.milestones
        distinct = len(methods) >= 2 and len(set(methods)) == len(methods) and all(m in known for m in methods)
        for bad, expected in (
            (eps is not None and not (math.isfinite(eps) and 0 < eps <= 1), f"`eps` in (0, 1], but got {eps!r}"),
            (not 0 < t_min <= t_max, f"0 < `min_temperature` <= `max_temperature`, but got {t_min!r} and {t_max!r}"),
            (not distinct, f"`methods` to be two or more distinct names from {', '.join(known)}, but got {names}"),
            (self.focus not in (None, *methods), f"`focus` to be one of the methods {names}, but got {self.focus!r}"),
            (
                self.autoattack not in AUTOATTACK_MODES,
                f"`autoattack` to be one of {modes}, but got {self.autoattack!r}",
            ),
            (any(not 0 < m < 1 for m in milestones), f"`milestones` to be fractions in (0, 1), but got {milestones!r}"),
        ):
            if bad:
                raise ValueError(f"Expected {expected}.")

    @property
    def pairs(self) -> list[tuple[str, str]]:
        """The paired comparisons ``(a, b)``, each reported as ``a`` minus ``b`` per seed."""
        if self.focus is None:
            return [(method, self.methods[0]) for method in self.methods[1:]]
        return [(self.focus, method) for method in self.methods if method != self.focus]

    @property
    def run_seeds(self) -> range:
        return range(self.seed, self.seed + self.seeds)

    @property
    def student_milestones(self) -> list[int]:
        """Epochs (counted at the end of an epoch) where the learning rate drops x0.1."""
        return sorted({max(1, round(m * self.epochs)) for m in self.milestones})

    def to_dict(self) -> dict[str, Any]:
        """The settings that shape the results, JSON-ready (not ``data_dir``, ``progress``, ``workers``)."""
        return {
            f.name: list(v) if isinstance(v := getattr(self, f.name), tuple) else v
            for f in dataclasses.fields(self)
            if f.name not in ("data_dir", "progress", "workers")
        }


def derive_seed(seed: int, stream: str) -> int:
    """An independent 63-bit seed for one random stream (``"split"``, ``"student-init"``, ...) of run ``seed``.

    Example:
        >>> derive_seed(0, "split") == derive_seed(0, "split") != derive_seed(1, "split")
        True
    """
    return int.from_bytes(hashlib.blake2b(f"{seed}:{stream}".encode(), digest_size=8).digest(), "little") >> 1
