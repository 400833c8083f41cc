"""The diffusion spectrum of a point cloud, DSE as a function of the diffusion time t, and automatic t.

One eigendecomposition gives DSE at every t: with the eigenvalues lambda_i of the diffusion
operator (docs/method.md#diffusion-time),

.. math::

    \\mathrm{DSE}(t) = -\\sum_i \\alpha_i(t) \\log \\alpha_i(t), \\qquad
    \\alpha_i(t) = |\\lambda_i|^t / \\sum_j |\\lambda_j|^t .

DSE(t) never increases with t (d DSE / dt = -t Var_alpha(log|lambda|) in nats), and for k
well-separated clusters it settles near log2 k. Two rules pick a t from the spectrum:

``rule-of-thumb``
    The published implementation's docstring (``dse-dsmi``, ``diffusion_spectral_entropy``,
    argument ``t``): "after powering eigenvalues to t, there should be approximately 1 percent
    of eigenvalues that remain larger than 0.01". Implemented as: the smallest integer t >= 1
    with #{i : |lambda_i|^t > 0.01} <= q, q = max(1, round(0.01 N)), counting all N
    eigenvalues including the trivial lambda = 1 (dsecli keeps it, as dse-dsmi 1.1 does).
    Solved in closed form in log space: with mu the (q+1)-th largest |lambda|,
    t = ceil(log 0.01 / log mu). Undefined (None) when more than q eigenvalues have modulus 1
    (more than 1% of the rows in separate components or duplicated).
``knee``
    The offline Kneedle rule (Satopaa, Albrecht, Irwin, Raghavan, "Finding a 'kneedle' in a
    haystack", ICDCS Workshops 2011) on the curve DSE(t) against log t, t = 1..t_max (default
    1000): both axes scaled to [0, 1], the knee is the t farthest below the chord joining the
    curve's end points. On log t because real spectra have no single time scale: with linear t
    the knee of the digits sample grows with t_max (13, 20, 35, 68, 124 for t_max = 50, 100, 300,
    1000, 3000), on log t it barely moves (15, 18, 23, 29, 32). For an exponential approach to a
    plateau, DSE(t) - DSE_inf ~ exp(-t / tau), the knee solves (t / tau) exp(-t / tau) = 1 / ln t_max,
    t = 3 to 3.5 tau for t_max = 100 to 1000, where about 3-6% of the fall is still to come: the
    start of the plateau. ``still_falling`` flags a curve that has not flattened by t_max.

Powers are never formed directly: :func:`~dsecli.diffusion.spectral.spectral_entropy` scales by the
largest modulus first, and the rule-of-thumb works with t log|lambda|, so no t overflows.

Reference: Liao, Liu et al., arXiv:2312.04823 (DSE); the spectrum is that of
:func:`dsecli.measures.dse.diffusion_spectral_entropy`, computed by it.
"""

from __future__ import annotations

import hashlib
import math
import re
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from dsecli.diffusion.spectral import spectral_entropy
from dsecli.errors import CollectWarnings, DseWarning, InputError, check_positive, check_positive_int
from dsecli.inputs.sampling import DEFAULT_MAX_N
from dsecli.results import json_safe, log_n_ceiling, units_for_base

__all__ = [
    "DEFAULT_T",
    "DEFAULT_T_MAX",
    "Spectrum",
    "SpectrumScan",
    "TChoice",
    "parse_t_values",
    "rows_sha256",
    "diffusion_spectrum",
    "dse_versus_t",
    "rule_of_thumb_t",
    "knee_t",
    "kneedle",
    "spectrum_scan",
]

DEFAULT_T = "1:10,20,50,100"
DEFAULT_T_MAX = 1000
MAX_T_VALUES = 100_000
RULE_THRESHOLD = 0.01
RULE_FRACTION = 0.01
# the knee is flagged as unreliable when DSE(t) falls over the last tenth of the log-t range at more
# than this fraction of its mean rate
STILL_FALLING = 0.2
# beyond this t the rule-of-thumb is reported as not applicable (eigenvalues within rounding of 1)
RULE_T_LIMIT = 1_000_000


# ----------------------------------------------------------------------------------------------- t values


