"""The losses of the baselines that ABSLD is compared with, each a pure function and a thin module.

- :mod:`~torch_absld.losses.sat`: PGD adversarial training (:func:`sat_loss`, :class:`SATLoss`);
- :mod:`~torch_absld.losses.trades`: TRADES (:func:`trades_loss`, :func:`trades_kl`, :class:`TRADESLoss`);
- :mod:`~torch_absld.losses.ard`: ARD (:func:`ard_loss`, :class:`ARDLoss`);
- :mod:`~torch_absld.losses.adaad`: AdaAD (:func:`adaad_loss`, :func:`adaad_attack_objective`, :class:`AdaADLoss`);
- :mod:`~torch_absld.losses.fair_ard`: Fair-ARD (:func:`fair_ard_loss`, :class:`FairARDLoss`);
- :mod:`~torch_absld.losses.frl`: FRL (:func:`frl_loss`, :class:`FRLLoss`);
- :mod:`~torch_absld.losses.cfa`: CFA (:func:`cfa_loss`, :class:`CFALoss`);
- :mod:`~torch_absld.losses.bat`: BAT (:func:`bat_loss`, :func:`uniform_kl`, :class:`BATLoss`).

RSLAD is :class:`~torch_absld.ABSLDLoss` with ``adapt="none"``.
"""

from __future__ import annotations

from ._common import SampleReduction as SampleReduction
from .adaad import AdaADLoss as AdaADLoss
from .adaad import adaad_attack_objective as adaad_attack_objective
from .adaad import adaad_loss as adaad_loss
from .ard import ARDLoss as ARDLoss
from .ard import ard_loss as ard_loss
from .bat import BATLoss as BATLoss
from .bat import bat_loss as bat_loss
from .bat import uniform_kl as uniform_kl
from .cfa import CFALoss as CFALoss
from .cfa import cfa_loss as cfa_loss
from .fair_ard import FairARDLoss as FairARDLoss
from .fair_ard import fair_ard_loss as fair_ard_loss
from .frl import FRLLoss as FRLLoss
from .frl import frl_loss as frl_loss
from .sat import SATLoss as SATLoss
from .sat import sat_loss as sat_loss
from .trades import TRADESLoss as TRADESLoss
from .trades import trades_kl as trades_kl
from .trades import trades_loss as trades_loss

__all__ = [
    "ARDLoss",
    "AdaADLoss",
    "BATLoss",
    "CFALoss",
    "FRLLoss",
    "FairARDLoss",
    "SATLoss",
    "SampleReduction",
    "TRADESLoss",
    "adaad_attack_objective",
    "adaad_loss",
    "ard_loss",
    "bat_loss",
    "cfa_loss",
    "fair_ard_loss",
    "frl_loss",
    "sat_loss",
    "trades_kl",
    "trades_loss",
    "uniform_kl",
]
