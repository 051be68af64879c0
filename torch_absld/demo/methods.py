"""The students the demo can train: a name, and the training-step module it builds."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from ..methods import TrainingStep, create

__all__ = ["DEFAULT_METHODS", "METHODS", "MethodSpec", "build_step"]


@dataclass(frozen=True)
class MethodSpec:
    """A student method of the demo.

    Args:
        name: the name shown in reports and accepted by ``--methods``.
        method: the name of :func:`torch_absld.methods.create`.
        description: one line for the report.
        options: hyperparameters passed to :func:`~torch_absld.methods.create`.
    """

    name: str
    method: str
    description: str
    options: Mapping[str, Any] = field(default_factory=dict)

    @property
    def adapts_temperatures(self) -> bool:
        """Whether the method has per-class temperatures that move."""
        return self.method == "absld" and self.options.get("adapt", "both") != "none"


METHODS: dict[str, MethodSpec] = {
    spec.name: spec
    for spec in (
        MethodSpec("RSLAD", "rslad", 'temperatures frozen at 1: `ABSLDLoss(C, adapt="none")`'),
        MethodSpec("ABSLD", "absld", "the library's default: `ABSLDLoss(C)`"),
        MethodSpec(
            "ABSLD-separate",
            "absld",
            'the paper\'s Eq. 12: `ABSLDLoss(C, coupling="separate")`',
            {"coupling": "separate"},
        ),
        MethodSpec(
            "ABSLD-product",
            "absld",
            'the authors\' script: `ABSLDLoss(C, coupling="product")`',
            {"coupling": "product"},
        ),
    )
}

#: What the demo trains for every seed, the baseline first.
DEFAULT_METHODS: tuple[str, ...] = ("RSLAD", "ABSLD", "ABSLD-separate")


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
) -> TrainingStep:
    """The training-step module of ``spec``: teacher, KL-PGD attack (steps of ``eps / 4``), loss."""
    return create(
        spec.method,
        student,
        num_classes=num_classes,
        teacher=teacher,
        eps=eps,
        step_size=eps / 4,
        steps=attack_steps,
        generator=generator,
        lr=beta,
        min_temperature=min_temperature,
        max_temperature=max_temperature,
        **spec.options,
    )