_INT = r"\s*(\d+)\s*"
_RANGE = re.compile(rf"^{_INT}:{_INT}(?::{_INT})?$")
_SINGLE = re.compile(rf"^{_INT}$")


def parse_t_values(spec: str | int | Sequence[int]) -> tuple[int, ...]:
    """Parse diffusion times: ``"1,2,5,10"``, ranges ``"1:50"`` (1..50) and ``"1:50:5"`` (1, 6, ..., 46).

    Items are separated by commas and may be mixed (``"1:10,20,50"``). Ranges include their
    end when the step reaches it. Returns the sorted distinct values, each an integer >= 1.

    >>> parse_t_values("1:3,10,2")
    (1, 2, 3, 10)
    >>> parse_t_values("1:50:5")[-2:]
    (41, 46)
    """
    if isinstance(spec, (int, np.integer)) and not isinstance(spec, bool):
        return (check_positive_int(spec, "t"),)
    if not isinstance(spec, str):
        values = [check_positive_int(v, "t") for v in spec]
        if not values:
            raise InputError("`t` is empty; give values such as 1,2,5,10 or a range 1:50")
        return tuple(sorted(set(values)))
    out: set[int] = set()
    usage = "give integers >= 1 such as 1,2,5,10, a range 1:50, or 1:50:5"
    for item in spec.split(","):
        if not item.strip():
            continue
        if m := _SINGLE.match(item):
            v = int(m.group(1))
            if v < 1:
                raise InputError(f"`t` values must be integers >= 1; got {item.strip()!r}")
            out.add(v)
        elif m := _RANGE.match(item):
            start, stop = int(m.group(1)), int(m.group(2))
            step = int(m.group(3)) if m.group(3) is not None else 1
            if start < 1 or step < 1 or stop < start:
                raise InputError(f"`t` range {item.strip()!r} must be start:stop[:step] with 1 <= start <= stop "
                                 "and step >= 1")
            if (stop - start) // step + 1 + len(out) > MAX_T_VALUES:
                raise InputError(f"`t` asks for more than {MAX_T_VALUES:,} values; got {spec.strip()!r}")
            out.update(range(start, stop + 1, step))
        else:
            raise InputError(f"`t` must be a list or range of integers; {usage}; got {item.strip()!r}")
    if not out:
        raise InputError(f"`t` is empty; {usage}")
    return tuple(sorted(out))


# ------------------------------------------------------------------------------------------ the spectrum


def rows_sha256(data: Any) -> str:
    """SHA-256 of the rows: their shape (as text) and their float64 bytes, C order, little-endian."""
    arr = data.detach().cpu().numpy() if hasattr(data, "detach") else np.asarray(data)
    arr = np.ascontiguousarray(arr, dtype="<f8")
    h = hashlib.sha256()
    h.update(("rows-float64-le:" + "x".join(map(str, arr.shape)) + ";").encode("ascii"))
    h.update(arr)  # the array's own buffer (C-contiguous): the bytes of tobytes() without a copy
    return h.hexdigest()


@dataclass(frozen=True)
class Spectrum:
    """The diffusion operator's eigenvalues of one set of rows, with everything needed to reproduce them.

    Attributes
    ----------
    eigenvalues : numpy.ndarray, shape (N,)
        float64, descending (signed: tiny negative values are rounding).
    n_used, n_total : int
        Rows decomposed, rows in the input.
    params : dict
        The numeric sigma and its rule, max_n, seed, sampler, solver, dtype, the device that
        computed it, n_features.
    rows_sha256 : str
        :func:`rows_sha256` of the rows used.
    cache : dict
        ``hit`` (bool), ``enabled``, ``dir``, ``file``, ``key``.
    elapsed_s : float
        Seconds of this call (a cache hit is fast); ``params["eigen_elapsed_s"]`` keeps the
        time the decomposition took when it was computed.
    warnings : tuple of str
    """

    eigenvalues: np.ndarray
    n_used: int
    n_total: int
    params: dict[str, Any]
    rows_sha256: str
    cache: dict[str, Any]
    elapsed_s: float
    warnings: tuple[str, ...] = ()

    @property
    def subsampled(self) -> bool:
        return self.n_used < self.n_total


