"""The losses of the baselines that ABSLD is compared with, each a pure function and a thin module.

- :mod:`~torch_absld.losses.sat`: PGD adversarial training (:func:`sat_loss`, :class:`SATLoss`);
- :mod:`~torch_absld.losses.trades`: TRADES (:func:`trades_loss`, :func:`trades_kl`, :class:`TRADESLoss`);
- :mod:`~torch_absld.losses.ard`: ARD (:func:`ard_loss`, :class:`ARDLoss`);
- :mod:`~torch_absld.losses.adaad`: AdaAD (:func:`adaad_loss`, :func:`adaad_attack_objective`, :class:`AdaADLoss`);
- :mod:`~torch_absld.losses.fair_ard`: Fair-ARD (:func:`fair_ard_loss`, :class:`FairARDLoss`).

RSLAD is :class:`~torch_absld.ABSLDLoss` with ``adapt="none"``.
"""

from __future__ import annotations

from ._common import SampleReduction as SampleReduction
from .adaad import AdaADLoss as AdaADLoss
from .adaad import adaad_attack_objective as adaad_attack_objective
from .adaad import adaad_loss as adaad_loss
from .ard import ARDLoss as ARDLoss
from .ard import ard_loss as ard_loss
from .fair_ard import FairARDLoss as FairARDLoss
from .fair_ard import fair_ard_loss as fair_ard_loss
from .sat import SATLoss as SATLoss
from .sat import sat_loss as sat_loss
from .trades import TRADESLoss as TRADESLoss
from .trades import trades_kl as trades_kl
from .trades import trades_loss as trades_loss

__all__ = [
    "ARDLoss",
    "AdaADLoss",
    "FairARDLoss",
    "SATLoss",
    "SampleReduction",
    "TRADESLoss",
    "adaad_attack_objective",
    "adaad_loss",
    "ard_loss",
    "fair_ard_loss",
    "sat_loss",
    "trades_kl",
    "trades_loss",
]
