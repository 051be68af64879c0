"""The baselines' losses, each a pure function and a thin module in its own file (``losses/<method>.py``)."""

from __future__ import annotations

from ._common import SampleReduction as SampleReduction
from ._common import WeightedTerms as WeightedTerms

__all__ = ["SampleReduction", "WeightedTerms"]
