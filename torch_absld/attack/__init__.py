"""L-inf PGD: one settings object (:class:`PGDConfig`), one engine (:func:`pgd`), pluggable objectives."""

from __future__ import annotations

from .config import ModelMode as ModelMode
from .config import PGDConfig as PGDConfig
from .config import RandomStart as RandomStart
from .counting import CountingObjective as CountingObjective
from .early_stopping import EarlyStopping as EarlyStopping
from .early_stopping import LogitsAndInput as LogitsAndInput
from .early_stopping import StopAt as StopAt
from .engine import kl_pgd as kl_pgd
from .engine import pgd as pgd
from .module import KLPGDAttack as KLPGDAttack
from .objectives import Objective as Objective
from .objectives import ObjectiveFn as ObjectiveFn
from .objectives import ObjectiveName as ObjectiveName
from .objectives import attack_objective as attack_objective

__all__ = [
    "CountingObjective",
    "EarlyStopping",
    "KLPGDAttack",
    "LogitsAndInput",
    "ModelMode",
    "Objective",
    "ObjectiveFn",
    "ObjectiveName",
    "PGDConfig",
    "RandomStart",
    "StopAt",
    "attack_objective",
    "kl_pgd",
    "pgd",
]
