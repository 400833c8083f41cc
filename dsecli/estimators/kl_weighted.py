"""Weighted Kozachenko-Leonenko entropy (Berrett, Samworth & Yuan 2019), "knn-weighted"."""

from __future__ import annotations

import math
import warnings

import numpy as np

from dsecli.device import dtype_name
from dsecli.edge import Call, Measured, public_method
from dsecli.errors import (
    ComputationError,
    DataQualityWarning,
    InputError,
    check_choice,
    check_positive_int,
    where_prefix,
)
from dsecli.estimators.kl import DUPLICATE_RULE, distinct_rows, log_unit_ball_volume, zero_distance_error
from dsecli.estimators.neighbors import METRICS, NEIGHBOR_METHODS, knn_distances
from dsecli.inputs.arrays import host_array
from dsecli.inputs.prepare import Prepared
from dsecli.results import units_dependent_fields

__all__ = ["weighted_kl_entropy", "bsy_weights", "default_weighted_k", "WEIGHT_NORM_WARN"]

# Above this Euclidean norm the weights multiply the spread of the single-k estimates many-fold.
WEIGHT_NORM_WARN = 10.0
# Above this the float64 single-k estimates (relative rounding ~1e-15) no longer determine the sum.
WEIGHT_NORM_MAX = 1e9


