"""Sanity checks on embeddings: what in the data biases or breaks the estimators.

Two levels:

- :func:`~dsecli.inputs.findings.data_quality_warnings` (duplicate rows, constant columns; in
  :mod:`dsecli.inputs.findings`, re-exported here) costs O(N D) and runs on every call:
  :func:`dsecli.inputs.prepare.prepare_rows` turns its messages into
  :class:`~dsecli.errors.DataQualityWarning`, so every estimator reports them.
- :func:`sanity_report` (``dse check FILE``, ``dse info FILE --check``) adds NaN/Inf counts,
  N versus D, precision notes for float16/float32 input, column scales, the bandwidth the
  estimators would use (resolved by :func:`dsecli.diffusion.kernels.resolve_sigma`, the rule
  every estimator uses) and whether binned Shannon entropy would saturate at log2 N; with a
  reference, how the reference would be read (:func:`dsecli.inputs.reference.read_reference`)
  and what in it makes the mutual information meaningless.

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

from dsecli.inputs.arrays import as_float_matrix, max_safe_magnitude, nonfinite_rows, source_label
from dsecli.inputs.findings import (
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
    "swapped_first_rows",
    "swapped_inputs",
]

# share of rows in distinct 2-bin cells above which binned entropy is said to saturate
SATURATION_SHARE = 0.9
# The estimators' default bandwidth rule: the default of ``sigma`` in
# dsecli.measures.dse.diffusion_spectral_entropy (and every other kernel estimator); a test keeps the two
# in step until the library names it as a constant.
DEFAULT_SIGMA = "median"
# A reference with at least this many times the embeddings' columns looks like the embeddings
SWAP_COLUMN_RATIO = 8
# rows of EMB and REF read to tell whether they look passed in the wrong order
SWAP_SAMPLE_ROWS = 2_000


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


def _is_median_rule(sigma: Any) -> bool:
    return isinstance(sigma, str) and sigma.strip().lower() == "median"


def _check_sigma(sigma: Any) -> None:
    """Refuse a bandwidth the estimators would refuse, before any data is read (the median rule
    needs the data; numbers and sqrt-d are checked by :func:`~dsecli.diffusion.kernels.resolve_sigma`)."""
    if _is_median_rule(sigma):
        return
    import torch

    from dsecli.diffusion.kernels import resolve_sigma

    resolve_sigma(sigma, torch.zeros((1, 1), dtype=torch.float64))


def _kernel_findings(x: np.ndarray, sigma: Any, t: int, seed: int) -> tuple[dict[str, Any], list[Finding]]:
    """The bandwidth the estimators would use on these rows and the kernel's regime there.

    The same calls as the estimators (:func:`~dsecli.diffusion.kernels.resolve_sigma`, then
    :func:`~dsecli.diffusion.kernels.kernel_regime` on the same rows and seed), so the check
    warns exactly when an estimator would. The median rule sits at median affinity e^-1 by
    construction and is reported, not judged.
    """
    import torch

    from dsecli.diffusion.kernels import kernel_regime, regime_message, resolve_sigma
    from dsecli.errors import InputError

    xt = torch.from_numpy(np.array(x, dtype=np.float64, copy=True))  # own copy: the rows may be a read-only map
    try:
        choice = resolve_sigma(sigma, xt, seed=seed)
    except InputError as exc:  # the median rule on mostly repeated rows
        return ({"rows": int(x.shape[0]), "rule": "median", "t": t},
                [Finding("sigma_unusable", "error", f"{exc}: every kernel estimator would refuse these rows")])
    median = choice.rule == "median"
    # the median rule on its own pairs (the same sigma as resolve_sigma's); any other sigma as the estimators
    # judge it (dsecli.diffusion.kernels.warn_if_uninformative: screened on a subsample when well inside the band)
    reg = kernel_regime(xt, "median" if median else choice, seed=seed)
    out: dict[str, Any] = {"rows": int(x.shape[0]), "rule": choice.rule, "t": t, **reg.to_dict(),
                           "sigma_median": reg.median_rule_sigma, "degenerate": None if median else reg.kind}
    q = reg.affinity_quantiles
    quant = ", ".join(f"{int(k[1:])}% {v:.2g}" for k, v in q.items() if k in ("q01", "q50", "q99"))
    if median:
        text = (f"sigma median: the median rule gives sigma = {choice.value:.4g} on these rows (the estimators' "
                f"default; median off-diagonal affinity e^-1 = 0.37 by construction); off-diagonal affinity "
                f"quantiles {quant}")
    else:
        name = f"{choice.value:g}" if choice.rule == "given" else f"{choice.rule} = {choice.value:.4g}"
        ratio = f" = {reg.ratio:.3g} x the median rule ({reg.median_rule_sigma:.4g})" if reg.ratio else ""
        text = f"sigma {name}{ratio}; off-diagonal affinity quantiles {quant}"
    findings = [Finding("kernel_scale", "note", text + (f"; t = {t}" if t != 1 else ""))]
    message = None if median else regime_message(reg)
    if message is not None:
        findings.append(Finding("kernel_degenerate", "warning", message))
    return out, findings


def _columns(shape: tuple[int, ...]) -> int:
    return int(np.prod(shape[1:])) if len(shape) > 1 else 1


def _looks_like_labels(raw: np.ndarray) -> bool:
    """One column read as labels by the reference rule (integers, strings, few integral floats)."""
    from dsecli.errors import CollectWarnings, InputError, quiet
    from dsecli.inputs.reference import read_reference

    if not (raw.ndim == 1 or (raw.ndim == 2 and raw.shape[1] == 1)) or raw.shape[0] == 0:
        return False
    try:
        with quiet(), CollectWarnings():  # its warnings (a single class, ...) are about labels it is not
            return read_reference(raw).discrete
    except InputError:  # not readable as labels: not labels
        return False


def swapped_inputs(emb: Any, ref: Any, *, emb_shape: tuple[int, ...] | None = None,
                   one_hot: bool | None = None) -> tuple[str, str] | None:
    """Whether the embeddings EMB and the reference REF look passed in the wrong order: the one rule of
    ``dse check --ref`` (the ``swapped`` finding) and of ``dse mi`` (a warning, or a hint added to its error).

    They look swapped when REF is a float matrix of 2 or more columns (not one-hot) and either EMB is one
    column read as labels by the reference rule (level "error": the estimators would measure the labels) or
    REF has at least :data:`SWAP_COLUMN_RATIO` times EMB's columns (level "warning"). ``one_hot``: whether
    REF reads as one-hot (None: decided here from its values).

    Returns
    -------
    tuple or None
        ``(level, message)``; None when they do not look swapped.
    """
    emb = emb.detach().cpu().numpy() if hasattr(emb, "detach") else np.asarray(emb)
    ref = ref.detach().cpu().numpy() if hasattr(ref, "detach") else np.asarray(ref)
    emb_cols = _columns(tuple(emb_shape) if emb_shape is not None else emb.shape)
    ref_cols = _columns(ref.shape)
    if ref.ndim != 2 or ref_cols < 2 or ref.dtype.kind != "f" or ref.shape[0] == 0:
        return None
    if one_hot is None:
        from dsecli.inputs.reference import one_hot_codes  # the reference rule's own test

        one_hot = one_hot_codes(ref) is not None
    if one_hot:
        return None
    emb_labels = _looks_like_labels(emb)
    if not (emb_labels or ref_cols >= SWAP_COLUMN_RATIO * emb_cols):
        return None
    why = "EMB is one column of labels" if emb_labels else f"REF has {ref_cols:,} columns, EMB {emb_cols:,}"
    return ("error" if emb_labels else "warning",
            f"EMB and REF look swapped: pass the embeddings first ({why}; REF is a float matrix of "
            f"{ref_cols:,} columns)")


def swapped_first_rows(x: Any, y: Any) -> tuple[str, str] | None:
    """:func:`swapped_inputs` on the first :data:`SWAP_SAMPLE_ROWS` rows of ``x`` and ``y`` (arrays, tensors or
    lazy file sources, which read only those rows); None where either has no shape or cannot be read (the
    estimators then say why)."""
    from dsecli.errors import DseError

    shape_x, shape_y = tuple(getattr(x, "shape", ()) or ()), tuple(getattr(y, "shape", ()) or ())
    if not shape_x or not shape_y:
        return None
    n = min(int(shape_x[0]), int(shape_y[0]), SWAP_SAMPLE_ROWS)
    try:
        first = [a.read(np.arange(n)) if hasattr(a, "read") else a[:n] for a in (x, y)]
        return swapped_inputs(first[0], first[1], emb_shape=shape_x)
    except DseError:
        return None




def _reference_findings(reference: Any, rows: Any, raw: np.ndarray, emb_shape: tuple[int, ...], *, ref_kind: str,
                        n_clusters: int, seed: int) -> tuple[dict[str, Any], list[Finding], bool]:
    """How the reference would be read on the checked rows, and what would make the MI meaningless.

    Returns (stats, findings, whether the embeddings cannot be checked as embeddings: they are
    the labels and the reference the embeddings).
    """
    from dsecli.errors import CollectWarnings, InputError, quiet
    from dsecli.inputs.prepare import prepare_reference
    from dsecli.inputs.reference import read_reference

    label = getattr(reference, "label", None)
    ref_shape = tuple(int(s) for s in getattr(reference, "shape", np.shape(reference)))
    stats: dict[str, Any] = {"source": label, "shape": list(ref_shape)}
    findings: list[Finding] = []
    name = label or "the reference"
    n_ref = ref_shape[0] if ref_shape else 0
    if n_ref != rows.n_total:
        findings.append(Finding(
            "reference_rows", "error",
            f"{name} has {n_ref:,} rows but the embeddings have {rows.n_total:,}: every mutual-information method "
            "refuses them (one reference row per embedding row)", {"reference_rows": n_ref, "rows": rows.n_total}))
        return stats, findings, False
    try:
        y = prepare_reference(reference, rows, where=label)
    except InputError as exc:
        findings.append(Finding("reference_invalid", "error", f"{exc}: every mutual-information method refuses it"))
        return stats, findings, False

    ref_cols = _columns(ref_shape)
    one_hot = False
    try:
        with quiet(), CollectWarnings():
            reading = read_reference(y, ref_kind=ref_kind, seed=seed, where=label)
            classes = reading.classes(n_clusters)
    except InputError as exc:
        if ref_kind != "auto":  # the reading the user asked for is not possible: as dse mi says
            raise
        findings.append(Finding("reference_invalid", "error", f"{exc}: every mutual-information method refuses it"))
        reading = classes = None
    if reading is not None:
        one_hot = reading.reading == "one-hot"
    swap = swapped_inputs(raw, y, emb_shape=emb_shape, one_hot=one_hot)
    if swap is not None:
        findings.append(Finding("swapped", swap[0], swap[1], {"emb_columns": _columns(emb_shape),
                                                              "ref_columns": ref_cols}))
    not_embeddings = swap is not None and swap[0] == "error"
    if reading is None or classes is None:
        return stats, findings, not_embeddings

    counts = classes.counts
    stats.update({**reading.params(), "n_clusters": None if reading.discrete else n_clusters,
                  "classes": len(classes.names), "classes_from": classes.kind,
                  "smallest_class": int(counts.min()), "largest_class": int(counts.max())})
    k = len(classes.names)
    if reading.reading == "one-hot":
        findings.append(Finding("reference_one_hot", "note",
                                f"{name}: {ref_cols} columns of 0/1 with one 1 per row: read as labels (the column of "
                                f"the 1), {k} classes"))
    elif reading.reading == "integral":
        findings.append(Finding("reference_integral", "note",
                                f"{name}: a float column of {k} distinct integral values: read as labels "
                                "(--ref-kind discrete)"))
    elif reading.reading == "scalars" and reading.detail.get("integral_values"):
        findings.append(Finding("reference_integral", "note",
                                f"{name}: a float column of {reading.detail['integral_values']} distinct integral "
                                f"values: read as a scalar, as the published implementation reads it (dsmi and csmi "
                                f"bin it into {n_clusters} equal-width bins, ksg and mine use the values); "
                                "--ref-kind discrete reads the values as labels"))
    elif reading.reading == "scalars":
        forced = " (--ref-kind continuous)" if reading.detail.get("forced_by") else ""
        findings.append(Finding("reference_scalars", "note",
                                f"{name}: one column of numbers read as scalars{forced}: dsmi and csmi bin it into "
                                f"{n_clusters} equal-width bins (--n-clusters; {k} occupied), ksg and mine use the "
                                "values"))
    elif reading.reading == "vectors":
        findings.append(Finding("reference_vectors", "note",
                                f"{name}: {ref_cols} columns read as vectors: dsmi and csmi cluster them into "
                                f"{n_clusters} k-means clusters (--n-clusters; {k} found), ksg and mine use the "
                                "vectors"))
    elif k > 1:  # a single class is an error below
        findings.append(Finding("reference_labels", "note",
                                f"{name}: read as {reading.reading}, {k} classes of {int(counts.min()):,} to "
                                f"{int(counts.max()):,} rows"))
    if k == 1:
        findings.append(Finding(
            "reference_single_class", "error",
            f"{name} has a single class ({classes.names[0]!r}) on the rows used: MI is 0 for every method "
            "(H(Y) = 0); check that the reference column is the one meant"))
    else:
        single = [n for n, c in zip(classes.names, counts) if int(c) == 1]
        if single:
            shown = ", ".join(repr(s) for s in single[:10]) + (", ..." if len(single) > 10 else "")
            what = f"class {shown} has" if len(single) == 1 else f"{len(single)} of {k} classes ({shown}) have"
            findings.append(Finding(
                "reference_single_row_classes", "warning",
                f"{name}: {what} a single row: the entropy of one row is 0 by definition, so such a class adds "
                "nothing to the mutual information; merge rare classes or collect more rows",
                {"classes": [s if isinstance(s, (int, float, str)) else str(s) for s in single[:100]]}))
    return stats, findings, not_embeddings


def sanity_report(
    x: Any,
    *,
    max_n: int | None = DEFAULT_MAX_N,
    seed: int = 0,
    sampler: str = "numpy",
    flatten: bool = False,
    bins: int = 2,
    sigma: float | str = DEFAULT_SIGMA,
    t: int = 1,
    reference: Any = None,
    ref_kind: str = "auto",
    n_clusters: int = 10,
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
    sigma : float or str
        The kernel bandwidth, as the estimators take it: "median" (their default), "sqrt-d" or a
        number, resolved on the checked rows by the estimators' own rule. ``stats["kernel"]`` holds
        the sigma, its rule, the median rule's sigma on the same rows, the ratio, the off-diagonal
        affinity quantiles and the regime (docs/method.md#kernel-regime); a numeric sigma in the
        flat or isolated regime is a warning, exactly when an estimator would warn.
    t : int
        The diffusion time the estimates would use (recorded in ``stats``).
    reference : array-like or lazy file source, optional
        The reference Y of ``dse mi`` (N rows): its rows are read like the embeddings' (the same
        subsample) and by the estimators' reading rule (:func:`dsecli.inputs.reference.read_reference`).
    ref_kind, n_clusters
        As for the mutual-information estimators.

    Notes
    -----
    Findings (``code``): ``nonfinite`` (error), ``all_constant``/``duplicates``/
    ``binned_saturation``/``kernel_degenerate``/``float32_overflow`` (warnings),
    ``constant_columns``, ``kernel_scale``, ``n_vs_d``, ``precision``, ``column_scales``, ``binned_cells``,
    ``subsampled`` (notes), ``sigma_unusable`` (error: the median rule fails on these rows). With a
    reference: ``reference_rows``, ``reference_invalid``, ``reference_single_class`` (errors),
    ``reference_single_row_classes`` (warning), ``swapped`` (error when EMB is one column of labels,
    else a warning), and one note on the reading (``reference_labels``, ``reference_one_hot``,
    ``reference_integral``, ``reference_scalars``, ``reference_vectors``). Non-finite rows are
    left out of every other check.

    Returns
    -------
    SanityReport
        ``findings`` (level, code, message, detail), ``stats``, the rows checked (``n_used`` of
        ``n_total``) and ``ok`` (False when an error or warning was found); ``to_dict()`` is
        strict-JSON safe.
    """
    from dsecli.errors import check_positive_int

    bins = check_positive_int(bins, "bins")
    t = check_positive_int(t, "t")
    seed = check_positive_int(seed, "seed", minimum=0)
    n_clusters = check_positive_int(n_clusters, "n_clusters")
    if reference is not None:
        from dsecli.errors import check_choice
        from dsecli.inputs.reference import REF_KINDS

        check_choice(ref_kind, "ref_kind", REF_KINDS)
    _check_sigma(sigma)
    where = source_label(x)
    rows = take_rows(x, max_n=max_n, seed=seed, sampler=sampler)
    raw = rows.data.detach().cpu().numpy() if hasattr(rows.data, "detach") else np.asarray(rows.data)
    in_dtype = raw.dtype
    shape = tuple(int(s) for s in getattr(x, "shape", raw.shape))
    findings: list[Finding] = []
    ref_stats: dict[str, Any] | None = None
    ref_findings: list[Finding] = []
    if reference is not None:
        ref_stats, ref_findings, not_embeddings = _reference_findings(
            reference, rows, raw, shape, ref_kind=ref_kind, n_clusters=n_clusters, seed=seed)
        if not_embeddings and raw.ndim < 2:  # labels in place of embeddings: nothing more to check
            return SanityReport(where, shape, str(in_dtype), rows.n_total, rows.n_used, ref_findings,
                                {"t": t, "reference": ref_stats})
    arr, flattened_from = as_float_matrix(raw, where=where, flatten=flatten, min_rows=1)
    n, d = arr.shape
    stats: dict[str, Any] = {"n_features": d, "log2_n": math.log2(n), "t": t}
    if ref_stats is not None:
        stats["reference"] = ref_stats
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
        findings.extend(ref_findings)
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
                                f"integer input ({in_dtype}): converted to float64 (equal rows, if any, are counted under duplicates)"))
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
        stats["kernel"], kernel = _kernel_findings(arr, sigma, t, seed)
        findings.extend(kernel)
    findings.extend(ref_findings)
    return SanityReport(where, shape, str(in_dtype), rows.n_total, rows.n_used, findings, stats)
