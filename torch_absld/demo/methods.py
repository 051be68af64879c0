"""The students the demo and the comparison can train: a name, and the training-step module it builds."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from ..methods import TrainingStep, create

__all__ = ["COMPARE_METHODS", "DEFAULT_METHODS", "METHODS", "MethodSpec", "build_step", "resolve_method"]


@dataclass(frozen=True)
class MethodSpec:
    """A student method of the demo.

    Args:
        name: the name shown in reports and accepted by ``--methods``.
        method: the name of :func:`torch_absld.methods.create`.
        description: one line for the report.
        options: hyperparameters passed to :func:`~torch_absld.methods.create`.
        validation: share of the training split held out (stratified) as the validation split the
            method reads at the end of each epoch (FRL, CFA); 0 for the others, which train on all of it.
    """

    name: str
    method: str
    description: str
    options: Mapping[str, Any] = field(default_factory=dict)
    validation: float = 0.0

    @property
    def distils(self) -> bool:
        """Whether the method learns from the teacher."""
        return self.method not in _NO_TEACHER

    @property
    def temperatures(self) -> bool:
        """Whether the method has per-class teacher temperatures (ABSLD and RSLAD)."""
        return self.method in ("absld", "rslad")

    @property
    def adapts_temperatures(self) -> bool:
        """Whether the method has per-class temperatures that move."""
        return self.method == "absld" and self.options.get("adapt", "both") != "none"


_NO_TEACHER = ("sat", "trades", "frl", "cfa", "bat")

METHODS: dict[str, MethodSpec] = {
    spec.name: spec
    for spec in (
        MethodSpec("RSLAD", "rslad", 'RSLAD (Zi et al. 2021), temperatures frozen at 1: `ABSLDLoss(C, adapt="none")`'),
        MethodSpec("ABSLD", "absld", "ABSLD with the library's defaults: `ABSLDLoss(C)`"),
        MethodSpec(
            "ABSLD-separate",
            "absld",
            'ABSLD with the paper\'s Eq. 12: `ABSLDLoss(C, coupling="separate")`',
            {"coupling": "separate"},
        ),
        MethodSpec(
            "ABSLD-product",
            "absld",
            "ABSLD with the authors' script's temperatures: `ABSLDLoss(C, coupling=\"product\")`",
            {"coupling": "product"},
        ),
        MethodSpec("SAT", "sat", "PGD adversarial training (Madry et al. 2018), no teacher"),
        MethodSpec("TRADES", "trades", "TRADES (Zhang et al. 2019), no teacher"),
        MethodSpec("ARD", "ard", "adversarially robust distillation (Goldblum et al. 2020)"),
        MethodSpec("AdaAD", "adaad", "adaptive adversarial distillation (Huang et al. 2023)"),
        MethodSpec("Fair-ARD", "fair-ard", "Fair-ARD (Yue et al. 2023) on ARD"),
        MethodSpec(
            "FRL",
            "frl",
            "FRL (Xu et al. 2021), Reweight + Remargin at threshold 0.05, on 10% of the training split held out",
            validation=0.1,
        ),
        MethodSpec(
            "CFA",
            "cfa",
            "TRADES + CFA (Wei et al. 2023): class-wise radii and beta, the weight average (from the first epoch, "
            "as the official code) evaluated, its gate on 10% of the training split held out",
            {"start_epoch": 0},
            validation=0.1,
        ),
        MethodSpec("BAT", "bat", "BAT (Sun et al. 2023), no teacher"),
    )
}

#: What the demo trains for every seed, the baseline first.
DEFAULT_METHODS: tuple[str, ...] = ("RSLAD", "ABSLD", "ABSLD-separate")
#: What ``torch-absld compare`` trains by default: the ABSLD paper's Table 1 order (ARD, not in the table,
#: before RSLAD), ABSLD last.
COMPARE_METHODS: tuple[str, ...] = (
    "SAT",
    "TRADES",
    "ARD",
    "RSLAD",
    "AdaAD",
    "FRL",
    "BAT",
    "CFA",
    "Fair-ARD",
    "ABSLD",
)


def resolve_method(text: str) -> str:
    """The :data:`METHODS` key for ``text``, matched without regard to case (``"fair-ard"`` -> ``"Fair-ARD"``)."""
    for name in METHODS:
        if name.lower() == text.strip().lower():
            return name
    return text.strip()


def build_step(
    spec: MethodSpec,
    student: nn.Module,
    teacher: nn.Module,
    num_classes: int,
    *,
    eps: float,
    attack_steps: int,
    beta: float,
    min_temperature: float,
    max_temperature: float,
    generator: torch.Generator,
    validation: Iterable[Any] | None = None,
) -> TrainingStep:
    """The training-step module of ``spec``: its attack (steps of ``eps / 4``), forwards and loss.

    Every method gets the same training attack budget; ABSLD and RSLAD also get the
    temperature settings (beta and the clamp), FRL and CFA the ``validation`` batches.
    """
    options: dict[str, Any] = {"eps": eps, "step_size": eps / 4, "steps": attack_steps, "generator": generator}
    if spec.validation:
        options["validation"] = validation
    if spec.temperatures:
        options.update(lr=beta, min_temperature=min_temperature, max_temperature=max_temperature)
    return create(
        spec.method,
        student,
        num_classes=num_classes,
        teacher=teacher if spec.distils else None,
        **options,
        **spec.options,
    )