def default_weighted_k(d: int) -> int:
    """Default K for dimension d: 4 (floor(d/4) + 1), at least 10.

    The weights need K > floor(d/4) (one more neighbour than constraints); a few times that keeps
    the minimum-norm weights smaller (at D = 10: norm 11 at K = 10, 3 at K = 80; at D = 20 the
    paper's 5 constraints give norms of 80,000 at K = 10 and 2,200 at K = 80, measured).
    """
    return max(10, 4 * (d // 4 + 1))


def bsy_weights(k: int, d: int, n_constraints: int | None = None) -> np.ndarray:
    """Weights w_1..w_K of the weighted Kozachenko-Leonenko estimator (Berrett, Samworth & Yuan 2019, eq. 2).

    The minimum Euclidean-norm w in R^K with

    .. math::

        \\sum_{j=1}^K w_j = 1, \\qquad
        \\sum_{j=1}^K w_j \\frac{\\Gamma(j + 2\\ell/d)}{\\Gamma(j)} = 0 \\quad (\\ell = 1, \\dots, \\lfloor d/4 \\rfloor),

    which cancel the bias terms of order (j/n)^(2 l/d) of the single-k estimators. For d < 4 there
    is no constraint and w = (0, ..., 0, 1): the plain estimator with k = K (as the authors' own
    L2OptW does). Shape (K,), float64; needs K > floor(d/4).
    """
    k = check_positive_int(k, "k")
    d = check_positive_int(d, "d")
    n_con = d // 4 if n_constraints is None else check_positive_int(n_constraints, "n_constraints", minimum=0)
    if n_con == 0 or k == 1:
        if n_con and k == 1:
            raise InputError(f"`k` must be > floor(D/4) = {n_con} for the weighted estimator at D = {d}; got 1")
        w = np.zeros(k)
        w[-1] = 1.0
        return w
    if k <= n_con:
        raise InputError(f"`k` must be > floor(D/4) = {n_con} for the weighted estimator at D = {d}; got {k}")
    # G G^T is ill-conditioned in high dimension (the rows j^(2l/d) are nearly collinear: cond > 1e16
    # at D = 50), so w = G^T (G G^T)^-1 e_1 is solved in 60-digit arithmetic (mpmath: a dependency of
    # torch through sympy) and rounded once
    import mpmath

    with mpmath.workdps(60):
        g = mpmath.matrix(n_con + 1, k)
        for jj in range(k):
            g[0, jj] = 1
            for ell in range(1, n_con + 1):
                g[ell, jj] = mpmath.exp(mpmath.loggamma(jj + 1 + mpmath.mpf(2 * ell) / d) - mpmath.loggamma(jj + 1))
        rhs = mpmath.matrix(n_con + 1, 1)
        rhs[0] = 1
        c = mpmath.lu_solve(g * g.T, rhs)
        w_mp = g.T * c
        w = np.array([float(w_mp[i]) for i in range(k)])
    return w


@public_method("knn-weighted")
def weighted_kl_entropy(
    rows: Prepared,
    call: Call,
    *,
    k: int | None = None,
    n_constraints: int | None = None,
    metric: str = "euclidean",
    neighbor_method: str = "auto",
) -> Measured:
    """Differential entropy by the weighted Kozachenko-Leonenko estimator.

    .. math::

        \\hat H_w = \\sum_{j=1}^K w_j \\hat H_j, \\qquad
        \\hat H_j = \\frac{1}{N} \\sum_{i=1}^N \\log \\frac{\\rho_{(j),i}^D \\, V_D \\, (N - 1)}{e^{\\psi(j)}}
        \\quad\\text{(nats)}

    rho_(j),i is the distance from x_i to its j-th nearest other row, V_D the unit-ball volume of
    the metric, w the weights of :func:`bsy_weights` (sum 1, orthogonal to the Gamma-ratio bias
    terms). The plain estimator ("knn") is efficient only for D <= 3; the weights remove the
    leading bias terms in any dimension (Berrett, Samworth & Yuan 2019, Theorem 6). Below D = 4
    the weights are (0, ..., 1) and the value is the single-K estimator with log(N - 1) for
    psi(N). Divided by log(base); a differential entropy (can be negative).

    Measured at N = 5,000 (benchmarks/accuracy.py, bits): at D = 10 the error is -0.06 / +0.59 /
    -0.04 for a Gaussian / uniform box / Student-t against +0.09 / +2.36 / -0.49 for the plain
    estimator; at D = 20 the paper's 5 constraints need weights of norm ~1e4 and the estimate is
    useless (errors of tens of bits), at D = 50 (12 constraints) the weights exceed 1e9 and the
    call fails with a ComputationError. ``n_constraints=1`` stays usable there but is biased
    (the weights cancel the leading bias term only). The estimator is asymptotic: its benefit in
    high dimension needs K, hence N, far larger than these.

    Parameters
    ----------
    x : array-like, shape (N, D), a tensor, a lazy source or :class:`~dsecli.inputs.sampling.Rows`
    k : int or None
        K, the largest neighbour order used; must be > floor(D/4) and <= N' - 1 (N' distinct rows).
        None: :func:`default_weighted_k` (max(10, 4 (floor(D/4) + 1))).
    n_constraints : int or None
        Number of Gamma-ratio constraints; None: floor(D/4), the paper's choice (efficiency).
        Fewer constraints give smaller weights (less variance, more bias) in high dimension.
    metric, neighbor_method, max_n, seed, sampler, device, dtype, flatten, drop_nonfinite
        As for :func:`dsecli.kozachenko_leonenko_entropy` (duplicates dropped the same way).
    base : float
        Logarithm base (2: bits).

    Returns
    -------
    EntropyResult
        ``params``: k (K), weights rule, number of constraints; ``extra``: the weights, the single-j
        estimates ``per_k_nats``, duplicates.

    References
    ----------
    T. B. Berrett, R. J. Samworth, M. Yuan, "Efficient multivariate entropy estimation via
    k-nearest neighbour distances", Ann. Statist. 47(1) (2019) 288-318, eq. (2)-(3).
    """
    if k is not None:
        k = check_positive_int(k, "k")
    check_choice(metric, "metric", METRICS)
    check_choice(neighbor_method, "neighbor_method", NEIGHBOR_METHODS)
    device, dt = rows.device, rows.working_dtype("float64")  # resolved once, for every step below
    data = host_array(rows.data, np.float64)
    if dtype_name(dt) == "float32":
        data = data.astype(np.float32)
    d = data.shape[1]
    kk = default_weighted_k(d) if k is None else k
    w = bsy_weights(kk, d, n_constraints)
    w_norm = float(np.linalg.norm(w))
    if w_norm > WEIGHT_NORM_MAX:
        raise ComputationError(
            f"the weighted Kozachenko-Leonenko weights at K = {kk}, D = {d} have norm {w_norm:.3g}: the estimate "
            "would be float64 rounding noise; use a (much) larger k or fewer n_constraints"
        )
    if w_norm > WEIGHT_NORM_WARN:
        warnings.warn(
            f"the weighted Kozachenko-Leonenko weights at K = {kk}, D = {d} ({w.size} weights, "
            f"{d // 4 if n_constraints is None else n_constraints} constraints) have norm {w_norm:.3g}: "
            "they amplify the noise of the single-k estimates; use a larger k, fewer n_constraints or "
            "the plain estimator (knn)",
            DataQualityWarning,
            stacklevel=2,
        )
    data, n_dup = distinct_rows(data)
    n = data.shape[0]
    if kk > n - 1:
        raise InputError(f"{where_prefix(rows.source)}`k` must be <= N - 1 = {n - 1} (distinct rows); got {kk}")
    nb = knn_distances(data, kk, metric=metric, method=neighbor_method, device=device, dtype=dt)
    r = nb.distances
    if np.any(r[:, 0] <= 0):
        raise zero_distance_error(int(np.sum(r[:, 0] <= 0)), n, 1, source=rows.source, dtype=nb.detail["dtype"])
    from scipy.special import digamma

    j = np.arange(1, kk + 1)
    per_k = math.log(n - 1) - digamma(j) + log_unit_ball_volume(d, metric) + d * np.log(r).mean(axis=0)
    h_nats = float(w @ per_k)
    params = {
        "k": kk, "k_requested": k, "weights": "berrett-samworth-yuan minimum-norm", "n_constraints": d // 4 if n_constraints is None else n_constraints,
        "metric": metric, "neighbor_method": nb.method, "neighbor_method_requested": neighbor_method,
        "duplicates": DUPLICATE_RULE, "device": nb.detail["device"], "dtype": nb.detail["dtype"], "n_features": int(d),
    }
    return Measured(call.from_nats(h_nats), params,
                    {"n_duplicates": n_dup, "n_distinct": n, "value_nats": h_nats, **units_dependent_fields(),
                     "weights": w.tolist(), "per_k_nats": per_k.tolist(), "weights_norm": w_norm})
