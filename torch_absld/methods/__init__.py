"""Training methods: one training-step module per method, and a registry by name.

- :mod:`~torch_absld.methods.base`: the contract every step module keeps (:class:`TrainingStep`);
- :mod:`~torch_absld.methods.absld`: ABSLD and RSLAD (:class:`ABSLDDistiller`);
- :mod:`~torch_absld.methods.adversarial`: what the baselines' steps share (:class:`AdversarialStep`);
- :mod:`~torch_absld.methods.sat`, :mod:`~torch_absld.methods.trades`: :class:`SATStep`, :class:`TRADESStep`;
- :mod:`~torch_absld.methods.ard`, :mod:`~torch_absld.methods.adaad`, :mod:`~torch_absld.methods.fair_ard`:
  :class:`ARDDistiller`, :class:`AdaADDistiller`, :class:`FairARDDistiller`;
- :mod:`~torch_absld.methods.validated`: what the steps with a validation split share (:class:`ValidatedStep`);
- :mod:`~torch_absld.methods.frl`, :mod:`~torch_absld.methods.cfa`, :mod:`~torch_absld.methods.bat`:
  :class:`FRLStep`, :class:`CFAStep`, :class:`BATStep`;
- :mod:`~torch_absld.methods.registry`: :func:`available`, :func:`create` and :func:`options`.
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
from .bat import BATOutput as BATOutput
from .bat import BATStep as BATStep
from .cfa import CFAOutput as CFAOutput
from .cfa import CFAStep as CFAStep
from .fair_ard import FairARDDistiller as FairARDDistiller
from .fair_ard import FairARDOutput as FairARDOutput
from .frl import FRLOutput as FRLOutput
from .frl import FRLStep as FRLStep
from .registry import available as available
from .registry import create as create
from .registry import options as options
from .sat import SATOutput as SATOutput
from .sat import SATStep as SATStep
from .trades import TRADESOutput as TRADESOutput
from .trades import TRADESStep as TRADESStep
from .validated import ValidatedStep as ValidatedStep

__all__ = [
    "ABSLDDistiller",
    "ARDDistiller",
    "ARDOutput",
    "AdaADDistiller",
    "AdaADOutput",
    "AdversarialStep",
    "BATOutput",
    "BATStep",
    "CFAOutput",
    "CFAStep",
    "DistillerOutput",
    "FRLOutput",
    "FRLStep",
    "FairARDDistiller",
    "FairARDOutput",
    "SATOutput",
    "SATStep",
    "StepOutput",
    "TRADESOutput",
    "TRADESStep",
    "TrainingStep",
    "ValidatedStep",
    "available",
    "create",
    "mark_ddp_local_state",
    "options",
]
