"""Rank correlations: between a measure and an outcome (:func:`rank_correlation`), and the direction of a
trend along a series (:func:`trend_direction`).

Both read Spearman's rho from one function, :func:`spearman_rho` (Pearson's r of average ranks, ties
sharing the mean of their ranks, as :func:`scipy.stats.spearmanr` ranks them), so "rises" in a
warning and the rho of a correlation table are the same number. NumPy only, apart from the p-values
and Kendall's tau-b of :func:`rank_correlation`, which come from :mod:`scipy.stats` (imported there:
it costs most of a second).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from dsecli.errors import DseWarning, InputError, check_positive_int
from dsecli.results import json_safe

__all__ = ["average_ranks", "spearman_rho", "TREND_RHO", "MIN_TREND_POINTS", "Trend", "trend_direction",
           "RankCorrelation", "rank_correlation"]


def average_ranks(a: Any) -> np.ndarray:
    """Ranks 1..n along the last axis, tied values sharing the mean of their ranks (scipy's ``"average"``).

    Returns
    -------
    numpy.ndarray of float64, the shape of ``a``
    """
    a = np.asarray(a, dtype=np.float64)
    n = a.shape[-1]
    order = np.argsort(a, axis=-1, kind="stable")
    s = np.take_along_axis(a, order, axis=-1)
    pos = np.broadcast_to(np.arange(n), s.shape)
    starts = np.ones(s.shape, dtype=bool)
    starts[..., 1:] = s[..., 1:] != s[..., :-1]
    ends = np.ones(s.shape, dtype=bool)
    ends[..., :-1] = starts[..., 1:]
    first = np.maximum.accumulate(np.where(starts, pos, 0), axis=-1)  # where each tie group begins
    last = np.flip(np.minimum.accumulate(np.flip(np.where(ends, pos, n - 1), axis=-1), axis=-1), axis=-1)
    ranks = np.empty(s.shape, dtype=np.float64)
    np.put_along_axis(ranks, order, (first + last) / 2.0 + 1.0, axis=-1)
    return ranks


def spearman_rho(x: Any, y: Any) -> np.ndarray | float:
    """Spearman's rho of ``x`` and ``y`` along the last axis: Pearson's r of their average ranks.

    NaN where a side is constant (its ranks have no spread, so rho is undefined). Inputs of shape
    (B, n) give B values (one per row): the bootstrap of :func:`rank_correlation`.

    Returns
    -------
    float or numpy.ndarray
        rho in [-1, 1] (NaN where undefined); a float for 1-D inputs.
    """
    rx = average_ranks(x)
    ry = average_ranks(y)
    rx = rx - rx.mean(axis=-1, keepdims=True)
    ry = ry - ry.mean(axis=-1, keepdims=True)
    den = np.sqrt((rx * rx).sum(axis=-1) * (ry * ry).sum(axis=-1))
    with np.errstate(invalid="ignore", divide="ignore"):
        rho = np.where(den > 0, (rx * ry).sum(axis=-1) / np.where(den > 0, den, 1.0), np.nan)
    rho = np.clip(rho, -1.0, 1.0)
    return float(rho) if rho.ndim == 0 else rho


# ------------------------------------------------------------------------------------- trend direction

# |rho| at or above this names a direction. A label for people, not a test: 0.5 is the conventional
# boundary of a "large" correlation (Cohen 1988), so a named direction holds for most of the series; a
# curve that drops at its first checkpoint and then creeps back up (DSE of the bundled digits run under
# the median rule: 5.00, 2.93, ..., 3.05 over epochs 0..256, rho = 0.01) is "no monotone trend", not a
# fall, while the same run under sigma = 10 (0.00 -> 9.03, rho = 1.00) rises. A significance threshold
# would depend on n (|rho| >= 0.65 at 10 points for two-sided 5 %, 0.36 at 30) and call the same shape a
# trend in a long run and none in a short one.
TREND_RHO = 0.5
# fewer points than this give no direction: two points always have rho = +-1 (or none), so any step
# between two checkpoints, noise included, would be named a trend
MIN_TREND_POINTS = 3


@dataclass(frozen=True)
class Trend:
    """The direction of a series (:func:`trend_direction`): ``direction`` "rises", "falls" or "no monotone
    trend" (None with fewer than :data:`MIN_TREND_POINTS` points); ``rho`` (None where undefined),
    ``n`` points, and the ``first`` and ``last`` values in x order."""

    direction: str | None
    rho: float | None
    n: int
    first: float | None
    last: float | None

    def describe(self) -> str:
        """``"rises (0.00 → 7.28, ρ = 0.99)"``: the direction with the first and last values and rho.

        Returns
        -------
        str
        """
        rho = f"ρ = {self.rho:.2f}" if self.rho is not None else "ρ undefined"
        if self.first is None or self.last is None:
            return f"{self.direction} ({rho})"
        return f"{self.direction} ({self.first:.2f} → {self.last:.2f}, {rho})"

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe fields.

        Returns
        -------
        dict
        """
        return json_safe({"direction": self.direction, "rho": self.rho, "n": self.n, "first": self.first,
                          "last": self.last})


def trend_direction(x: Sequence[float], y: Sequence[float]) -> Trend:
    """The direction of ``y`` along ``x``: Spearman's rho (:func:`spearman_rho`) of the points.

    rho >= :data:`TREND_RHO` (0.5): "rises"; rho <= -0.5: "falls"; otherwise, and when ``y`` is constant,
    "no monotone trend". With fewer than :data:`MIN_TREND_POINTS` (3) points the direction is None
    (not named). The thresholds and why: the comments at :data:`TREND_RHO` and :data:`MIN_TREND_POINTS`.

    Parameters
    ----------
    x, y : sequences of float, the same length (a checkpoint and a value per point; finite)

    Returns
    -------
    Trend
        Direction, rho, the number of points and the first and last values in order of ``x``.
    """
    xs = np.asarray(x, dtype=np.float64)
    ys = np.asarray(y, dtype=np.float64)
    if xs.shape != ys.shape or xs.ndim != 1:
        raise InputError(f"`x` and `y` must be 1-D and the same length; got shapes {xs.shape} and {ys.shape}")
    n = int(xs.size)
    if n == 0:
        return Trend(None, None, 0, None, None)
    order = np.argsort(xs, kind="stable")
    first, last = float(ys[order[0]]), float(ys[order[-1]])
    if n < MIN_TREND_POINTS:
        return Trend(None, None, n, first, last)
    rho = spearman_rho(xs, ys)
    if math.isnan(rho):
        return Trend("no monotone trend", None, n, first, last)
    direction = "rises" if rho >= TREND_RHO else "falls" if rho <= -TREND_RHO else "no monotone trend"
    return Trend(direction, float(rho), n, first, last)


# ----------------------------------------------------------------------------------- rank_correlation

METHOD_NAMES = {
    "spearman": "Spearman's rho: Pearson's r of average ranks; p-value from scipy.stats.spearmanr "
                "(t distribution with n - 2 degrees of freedom)",
    "kendall": "Kendall's tau-b (ties in either variable corrected); p-value from scipy.stats.kendalltau "
               "(exact without ties for small n, else the normal approximation)",
    "interval": "percentile bootstrap over pairs: B resamples of n pairs drawn with replacement "
                "(numpy.random.default_rng(seed).integers(0, n, size=(B, n))); resamples where a side is "
                "constant are left out",
}


@dataclass(frozen=True)
class RankCorrelation:
    """Spearman's rho and Kendall's tau-b of n pairs, each with a bootstrap interval and a p-value.

    ``spearman_ci`` and ``kendall_ci`` are (low, high) at ``confidence``; (nan, nan) when no resample
    was usable (``bootstrap_used`` = 0) or ``bootstrap`` = 0. ``bootstrap_used`` counts the resamples
    the intervals come from (those where neither side was constant). ``methods`` names each statistic
    and how it is computed.
    """

    n: int
    spearman: float
    spearman_ci: tuple[float, float]
    spearman_p: float
    kendall: float
    kendall_ci: tuple[float, float]
    kendall_p: float
    bootstrap: int
    bootstrap_used: int
    confidence: float
    seed: int
    methods: dict[str, str] = field(default_factory=lambda: dict(METHOD_NAMES))

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe fields (NaN as None; intervals as [low, high]).

        Returns
        -------
        dict
        """
        return json_safe({
            "n": self.n, "spearman": self.spearman, "spearman_ci": list(self.spearman_ci),
            "spearman_p": self.spearman_p, "kendall": self.kendall, "kendall_ci": list(self.kendall_ci),
            "kendall_p": self.kendall_p, "bootstrap": self.bootstrap, "bootstrap_used": self.bootstrap_used,
            "confidence": self.confidence, "seed": self.seed, "methods": dict(self.methods),
        })


def _pairs(x: Any, y: Any) -> tuple[np.ndarray, np.ndarray]:
    out = []
    for name, v in (("x", x), ("y", y)):
        try:
            a = np.asarray(v, dtype=np.float64)
        except (TypeError, ValueError):
            raise InputError(f"`{name}` must be a sequence of numbers; got {type(v).__name__}") from None
        if a.ndim != 1:
            raise InputError(f"`{name}` must be 1-D (one value per pair); got shape {a.shape}")
        bad = np.flatnonzero(~np.isfinite(a))
        if bad.size:
            raise InputError(f"`{name}` must be finite; got {float(a[bad[0]])!r} at position {int(bad[0])}")
        out.append(a)
    xs, ys = out
    if xs.size != ys.size:
        raise InputError(f"`x` has {xs.size} values but `y` has {ys.size}; a rank correlation needs pairs")
    if xs.size < 3:
        raise InputError(f"`x` and `y` must hold at least 3 pairs for a rank correlation; got {xs.size}")
    for name, a in (("x", xs), ("y", ys)):
        if np.all(a == a[0]):
            raise InputError(f"`{name}` is constant ({a[0]:g} at all {a.size} pairs); a rank correlation needs "
                             "at least two distinct values")
    return xs, ys


def _tied_pairs(a: np.ndarray) -> int:
    counts = np.unique(a, return_counts=True)[1]
    return int((counts * (counts - 1) // 2).sum())


def _kendall_tau_b(stats: Any, a: np.ndarray, b: np.ndarray) -> float:
    """scipy's tau-b, with its numerator n_c - n_d (an integer) recovered and divided once by the exact
    sqrt((n_0 - n_1)(n_0 - n_2)): scipy divides by two square roots in turn, which gives 0.9999999999999999
    for a perfect order; this gives 1.0 there and scipy's value to an ulp elsewhere."""
    tau = float(stats.kendalltau(a, b).statistic)
    n0 = a.size * (a.size - 1) // 2
    den = math.sqrt((n0 - _tied_pairs(a)) * (n0 - _tied_pairs(b)))
    return round(tau * den) / den


def rank_correlation(x: Any, y: Any, *, bootstrap: int = 2000, confidence: float = 0.95,
                     seed: int = 0) -> RankCorrelation:
    """Spearman's rho and Kendall's tau-b of the pairs (x_i, y_i), with percentile bootstrap intervals.

    .. math::

        \\rho = \\operatorname{corr}(R(x), R(y)), \\qquad
        \\tau_b = \\frac{n_c - n_d}{\\sqrt{(n_0 - n_1)(n_0 - n_2)}}

    with R the average ranks (ties share the mean of their ranks), n_c / n_d the concordant / discordant
    pairs, n_0 = n(n-1)/2 and n_1, n_2 the pairs tied in x and in y (as :func:`scipy.stats.spearmanr`
    and :func:`scipy.stats.kendalltau` compute them).

    Parameters
    ----------
    x, y : array-like, shape (n,)
        Paired finite values (e.g. a measure per checkpoint and the accuracy at that checkpoint), n >= 3,
        neither constant.
    bootstrap : int >= 0
        B resamples of the n pairs, drawn with replacement by ``numpy.random.default_rng(seed).integers(0,
        n, size=(B, n))``; 0: no intervals.
    confidence : float in (0, 1)
        The intervals are the (1 - confidence)/2 and (1 + confidence)/2 quantiles of the B statistics
        (:func:`numpy.quantile`, its default linear interpolation).
    seed : int
        Seed of the local generator of the resamples (the global random state is not touched).

    Returns
    -------
    RankCorrelation
        n, spearman, spearman_ci, spearman_p, kendall, kendall_ci, kendall_p, the bootstrap settings and
        ``bootstrap_used``.

    Notes
    -----
    A resample in which x or y is constant (all n draws on pairs sharing a value) has no rank
    correlation; it is left out and the interval comes from the others (``bootstrap_used`` counts them;
    a :class:`~dsecli.errors.DseWarning` says so when more than 5 % are left out). This conditions the
    interval on resamples that have a correlation, which matters only for very small n or heavy ties.
    The p-values test rho = 0 and tau = 0 (two-sided) and assume independent pairs: checkpoints of
    one training run are not independent, so read them as descriptive.

    Examples
    --------
    >>> r = rank_correlation([1, 2, 3, 4, 5], [2, 4, 5, 9, 10], bootstrap=200)
    >>> r.spearman, r.kendall, r.spearman_ci
    (1.0, 1.0, (1.0, 1.0))
    """
    from dsecli.measures.resampling import check_resampling  # the measures' rule: B = 0 or >= 2, in memory

    xs, ys = _pairs(x, y)
    bootstrap, _, level = check_resampling(bootstrap, 0, confidence)
    seed = check_positive_int(seed, "seed", minimum=0)
    from scipy import stats

    n = int(xs.size)
    rho = float(spearman_rho(xs, ys))
    rho_p = float(stats.spearmanr(xs, ys).pvalue)
    tau, tau_p = _kendall_tau_b(stats, xs, ys), float(stats.kendalltau(xs, ys).pvalue)
    nan_ci = (math.nan, math.nan)
    spearman_ci = kendall_ci = nan_ci
    used = 0
    if bootstrap:
        idx = np.random.default_rng(seed).integers(0, n, size=(bootstrap, n))
        bx, by = xs[idx], ys[idx]
        ok = ~(np.all(bx == bx[:, :1], axis=1) | np.all(by == by[:, :1], axis=1))
        used = int(ok.sum())
        if used:
            rhos = spearman_rho(bx[ok], by[ok])
            taus = np.array([_kendall_tau_b(stats, a, b) for a, b in zip(bx[ok], by[ok])], dtype=np.float64)
            q = [(1.0 - level) / 2.0, (1.0 + level) / 2.0]
            spearman_ci = tuple(float(v) for v in np.quantile(rhos, q))  # type: ignore[assignment]
            kendall_ci = tuple(float(v) for v in np.quantile(taus, q))  # type: ignore[assignment]
        if bootstrap - used > 0.05 * bootstrap:
            warnings.warn(f"rank correlation of {n} pairs: {bootstrap - used} of {bootstrap} bootstrap resamples "
                          "had a constant side (no rank correlation) and were left out of the intervals"
                          + ("; no interval" if not used else ""), DseWarning, stacklevel=2)
    return RankCorrelation(n, rho, spearman_ci, rho_p, tau, kendall_ci, tau_p, bootstrap, used, level, seed)
