"""Kozachenko-Leonenko k-nearest-neighbour entropy ("knn", docs/method.md#knn-entropy)."""

from __future__ import annotations

import math
import warnings
from typing import Any

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
from dsecli.estimators.neighbors import METRICS, NEIGHBOR_METHODS, knn_distances
from dsecli.inputs.arrays import host_array
from dsecli.inputs.prepare import Prepared
from dsecli.results import units_dependent_fields

__all__ = ["kozachenko_leonenko_entropy", "log_unit_ball_volume", "distinct_rows"]

DUPLICATE_RULE = "drop"


def log_unit_ball_volume(d: int, metric: str) -> float:
    """log V_D of the unit ball: pi^(D/2) / Gamma(D/2 + 1) (Euclidean), 2^D (max-norm), 2^D / D! (manhattan)."""
    if metric == "max":
        return d * math.log(2.0)
    if metric == "manhattan":
        return d * math.log(2.0) - math.lgamma(d + 1.0)
    return 0.5 * d * math.log(math.pi) - math.lgamma(0.5 * d + 1.0)


def zero_distance_error(count: int, n: int, k: int, *, source: Any, dtype: str) -> ComputationError:
    """The error of distinct rows whose k-th neighbour distance is 0 in the working precision: the
    differences underflow (a tiny scale) or vanish after rounding (a large offset); float64 is advised
    only when the search ran in float32."""
    which = "a nearest-neighbour" if k == 1 else f"a k-th-neighbour (k = {k})"
    advice = "rescale the data (e.g. standardize the columns)"
    if dtype == "float32":
        advice += " or use dtype float64"
    return ComputationError(
        f"{where_prefix(source)}{count:,} of {n:,} distinct rows have {which} distance of 0 in {dtype}: "
        f"their differences underflow or vanish after rounding at this scale; {advice}")


def distinct_rows(data: np.ndarray) -> tuple[np.ndarray, int]:
    """Drop exact duplicate rows (kNN distance 0, log 0), keeping one copy each, with a
    :class:`~dsecli.errors.DataQualityWarning`; returns (distinct rows, number dropped)."""
    n_in = data.shape[0]
    distinct = np.unique(data, axis=0)
    n_dup = n_in - distinct.shape[0]
    if not n_dup:
        return data, 0
    warnings.warn(
        f"{n_dup} of {n_in} rows are exact duplicates (kNN distance 0, log 0); they were dropped before the "
        f"neighbour search and the entropy is that of the {distinct.shape[0]} distinct rows",
        DataQualityWarning,
        stacklevel=3,
    )
    return distinct, n_dup


@public_method("knn")
def kozachenko_leonenko_entropy(
    rows: Prepared,
    call: Call,
    *,
    k: int = 3,
    metric: str = "euclidean",
    neighbor_method: str = "auto",
) -> Measured:
    """Differential entropy by the Kozachenko-Leonenko k-nearest-neighbour estimator.

    .. math::

        \\hat H = \\psi(N) - \\psi(k) + \\log V_D + \\frac{D}{N} \\sum_{i=1}^N \\log r_i \\quad\\text{(nats)}

    r_i is the distance from x_i to its k-th nearest other row, V_D the volume of the unit ball
    of the metric: pi^(D/2) / Gamma(D/2 + 1) (Euclidean) or 2^D (max-norm). The result is
    divided by log(base). A differential entropy: it can be negative and changes by
    D log(c) when the data are scaled by c.

    Parameters
    ----------
    x : array-like, shape (N, D), a tensor, a lazy source or :class:`~dsecli.inputs.prepare.Prepared`
        (trusted as it is; see :func:`dsecli.inputs.prepare.prepare_rows`)
    k : int >= 1
        Neighbour order (typical 3); needs k <= N' - 1 with N' the number of distinct rows.
    metric : {"euclidean", "max", "manhattan"}
    neighbor_method : {"auto", "brute", "tree"}
        Neighbour search (:mod:`dsecli.estimators.neighbors`): "auto" uses a k-d tree on CPU for
        D <= 15, blocked brute force in torch otherwise. Reported in ``params``.
    max_n, seed, sampler, flatten, drop_nonfinite
        Row selection and validation as for :func:`dsecli.diffusion_spectral_entropy`.
    device : {"auto", "cpu", "cuda", "cuda:N"} or None
        Where the brute-force search runs (None: "auto", or a Prepared ``x``'s device).
    dtype : {"float64", "float32"} or None
        Precision of the brute-force search (the tree works in float64); None: float64, or a
        Prepared ``x``'s dtype.
    base : float
        Logarithm base (2: bits).

    Returns
    -------
    EntropyResult
        ``params`` has k, metric, the neighbour method used, the duplicate rule;
        ``extra["n_duplicates"]`` the number of rows dropped as exact duplicates.

    Notes
    -----
    Duplicate rows give r_i = 0 and log 0. Rule: exact duplicate rows (in the working
    precision) are dropped before the search, keeping one copy each, and N becomes the number
    of distinct rows; the count is reported in ``extra["n_duplicates"]`` and a
    :class:`~dsecli.errors.DataQualityWarning` is raised. (A distribution with atoms has no
    finite differential entropy; the estimate describes the distinct points.)

    References
    ----------
    L. F. Kozachenko, N. N. Leonenko, "Sample estimate of the entropy of a random vector",
    Problems Inform. Transmission 23 (1987) 95-101. A. Kraskov, H. Stoegbauer, P. Grassberger,
    Phys. Rev. E 69, 066138 (2004), eq. (20).

    Examples
    --------
    >>> import numpy as np
    >>> z = np.random.default_rng(0).normal(size=(4000, 2))
    >>> h = kozachenko_leonenko_entropy(z, device="cpu").value
    >>> bool(abs(h - np.log2(2 * np.pi * np.e)) < 0.1)  # closed form 0.5 log2((2 pi e)^2)
    True
    """
    k = check_positive_int(k, "k")
    check_choice(metric, "metric", METRICS)
    check_choice(neighbor_method, "neighbor_method", NEIGHBOR_METHODS)
    device, dt = rows.device, rows.working_dtype("float64")  # resolved once, for every step below
    data = host_array(rows.data, np.float64)
    if dtype_name(dt) == "float32":
        data = data.astype(np.float32)
    n_in, d = data.shape
    data, n_dup = distinct_rows(data)
    n = data.shape[0]
    if k > n - 1:
        raise InputError(f"{where_prefix(rows.source)}`k` must be <= N - 1 = {n - 1} (distinct rows); got {k}")
    nb = knn_distances(data, k, metric=metric, method=neighbor_method, device=device, dtype=dt)
    r = nb.distances[:, k - 1]
    if np.any(r <= 0):
        raise zero_distance_error(int(np.sum(r <= 0)), n, k, source=rows.source, dtype=nb.detail["dtype"])
    from scipy.special import digamma

    h_nats = float(digamma(n) - digamma(k) + log_unit_ball_volume(d, metric) + d * np.mean(np.log(r)))
    params = {
        "k": k, "metric": metric, "neighbor_method": nb.method, "neighbor_method_requested": neighbor_method,
        "duplicates": DUPLICATE_RULE, "device": nb.detail["device"], "dtype": nb.detail["dtype"], "n_features": int(d),
    }
    if "block_rows" in nb.detail:
        params["block_rows"] = nb.detail["block_rows"]
    return Measured(call.from_nats(h_nats), params,
                    {"n_duplicates": n_dup, "n_distinct": n, "value_nats": h_nats, **units_dependent_fields()})