def _key_fields(digest: str, shape: tuple[int, ...], sigma: float, *, dtype: str, solver: str) -> dict[str, Any]:
    # everything that changes the eigenvalues beyond rounding; the device only changes rounding
    return {
        "operator": "dse-symmetric-diffusion-gaussian",
        "rows_sha256": digest,
        "shape": list(shape),
        "sigma": float(sigma).hex(),
        "dtype": dtype,
        "solver": solver,
    }


def diffusion_spectrum(
    x: Any,
    *,
    sigma: float | str = "median",
    max_n: int | None = DEFAULT_MAX_N,
    seed: int = 0,
    sampler: str = "numpy",
    device: Any = None,
    dtype: Any = None,
    solver: str = "exact",
    flatten: bool = False,
    drop_nonfinite: bool = False,
    cache: bool | str | Any = False,
) -> Spectrum:
    """Eigenvalues of the diffusion operator of the rows of ``x``, from the cache when possible.

    The eigenvalues come from the primitive :func:`dsecli.diffusion.eigen.diffusion_eigenvalues`
    that :func:`dsecli.measures.dse.diffusion_spectral_entropy` uses too, with sigma resolved by the same
    rule, so DSE(t) from them equals that function's value at every t.

    Parameters
    ----------
    x : array-like (N, D), tensor, lazy file source, or :class:`~dsecli.inputs.prepare.Prepared`
    sigma, max_n, seed, sampler, device, dtype, solver, flatten, drop_nonfinite
        As for :func:`~dsecli.measures.dse.diffusion_spectral_entropy`. A rule for sigma ("median",
        "sqrt-d") is resolved to a number first; the number is part of the cache key.
    cache : bool or path
        False: no cache. True: the default directory (:func:`dsecli.diffusion.cache.default_cache_dir`).
        A path: that directory. The key is the SHA-256 of the rows used (after subsampling and
        validation) and their shape, the numeric sigma, dtype and solver.

    Returns
    -------
    Spectrum
    """
    from dsecli.device import dtype_name
    from dsecli.diffusion.cache import SpectrumCache, cache_key, resolve_cache_dir
    from dsecli.diffusion.eigen import diffusion_eigenvalues
    from dsecli.diffusion.plan import require_entropy_plan
    from dsecli.edge import check_call
    from dsecli.inputs.prepare import prepare_rows
    from dsecli.measures.dse import kept_sq_dists, sigma_for

    start = time.perf_counter()
    call = check_call(seed=seed, max_n=max_n, sampler=sampler)
    rows = None
    try:
        with CollectWarnings() as notes:
            rows = prepare_rows(x, max_n=max_n, seed=call.seed, sampler=sampler, flatten=flatten,
                                drop_nonfinite=drop_nonfinite, device=device, dtype=dtype)
            xt = rows.tensor()
            digest = rows_sha256(rows.data)
            plan = require_entropy_plan(rows.n_used, xt, solver=solver, t=1, return_eigenvalues=True)
            choice, sigma_params = sigma_for(rows, call, xt, sigma)
            fields = _key_fields(digest, rows.data.shape, choice.value, dtype=dtype_name(xt.dtype), solver=solver)
            directory = resolve_cache_dir(cache)
            store = SpectrumCache(directory) if directory is not None else None
            hit = store.load(fields) if store is not None else None
            if hit is not None:
                eig = hit.eigenvalues
                stored = dict(hit.meta.get("params") or {})
                params = {**stored, **sigma_params, "max_n": max_n, "seed": call.seed, "sampler": sampler}
                path = hit.path
            else:
                lam, timings = diffusion_eigenvalues(xt, choice.value, sq_dists=kept_sq_dists(rows, xt))
                eig = np.sort(lam.detach().double().cpu().numpy())[::-1].copy()
                params = {**sigma_params, "solver": plan["solver"], "device": str(xt.device),
                          "dtype": dtype_name(xt.dtype), "n_features": int(xt.shape[1]), "max_n": max_n,
                          "seed": call.seed, "sampler": sampler, "eigen_elapsed_s": float(sum(timings.values()))}
                path = None
                if store is not None:
                    path = store.store(fields, eig, {"params": params, "n_used": rows.n_used, "n_total": rows.n_total,
                                                     "created_unix": time.time()})
    finally:
        if rows is not None:
            rows.end_call()  # the median rule's distances, kept for this call only

    cache_info = {
        "enabled": store is not None,
        "hit": hit is not None,
        "dir": str(directory) if directory is not None else None,
        "file": str(path) if path is not None else None,
        "key": cache_key(fields) if store is not None else None,
    }
    return Spectrum(
        eigenvalues=eig, n_used=rows.n_used, n_total=rows.n_total, params=params, rows_sha256=digest,
        cache=cache_info, elapsed_s=time.perf_counter() - start, warnings=tuple(notes),
    )


