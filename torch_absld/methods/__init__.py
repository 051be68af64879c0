"""Training methods: a step module per method (``from torch_absld.methods.trades import TRADESStep``), a registry."""

from __future__ import annotations

from ._recipes import Recipe as Recipe
from ._recipes import recipe as recipe
from .adversarial import AdversarialStep as AdversarialStep
from .adversarial import ValidatedStep as ValidatedStep
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

__all__ = [
    "AdversarialStep",
    "Method",
    "Recipe",
    "StepOutput",
    "TrainingStep",
    "ValidatedStep",
    "available",
    "create",
    "get",
    "mark_ddp_local_state",
    "options",
    "recipe",
    "register",
    "unregister",
]
