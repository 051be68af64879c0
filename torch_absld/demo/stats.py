"""Statistics of paired runs: means with t confidence intervals, and the exact sign test.

Every method of a seed shares that seed's split, teacher, initial weights, data order and attack
noise, so methods are compared through their per-seed differences: the mean difference with a
Student-t confidence interval over the seeds, and the two-sided exact sign test of the wins
against the losses (ties dropped). Needs SciPy (the ``demo`` extra).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

__all__ = ["MeanInterval", "PairedComparison", "mean_interval", "paired_comparison", "sign_test"]

#: Differences smaller than this count as ties (the metrics are fractions in [0, 1]).
TIE_TOLERANCE = 1e-9


@dataclass(frozen=True)
class MeanInterval:
    """The mean of ``n`` values with its two-sided Student-t confidence interval.

    Attributes:
        n: number of values.
        mean: their mean.
        std: their sample standard deviation (``ddof=1``; 0 for one value).
        low, high: the interval's ends (NaN for one value: no interval exists).
        confidence: the interval's confidence level.
    """

    n: int
    mean: float
    std: float
    low: float
    high: float
    confidence: float

    def to_dict(self) -> dict[str, Any]:
        """The fields as a JSON-ready dict."""
        return asdict(self)


@dataclass(frozen=True)
class PairedComparison(MeanInterval):
    """Per-seed differences (method minus baseline) summarised.

    Attributes:
        differences: one difference per seed, in seed order.
        wins, ties, losses: seeds where the difference is positive, zero (within
            :data:`TIE_TOLERANCE`) or negative.
        sign_p: two-sided p-value of the exact sign test (ties dropped; 1 when all are ties).
    """

    differences: tuple[float, ...] = ()
    wins: int = 0
    ties: int = 0
    losses: int = 0
    sign_p: float = 1.0

    @property
    def excludes_zero(self) -> bool:
        """Whether the whole confidence interval lies on one side of zero."""
        return self.low > 0 or self.high < 0


def _t_quantile(probability: float, degrees: int) -> float:
    from scipy import stats

    return float(stats.t.ppf(probability, degrees))


def mean_interval(values: Sequence[float], confidence: float = 0.95) -> MeanInterval:
    r"""Mean and Student-t interval: $\bar v \pm t_{(1+c)/2,\,n-1}\, s / \sqrt n$.

    Example:
        >>> r = mean_interval([1.0, 2.0, 3.0])
        >>> r.mean, round(r.low, 4), round(r.high, 4)
        (2.0, -0.4841, 4.4841)
    """
    if not values:
        raise ValueError("Expected at least one value, but got none.")
    if not 0 < confidence < 1:
        raise ValueError(f"Expected `confidence` in (0, 1), but got {confidence}.")
    n = len(values)
    mean = statistics.fmean(values)
    if n == 1:
        return MeanInterval(1, mean, 0.0, math.nan, math.nan, confidence)
    std = statistics.stdev(values)
    half = _t_quantile((1 + confidence) / 2, n - 1) * std / math.sqrt(n)
    return MeanInterval(n, mean, std, mean - half, mean + half, confidence)


def sign_test(wins: int, losses: int) -> float:
    r"""Two-sided exact sign test: $\min\big(1, 2 \sum_{k \le \min(w, l)} \binom{w+l}{k} 2^{-(w+l)}\big)$.

    Example:
        >>> sign_test(5, 0), sign_test(3, 2)
        (0.0625, 1.0)
    """
    from scipy import stats

    trials = wins + losses
    if trials == 0:
        return 1.0
    return float(stats.binomtest(wins, trials, 0.5, alternative="two-sided").pvalue)


def paired_comparison(differences: Sequence[float], confidence: float = 0.95) -> PairedComparison:
    """Summarise per-seed differences (method minus baseline): mean, t interval, sign test."""
    interval = mean_interval(differences, confidence)
    wins = sum(d > TIE_TOLERANCE for d in differences)
    losses = sum(d < -TIE_TOLERANCE for d in differences)
    return PairedComparison(
        **asdict(interval),
        differences=tuple(differences),
        wins=wins,
        ties=len(differences) - wins - losses,
        losses=losses,
        sign_p=sign_test(wins, losses),
    )
