"""The baselines' losses, each a pure function and a thin module in its own file (``losses/<method>.py``)."""

from __future__ import annotations

from ._common import SampleReduction as SampleReduction
from ._common import WeightedTerms as WeightedTerms
from .adaad import AdaADLoss as AdaADLoss
from .adaad import adaad_attack_objective as adaad_attack_objective
from .adaad import adaad_loss as adaad_loss
from .ard import ARDLoss as ARDLoss
from .ard import ard_loss as ard_loss
from .bat import BATLoss as BATLoss
from .bat import bat_loss as bat_loss
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

__all__ = ["SampleReduction", "WeightedTerms"]  # the losses: import them from their modules
