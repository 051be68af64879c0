"""Paired runs: means with Student-t intervals, and the exact sign test of wins against losses (needs SciPy)."""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from typing import Any

__all__ = ["TIE_TOLERANCE", "mean_interval", "paired_comparison", "sign_test"]

#: Differences smaller than this count as ties (the metrics are fractions in [0, 1]).
TIE_TOLERANCE = 1e-9


def mean_interval(values: Sequence[float], confidence: float = 0.95) -> dict[str, Any]:
    r"""``n``, ``mean``, sample ``std`` and the Student-t interval ``low``, ``high`` of ``values``.

    The interval is $\bar v \pm t_{(1+c)/2,\,n-1}\, s / \sqrt n$; one value has ``std`` 0 and no interval (NaN ends).

    Example:
        >>> r = mean_interval([1.0, 2.0, 3.0])
        >>> r["mean"], round(r["low"], 4), round(r["high"], 4)
        (2.0, -0.4841, 4.4841)
    """
    if not values:
        raise ValueError("Expected at least one value, but got none.")
    if not 0 < confidence < 1:
        raise ValueError(f"Expected `confidence` in (0, 1), but got {confidence}.")
    n, mean, std, half = len(values), statistics.fmean(values), 0.0, math.nan
    if n > 1:
        from scipy import stats

        std = statistics.stdev(values)
        half = float(stats.t.ppf((1 + confidence) / 2, n - 1)) * std / math.sqrt(n)
    return {"n": n, "mean": mean, "std": std, "low": mean - half, "high": mean + half, "confidence": confidence}


def sign_test(wins: int, losses: int) -> float:
    r"""Two-sided exact sign test: $\min\big(1, 2 \sum_{k \le \min(w, l)} \binom{w+l}{k} 2^{-(w+l)}\big)$.

    Example:
        >>> sign_test(5, 0), sign_test(3, 2)
        (0.0625, 1.0)
    """
    from scipy import stats

    trials = wins + losses
    return 1.0 if trials == 0 else float(stats.binomtest(wins, trials, 0.5, alternative="two-sided").pvalue)


def paired_comparison(differences: Sequence[float], confidence: float = 0.95) -> dict[str, Any]:
    """:func:`mean_interval` of per-seed differences, ``wins``, ``ties``, ``losses`` and the sign test's ``sign_p``."""
    wins = sum(d > TIE_TOLERANCE for d in differences)
    losses = sum(d < -TIE_TOLERANCE for d in differences)
    return mean_interval(differences, confidence) | {
        "differences": tuple(differences),
        "wins": wins,
        "ties": len(differences) - wins - losses,
        "losses": losses,
        "sign_p": sign_test(wins, losses),
    }
