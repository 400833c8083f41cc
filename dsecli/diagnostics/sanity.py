"""Sanity checks on embeddings: what in the data biases or breaks the estimators.

Two levels:

- :func:`~dsecli.inputs.quality.data_quality_warnings` (duplicate rows, constant columns; in
  :mod:`dsecli.inputs.quality`, re-exported here) costs O(N D) and runs on every call:
  :func:`dsecli.inputs.prepare.prepare_rows` turns its messages into
  :class:`~dsecli.errors.DataQualityWarning`, so every estimator reports them.
- :func:`sanity_report` (``dse check FILE``, ``dse info FILE --check``) adds NaN/Inf counts,
  N versus D, precision notes for float16/float32 input, column scales, the bandwidth scale
  and whether binned Shannon entropy would saturate at log2 N.

Why these matter: duplicates are points at distance 0 (DSE counts them as one point at small
sigma, the kNN and KSG estimators take log 0); constant columns add nothing to distances or
bins (dead units); and with 2 bins per feature there are 2^D cells, so once 2^D >> N nearly
every row has a cell to itself and the binned entropy is log2 N whatever the data.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from dsecli.inputs.checks import as_float_matrix, max_safe_magnitude, nonfinite_rows, source_label
from dsecli.inputs.quality import (
    are,
    columns_phrase,
    constant_columns,
    data_quality_warnings,
    distinct_row_counts,
    duplicate_rows,
    input_row,
)
from dsecli.inputs.sampling import DEFAULT_MAX_N, take_rows
from dsecli.results import json_safe

__all__ = [
    "Finding",
    "SanityReport",
    "constant_columns",
    "duplicate_rows",
    "distinct_row_counts",
    "data_quality_warnings",
    "sanity_report",
]

# share of rows in distinct 2-bin cells above which binned entropy is said to saturate
SATURATION_SHARE = 0.9
# rows used for the bandwidth (kernel scale) diagnostics
SCALE_ROWS = 2000


@dataclass(frozen=True)
class Finding:
    """One result of a check: ``level`` is "error" (an estimator would refuse the data),
    "warning" (the estimates are biased or meaningless) or "note" (worth knowing)."""

    code: str
    level: str
    message: str
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class SanityReport:
    """What :func:`sanity_report` found; ``to_dict()`` is strict-JSON safe."""

    source: str | None
    shape: tuple[int, ...]
    dtype: str
    n_total: int
    n_used: int
    findings: list[Finding]
    stats: dict[str, Any]

    @property
    def subsampled(self) -> bool:
        return self.n_used < self.n_total

    @property
    def ok(self) -> bool:
        """True when nothing at the "error" or "warning" level was found."""
        return not any(f.level in ("error", "warning") for f in self.findings)

    def to_dict(self) -> dict[str, Any]:
        return json_safe({
            "source": self.source, "shape": list(self.shape), "dtype": self.dtype, "n_total": self.n_total,
            "n_used": self.n_used, "subsampled": self.subsampled, "ok": self.ok,
            "findings": [{"code": f.code, "level": f.level, "message": f.message, "details": f.details}
                         for f in self.findings],
            "stats": self.stats,
        })


def _binned_cells(x: np.ndarray, bins: int) -> tuple[int, float]:
    """(occupied cells, binned entropy in bits) with the CSE binning (:mod:`dsecli.inputs.binning`, docs/method.md#binning)."""
    from dsecli.diffusion.spectral import entropy_of_probabilities
    from dsecli.inputs.binning import cell_counts

    counts = cell_counts(x, bins)
    return int(counts.size), entropy_of_probabilities(counts / x.shape[0], base=2.0)


def _kernel_scale(x: np.ndarray, sigma: float, seed: int) -> tuple[dict[str, Any], str | None]:
    """The kernel's regime at ``sigma`` against the median rule (:func:`dsecli.diffusion.kernels.kernel_regime`),
    on up to SCALE_ROWS rows, and the regime's warning text (None when informative)."""
    import torch

    from dsecli.diffusion.kernels import kernel_regime, regime_message

    rows = x
    if x.shape[0] > SCALE_ROWS:
        idx = np.sort(np.random.default_rng(seed).choice(x.shape[0], SCALE_ROWS, replace=False))
        rows = x[idx]
    xt = torch.from_numpy(np.array(rows, dtype=np.float64, copy=True))  # own copy: the rows may be a read-only map
    reg = kernel_regime(xt, sigma, seed=seed)
    out: dict[str, Any] = {"rows": int(rows.shape[0]), **reg.to_dict(), "sigma_median": reg.median_rule_sigma,
                           "degenerate": reg.kind}
    return out, regime_message(reg)


def sanity_report(
    x: Any,
    *,
    max_n: int | None = DEFAULT_MAX_N,
    seed: int = 0,
    sampler: str = "numpy",
    flatten: bool = False,
    bins: int = 2,
    sigma: float = 10.0,
) -> SanityReport:
    """Check embeddings for what biases or breaks the estimators; returns a :class:`SanityReport`.

    Parameters
    ----------
    x : array-like (N, D), a tensor, or a lazy file source (:func:`dsecli.inputs.readers.open_array`)
    max_n, seed, sampler
        The rows checked: the same seeded subsample the estimators would use (``max_n`` of 0
        or None checks every row).
    flatten : bool
        Accept arrays of more than 2 dimensions as N x prod(rest).
    bins : int
        Bins per feature for the binned-entropy saturation check (CSE default 2).
    sigma : float
        The kernel bandwidth to judge (default 10, the paper's setting; dse itself defaults to the
        median rule). ``stats["kernel"]`` holds the median rule's sigma on the same rows, the ratio,
        the off-diagonal affinity quantiles and the regime (docs/method.md#kernel-regime).

    Notes
    -----
    Findings (``code``): ``nonfinite`` (error), ``all_constant``/``duplicates``/
    ``binned_saturation``/``kernel_degenerate``/``float32_overflow`` (warnings),
    ``constant_columns``, ``kernel_scale``, ``n_vs_d``, ``precision``, ``column_scales``, ``binned_cells``,
    ``subsampled`` (notes). Non-finite rows are left out of every other check.

    Returns
    -------
    SanityReport
        ``findings`` (level, code, message, detail), ``stats``, the rows checked (``n_used`` of
        ``n_total``) and ``ok`` (False when an error or warning was found); ``to_dict()`` is
        strict-JSON safe.
    """
    from dsecli.errors import check_positive, check_positive_int

    bins = check_positive_int(bins, "bins")
    sigma = check_positive(sigma, "sigma")
    seed = check_positive_int(seed, "seed", minimum=0)
    where = source_label(x)
    rows = take_rows(x, max_n=max_n, seed=seed, sampler=sampler)
    raw = rows.data.detach().cpu().numpy() if hasattr(rows.data, "detach") else np.asarray(rows.data)
    in_dtype = raw.dtype
    shape = tuple(int(s) for s in getattr(x, "shape", raw.shape))
    arr, flattened_from = as_float_matrix(raw, where=where, flatten=flatten, min_rows=1)
    n, d = arr.shape
    findings: list[Finding] = []
    stats: dict[str, Any] = {"n_features": d, "log2_n": math.log2(n)}
    numbers = rows.indices

    if rows.subsampled:
        findings.append(Finding("subsampled", "note",
                                f"checked a seeded subsample of {n:,} of {rows.n_total:,} rows (the rows the "
                                "estimators use by default; --max-n 0 checks every row)"))
    if flattened_from is not None:
        findings.append(Finding("flattened", "note", f"flattened from shape {flattened_from} to {n} x {d}"))

    bad = nonfinite_rows(arr)
    n_nan = int(np.isnan(arr).sum())
    n_inf = int(np.isinf(arr).sum())
    stats.update({"nonfinite_rows": int(bad.size), "nan_values": n_nan, "inf_values": n_inf})
    if bad.size:
        first = input_row(bad[0], numbers)
        findings.append(Finding(
            "nonfinite", "error",
            f"{bad.size} of {n} rows {'holds' if bad.size == 1 else 'hold'} NaN or Inf ({n_nan} NaN, {n_inf} Inf values), first at row {first}: "
            "estimators refuse them; clean them or pass --drop-nonfinite",
            {"rows": int(bad.size), "first_row": first, "nan_values": n_nan, "inf_values": n_inf}))
        keep = np.ones(n, dtype=bool)
        keep[bad] = False
        arr = arr[keep]
        numbers = (np.arange(rows.n_used) if numbers is None else numbers)[keep]
        n = arr.shape[0]
    stats["n_finite_rows"] = n
    if n == 0:
        return SanityReport(where, shape, str(in_dtype), rows.n_total, rows.n_used, findings, stats)

    const = constant_columns(arr)
    stats["constant_columns"] = int(const.size)
    if const.size == d and n > 1:
        findings.append(Finding("all_constant", "warning",
                                f"all {d} columns are constant: every row is the same point; every entropy is 0"))
    elif const.size:
        findings.append(Finding("constant_columns", "note",
                                f"{const.size} of {d} columns {are(const.size)} constant ({columns_phrase(const)}): "
                                "constant columns add nothing to distances or bins (dead units?)",
                                {"columns": const[:100].tolist()}))

    n_dup, n_distinct, pair = duplicate_rows(arr)
    stats.update({"duplicate_rows": n_dup, "distinct_rows": n_distinct})
    if n_dup:
        eg = {"example": [input_row(pair[0], numbers), input_row(pair[1], numbers)]} if pair else {}
        findings.append(Finding(
            "duplicates", "warning",
            f"{n_dup} of {n} rows {'repeats' if n_dup == 1 else 'repeat'} an earlier row ({n_distinct} distinct"
            + (f"; e.g. row {eg['example'][1]} repeats row {eg['example'][0]}" if eg else "") + "): points at "
            "distance 0 lower DSE (they act as one point when sigma is small) and break kNN/KSG (log 0); "
            "deduplicate unless the repeats are real", eg))

    if n <= d:
        findings.append(Finding(
            "n_vs_d", "note",
            f"N = {n} <= D = {d}: the rows span at most {max(n - 1, 0)} of {d} dimensions; kNN (knn, ksg) and "
            "binned (cse) estimates are strongly biased here, and DSE is capped at log2 N = "
            f"{math.log2(n):.2f} bits"))
    elif n < 10 * d and d > 3:
        findings.append(Finding("n_vs_d", "note",
                                f"N = {n} is less than 10 x D = {10 * d}: kNN-based estimates (knn, ksg) are "
                                "biased in this regime"))

    if in_dtype == np.float16:
        findings.append(Finding("precision", "note",
                                "float16 input holds about 3 significant digits: nearby points may coincide after "
                                "rounding (see duplicates); values are computed in float64 by default"))
    elif in_dtype == np.float32:
        findings.append(Finding("precision", "note",
                                "float32 input: computed in float64 by default; --dtype float32 halves memory but "
                                "eigenvalues below ~1e-7 of the largest lose accuracy"))
    elif in_dtype.kind in "biu":
        findings.append(Finding("precision", "note",
                                f"integer input ({in_dtype}): converted to float64; many ties make duplicates likely"))
    big = float(np.max(np.abs(arr)))
    stats["max_abs"] = big
    if big > max_safe_magnitude(d, np.float32):
        findings.append(Finding("float32_overflow", "warning",
                                f"values up to {big:.3g}: squared distances overflow float32; do not use --dtype "
                                "float32 (float64, the default, is fine)"))

    std = arr.std(axis=0)
    live = std[std > 0]
    if live.size >= 2:
        ratio = float(live.max() / live.min())
        stats["column_std_ratio"] = ratio
        if ratio > 1e3:
            findings.append(Finding("column_scales", "note",
                                    f"column standard deviations differ by a factor of {ratio:.3g}: distances (and so "
                                    "DSE and kNN estimates) are dominated by the widest columns; standardise the "
                                    "columns if that is not intended"))

    cells, h_binned = _binned_cells(arr, bins)
    stats.update({"binned_bins": bins, "binned_cells": cells, "binned_entropy_bits": h_binned})
    grid = f"{bins}^{d}" if d * math.log10(max(bins, 2)) > 12 else f"{bins ** d:,}"
    if n >= 4 and cells >= SATURATION_SHARE * n and cells > 1:
        findings.append(Finding(
            "binned_saturation", "warning",
            f"binned Shannon entropy (cse, {bins} bins per feature) saturates: {cells:,} of {n:,} rows fall in "
            f"distinct cells of the {grid}-cell grid, so cse = {h_binned:.3f} bits ~ log2 N = {math.log2(n):.3f}: "
            "it measures N, not the data (DSE does not saturate this way)",
            {"cells": cells, "bits": h_binned, "log2_n": math.log2(n)}))
    else:
        findings.append(Finding("binned_cells", "note",
                                f"binned entropy ({bins} bins per feature): {cells:,} occupied cells of {grid}, "
                                f"cse = {h_binned:.3f} bits (log2 N = {math.log2(n):.3f})"))

    if n >= 2 and n_distinct >= 2:
        scale, message = _kernel_scale(arr, sigma, seed)
        stats["kernel"] = scale
        q = scale["affinity_quantiles"]
        quant = ", ".join(f"{int(k[1:])}% {v:.2g}" for k, v in q.items() if k in ("q01", "q50", "q99"))
        ratio = f" = {scale['ratio']:.3g} x the median rule ({scale['sigma_median']:.4g})" if scale["ratio"] else ""
        findings.append(Finding("kernel_scale", "note",
                                f"sigma {sigma:g}{ratio}; off-diagonal affinity quantiles {quant}"))
        if message is not None:
            findings.append(Finding("kernel_degenerate", "warning", message))
    return SanityReport(where, shape, str(in_dtype), rows.n_total, rows.n_used, findings, stats)
