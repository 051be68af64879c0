"""torch-absld: Anti-Bias Soft Label Distillation for adversarially robust, class-fair students."""

from .attack import KLPGDAttack as KLPGDAttack
from .attack import attack_objective as attack_objective
from .attack import compiled_pgd_step as compiled_pgd_step
from .attack import kl_pgd as kl_pgd
from .attack import pgd as pgd
from .attack import pgd_step as pgd_step
from .attack import trace_input_gradients as trace_input_gradients
from .attack import unwrap_model as unwrap_model
from .hooks import LRFollowHandle as LRFollowHandle
from .hooks import follow_optimizer_lr as follow_optimizer_lr
from .loss import ABSLDLoss as ABSLDLoss
from .loss import absld_loss as absld_loss
from .loss import soft_label_kl as soft_label_kl
from .loss import soft_labels as soft_labels
from .temperature import ClassTemperatureController as ClassTemperatureController
from .temperature import temperature_update as temperature_update

__version__ = "0.1.0"

__all__ = [
    "ABSLDLoss",
    "ClassTemperatureController",
    "KLPGDAttack",
    "LRFollowHandle",
    "__version__",
    "absld_loss",
    "attack_objective",
    "compiled_pgd_step",
    "follow_optimizer_lr",
    "kl_pgd",
    "pgd",
    "pgd_step",
    "soft_label_kl",
    "soft_labels",
    "temperature_update",
    "trace_input_gradients",
    "unwrap_model",
]