# ------------------------------------------------------------------------------------- DSE versus t


def _moduli(eigenvalues: Any) -> np.ndarray:
    lam = eigenvalues.detach().double().cpu().numpy() if hasattr(eigenvalues, "detach") else eigenvalues
    mod = np.abs(np.asarray(lam, dtype=np.float64)).ravel()
    if mod.size == 0 or not np.all(np.isfinite(mod)) or not mod.max() > 0:
        raise InputError("`eigenvalues` must be a non-empty finite spectrum with a nonzero value")
    return mod


def dse_versus_t(eigenvalues: Any, t_values: str | Sequence[int] | int, *, base: float = 2.0) -> np.ndarray:
    """DSE(t) for each t, from one spectrum (``spectral_entropy`` at each t: identical to the library's DSE).

    Parameters
    ----------
    eigenvalues : array, shape (N,)
    t_values : str or sequence of int
        As :func:`parse_t_values` reads them (kept in the given order for a sequence).
    base : float
        Logarithm base (2: bits).

    Returns
    -------
    numpy.ndarray of float64, one value per t.
    """
    base = check_positive(base, "base")
    ts = parse_t_values(t_values) if isinstance(t_values, str) else [check_positive_int(t, "t") for t in
                                                                     np.atleast_1d(t_values).tolist()]
    _moduli(eigenvalues)
    return np.array([spectral_entropy(eigenvalues, t=int(t), base=base) for t in ts], dtype=np.float64)


@dataclass(frozen=True)
class TChoice:
    """A diffusion time chosen by a rule: ``t`` (None when the rule does not apply), DSE at t, and why."""

    rule: str
    t: int | None
    value: float | None
    description: str
    detail: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return json_safe({"rule": self.rule, "t": self.t, "value": self.value, "description": self.description,
                          "detail": self.detail})


def rule_of_thumb_t(
    eigenvalues: Any, *, threshold: float = RULE_THRESHOLD, fraction: float = RULE_FRACTION
) -> tuple[int | None, dict[str, Any]]:
    """Smallest t with at most ``max(1, round(fraction N))`` eigenvalues of modulus^t above ``threshold``.

    Works with t log|lambda| (no powers are formed). Returns ``(t, detail)``; t is None when
    more than that many eigenvalues have modulus 1 (they never fall below the threshold).
    """
    threshold = float(threshold)
    if not 0 < threshold < 1:
        raise InputError(f"`threshold` must be in (0, 1); got {threshold!r}")
    fraction = float(fraction)
    if not 0 < fraction < 1:
        raise InputError(f"`fraction` must be in (0, 1); got {fraction!r}")
    mod = _moduli(eigenvalues)
    n = mod.size
    q = max(1, int(round(fraction * n)))
    # moduli relative to the largest, so a top eigenvalue of 1 + 1e-15 from rounding does not count as > 1
    logm = np.sort(np.log(mod / mod.max()))[::-1]
    log_thr = math.log(threshold)

    def above(t: int) -> int:
        return int(np.count_nonzero(t * logm > log_thr))

    detail = {"threshold": threshold, "fraction": fraction, "max_above": q, "n_eigenvalues": n}
    if q >= n:
        return 1, {**detail, "above_at_t": above(1)}
    mu_log = logm[q]  # the (q+1)-th largest log-modulus: it must fall to the threshold
    if not mu_log < 0:
        return None, {**detail, "reason": f"{int(np.count_nonzero(logm >= 0))} eigenvalues have modulus 1 "
                                          f"(more than {q}); they never fall below {threshold:g}"}
    t_float = log_thr / mu_log
    if t_float > RULE_T_LIMIT:
        return None, {**detail, "t_needed": t_float,
                      "reason": f"{q + 1} eigenvalues have |lambda| >= {math.exp(mu_log):.17g}, within rounding of 1 "
                                f"(more than {q}); it would need t = {t_float:.3g} > {RULE_T_LIMIT:g}"}
    t = max(1, math.ceil(t_float))
    while above(t) > q:  # guard against rounding in the division
        t += 1
    while t > 1 and above(t - 1) <= q:
        t -= 1
    return t, {**detail, "above_at_t": above(t)}


