"""Training methods: one training-step module per method, and a registry by name.

- :mod:`~torch_absld.methods.base`: the contract every step module keeps (:class:`TrainingStep`);
- :mod:`~torch_absld.methods.absld`: ABSLD and RSLAD (:class:`ABSLDDistiller`);
- :mod:`~torch_absld.methods.registry`: :func:`available` and :func:`create`.
"""

from __future__ import annotations

from .absld import ABSLDDistiller as ABSLDDistiller
from .absld import DistillerOutput as DistillerOutput
from .base import StepOutput as StepOutput
from .base import TrainingStep as TrainingStep
from .base import mark_ddp_local_state as mark_ddp_local_state
from .registry import available as available
from .registry import create as create

__all__ = [
    "ABSLDDistiller",
    "DistillerOutput",
    "StepOutput",
    "TrainingStep",
    "available",
    "create",
    "mark_ddp_local_state",
]
