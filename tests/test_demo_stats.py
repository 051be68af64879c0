"""The demo's statistics against hand-computed values and a second, independent formula."""

from __future__ import annotations

import math
import statistics

import pytest

from torch_absld.demo.stats import mean_interval, paired_comparison, sign_test

# Two-sided 95% quantiles of Student's t, from printed tables (df = 1, 2, 4, 15).
T_975 = {1: 12.706204736, 2: 4.302652730, 4: 2.776445105, 15: 2.131449546}


def _sign_test_by_hand(wins: int, losses: int) -> float:
    n = wins + losses
    tail = sum(math.comb(n, k) for k in range(min(wins, losses) + 1)) / 2**n
    return min(1.0, 2 * tail)


@pytest.mark.parametrize(
    "values", [[1.0, 2.0], [1.0, 2.0, 3.0], [0.1, -0.3, 0.2, 0.5, 0.0], [float(i % 7) for i in range(16)]]
)
def test_mean_interval_matches_the_t_table(values):
    result = mean_interval(values)
    n = len(values)
    half = T_975[n - 1] * statistics.stdev(values) / math.sqrt(n)
    assert result["n"] == n
    assert result["mean"] == pytest.approx(sum(values) / n)
    assert result["low"] == pytest.approx(result["mean"] - half, rel=1e-8, abs=1e-12)
    assert result["high"] == pytest.approx(result["mean"] + half, rel=1e-8, abs=1e-12)


def test_mean_interval_hand_computed():
    result = mean_interval([1.0, 2.0, 3.0])  # s = 1, half = 4.302652730 / sqrt(3) = 2.484138
    assert (result["low"], result["high"]) == pytest.approx((-0.484138, 4.484138), abs=1e-6)


def test_single_value_has_no_interval():
    result = mean_interval([0.25])
    assert result["mean"] == 0.25
    assert result["std"] == 0.0
    assert math.isnan(result["low"])
    assert math.isnan(result["high"])


@pytest.mark.parametrize(("wins", "losses"), [(5, 0), (3, 2), (16, 0), (15, 1), (12, 4), (0, 0), (0, 7), (9, 7)])
def test_sign_test_matches_the_binomial_sum(wins, losses):
    expected = 1.0 if wins + losses == 0 else _sign_test_by_hand(wins, losses)
    assert sign_test(wins, losses) == pytest.approx(expected, rel=1e-12)


def test_sign_test_hand_computed():
    assert sign_test(5, 0) == pytest.approx(0.0625)  # 2 * 0.5**5
    assert sign_test(15, 1) == pytest.approx(2 * 17 / 2**16)  # 2 * (1 + 16) / 65536


def test_paired_comparison_counts_ties_and_drops_them_from_the_sign_test():
    result = paired_comparison([0.02, 0.0, -0.01, 0.03, 1e-12, 0.05])
    assert (result["wins"], result["ties"], result["losses"]) == (3, 2, 1)
    assert result["sign_p"] == pytest.approx(_sign_test_by_hand(3, 1))
    assert result["differences"] == (0.02, 0.0, -0.01, 0.03, 1e-12, 0.05)


@pytest.mark.parametrize(("values", "error"), [([], "at least one value")])
def test_bad_input(values, error):
    with pytest.raises(ValueError, match=error):
        mean_interval(values)
    with pytest.raises(ValueError, match="`confidence` in"):
        mean_interval([1.0, 2.0], confidence=1.5)