def kneedle(x: Sequence[float] | np.ndarray, y: Sequence[float] | np.ndarray) -> int | None:
    """Index of the knee of a decreasing curve (offline Kneedle, Satopaa et al. 2011).

    Both axes are scaled to [0, 1]; the knee is the point farthest below the chord that joins
    the first and last points. Returns None when no point lies below the chord (a straight or
    concave curve); returns 0 for a flat curve (already on its plateau).
    """
    xs = np.asarray(x, dtype=np.float64)
    ys = np.asarray(y, dtype=np.float64)
    if xs.ndim != 1 or xs.shape != ys.shape or xs.size < 1:
        raise InputError(f"`x` and `y` must be 1-d arrays of one length; got {xs.shape} and {ys.shape}")
    if xs.size < 3:
        return 0
    span_y = float(ys.max() - ys.min())
    if not span_y > 1e-12 * max(1.0, float(np.abs(ys).max())):
        return 0
    xn = (xs - xs[0]) / (xs[-1] - xs[0])
    yn = (ys - ys.min()) / span_y
    chord = yn[0] + (yn[-1] - yn[0]) * xn
    gap = chord - yn
    i = int(np.argmax(gap))
    return i if gap[i] > 1e-12 else None


def knee_t(
    eigenvalues: Any, *, t_max: int = DEFAULT_T_MAX, base: float = 2.0
) -> tuple[int | None, dict[str, Any]]:
    """The knee of DSE(t) against log t, t = 1..t_max (:func:`kneedle`); returns ``(t, detail)``.

    ``detail["still_falling"]`` is True when, on the log t axis, DSE(t) falls over the last tenth
    (t from t_max^0.9 to t_max) at more than 0.2 times its mean rate over 1..t_max: no plateau
    yet, and t_max should be raised.
    """
    t_max = _check_t_max(t_max)
    ts = np.arange(1, t_max + 1)
    h = dse_versus_t(eigenvalues, ts, base=base)
    return _knee_from_curve(ts, h)


def _check_t_max(t_max: Any) -> int:
    t_max = check_positive_int(t_max, "t_max", minimum=3)
    if t_max > MAX_T_VALUES:
        raise InputError(f"`t_max` must be <= {MAX_T_VALUES:,} (DSE is evaluated at every t up to it); got {t_max}")
    return t_max


def _knee_from_curve(ts: np.ndarray, h: np.ndarray) -> tuple[int | None, dict[str, Any]]:
    t_max = int(ts[-1])
    fall = float(h[0] - h[-1])
    # the last tenth of the log-t axis, and its fall relative to a straight line in log t
    tail_from = min(max(1, math.ceil(t_max**0.9)), t_max - 1)
    tail_fall = float(h[ts == tail_from][0] - h[-1])
    ratio = (tail_fall / math.log(t_max / tail_from)) / (fall / math.log(t_max)) if fall > 0 else 0.0
    still = bool(ratio > STILL_FALLING)
    detail = {"t_max": t_max, "axis": "log t", "total_fall": fall, "tail_from": tail_from,
              "tail_fall": tail_fall, "tail_slope_ratio": ratio, "still_falling": still}
    i = kneedle(np.log(ts.astype(np.float64)), h)
    if i is None:
        return None, {**detail, "reason": "DSE(t) has no point below its chord (no knee)"}
    return int(ts[i]), detail


