"""Keep the checkpoint with the best Overall robustness seen so far, as the paper selects its models."""

from __future__ import annotations

import copy
import math
import numbers
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any, Literal

import torch
from torch import Tensor, nn

from .._internal.checks import check_choice
from .._internal.modules import unwrap_model
from .report import RobustnessReport

__all__ = ["BestCheckpoint"]

Criterion = Literal["overall", "avg", "worst"]


def _cpu_copy(value: Any) -> Any:
    """A deep copy with every tensor detached and copied to the CPU."""
    if isinstance(value, Tensor):
        return value.detach().to("cpu", copy=True)
    if isinstance(value, Mapping):
        out: OrderedDict[Any, Any] = OrderedDict((key, _cpu_copy(item)) for key, item in value.items())
        if hasattr(value, "_metadata"):  # load_state_dict reads the module versions from it
            out._metadata = copy.deepcopy(value._metadata)  # type: ignore[attr-defined]
        return out
    if isinstance(value, (list, tuple)):
        return type(value)(_cpu_copy(item) for item in value)
    return copy.deepcopy(value)


class BestCheckpoint:
    """Keeps the weights of the best *Overall* = (Avg. + Worst) / 2 under one attack seen so far.

    How the paper selects its checkpoints. :meth:`update` keeps a CPU copy of the state dict when
    ``criterion`` (``"overall"``, ``"avg"`` or ``"worst"``) under ``attack`` (the paper: ``"pgd"``)
    strictly improves (the earliest epoch wins a tie; NaN never improves).

    Example:
        >>> from torch_absld import RobustnessReport, class_accuracy_summary
        >>> report = RobustnessReport({"pgd": class_accuracy_summary([4, 2], [5, 5])}, num_classes=2, eps=0.1)
        >>> best = BestCheckpoint("pgd")
        >>> best.update(report, nn.Linear(2, 2), epoch=3), best.best_overall, best.best_epoch
        (True, 0.5, 3)
    """

    def __init__(self, attack: str = "pgd", *, criterion: Criterion = "overall") -> None:
        if not isinstance(attack, str):
            raise TypeError(f"Expected `attack` to be a str, but got {type(attack).__name__}.")
        check_choice(criterion, "criterion", ("overall", "avg", "worst"))
        self.attack = attack
        self.criterion: Criterion = criterion
        self.best_value: float | None = None
        self.best_epoch: int | None = None
        self.best_report: RobustnessReport | None = None
        self._state_dict: dict[str, Any] | None = None

    @property
    def best_overall(self) -> float | None:
        """Overall (a fraction in [0, 1]) of the best checkpoint under :attr:`attack`; ``None`` before any update."""
        return None if self.best_report is None else self.best_report[self.attack].overall

    @property
    def state_dict(self) -> dict[str, Any] | None:
        """CPU copy of the best model's state dict (``load_state_dict``-ready); ``None`` before any update."""
        return self._state_dict

    def update(self, report: RobustnessReport, state_dict_or_module: nn.Module | Mapping[str, Any], epoch: int) -> bool:
        """Keep the weights (of a module: unwrapped from DDP) if ``report`` beats the best so far; return whether."""
        if not isinstance(report, RobustnessReport):
            raise TypeError(f"Expected `report` to be a RobustnessReport, but got {type(report).__name__}.")
        if self.attack not in report:
            raise ValueError(
                f"Expected `report` to hold the attack `attack` = {self.attack!r}, but it has {report.attacks}."
            )
        if isinstance(epoch, bool) or not isinstance(epoch, numbers.Integral):
            raise TypeError(f"Expected `epoch` to be an int, but got {type(epoch).__name__}.")
        epoch = int(epoch)
        if isinstance(state_dict_or_module, nn.Module):
            state: Mapping[str, Any] = unwrap_model(state_dict_or_module).state_dict()
        elif isinstance(state_dict_or_module, Mapping):
            state = state_dict_or_module
        else:
            got = type(state_dict_or_module).__name__
            raise TypeError(f"Expected `state_dict_or_module` to be an nn.Module or a state dict, but got {got}.")
        value = float(getattr(report[self.attack], self.criterion))
        if math.isnan(value) or (self.best_value is not None and value <= self.best_value):
            return False
        self.best_value, self.best_epoch, self.best_report, self._state_dict = value, epoch, report, _cpu_copy(state)
        return True

    def load_into(self, module: nn.Module, *, strict: bool = True) -> nn.Module:
        """Load the best weights into ``module`` (unwrapping DDP) and return it."""
        if self._state_dict is None:
            raise RuntimeError("No checkpoint kept yet: call `update` with a report first.")
        unwrap_model(module).load_state_dict(self._state_dict, strict=strict)
        return module

    def save(self, path: str) -> None:
        """``torch.save`` the best state dict with its epoch, value and report (as a dict)."""
        if self._state_dict is None:
            raise RuntimeError("No checkpoint kept yet: call `update` with a report first.")
        report = None if self.best_report is None else self.best_report.to_dict()
        kept = {"state_dict": self._state_dict, "epoch": self.best_epoch, "attack": self.attack}
        torch.save(kept | {"criterion": self.criterion, "value": self.best_value, "report": report}, path)

    def __repr__(self) -> str:
        fields = f"attack={self.attack!r}, criterion={self.criterion!r}, best_value={self.best_value}"
        return f"BestCheckpoint({fields}, best_epoch={self.best_epoch})"
