"""torch-absld: Anti-Bias Soft Label Distillation for adversarially robust, class-fair students."""

from .attack import KLPGDAttack as KLPGDAttack
from .attack import attack_objective as attack_objective
from .attack import compiled_pgd_step as compiled_pgd_step
from .attack import kl_pgd as kl_pgd
from .attack import pgd as pgd
from .attack import pgd_step as pgd_step
from .attack import trace_input_gradients as trace_input_gradients
from .attack import unwrap_model as unwrap_model
from .autoattack import auto_attack as auto_attack
from .checkpoint import BestCheckpoint as BestCheckpoint
from .data import stratified_split as stratified_split
from .distiller import ABSLDDistiller as ABSLDDistiller
from .distiller import DistillerOutput as DistillerOutput
from .distiller import mark_ddp_local_state as mark_ddp_local_state
from .evaluation import evaluate_robustness as evaluate_robustness
from .hooks import LRFollowHandle as LRFollowHandle
from .hooks import follow_optimizer_lr as follow_optimizer_lr
from .loss import ABSLDLoss as ABSLDLoss
from .loss import absld_loss as absld_loss
from .loss import soft_label_kl as soft_label_kl
from .loss import soft_labels as soft_labels
from .metrics import ClassAccuracy as ClassAccuracy
from .metrics import ClassAccuracyResult as ClassAccuracyResult
from .metrics import class_accuracy_summary as class_accuracy_summary
from .metrics import worst_class_count as worst_class_count
from .normalize import Normalize as Normalize
from .protocol import default_attack_settings as default_attack_settings
from .report import RobustnessReport as RobustnessReport
from .report import reports_to_markdown as reports_to_markdown
from .temperature import ClassTemperatureController as ClassTemperatureController
from .temperature import temperature_update as temperature_update
from .weights import load_weights as load_weights

__version__ = "0.1.0"

__all__ = [
    "ABSLDDistiller",
    "ABSLDLoss",
    "BestCheckpoint",
    "ClassAccuracy",
    "ClassAccuracyResult",
    "ClassTemperatureController",
    "DistillerOutput",
    "KLPGDAttack",
    "LRFollowHandle",
    "Normalize",
    "RobustnessReport",
    "__version__",
    "absld_loss",
    "attack_objective",
    "auto_attack",
    "class_accuracy_summary",
    "compiled_pgd_step",
    "default_attack_settings",
    "evaluate_robustness",
    "follow_optimizer_lr",
    "kl_pgd",
    "load_weights",
    "mark_ddp_local_state",
    "pgd",
    "pgd_step",
    "reports_to_markdown",
    "soft_label_kl",
    "soft_labels",
    "stratified_split",
    "temperature_update",
    "trace_input_gradients",
    "unwrap_model",
    "worst_class_count",
]
