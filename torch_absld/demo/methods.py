"""The demo's students: every registered method under its title, plus a few demo variants."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .. import methods as registry

__all__ = ["DEFAULT_METHODS", "VARIANTS", "Student", "compare_methods", "resolve", "students"]

#: name -> (registered method, options, what it changes). A variant may re-set a registered title.
VARIANTS: dict[str, tuple[str, Mapping[str, Any], str]] = {
    "ABSLD-separate": ("absld", {"coupling": "separate"}, 'the paper\'s Eq. 12: `ABSLDLoss(C, coupling="separate")`'),
    "CFA": ("cfa", {"start_epoch": 0}, "the weight average from the first epoch, as the official code"),
}
#: What ``torch-absld demo`` trains for every seed, the baseline first.
DEFAULT_METHODS: tuple[str, ...] = ("RSLAD", "ABSLD")
#: Share of the training split held out for a method that reads a validation split.
VALIDATION_SHARE = 0.1
# The ABSLD paper's Table 1 order (ARD, not in the table, before RSLAD); other methods after these, ABSLD last.
_TABLE1 = ("sat", "trades", "ard", "rslad", "adaad", "frl", "bat", "cfa", "fair-ard")


@dataclass(frozen=True)
class Student:
    """A student method of the demo: a registered method and the options the demo adds."""

    name: str
    method: registry.Method
    options: Mapping[str, Any]
    description: str

    @property
    def temperatures(self) -> bool:
        """Whether the method has per-class teacher temperatures (ABSLD and RSLAD)."""
        return "min_temperature" in registry.options(self.method.name)

    @property
    def adapts_temperatures(self) -> bool:
        """Whether those temperatures move."""
        return self.temperatures and {**self.method.defaults, **self.options}.get("adapt", "both") != "none"


def students() -> dict[str, Student]:
    """Every student ``--methods`` accepts, by name: the registered methods in Table 1 order, then the variants."""
    found = {}
    for name in sorted(registry.available(), key=lambda n: (n == "absld", (*_TABLE1, n).index(n), n)):
        method = registry.get(name)
        held_out = f", on {VALIDATION_SHARE:.0%} of the training split held out" if method.needs_validation else ""
        found[method.title] = Student(method.title, method, {}, f"{method.summary.rstrip('.')}{held_out}")
    for title, (name, options, note) in VARIANTS.items():
        base = found[registry.get(name).title]
        found[title] = Student(title, base.method, options, f"{base.description}; {note}")
    return found


def compare_methods() -> tuple[str, ...]:
    """What ``torch-absld compare`` trains by default: every registered method, ABSLD last."""
    return tuple(name for name, student in students().items() if name == student.method.title)


def resolve(text: str) -> str:
    """The student name for ``text``, matched without regard to case (``"fair-ard"`` -> ``"Fair-ARD"``)."""
    return next((name for name in students() if name.lower() == text.strip().lower()), text.strip())
