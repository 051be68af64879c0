"""torch-absld: Anti-Bias Soft Label Distillation (ABSLD) for robust, class-fair students; baselines: ``methods``."""

from __future__ import annotations

from . import methods as methods
from .attack import KLPGDAttack as KLPGDAttack
from .attack import PGDConfig as PGDConfig
from .attack import kl_pgd as kl_pgd
from .attack import pgd as pgd
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
from .integrations.hooks import follow_optimizer_lr as follow_optimizer_lr
from .kl import soft_label_kl as soft_label_kl
from .kl import soft_labels as soft_labels
from .loss import ABSLDLoss as ABSLDLoss
from .loss import absld_loss as absld_loss
from .methods.absld import ABSLDOutput as ABSLDOutput
from .methods.absld import ABSLDStep as ABSLDStep
from .normalize import Normalize as Normalize
from .precision import DeviceSettings as DeviceSettings
from .precision import bf16_support as bf16_support
from .precision import fastest_settings as fastest_settings
from .stats import ClassStatistics as ClassStatistics
from .temperature import ClassTemperatureController as ClassTemperatureController
from .weights import load_weights as load_weights

__version__ = "0.3.0.dev0"

__all__ = [
    "ABSLDLoss",
    "ABSLDOutput",
    "ABSLDStep",
    "BestCheckpoint",
    "ClassAccuracy",
    "ClassAccuracyResult",
    "ClassStatistics",
    "ClassTemperatureController",
    "DeviceSettings",
    "KLPGDAttack",
    "Normalize",
    "PGDConfig",
    "RobustnessReport",
    "__version__",
    "absld_loss",
    "auto_attack",
    "bf16_support",
    "class_accuracy_summary",
    "default_attack_settings",
    "evaluate_robustness",
    "fastest_settings",
    "follow_optimizer_lr",
    "kl_pgd",
    "load_weights",
    "methods",
    "pgd",
    "reports_to_markdown",
    "soft_label_kl",
    "soft_labels",
    "stratified_split",
    "worst_class_count",
]
