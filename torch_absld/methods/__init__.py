"""Training methods: one training-step module per method (``torch_absld.methods.<name>``), and a registry by name.

Import a step from its module (``from torch_absld.methods.trades import TRADESStep``); list and build
methods by name with :func:`available`, :func:`get` and :func:`create`.
"""

from __future__ import annotations

from .adversarial import AdversarialStep as AdversarialStep
from .base import StepOutput as StepOutput
from .base import TrainingStep as TrainingStep
from .base import mark_ddp_local_state as mark_ddp_local_state
from .registry import Method as Method
from .registry import available as available
from .registry import create as create
from .registry import get as get
from .registry import options as options
from .registry import register as register
from .registry import unregister as unregister
from .validated import ValidatedStep as ValidatedStep

__all__ = [
    "AdversarialStep",
    "Method",
    "StepOutput",
    "TrainingStep",
    "ValidatedStep",
    "available",
    "create",
    "get",
    "mark_ddp_local_state",
    "options",
    "register",
    "unregister",
]
