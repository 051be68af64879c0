"""L-inf PGD: one settings object, pluggable objectives, a functional and a module form.

- :mod:`~torch_absld.attack.config`: :class:`PGDConfig`, the settings, checked once;
- :mod:`~torch_absld.attack.objectives`: what the attack ascends (:func:`attack_objective`);
- :mod:`~torch_absld.attack.engine`: :func:`pgd` and :func:`kl_pgd`;
- :mod:`~torch_absld.attack.projection`: the eps-ball, exactly, in every dtype;
- :mod:`~torch_absld.attack.module`: :class:`KLPGDAttack`;
- :mod:`~torch_absld.attack.counting`: :class:`CountingObjective` (Fair-ARD's per-sample kappa);
- :mod:`~torch_absld.attack.early_stopping`: :class:`EarlyStopping` (BAT's boundary-near points).
"""

from __future__ import annotations

from .config import AttackSettings as AttackSettings
from .config import PGDConfig as PGDConfig
from .config import PGDFields as PGDFields
from .config import PGDSettings as PGDSettings
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
    "AttackSettings",
    "CountingObjective",
    "EarlyStopping",
    "KLPGDAttack",
    "LogitsAndInput",
    "Objective",
    "ObjectiveFn",
    "ObjectiveName",
    "PGDConfig",
    "PGDFields",
    "PGDSettings",
    "RandomStart",
    "StopAt",
    "attack_objective",
    "kl_pgd",
    "pgd",
]
