"""Uncertainty of any registered method: a seeded bootstrap interval and a permutation null for MI.

Both work on the rows already prepared (:class:`~dsecli.inputs.prepare.Prepared`): the
subsample drawn by ``max_n``/``seed`` stays fixed and only its rows are resampled, so the
interval describes the sampling error of the estimate from *these* rows. The method runs
exactly as for the estimate (same parameters, same seed, every data-driven rule such as
``sigma="median"`` re-applied to each resample).

Bootstrap (:func:`bootstrap_interval`)
--------------------------------------
Two schemes, chosen per method by :func:`bootstrap_scheme`:

- ``"replacement"`` (the classic bootstrap; ``cse``): B resamples of n rows drawn with
  replacement. A histogram entropy is a function of the cell counts only, so a duplicated row
  is just one more count and the resample is a proper draw from the empirical distribution.
  The interval is the percentile interval: the (1 - c)/2 and (1 + c)/2 quantiles of the B values
  (c = ``confidence``); ``std`` is their standard deviation (ddof = 1).
- ``"subsample"`` (every other method: DSE, DSMI, CSMI, the spectral variants, kNN, KSG, MINE):
  resampling with replacement would create exact duplicate rows, which kNN estimators see as
  distance 0 (log 0; our KL/KSG drop or jitter them) and kernel methods as identical kernel rows
  (a rank-deficient operator, DSE pulled down). Instead each resample takes m = floor(n / 2)
  rows *without* replacement (half-sampling, the m-out-of-n / delete-d jackknife scheme of
  Politis & Romano 1994, Shao & Wu 1989). For a root-n statistic the variance of the estimate
  at n rows is ``m / (n - m)`` times the variance over size-m subsamples (exactly 1 at
  m = n / 2 for a mean); the values are rescaled by ``sqrt(m / (n - m))`` about their mean and
  recentred on the full-sample estimate, because many of these estimators depend on the
  sample size (DSE <= log N): w_b = value + sqrt(m / (n - m)) (v_b - mean v). The interval is
  the percentile interval of the w_b, ``std`` their standard deviation. CSMI is here too
  although it is a histogram method: its size-matched subsets of a with-replacement resample
  moved its mean by +0.2 bits against fresh samples of the same distribution (3 Gaussian
  classes, N = 200, 5 columns, 2 bins), while half-samples kept it within 0.02 bits.

Neither scheme corrects the estimator's own bias (a kNN or plug-in estimate that is biased at n
rows gives an interval around the biased value); the interval measures the sampling spread.

Permutation null (:func:`permutation_null`)
-------------------------------------------
P seeded permutations of the reference rows (X fixed) break any dependence while keeping both
marginals; the method is re-run on each. The p-value counts the null values at least as large
as the observed one, with the +1 correction that makes it a valid p-value for finite P
(Phipson & Smyth 2010): p = (#{null >= observed} + 1) / (P + 1), so the smallest possible
p-value is 1 / (P + 1).

References
----------
B. Efron, R. Tibshirani, "An Introduction to the Bootstrap", 1993 (percentile interval).
D. N. Politis, J. P. Romano, "Large sample confidence regions based on subsamples under minimal
assumptions", Ann. Statist. 22 (1994). J. Shao, C. F. J. Wu, "A general theory for jackknife
variance estimation", Ann. Statist. 17 (1989). B. Phipson, G. K. Smyth, "Permutation p-values
should never be zero", Stat. Appl. Genet. Mol. Biol. 9 (2010).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import replace
from typing import Any

import numpy as np

from dsecli.errors import DseError, InputError, check_positive_int, quiet
from dsecli.inputs.prepare import Prepared

__all__ = [
    "BOOTSTRAP_SCHEMES",
    "REPLACEMENT_METHODS",
    "SUBSAMPLE_FRACTION",
    "bootstrap_scheme",
    "bootstrap_rows",
    "check_resampling",
    "bootstrap_interval",
    "permutation_null",
]

BOOTSTRAP_SCHEMES = ("auto", "replacement", "subsample")
# a histogram entropy is a function of cell counts: a duplicated row is only one more count
REPLACEMENT_METHODS = frozenset({"cse"})
# the "subsample" scheme's m / n (half-sampling: the rescaling factor sqrt(m / (n - m)) is 1)
SUBSAMPLE_FRACTION = 0.5
# distinct replicate warnings kept in extra (the count of resamples that warned is always there)
_KEPT_WARNINGS = 3


def bootstrap_scheme(method: str, scheme: str = "auto") -> str:
    """The resampling scheme for ``method``: ``"replacement"`` for cse, else ``"subsample"``.

    Returns
    -------
    str
        ``scheme`` itself unless it is ``"auto"``.
    """
    if scheme not in BOOTSTRAP_SCHEMES:
        raise InputError(f"`bootstrap_scheme` must be one of {', '.join(BOOTSTRAP_SCHEMES)}; got {scheme!r}")
    if scheme != "auto":
        return scheme
    return "replacement" if method in REPLACEMENT_METHODS else "subsample"


def bootstrap_rows(n: int, scheme: str) -> int:
    """Rows in each resample of ``n`` rows: n with replacement, floor(n * SUBSAMPLE_FRACTION) without.

    Returns
    -------
    int
        The resample size m.
    """
    return n if scheme == "replacement" else int(math.floor(n * SUBSAMPLE_FRACTION))


# each re-evaluation keeps its value (and what it reports) in the result: bytes per re-evaluation, roughly
RESAMPLE_VALUE_BYTES = 64


def check_resampling(bootstrap: Any, permutations: Any, confidence: Any) -> tuple[int, int, float]:
    """Validate the resampling parameters (counts >= 0, 0 < confidence < 1, counts whose kept values fit in memory).

    Returns
    -------
    tuple
        ``(bootstrap, permutations, confidence)`` as int, int, float.
    """
    b = check_positive_int(bootstrap, "bootstrap", minimum=0)
    p = check_positive_int(permutations, "permutations", minimum=0)
    try:
        c = float(confidence)
    except (TypeError, ValueError):
        raise InputError(f"`confidence` must be a number between 0 and 1 (e.g. 0.95); got {confidence!r}") from None
    if not (0.0 < c < 1.0):
        raise InputError(f"`confidence` must be between 0 and 1 exclusive (e.g. 0.95); got {confidence!r}")
    if b == 1:
        raise InputError("`bootstrap` must be 0 (off) or at least 2 resamples (an interval needs a spread); got 1")
    from dsecli.diffusion.plan import check_memory

    # the counts against memory, before computing: the error names the option, not the subsample or solver
    for name, count, use in (("permutations", p, "1,000 permutations resolve p-values down to 0.001"),
                             ("bootstrap", b, "1,000 resamples give a 95% interval")):
        if count:
            check_memory(count * RESAMPLE_VALUE_BYTES, device="cpu",
                         what=f"`{name}` = {count:,} (one re-evaluation and one kept value each)",
                         hint=f"ask for fewer {name} ({use})")
    return b, p, c


def _stream(seed: int, kind: int) -> np.random.Generator:
    # a stream of its own, so the resamples do not repeat the row subsample's or the methods' draws
    return np.random.default_rng([int(seed), 0x5E5A, kind])


def _subset(rows: Prepared, idx: np.ndarray) -> Prepared:
    """``rows`` restricted to ``idx`` (data and reference together); no new validation or warnings."""
    ref = None if rows.reference is None else rows.reference[idx]
    source = rows.indices[idx] if rows.indices is not None else idx
    return replace(rows, data=rows.data[idx], reference=ref, indices=np.asarray(source, dtype=np.int64))


def _evaluate(fn: Callable[[Prepared], Any], variants: Iterable[tuple[Prepared, str]],
              count: int, known: tuple[str, ...]) -> tuple[np.ndarray, int, list[str]]:
    """``fn`` on each (rows, label) of ``variants``: the values, how many warned, and a few of their warnings.

    The warnings are kept, not shown (the caller shows one summary line); those in ``known``
    (the estimate's own, already shown) are not counted. An error is re-raised with the label
    of the re-evaluation that failed.
    """
    vals = np.empty(count)
    warned = 0
    kept: list[str] = []
    for i, (rows, what) in enumerate(variants):
        try:
            with quiet():  # kept in the result, summarised by the caller
                again = fn(rows)
        except DseError as exc:
            raise type(exc)(f"{what}: {exc}") from exc
        vals[i] = float(again.value)
        notes = [w for w in again.warnings if w not in known]
        if notes:
            warned += 1
            kept += [w for w in notes if w not in kept][: _KEPT_WARNINGS - len(kept)]
    return vals, warned, kept


def _warning_summary(kind: str, count: int, total: int, messages: list[str]) -> str:
    return (f"{kind}: {count} of {total} re-evaluations raised warnings the estimate did not (first: "
            f"{messages[0]}); up to {_KEPT_WARNINGS} are kept in the result's extra")


def _quantiles(values: np.ndarray, confidence: float) -> tuple[float, float]:
    alpha = (1.0 - confidence) / 2.0
    low, high = np.quantile(values, [alpha, 1.0 - alpha])
    return float(low), float(high)


def bootstrap_interval(
    fn: Callable[[Prepared], Any],
    rows: Prepared,
    value: float,
    *,
    method: str,
    resamples: int,
    confidence: float = 0.95,
    seed: int = 0,
    scheme: str = "auto",
    known: tuple[str, ...] = (),
) -> tuple[dict[str, Any], str | None]:
    """A seeded bootstrap interval for ``fn`` (one method on prepared rows) at ``value`` (its estimate).

    ``fn(rows)`` must return a result with ``.value``; it is called ``resamples`` times on
    resampled :class:`~dsecli.inputs.prepare.Prepared` rows (the module docstring gives both
    schemes and the interval formula). Warnings in ``known`` (the estimate's own) are not
    counted again. Resample b draws its rows from
    ``default_rng([seed, 0x5E5A, 0])`` (one stream for all b), so a fixed seed repeats every
    value exactly.

    Returns
    -------
    tuple
        ``(summary, warning)``. ``summary`` holds ``B``, ``confidence``, ``scheme``, ``rows``
        (m) of ``n``, ``low``, ``high``, ``std``, ``seed``, ``values`` (the B raw resample
        values), ``scale`` (the subsample rescaling factor, 1 with replacement) and
        ``warned`` (resamples that raised warnings, with up to three of their messages in
        ``warnings``) and ``elapsed_s``. ``warning`` is one line to show when any resample warned, else None.
    """
    scheme = bootstrap_scheme(method, scheme)
    n = rows.n_used
    m = bootstrap_rows(n, scheme)
    if m < 2 or (scheme == "subsample" and n - m < 1):
        raise InputError(f"`bootstrap`: {method} on N = {n} rows leaves {m} rows per resample; "
                         "at least 4 rows are needed")
    rng = _stream(seed, 0)
    how = "with" if scheme == "replacement" else "without"

    def resamples_() -> Iterator[tuple[Prepared, str]]:
        for b in range(resamples):
            idx = rng.integers(0, n, size=n) if scheme == "replacement" else rng.choice(n, size=m, replace=False)
            yield (_subset(rows, np.sort(idx)),
                   f"{method}: bootstrap resample {b + 1} of {resamples} ({m} of {n} rows {how} replacement)")

    start = time.perf_counter()
    vals, warned, kept = _evaluate(fn, resamples_(), resamples, known)
    if scheme == "replacement":
        scale, shifted = 1.0, vals
    else:
        scale = math.sqrt(m / (n - m))
        shifted = value + scale * (vals - vals.mean())
    low, high = _quantiles(shifted, confidence)
    summary = {
        "B": resamples, "confidence": confidence, "scheme": scheme, "rows": m, "n": n, "low": low, "high": high,
        "std": float(np.std(shifted, ddof=1)), "seed": seed, "scale": scale, "values": vals.tolist(),
        "warned": warned, "warnings": kept, "elapsed_s": time.perf_counter() - start,
    }
    return summary, (_warning_summary(f"{method} bootstrap", warned, resamples, kept) if warned else None)


def permutation_null(
    fn: Callable[[Prepared], Any],
    rows: Prepared,
    value: float,
    *,
    method: str,
    permutations: int,
    seed: int = 0,
    known: tuple[str, ...] = (),
) -> tuple[dict[str, Any], str | None]:
    """The permutation null of a mutual-information method ``fn`` at its observed ``value``.

    Permutation j reorders the reference rows by ``default_rng([seed, 0x5E5A, 1]).permutation(n)``
    (one stream for all j) and keeps X; ``fn`` is re-run on each.

    Returns
    -------
    tuple
        ``(summary, warning)``. ``summary`` holds ``P``, ``p_value`` =
        (#{null >= value} + 1) / (P + 1), ``exceed`` (that count), ``null_mean``,
        ``null_std`` (ddof = 1; 0 when P = 1), ``seed``, ``values`` (the P null values) and
        ``warned``/``warnings``/``elapsed_s`` as for :func:`bootstrap_interval`. ``warning`` as there.
    """
    if rows.reference is None:
        raise InputError(f"`permutations`: {method} needs a reference (Y) to permute")
    rng = _stream(seed, 1)
    ref = rows.reference
    shuffled = ((replace(rows, reference=ref[rng.permutation(rows.n_used)]),
                 f"{method}: permutation {j + 1} of {permutations}") for j in range(permutations))
    start = time.perf_counter()
    vals, warned, kept = _evaluate(fn, shuffled, permutations, known)
    exceed = int(np.count_nonzero(vals >= value))
    summary = {
        "P": permutations, "p_value": (exceed + 1) / (permutations + 1), "exceed": exceed,
        "null_mean": float(vals.mean()), "null_std": float(np.std(vals, ddof=1)) if permutations > 1 else 0.0,
        "seed": seed, "values": vals.tolist(), "warned": warned, "warnings": kept,
        "elapsed_s": time.perf_counter() - start,
    }
    return summary, (_warning_summary(f"{method} permutations", warned, permutations, kept) if warned else None)
