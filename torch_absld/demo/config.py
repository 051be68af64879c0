"""Settings of the demo: one frozen dataclass, validated on construction."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["METHODS", "DemoConfig"]

#: Display name -> (``adapt``, ``coupling``) of :class:`torch_absld.ABSLDLoss`.
METHODS: dict[str, tuple[str, str]] = {
    "RSLAD": ("none", "separate"),
    "ABSLD": ("both", "separate"),
    "ABSLD-script": ("both", "product"),
}


@dataclass(frozen=True)
class DemoConfig:
    """Everything the demo does, in one place. Defaults are the full run on scikit-learn's digits.

    Args:
        dataset: a name from :data:`torch_absld.demo.data.DATASETS`.
        seeds: number of paired runs; seed ``seed + i`` gives both students of run ``i`` the
            same initial weights, data order and attack noise.
        seed: first seed. The data split and the teacher use it too (one teacher per run).
        epochs: student epochs; the learning rate (and beta) drop x0.1 at 60% and 85% of them.
        teacher_epochs: PGD-AT epochs of the teacher.
        eps: L-inf radius for training and evaluation; ``None`` takes the dataset's default.
        batch_size: training batch size (students and teacher).
        student_lr: Adam learning rate of the students.
        student_weight_decay: Adam weight decay (L2) of the students.
        student_hidden: widths of the student MLP's hidden layers.
        milestones: fractions of ``epochs`` where the student's learning rate is multiplied by 0.1.
        beta: temperature learning rate; it follows the student's learning rate.
        min_temperature, max_temperature: temperature clamp.
        attack_steps: KL-PGD steps of the students' inner maximisation (step size ``eps / 4``).
        teacher_lr, teacher_momentum, teacher_weight_decay: SGD of the teacher.
        teacher_attack_steps: PGD steps of the teacher's adversarial training (uniform start,
            step ``eps / 4``).
        eps_ramp: fraction of the teacher epochs over which its eps grows linearly to ``eps``.
        compare_coupled: also train ABSLD with the authors' script coupling of temperatures.
        device: torch device string.
        threads: CPU threads for torch in each process (the nets are tiny: one thread is usually
            fastest).
        workers: processes that train the students side by side, one (seed, method) pair at a
            time; ``None`` takes as many as the usable CPUs allow (given ``threads``), at most one
            per student; 1 trains them one after the other in this process. The numbers do not
            depend on it.
        data_dir: where downloadable datasets are stored.
        progress: show progress bars.
    """

    dataset: str = "digits"
    seeds: int = 5
    seed: int = 0
    epochs: int = 120
    teacher_epochs: int = 20
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
    compare_coupled: bool = False
    device: str = "cpu"
    threads: int = 1
    workers: int | None = None
    data_dir: str = str(Path("~/.cache/torch_absld").expanduser())
    progress: bool = True

    def __post_init__(self) -> None:
        for name in (
            "seeds",
            "epochs",
            "teacher_epochs",
            "batch_size",
            "attack_steps",
            "teacher_attack_steps",
            "threads",
        ):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"Expected `{name}` to be an integer >= 1, but got {value!r}.")
        if self.workers is not None and (
            isinstance(self.workers, bool) or not isinstance(self.workers, int) or self.workers < 1
        ):
            raise ValueError(f"Expected `workers` to be an integer >= 1 or None, but got {self.workers!r}.")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise ValueError(f"Expected `seed` to be an integer >= 0, but got {self.seed!r}.")
        if self.eps is not None and not (math.isfinite(self.eps) and 0 < self.eps <= 1):
            raise ValueError(f"Expected `eps` in (0, 1], but got {self.eps!r}.")
        if not 0 < self.min_temperature <= self.max_temperature:
            raise ValueError(
                "Expected 0 < `min_temperature` <= `max_temperature`, but got "
                f"{self.min_temperature!r} and {self.max_temperature!r}."
            )
        if any(not 0 < m < 1 for m in self.milestones):
            raise ValueError(f"Expected `milestones` to be fractions in (0, 1), but got {self.milestones!r}.")

    @property
    def methods(self) -> tuple[str, ...]:
        """Names of the students trained for every seed, the baseline first."""
        return ("RSLAD", "ABSLD", "ABSLD-script") if self.compare_coupled else ("RSLAD", "ABSLD")

    @property
    def student_milestones(self) -> list[int]:
        """Epochs (0-based, counted at the end of an epoch) where the learning rate drops x0.1."""
        return sorted({max(1, round(m * self.epochs)) for m in self.milestones})

    def replace(self, **changes: Any) -> DemoConfig:
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """The settings that shape the results, as JSON-ready values (not ``data_dir``, ``progress``, ``workers``)."""
        skip = {"data_dir", "progress", "workers"}
        return {f.name: _jsonable(getattr(self, f.name)) for f in dataclasses.fields(self) if f.name not in skip}


def _jsonable(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


#: ``--quick``: one seed, shorter schedules; shows the pipeline, not the effect.
QUICK_CHANGES: dict[str, Any] = {"seeds": 1, "epochs": 40, "teacher_epochs": 8}
