"""Rank correlations (:mod:`dsecli.correlation`): Spearman and Kendall against scipy, the percentile bootstrap
against an independent computation with the same draws, and the trend direction's thresholds."""

from __future__ import annotations

import re

import numpy as np
import pytest
from scipy import stats

import dsecli
from dsecli.correlation import (
    MIN_TREND_POINTS,
    TREND_RHO,
    average_ranks,
    rank_correlation,
    spearman_rho,
    trend_direction,
)
from dsecli.errors import DseError, DseWarning, InputError


def _tied(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Pairs with many ties on both sides and a positive association."""
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 6, n).astype(float)
    return x, np.round(x + rng.normal(0, 2.0, n))


@pytest.mark.parametrize("n,seed", [(3, 1), (5, 2), (17, 3), (60, 4), (200, 5)])
def test_statistics_and_p_values_agree_with_scipy_on_tied_data(n: int, seed: int) -> None:
    x, y = _tied(n, seed)
    if np.all(y == y[0]):
        y[0] += 1
    r = rank_correlation(x, y, bootstrap=0)
    s, k = stats.spearmanr(x, y), stats.kendalltau(x, y)
    assert r.n == n
    np.testing.assert_allclose([r.spearman, r.spearman_p], [s.statistic, s.pvalue], rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose([r.kendall, r.kendall_p], [k.statistic, k.pvalue], rtol=1e-9, atol=1e-12)
    assert np.isnan(r.spearman_ci).all() and np.isnan(r.kendall_ci).all() and r.bootstrap_used == 0


def test_average_ranks_are_scipys_along_the_last_axis() -> None:
    a = np.random.default_rng(0).integers(0, 4, size=(6, 9)).astype(float)
    np.testing.assert_array_equal(average_ranks(a), stats.rankdata(a, axis=-1))
    np.testing.assert_array_equal(average_ranks([3.0, 1.0, 3.0, 2.0]), [3.5, 1.0, 3.5, 2.0])


def _independent_interval(x: np.ndarray, y: np.ndarray, *, bootstrap: int, confidence: float,
                          seed: int) -> tuple[list[float], list[float], int]:
    """The documented percentile bootstrap, written out: the same draws, scipy's statistics, np.percentile."""
    n = x.size
    idx = np.random.default_rng(seed).integers(0, n, size=(bootstrap, n))
    rhos, taus = [], []
    for i in idx:
        a, b = x[i], y[i]
        if np.ptp(a) == 0 or np.ptp(b) == 0:
            continue
        rhos.append(stats.spearmanr(a, b).statistic)
        taus.append(stats.kendalltau(a, b).statistic)
    tail = (1 - confidence) / 2 * 100
    return (list(np.percentile(rhos, [tail, 100 - tail])), list(np.percentile(taus, [tail, 100 - tail])),
            len(rhos))


@pytest.mark.parametrize("confidence", [0.95, 0.8])
def test_interval_is_the_percentile_bootstrap_of_the_documented_draws(confidence: float) -> None:
    x, y = _tied(12, 7)
    r = rank_correlation(x, y, bootstrap=300, confidence=confidence, seed=3)
    rho_ci, tau_ci, used = _independent_interval(x, y, bootstrap=300, confidence=confidence, seed=3)
    assert r.bootstrap_used == used and r.bootstrap == 300 and r.confidence == confidence and r.seed == 3
    np.testing.assert_allclose(r.spearman_ci, rho_ci, rtol=1e-9)
    np.testing.assert_allclose(r.kendall_ci, tau_ci, rtol=1e-9)


def test_resamples_with_a_constant_side_are_left_out_and_counted() -> None:
    x, y = np.array([0.0, 0.0, 1.0, 2.0]), np.array([1.0, 2.0, 2.0, 3.0])
    with pytest.warns(DseWarning, match=r"bootstrap resamples had a constant side"):
        r = rank_correlation(x, y, bootstrap=400, seed=1)
    _, _, used = _independent_interval(x, y, bootstrap=400, confidence=0.95, seed=1)
    assert r.bootstrap_used == used < 400


def test_interval_holds_the_estimate_and_narrows_with_n() -> None:
    rng = np.random.default_rng(11)
    widths = []
    for n in (30, 300):
        x = rng.normal(size=n)
        y = x + rng.normal(size=n)
        r = rank_correlation(x, y, bootstrap=500, seed=0)
        assert r.spearman_ci[0] < r.spearman < r.spearman_ci[1]
        assert r.kendall_ci[0] < r.kendall < r.kendall_ci[1]
        widths.append(r.spearman_ci[1] - r.spearman_ci[0])
    assert widths[1] < widths[0] / 2


def test_the_bootstrap_is_seeded() -> None:
    x, y = _tied(25, 2)
    a = rank_correlation(x, y, bootstrap=200, seed=5)
    b = rank_correlation(x, y, bootstrap=200, seed=5)
    c = rank_correlation(x, y, bootstrap=200, seed=6)
    assert a == b
    assert (a.spearman_ci, a.kendall_ci) != (c.spearman_ci, c.kendall_ci)
    assert (a.spearman, a.kendall) == (c.spearman, c.kendall)


def test_a_monotone_relation_gives_one_and_an_interval_of_one() -> None:
    x = np.arange(8.0)
    r = dsecli.rank_correlation(x, np.exp(x), bootstrap=2000, confidence=0.95, seed=0)
    assert (r.n, r.spearman, r.kendall, r.spearman_ci, r.kendall_ci) == (8, 1.0, 1.0, (1.0, 1.0), (1.0, 1.0))
    down = rank_correlation(x, -x**3, bootstrap=100)
    assert (down.spearman, down.kendall, down.spearman_ci, down.kendall_ci) == (-1.0, -1.0, (-1.0, -1.0), (-1.0, -1.0))
    d = r.to_dict()
    assert d["spearman_ci"] == [1.0, 1.0] and d["n"] == 8 and set(d["methods"]) == {"spearman", "kendall", "interval"}


@pytest.mark.parametrize("x,y,message", [
    ([1, 2], [1, 2], "`x` and `y` must hold at least 3 pairs for a rank correlation; got 2"),
    ([1, 2, 3], [1, 2], "`x` has 3 values but `y` has 2; a rank correlation needs pairs"),
    ([1, 2, 3], [1, float("nan"), 3], "`y` must be finite; got nan at position 1"),
    ([1, float("inf"), 3], [1, 2, 3], "`x` must be finite; got inf at position 1"),
    ([1, 2, 3], [4, 4, 4], "`y` is constant (4 at all 3 pairs)"),
    ([[1, 2, 3]], [1, 2, 3], "`x` must be 1-D"),
])
def test_bad_pairs_are_refused_naming_the_parameter(x, y, message) -> None:
    with pytest.raises(InputError, match=re.escape(message)):
        rank_correlation(x, y)


def test_bad_settings_are_refused() -> None:
    with pytest.raises(InputError, match=re.escape("`confidence` must be between 0 and 1 exclusive (e.g. 0.95); "
                                                   "got 1.0")):
        rank_correlation([1, 2, 3], [1, 2, 3], confidence=1.0)
    with pytest.raises(InputError, match=re.escape("`bootstrap` must be an integer >= 0; got -1")):
        rank_correlation([1, 2, 3], [1, 2, 3], bootstrap=-1)
    # the measures' rule: one resample gives no interval, and the count must fit in memory
    with pytest.raises(InputError, match=re.escape("`bootstrap` must be 0 (off) or at least 2 resamples")):
        rank_correlation([1, 2, 3], [1, 2, 3], bootstrap=1)
    with pytest.raises(DseError, match=re.escape("`bootstrap` = 10,000,000,000,000")):
        rank_correlation([1, 2, 3], [1, 2, 3], bootstrap=10**13)


# ------------------------------------------------------------------------------------------- trend direction


def test_spearman_rho_is_scipys_and_rowwise() -> None:
    x, y = _tied(30, 9)
    assert spearman_rho(x, y) == pytest.approx(stats.spearmanr(x, y).statistic, rel=1e-12)
    rows = np.stack([y, -y, x])
    np.testing.assert_allclose(spearman_rho(np.stack([x, x, x]), rows),
                               [stats.spearmanr(x, r).statistic for r in rows], rtol=1e-12)
    assert np.isnan(spearman_rho(x, np.ones_like(x)))


def test_trend_thresholds_are_inclusive_at_one_half() -> None:
    assert TREND_RHO == 0.5 and MIN_TREND_POINTS == 3
    x = [0, 1, 2, 4, 8]
    # ranks (2, 4, 1, 3, 5) against (1..5): sum d^2 = 10, rho = 1 - 6*10/120 = 0.5 exactly
    at = trend_direction(x, [2, 4, 1, 3, 5])
    assert at.rho == 0.5 and at.direction == "rises" and (at.first, at.last, at.n) == (2, 5, 5)
    assert trend_direction(x, [-2, -4, -1, -3, -5]).direction == "falls"
    # ranks (4, 1, 2, 3, 5): sum d^2 = 12, rho = 0.4
    below = trend_direction(x, [4, 1, 2, 3, 5])
    assert below.rho == pytest.approx(0.4) and below.direction == "no monotone trend"
    assert trend_direction(x, [7, 7, 7, 7, 7]).direction == "no monotone trend"
    two = trend_direction([0, 1], [1.0, 5.0])
    assert two.direction is None and (two.first, two.last) == (1.0, 5.0)


def test_trend_reads_points_in_x_order() -> None:
    t = trend_direction([8, 0, 4, 2, 1], [9.0, 1.0, 5.0, 3.0, 2.0])  # rises once sorted by x
    assert (t.direction, t.first, t.last) == ("rises", 1.0, 9.0)
    assert t.describe() == "rises (1.00 → 9.00, ρ = 1.00)"
