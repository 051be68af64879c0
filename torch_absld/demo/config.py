"""Settings of the demo: one frozen dataclass, validated on construction."""

from __future__ import annotations

import dataclasses
import hashlib
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .methods import DEFAULT_METHODS, METHODS

__all__ = ["AUTOATTACK_MODES", "QUICK_CHANGES", "DemoConfig", "derive_seed"]

#: ``autoattack`` settings: the standard AutoAttack, its first two attacks, or none.
AUTOATTACK_MODES = ("standard", "apgd", "none")


@dataclass(frozen=True)
class DemoConfig:
    """Everything the demo does, in one place. Defaults are the full run on scikit-learn's digits.

    Args:
        dataset: a name from :data:`torch_absld.demo.data.DATASETS`.
        seeds: number of paired runs. Run ``i`` uses seed ``seed + i`` for its train/test split,
            its teacher, and the initial weights, data order and attack noise that all its
            students share.
        seed: first seed.
        methods: names from :data:`torch_absld.demo.methods.METHODS`, in report order.
        focus: the method compared with each of the others, seed by seed (``torch-absld
            compare``: ABSLD); ``None`` compares every method with the first one (the demo:
            each ABSLD mode against RSLAD).
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
        autoattack: ``"apgd"`` (APGD-CE then APGD-T, AutoAttack's first two attacks),
            ``"standard"`` (all four) or ``"none"``, on the best and last students.
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
    methods: tuple[str, ...] = DEFAULT_METHODS
    focus: str | None = None
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
    autoattack: str = "apgd"
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
        unknown = [name for name in self.methods if name not in METHODS]
        if unknown or len(self.methods) < 2 or len(set(self.methods)) != len(self.methods):
            raise ValueError(
                f"Expected `methods` to be two or more distinct names from {', '.join(METHODS)}, "
                f"but got {', '.join(self.methods) or 'none'}."
            )
        if self.focus is not None and self.focus not in self.methods:
            raise ValueError(
                f"Expected `focus` to be one of the methods {', '.join(self.methods)}, but got {self.focus!r}."
            )
        if self.autoattack not in AUTOATTACK_MODES:
            raise ValueError(
                f"Expected `autoattack` to be one of {', '.join(AUTOATTACK_MODES)}, but got {self.autoattack!r}."
            )
        if any(not 0 < m < 1 for m in self.milestones):
            raise ValueError(f"Expected `milestones` to be fractions in (0, 1), but got {self.milestones!r}.")

    @property
    def pairs(self) -> list[tuple[str, str]]:
        """The paired comparisons ``(a, b)``, each reported as ``a`` minus ``b`` per seed."""
        if self.focus is None:
            return [(method, self.methods[0]) for method in self.methods[1:]]
        return [(self.focus, method) for method in self.methods if method != self.focus]

    @property
    def run_seeds(self) -> range:
        """The seed of every paired run."""
        return range(self.seed, self.seed + self.seeds)

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


def derive_seed(seed: int, stream: str) -> int:
    """An independent 63-bit seed for one random stream (``"split"``, ``"student-init"``, ...) of run ``seed``.

    Example:
        >>> derive_seed(0, "split") == derive_seed(0, "split") != derive_seed(1, "split")
        True
    """
    digest = hashlib.blake2b(f"{seed}:{stream}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") >> 1
