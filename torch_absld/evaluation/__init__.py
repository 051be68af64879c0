"""Class-wise robustness evaluation as the paper reports it: metrics, attacks, reports, checkpoint selection."""

from __future__ import annotations

from .autoattack import auto_attack as auto_attack
from .checkpoint import BestCheckpoint as BestCheckpoint
from .data import dataset_labels as dataset_labels
from .data import stratified_split as stratified_split
from .evaluate import evaluate_robustness as evaluate_robustness
from .metrics import ClassAccuracy as ClassAccuracy
from .metrics import ClassAccuracyResult as ClassAccuracyResult
from .metrics import class_accuracy_summary as class_accuracy_summary
from .metrics import worst_class_count as worst_class_count
from .protocol import ATTACKS as ATTACKS
from .protocol import default_attack_settings as default_attack_settings
from .protocol import resolve_attack_settings as resolve_attack_settings
from .report import RobustnessReport as RobustnessReport
from .report import reports_to_markdown as reports_to_markdown

__all__ = [
    "ATTACKS",
    "BestCheckpoint",
    "ClassAccuracy",
    "ClassAccuracyResult",
    "RobustnessReport",
    "auto_attack",
    "class_accuracy_summary",
    "dataset_labels",
    "default_attack_settings",
    "evaluate_robustness",
    "reports_to_markdown",
    "resolve_attack_settings",
    "stratified_split",
    "worst_class_count",
]