# ------------------------------------------------------------------------------------------ the scan


@dataclass(frozen=True)
class SpectrumScan:
    """A spectrum, DSE at the requested t, the dense curve DSE(1..t_max) and the automatic t.

    ``to_dict()`` is strict-JSON-safe. ``dse`` lists ``{"t", "value"}`` for the requested t;
    ``curve`` holds DSE(t) for t = 1..max(t_max, the largest t shown, the rule-of-thumb t), the
    last two only up to 10 t_max (for plots);
    ``auto_t`` maps rule name to :class:`TChoice`.
    """

    spectrum: Spectrum
    t_values: tuple[int, ...]
    dse_values: np.ndarray
    curve_t: np.ndarray
    curve_dse: np.ndarray
    auto_t: dict[str, TChoice]
    units: str
    base: float
    elapsed_s: float
    warnings: tuple[str, ...] = ()
    method = "dse"
    quantity = "entropy"

    @property
    def eigenvalues(self) -> np.ndarray:
        return self.spectrum.eigenvalues

    @property
    def n_used(self) -> int:
        return self.spectrum.n_used

    @property
    def n_total(self) -> int:
        return self.spectrum.n_total

    @property
    def params(self) -> dict[str, Any]:
        return self.spectrum.params

    def to_dict(self, *, include_eigenvalues: bool = True, include_curve: bool = True) -> dict[str, Any]:
        s = self.spectrum
        out: dict[str, Any] = {
            "method": self.method,
            "quantity": self.quantity,
            "units": self.units,
            "base": self.base,
            "n_used": s.n_used,
            "n_total": s.n_total,
            "subsampled": s.subsampled,
            "params": s.params,
            "rows_sha256": s.rows_sha256,
            "cache": s.cache,
            "dse": [{"t": int(t), "value": float(v), **log_n_ceiling(float(v), s.n_used, self.base)}
                    for t, v in zip(self.t_values, self.dse_values)],
            "auto_t": {k: c.to_dict() for k, c in self.auto_t.items()},
            "spectrum_summary": spectrum_summary(s.eigenvalues),
            "elapsed_s": self.elapsed_s,
            "spectrum_elapsed_s": s.elapsed_s,
            "warnings": list(self.warnings),
        }
        if include_curve:
            out["curve"] = {"t": self.curve_t, "value": self.curve_dse}
        if include_eigenvalues:
            out["eigenvalues"] = s.eigenvalues
        return json_safe(out)


def spectrum_summary(eigenvalues: np.ndarray) -> dict[str, Any]:
    """A few numbers that describe a spectrum: size, largest, second largest, counts above 0.5 / 0.1 / 0.01."""
    mod = np.sort(np.abs(np.asarray(eigenvalues, dtype=np.float64)))[::-1]
    return {
        "n": int(mod.size),
        "largest": float(mod[0]) if mod.size else None,
        "second": float(mod[1]) if mod.size > 1 else None,
        "n_negative": int(np.count_nonzero(np.asarray(eigenvalues) < 0)),
        "above_0.5": int(np.count_nonzero(mod > 0.5)),
        "above_0.1": int(np.count_nonzero(mod > 0.1)),
        "above_0.01": int(np.count_nonzero(mod > 0.01)),
    }


def choose_t(eigenvalues: Any, *, t_max: int = DEFAULT_T_MAX, base: float = 2.0,
             curve: tuple[np.ndarray, np.ndarray] | None = None) -> dict[str, TChoice]:
    """Both automatic rules (module docstring) as :class:`TChoice` objects, keyed ``rule_of_thumb`` and ``knee``."""
    t_rule, rule_detail = rule_of_thumb_t(eigenvalues)
    if curve is None:
        t_knee, knee_detail = knee_t(eigenvalues, t_max=t_max, base=base)
    else:
        ts, h = curve
        keep = ts <= t_max
        t_knee, knee_detail = _knee_from_curve(ts[keep], h[keep])

    def value_at(t: int | None) -> float | None:
        return None if t is None else spectral_entropy(eigenvalues, t=t, base=base)

    return {
        "rule_of_thumb": TChoice(
            "rule-of-thumb", t_rule, value_at(t_rule),
            f"smallest t with at most {rule_detail['max_above']} of {rule_detail['n_eigenvalues']} eigenvalues "
            f"(about {RULE_FRACTION:.0%}) above {RULE_THRESHOLD:g} after powering (published docstring rule)",
            rule_detail,
        ),
        "knee": TChoice(
            "knee", t_knee, value_at(t_knee),
            f"Kneedle knee of DSE(t) against log t over t = 1..{knee_detail['t_max']} (start of the plateau)",
            knee_detail,
        ),
    }


