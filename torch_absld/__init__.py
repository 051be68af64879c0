"""torch-absld: Anti-Bias Soft Label Distillation for adversarially robust, class-fair students.

The package has four parts (see the contributing guide for the arrows between them):

- the core, at the top: :mod:`~torch_absld.stats`, :mod:`~torch_absld.temperature`,
  :mod:`~torch_absld.class_weights`, :mod:`~torch_absld.class_eps` and
  :mod:`~torch_absld.multipliers` (per-class radii), :mod:`~torch_absld.averaging` (FAWA),
  :mod:`~torch_absld.validation`, :mod:`~torch_absld.loss`, :mod:`~torch_absld.losses` (the
  baselines' losses), :mod:`~torch_absld.attack`, plus :mod:`~torch_absld.normalize`,
  :mod:`~torch_absld.weights` and :mod:`~torch_absld.precision`;
- :mod:`torch_absld.evaluation`: class-wise robustness under the paper's protocol;
- :mod:`torch_absld.methods`: one training-step module per method, and a registry;
- :mod:`torch_absld.integrations`: glue for training loops and frameworks.
"""

from __future__ import annotations

from .attack import KLPGDAttack as KLPGDAttack
from .attack import PGDConfig as PGDConfig
from .attack import attack_objective as attack_objective
from .attack import kl_pgd as kl_pgd
from .attack import pgd as pgd
from .averaging import FairnessAwareAveraging as FairnessAwareAveraging
from .class_eps import CalibratedEpsilon as CalibratedEpsilon
from .class_eps import ClassEpsilon as ClassEpsilon
from .class_weights import VulnerabilityWeights as VulnerabilityWeights
from .class_weights import vulnerability_weights as vulnerability_weights
from .evaluation import BestCheckpoint as BestCheckpoint
from .evaluation import ClassAccuracy as ClassAccuracy
from .evaluation import ClassAccuracyResult as ClassAccuracyResult
from .evaluation import RobustnessReport as RobustnessReport
from .evaluation import auto_attack as auto_attack
from .evaluation import class_accuracy_summary as class_accuracy_summary
from .evaluation import default_attack_settings as default_attack_settings
from .evaluation import evaluate_robustness as evaluate_robustness
from .evaluation import reports_to_markdown as reports_to_markdown
from .evaluation import stratified_split as stratified_split
from .evaluation import worst_class_count as worst_class_count
from .integrations.hooks import LRFollowHandle as LRFollowHandle
from .integrations.hooks import follow_optimizer_lr as follow_optimizer_lr
from .loss import ABSLDLoss as ABSLDLoss
from .loss import absld_loss as absld_loss
from .loss import soft_label_kl as soft_label_kl
from .loss import soft_labels as soft_labels
from .losses import AdaADLoss as AdaADLoss
from .losses import ARDLoss as ARDLoss
from .losses import BATLoss as BATLoss
from .losses import CFALoss as CFALoss
from .losses import FairARDLoss as FairARDLoss
from .losses import FRLLoss as FRLLoss
from .losses import SATLoss as SATLoss
from .losses import TRADESLoss as TRADESLoss
from .losses import adaad_attack_objective as adaad_attack_objective
from .losses import adaad_loss as adaad_loss
from .losses import ard_loss as ard_loss
from .losses import bat_loss as bat_loss
from .losses import cfa_loss as cfa_loss
from .losses import fair_ard_loss as fair_ard_loss
from .losses import frl_loss as frl_loss
from .losses import sat_loss as sat_loss
from .losses import trades_kl as trades_kl
from .losses import trades_loss as trades_loss
from .methods import mark_ddp_local_state as mark_ddp_local_state
from .methods.absld import ABSLDOutput as ABSLDOutput
from .methods.absld import ABSLDStep as ABSLDStep
from .multipliers import FRLMultipliers as FRLMultipliers
from .normalize import Normalize as Normalize
from .precision import DeviceSettings as DeviceSettings
from .precision import bf16_support as bf16_support
from .precision import fastest_settings as fastest_settings
from .stats import ClassStatistics as ClassStatistics
from .temperature import ClassTemperatureController as ClassTemperatureController
from .temperature import temperature_update as temperature_update
from .weights import load_weights as load_weights

__version__ = "0.2.0.dev0"

__all__ = [
    "ABSLDLoss",
    "ABSLDOutput",
    "ABSLDStep",
    "ARDLoss",
    "AdaADLoss",
    "BATLoss",
    "BestCheckpoint",
    "CFALoss",
    "CalibratedEpsilon",
    "ClassAccuracy",
    "ClassAccuracyResult",
    "ClassEpsilon",
    "ClassStatistics",
    "ClassTemperatureController",
    "DeviceSettings",
    "FRLLoss",
    "FRLMultipliers",
    "FairARDLoss",
    "FairnessAwareAveraging",
    "KLPGDAttack",
    "LRFollowHandle",
    "Normalize",
    "PGDConfig",
    "RobustnessReport",
    "SATLoss",
    "TRADESLoss",
    "VulnerabilityWeights",
    "__version__",
    "absld_loss",
    "adaad_attack_objective",
    "adaad_loss",
    "ard_loss",
    "attack_objective",
    "auto_attack",
    "bat_loss",
    "bf16_support",
    "cfa_loss",
    "class_accuracy_summary",
    "default_attack_settings",
    "evaluate_robustness",
    "fair_ard_loss",
    "fastest_settings",
    "follow_optimizer_lr",
    "frl_loss",
    "kl_pgd",
    "load_weights",
    "mark_ddp_local_state",
    "pgd",
    "reports_to_markdown",
    "sat_loss",
    "soft_label_kl",
    "soft_labels",
    "stratified_split",
    "temperature_update",
    "trades_kl",
    "trades_loss",
    "vulnerability_weights",
    "worst_class_count",
]
