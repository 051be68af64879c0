"""Training methods: one training-step module per method, and a registry by name.

- :mod:`~torch_absld.methods.base`: the contract every step module keeps (:class:`TrainingStep`);
- :mod:`~torch_absld.methods.absld`: ABSLD and RSLAD (:class:`ABSLDDistiller`);
- :mod:`~torch_absld.methods.adversarial`: what the baselines' steps share (:class:`AdversarialStep`);
- :mod:`~torch_absld.methods.sat`, :mod:`~torch_absld.methods.trades`: :class:`SATStep`, :class:`TRADESStep`;
- :mod:`~torch_absld.methods.ard`, :mod:`~torch_absld.methods.adaad`, :mod:`~torch_absld.methods.fair_ard`:
  :class:`ARDDistiller`, :class:`AdaADDistiller`, :class:`FairARDDistiller`;
- :mod:`~torch_absld.methods.registry`: :func:`available` and :func:`create`.
"""

from __future__ import annotations

from .absld import ABSLDDistiller as ABSLDDistiller
from .absld import DistillerOutput as DistillerOutput
from .adaad import AdaADDistiller as AdaADDistiller
from .adaad import AdaADOutput as AdaADOutput
from .adversarial import AdversarialStep as AdversarialStep
from .ard import ARDDistiller as ARDDistiller
from .ard import ARDOutput as ARDOutput
from .base import StepOutput as StepOutput
from .base import TrainingStep as TrainingStep
from .base import mark_ddp_local_state as mark_ddp_local_state
from .fair_ard import FairARDDistiller as FairARDDistiller
from .fair_ard import FairARDOutput as FairARDOutput
from .registry import available as available
from .registry import create as create
from .sat import SATOutput as SATOutput
from .sat import SATStep as SATStep
from .trades import TRADESOutput as TRADESOutput
from .trades import TRADESStep as TRADESStep

__all__ = [
    "ABSLDDistiller",
    "ARDDistiller",
    "ARDOutput",
    "AdaADDistiller",
    "AdaADOutput",
    "AdversarialStep",
    "DistillerOutput",
    "FairARDDistiller",
    "FairARDOutput",
    "SATOutput",
    "SATStep",
    "StepOutput",
    "TRADESOutput",
    "TRADESStep",
    "TrainingStep",
    "available",
    "create",
    "mark_ddp_local_state",
]
