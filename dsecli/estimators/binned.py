"""Binned ("classic") Shannon entropy and mutual information: CSE and CSMI (docs/method.md#cse).

The histogram baseline of the DSE paper: every column is min-max scaled to [0, 1] and cut into
``bins`` equal-width bins, and the entropy is that of the distinct D-dimensional bin tuples.
For large D nearly every row gets its own tuple and CSE -> log N whatever the data: the curse of
dimensionality that DSE avoids. Conventions: docs/method.md#binning, exactly as the golden data fix them.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from dsecli.diffusion.spectral import entropy_of_probabilities
from dsecli.edge import Call, Measured, public_method
from dsecli.errors import check_at_most, check_choice, check_positive_int
from dsecli.inputs.arrays import host_array
from dsecli.inputs.binning import cell_counts
from dsecli.inputs.prepare import Prepared
from dsecli.inputs.reference import REF_KINDS
from dsecli.measures.conditional import size_matched_mutual_information
from dsecli.results import SATURATION_RULE, ceiling_fields, reference_ceiling

# bins per dimension beyond this are refused (the edges array alone would take memory for nothing)
MAX_BINS = 1_000_000

__all__ = ["binned_entropy_of_array", "binned_shannon_entropy", "binned_shannon_mutual_information"]


def binned_entropy_of_array(x: np.ndarray, bins: int, *, base: float = 2.0) -> tuple[float, int]:
    """``(H, number of occupied cells)`` of the rows of ``x`` (no validation; see :func:`binned_shannon_entropy`)."""
    counts = cell_counts(x, bins)
    if counts.size == 0:
        return 0.0, 0
    return entropy_of_probabilities(counts / x.shape[0], base=base), int(counts.size)


@public_method("cse")
def binned_shannon_entropy(
    rows: Prepared,
    call: Call,
    *,
    bins: int = 2,
) -> Measured:
    """Classic (binned) Shannon entropy of the rows of ``x``.

    .. math::

        H = -\\sum_{c} (p_c + \\epsilon) \\log (p_c + \\epsilon), \\qquad p_c = n_c / N

    over the occupied cells c of the grid with ``bins`` equal-width bins per min-max scaled
    column; epsilon = 2^-52 as in the published code (docs/method.md#cse). 0 <= H <= log N.

    Parameters
    ----------
    x : array-like, shape (N, D), a tensor, a lazy file source, or :class:`~dsecli.inputs.prepare.Prepared`
        (trusted as it is; see :func:`dsecli.inputs.prepare.prepare_rows`)
    bins : int >= 1
        Bins per dimension (published default 2).
    max_n, seed, sampler, flatten, drop_nonfinite
        Row selection and validation, as in :func:`dsecli.diffusion_spectral_entropy`.
    base : float
        Logarithm base (2: bits).

    Returns
    -------
    EntropyResult
        ``extra["occupied_cells"]`` is the number of distinct bin tuples.

    Notes
    -----
    A constant column goes into a single bin (the published code divides 0 by 0 there and the
    NaN ends up in the last bin for every row, which is the same thing).

    References
    ----------
    D. Liao, C. Liu et al., "Assessing Neural Network Representations During Training Using
    Noise-Resilient Diffusion Spectral Entropy", arXiv:2312.04823 (the CSE baseline).

    Examples
    --------
    Four points in four different quadrants: H = log2 4.

    >>> round(binned_shannon_entropy([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]]).value, 9)
    2.0
    """
    bins = check_at_most(check_positive_int(bins, "bins"), MAX_BINS, "bins", limit_name="",
                         why="the grid edges are allocated; with N rows at most N cells are occupied anyway")
    base = call.base
    data = host_array(rows.data, np.float64)
    value, cells = binned_entropy_of_array(data, bins, base=base)
    extra = {"occupied_cells": cells, **_cse_ceiling(value, rows.n_used, int(data.shape[1]), bins, cells, base)}
    return Measured(value, {"bins": bins, "n_features": int(data.shape[1])}, extra)


def _cse_ceiling(value: float, n: int, d: int, bins: int, cells: int, base: float) -> dict[str, Any]:
    """CSE <= min(log N, D log bins); saturated also when every occupied cell holds one row (CSE = log N:
    the histogram then counts rows, not structure)."""
    log_n, log_grid = math.log(n), d * math.log(bins) if bins > 1 else 0.0
    rule = "log N_used" if log_n <= log_grid else "D log bins (the grid's cells)"
    out = ceiling_fields(value, min(log_n, log_grid) / math.log(base), rule,
                         saturation_rule=f"{SATURATION_RULE}, or every occupied cell holds one row")
    out["saturated"] = bool(out["saturated"] or (cells == n and n > 1))
    return out


@public_method("csmi", quantity="mi")
def binned_shannon_mutual_information(
    rows: Prepared,
    call: Call,
    *,
    bins: int = 2,
    ref_kind: str = "auto",
    n_clusters: int = 10,
    repetitions: int = 5,
) -> Measured:
    """Classic (binned) Shannon mutual information, CSMI, with the size-matched scheme of DSMI.

    .. math::

        I = \\sum_y \\frac{n_y}{N}\\Big[\\frac{1}{R}\\sum_r H(X^*_r) - H(X_{Y=y})\\Big]

    with H the binned entropy of :func:`binned_shannon_entropy` (each subset min-max scaled on
    its own rows, as published) and X*_r uniform size-n_y subsets of all rows
    (:func:`dsecli.measures.conditional.size_matched_mutual_information`).

    Parameters
    ----------
    x : array-like, shape (N, D), a tensor, a lazy source or :class:`~dsecli.inputs.prepare.Prepared`
    y : array-like, shape (N,) or (N, D'), a lazy source, or None when ``x`` is a Prepared holding
        its reference
        Labels, scalars (binned into ``n_clusters`` bins) or vectors (k-means); see
        :func:`dsecli.inputs.reference.reference_classes`.
    bins : int >= 1
        Bins per dimension of X.
    ref_kind : {"auto", "discrete", "continuous"}
    n_clusters : int
        Bins/clusters for a continuous reference.
    repetitions : int
        Size-matched draws per class (R, published 5).
    sampler : {"numpy", "published"}
        "published" reproduces the published package's draws (golden ``value_seed0``).

    Returns
    -------
    MIResult
        In ``units``; may be negative (estimation noise), reported as computed. ``extra`` holds
        ``h_conditional``, ``h_marginal_matched`` and the per-class terms.
    """
    bins = check_at_most(check_positive_int(bins, "bins"), MAX_BINS, "bins", limit_name="",
                         why="the grid edges are allocated; with N rows at most N cells are occupied anyway")
    repetitions = check_positive_int(repetitions, "repetitions")
    check_choice(ref_kind, "ref_kind", REF_KINDS)
    base, seed = call.base, call.seed
    data = host_array(rows.data, np.float64)
    reading = rows.reference_reading(ref_kind=ref_kind, seed=seed)
    classes = reading.classes(n_clusters)

    def entropies(sets: list[np.ndarray]) -> list[tuple[float, float, float]]:
        return [(binned_entropy_of_array(data[idx], bins, base=base)[0], 0.0, 0.0) for idx in sets]

    value, details = size_matched_mutual_information(
        entropies, classes, repetitions=repetitions, seed=seed, sampler=call.sampler
    )
    params = {
        "bins": bins, "ref_kind": ref_kind, "classes_from": classes.kind, "n_classes": len(classes.names),
        "n_clusters": n_clusters, "repetitions": repetitions, "reference_reading": reading.params(),
        "n_features": int(data.shape[1]),
    }
    if classes.detail:
        params["reference_detail"] = classes.detail
    details.update(reference_ceiling(value, classes.counts, base,
                                     what="labels" if classes.kind == "labels" else f"classes ({classes.kind})"))
    return Measured(value, params, details)
