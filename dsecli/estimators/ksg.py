"""KSG mutual information (Kraskov et al. 2004) and Ross's continuous-discrete variant ("ksg")."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from dsecli.device import dtype_name
from dsecli.edge import Call, Measured, public_method
from dsecli.errors import (
    DataQualityWarning,
    InputError,
    check_choice,
    check_finite_number,
    check_positive_int,
    where_prefix,
)
from dsecli.estimators.common import (
    as_matrix,
    duplicate_count,
    standardize_columns,
)
from dsecli.estimators.neighbors import METRICS, NEIGHBOR_METHODS, ksg_counts, ross_counts
from dsecli.inputs.prepare import Prepared
from dsecli.inputs.reference import REF_KINDS
from dsecli.results import ceiling_fields, reference_ceiling

__all__ = ["ksg_mutual_information", "add_jitter", "resolve_ksg_norms", "DEFAULT_JITTER",
           "KSG_DEFAULTS"]

# Relative jitter by working precision: far below any real distance, but a few ulps above rounding.
DEFAULT_JITTER = {"float64": 1e-10, "float32": 1e-6}


# Defaults per kind of reference. Continuous Y: per-variable norms and standardisation, chosen by
# measurement on bmi-style tasks (benchmarks/accuracy.py --section ksg); labels (Ross): as before.
KSG_DEFAULTS = {
    "continuous": {"metric": "euclidean", "standardize": True},
    "labels": {"metric": "max", "standardize": False},
}


def resolve_ksg_norms(
    metric: str | None, metric_y: str | None, standardize: bool | None
) -> tuple[dict[str, str], str, dict[str, bool]]:
    """Validate the norm settings and fill the defaults of :data:`KSG_DEFAULTS`.

    Returns (metric by reference kind, metric of Y, standardize by reference kind); an explicit
    ``metric``/``standardize`` applies to both kinds, ``metric_y`` (continuous Y only) defaults
    to the metric of X.
    """
    if metric is not None:
        check_choice(metric, "metric", METRICS)
    if metric_y is not None:
        check_choice(metric_y, "metric_y", METRICS)
    if standardize is not None and not isinstance(standardize, (bool, np.bool_)):
        raise InputError(f"`standardize` must be true or false; got {standardize!r}")
    metrics = {kind: metric or d["metric"] for kind, d in KSG_DEFAULTS.items()}
    scale = {kind: bool(d["standardize"] if standardize is None else standardize) for kind, d in KSG_DEFAULTS.items()}
    return metrics, metric_y or metrics["continuous"], scale


def add_jitter(a: np.ndarray, amount: float, rng: np.random.Generator) -> np.ndarray:
    """``a + amount * s_j * N(0, 1)`` per column j, with s_j the column's standard deviation.

    A constant column uses its largest absolute value as the scale (1 if it is all zeros), so the
    jitter is relative to the data whatever their units.
    """
    if amount == 0:
        return a
    scale = a.std(axis=0)
    fallback = np.abs(a).max(axis=0)
    scale = np.where(scale > 0, scale, np.where(fallback > 0, fallback, 1.0))
    return a + amount * scale * rng.standard_normal(a.shape)


@public_method("ksg", quantity="mi")
def ksg_mutual_information(
    rows: Prepared,
    call: Call,
    *,
    k: int = 3,
    metric: str | None = None,
    metric_y: str | None = None,
    standardize: bool | None = None,
    neighbor_method: str = "auto",
    jitter: float | None = None,
    ref_kind: str = "auto",
) -> Measured:
    """Mutual information by k-nearest neighbours: KSG estimator 1, or Ross's for labels.

    Continuous Y (any dimension; X and Y are used jointly, not feature by feature):

    .. math::

        \\hat I = \\psi(k) + \\psi(N) - \\big\\langle \\psi(n_x(i) + 1) + \\psi(n_y(i) + 1) \\big\\rangle

    eps_i is the distance from (x_i, y_i) to its k-th nearest other point under the joint norm
    max(||x_i - x_j||_X, ||y_i - y_j||_Y), each variable measured by its own norm (``metric`` for
    X, ``metric_y`` for Y); n_x(i), n_y(i) count the other points strictly closer than eps_i in X
    and in Y (Kraskov, Stoegbauer, Grassberger 2004, eq. 8; the maximum of the two variables'
    norms is the paper's joint norm and bmi's). With both norms "max" the joint norm is the
    max-norm of the concatenated coordinates (scikit-learn's choice).

    Discrete Y (labels: integer/boolean/string column under ``ref_kind="auto"``, or
    ``ref_kind="discrete"``), Ross 2014:

    .. math::

        \\hat I = \\psi(N) + \\langle \\psi(k_i) \\rangle - \\langle \\psi(N_{y_i}) \\rangle - \\langle \\psi(m_i) \\rangle

    d_i is the distance from x_i to its k_i-th nearest neighbour within its class
    (k_i = min(k, N_{y_i} - 1)), m_i = 1 + number of points of any class strictly closer than d_i.
    Rows of classes with a single member carry no neighbour information and are left out (as in
    scikit-learn); their number is reported.

    Parameters
    ----------
    x : array-like, shape (N, D), a tensor, a lazy source or :class:`~dsecli.inputs.prepare.Prepared`
        (trusted as it is; see :func:`dsecli.inputs.prepare.prepare_rows`)
    y : array-like, shape (N,) or (N, D'), a lazy source, or None when ``x`` is a Prepared holding
        its reference
    k : int >= 1
        Neighbour order (3 as NPEET and scikit-learn).
    metric : {"euclidean", "max", "manhattan"} or None
        Norm of X (and of Y unless ``metric_y`` is given). None: "euclidean" for continuous Y,
        "max" for labels (Ross's estimator as before).
    metric_y : {"euclidean", "max", "manhattan"} or None
        Norm of a continuous Y; None: the norm of X.
    standardize : bool or None
        Z-score every column of X and Y (mean 0, population std 1; constant columns only
        centred) before the search. None: True for continuous Y, False for labels. MI is
        invariant to this map, the estimate is not; the defaults (Euclidean norms of
        standardised variables) were the most accurate on bmi-style tasks up to 50 + 50
        dimensions (benchmarks/accuracy.py, section ksg).
    neighbor_method : {"auto", "brute", "tree"}
        Neighbour search (:mod:`dsecli.estimators.neighbors`); "tree" needs both norms "max"
        for continuous Y (other norm pairs run by blocked brute force).
    jitter : float or None
        Relative size of the tie-breaking noise (see Notes); None: 1e-10 in float64, 1e-6 in
        float32; 0 turns it off.
    ref_kind : {"auto", "discrete", "continuous"}
        Whether Y is labels or continuous ("continuous" uses the values as they are).
    max_n, seed, sampler, flatten, drop_nonfinite
        Row selection/validation as for :func:`dsecli.diffusion_spectral_mutual_information`;
        ``seed`` also seeds the jitter.
    device, dtype
        Where and in what precision the brute-force search runs (None: "auto" and float64, or a
        Prepared ``x``'s).
    base : float
        Logarithm base (2: bits).

    Returns
    -------
    MIResult
        ``params`` records k, the norms, standardisation, jitter, estimator ("ksg1" or "ross"), neighbour method;
        ``extra`` the value in nats, duplicate counts and mean neighbour counts.

    Notes
    -----
    *Ties.* Equal coordinates make "strictly closer" ambiguous and zero radii. Before the search
    every coordinate gets seeded Gaussian noise of ``jitter`` times its column's standard
    deviation (as scikit-learn adds 1e-10-scale noise, but relative to the data's scale here).
    Exact duplicate rows are counted and reported with a
    :class:`~dsecli.errors.DataQualityWarning`, since the jitter then decides their order.

    *Negative values* are reported as computed, never clipped to 0 (scikit-learn clips): the
    estimator is nearly unbiased at independence and averaging clipped values would be biased
    upwards. Small negative values mean "no detectable dependence".

    Known weakness: a strong bias towards 0 as the dimension grows.

    References
    ----------
    A. Kraskov, H. Stoegbauer, P. Grassberger, "Estimating mutual information", Phys. Rev. E 69,
    066138 (2004), eq. (8). B. C. Ross, "Mutual information between discrete and continuous data
    sets", PLoS ONE 9(2): e87357 (2014), eq. (2).

    Examples
    --------
    Bivariate Gaussian with correlation 0.8: I = -0.5 log2(1 - 0.64) = 0.737 bits.

    >>> import numpy as np
    >>> z = np.random.default_rng(0).multivariate_normal([0, 0], [[1, .8], [.8, 1]], size=4000)
    >>> i = ksg_mutual_information(z[:, :1], z[:, 1], device="cpu").value
    >>> bool(abs(i - 0.737) < 0.05)
    True
    """
    k = check_positive_int(k, "k")
    metric, metric_y, standardize = resolve_ksg_norms(metric, metric_y, standardize)
    check_choice(neighbor_method, "neighbor_method", NEIGHBOR_METHODS)
    check_choice(ref_kind, "ref_kind", REF_KINDS)
    base, seed = call.base, call.seed
    if jitter is not None:  # checked before the data are read; the default depends on the dtype
        jitter = check_finite_number(jitter, "jitter")
        if jitter < 0:
            raise InputError(f"`jitter` must be >= 0; got {jitter!r}")
    device, dt = rows.device, rows.working_dtype("float64")  # resolved once, for every step below
    if jitter is None:
        jitter = DEFAULT_JITTER[dtype_name(dt)]
    xa = as_matrix(rows.data)
    rng = np.random.default_rng(seed)
    from scipy.special import digamma

    extra: dict[str, Any] = {}
    reading = rows.reference_reading(ref_kind=ref_kind, seed=seed)
    classes = reading.classes() if reading.discrete else None
    if classes is None:
        ya = reading.values
        estimator = "ksg1"
        n = xa.shape[0]
        if k > n - 1:
            raise InputError(f"{where_prefix(rows.source)}`k` must be <= N - 1 = {n - 1}; got {k}")
        dup = duplicate_count(np.hstack([xa, ya]))
        extra.update({"n_duplicates_x": duplicate_count(xa), "n_duplicates_y": duplicate_count(ya),
                      "n_duplicates_joint": dup})
        _warn_ties(extra["n_duplicates_y"], n, jitter)
        xj = add_jitter(standardize_columns(xa) if standardize["continuous"] else xa, jitter, rng)
        yj = add_jitter(standardize_columns(ya) if standardize["continuous"] else ya, jitter, rng)
        res = ksg_counts(xj, yj, k, metric=metric["continuous"], metric_y=metric_y, method=neighbor_method,
                         device=device, dtype=dt)
        nx, ny = res.counts["nx"], res.counts["ny"]
        mi_nats = float(digamma(k) + digamma(n) - np.mean(digamma(nx + 1) + digamma(ny + 1)))
        extra.update({"mean_nx": float(nx.mean()), "mean_ny": float(ny.mean())})
        n_used_est = n
        ref_info: dict[str, Any] = {"reference": "continuous", "n_features_y": int(ya.shape[1]),
                                    "metric": metric["continuous"], "metric_y": metric_y,
                                    "joint_norm": "max of the two variables' norms",
                                    "standardize": standardize["continuous"]}
    else:
        estimator = "ross"
        codes = classes.codes
        sizes = np.bincount(codes)
        keep = sizes[codes] > 1
        n_single = int(np.sum(~keep))
        if n_single:
            warnings.warn(
                f"{n_single} row(s) are the only member of their class and were left out of the "
                "continuous-discrete estimate",
                DataQualityWarning,
                stacklevel=2,
            )
        xa_k, codes_k = xa[keep], np.unique(codes[keep], return_inverse=True)[1].ravel()
        n = int(xa_k.shape[0])
        if n < 2:
            raise InputError("the continuous-discrete estimator needs a class with at least 2 rows")
        dups = duplicate_count(np.hstack([xa_k, codes_k[:, None].astype(np.float64)]))
        extra.update({"n_singleton_rows": n_single, "n_duplicates_x": duplicate_count(xa_k),
                      "n_duplicates_within_class": dups})
        xj = add_jitter(standardize_columns(xa_k) if standardize["labels"] else xa_k, jitter, rng)
        res = ross_counts(xj, codes_k, k, metric=metric["labels"], method=neighbor_method, device=device, dtype=dt)
        k_i, m = res.counts["k"], res.counts["m"]
        n_y = np.bincount(codes_k)[codes_k]
        mi_nats = float(digamma(n) + np.mean(digamma(k_i)) - np.mean(digamma(n_y)) - np.mean(digamma(m)))
        extra.update({"mean_m": float(m.mean())})
        n_used_est = n
        ref_info = {"reference": "labels", "n_classes": len(classes.names), "metric": metric["labels"],
                    "standardize": standardize["labels"]}
    extra.update({"value_nats": mi_nats, "n_estimate_rows": n_used_est})
    params = {
        "k": k, "estimator": estimator, "jitter": jitter, "negative_values": "reported as computed",
        "neighbor_method": res.method, "neighbor_method_requested": neighbor_method, "ref_kind": ref_kind, **ref_info,
        "reference_reading": reading.params(),
        "device": res.detail["device"], "dtype": res.detail["dtype"],
        "n_features": int(xa.shape[1]),
    }
    if "block_rows" in res.detail:
        params["block_rows"] = res.detail["block_rows"]
    value = call.from_nats(mi_nats)
    if classes is None:
        extra.update(ceiling_fields(value, None, "none: continuous reference (I(X;Y) has no finite bound)"))
    else:
        extra.update(reference_ceiling(value, np.bincount(codes_k), base))
    return Measured(value, params, extra)


def _warn_ties(dup_y: int, n: int, jitter: float) -> None:
    # duplicate rows of X were reported once, when the rows were prepared; those of a continuous Y here
    if not dup_y:
        return
    rule = f"ties broken by relative jitter {jitter:g}" if jitter > 0 else "no jitter: zero radii bias the estimate"
    warnings.warn(f"{dup_y} duplicate rows in Y (of {n}); {rule}", DataQualityWarning, stacklevel=3)