def spectrum_scan(
    x: Any,
    *,
    t: str | Sequence[int] | int = DEFAULT_T,
    t_max: int = DEFAULT_T_MAX,
    sigma: float | str = "median",
    max_n: int | None = DEFAULT_MAX_N,
    seed: int = 0,
    sampler: str = "numpy",
    device: Any = None,
    dtype: Any = None,
    solver: str = "exact",
    base: float = 2.0,
    flatten: bool = False,
    drop_nonfinite: bool = False,
    cache: bool | str | Any = False,
) -> SpectrumScan:
    """Decompose once (or read the cache), then DSE at each ``t`` and the automatic t.

    Parameters
    ----------
    x : array-like (N, D), tensor or lazy file source
    t : str or sequence of int
        Diffusion times to report (:func:`parse_t_values`: ``"1,2,5"``, ``"1:50"``, ``"1:50:5"``).
    t_max : int >= 3
        The knee is searched on t = 1..t_max (default 1000).
    base : float
        Logarithm base of DSE (2: bits).
    sigma, max_n, seed, sampler, device, dtype, solver, flatten, drop_nonfinite, cache
        As for :func:`diffusion_spectrum`.

    Returns
    -------
    SpectrumScan

    Examples
    --------
    Four far-apart tight pairs of points: DSE(t) falls to log2 4 = 2 bits.

    >>> import numpy as np
    >>> x = np.repeat(np.arange(4.0)[:, None] * 100, 2, axis=0) + np.tile([[0.0], [0.5]], (4, 1))
    >>> scan = spectrum_scan(x, t="1,50", sigma=1.0, device="cpu", t_max=50)
    >>> [round(d["value"], 3) for d in scan.to_dict()["dse"]]
    [2.322, 2.0]
    """
    start = time.perf_counter()
    base = check_positive(base, "base")
    if base == 1:
        raise InputError("`base` must be > 0 and != 1; got 1")
    t_values = parse_t_values(t)
    t_max = _check_t_max(t_max)
    spec = diffusion_spectrum(x, sigma=sigma, max_n=max_n, seed=seed, sampler=sampler, device=device,
                              dtype=dtype, solver=solver, flatten=flatten, drop_nonfinite=drop_nonfinite,
                              cache=cache)
    notes = list(spec.warnings)
    eig = spec.eigenvalues
    dse = dse_versus_t(eig, t_values, base=base)
    # the dense curve (for plots) reaches the largest requested t and the rule-of-thumb t, within 10 t_max
    t_rule, _ = rule_of_thumb_t(eig)
    reach = [t for t in (t_values[-1], t_rule) if t is not None and t <= 10 * t_max]
    curve_t = np.arange(1, max([t_max, *reach]) + 1)
    curve = dse_versus_t(eig, curve_t, base=base)
    auto = choose_t(eig, t_max=t_max, base=base, curve=(curve_t, curve))
    knee = auto["knee"]
    if knee.detail.get("still_falling"):
        msg = (f"DSE(t) is still falling at t_max={t_max} (from t={knee.detail['tail_from']} to {t_max} it falls "
               f"at {knee.detail['tail_slope_ratio']:.2f} times its mean rate per log t); the knee t={knee.t} may "
               "move with t_max: raise --t-max")
        warnings.warn(msg, DseWarning, stacklevel=2)
        notes.append(msg)
    return SpectrumScan(
        spectrum=spec, t_values=t_values, dse_values=dse, curve_t=curve_t, curve_dse=curve, auto_t=auto,
        units=units_for_base(base), base=base, elapsed_s=time.perf_counter() - start, warnings=tuple(notes),
    )
