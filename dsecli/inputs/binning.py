"""The one binning rule: min-max scaling, then equal-width bins with ``numpy.linspace`` edges.

Used by binned Shannon entropy and mutual information (:mod:`dsecli.estimators.binned`, per
feature), by the binning of a scalar reference into classes (:mod:`dsecli.inputs.reference`)
and by the sanity report's saturation check (:mod:`dsecli.diagnostics.check`), so all three
cut the data at the same places.

Per column: u = (x - min) / (max - min); bin = number of edges e_k <= u with
e = ``linspace(0, 1, bins + 1)[:-1]``, so bins run 1..bins, a value on an edge goes to the upper
bin and u = 1 (the maximum) to the last. The linspace edges, not ``floor(u * bins)``, are what
the published implementation uses: 0.3 * 10 rounds to 2.9999999999999996, which floor would put
one bin too low. A constant column (0 / 0) is one bin, ``bins``, for every row, so it never
splits cells.
"""

from __future__ import annotations

import numpy as np

__all__ = ["bin_indices", "bin_scalars", "cell_counts"]


def bin_indices(x: np.ndarray, bins: int) -> np.ndarray:
    """Per-column bin numbers of the rows of ``x`` (module docstring's rule).

    Parameters
    ----------
    x : array-like, shape (N, D)
    bins : int >= 1
        Bins per column (not validated here; callers check it).

    Returns
    -------
    ndarray of int64, shape (N, D)
        Bin numbers 1..bins.
    """
    x = np.asarray(x, dtype=np.float64)
    lo = x.min(axis=0)
    span = x.max(axis=0) - lo
    with np.errstate(invalid="ignore", divide="ignore"):
        u = (x - lo) / span
    edges = np.linspace(0.0, 1.0, bins + 1)[:-1]
    idx = np.searchsorted(edges, u, side="right").astype(np.int64)
    idx[np.isnan(u)] = bins
    return idx


def bin_scalars(values: np.ndarray, bins: int) -> np.ndarray:
    """Bin numbers 1..bins of scalars (any shape, taken as one column), shape (N,) int64."""
    return bin_indices(np.ravel(np.asarray(values, dtype=np.float64))[:, None], bins)[:, 0]


def cell_counts(x: np.ndarray, bins: int) -> np.ndarray:
    """Rows per occupied cell of the grid that :func:`bin_indices` puts ``x`` on.

    Returns
    -------
    ndarray of int64
        One count per occupied cell (sorted by cell); empty for no rows. The binned entropy is
        the entropy of ``counts / N``.
    """
    if np.shape(x)[0] == 0:
        return np.zeros(0, dtype=np.int64)
    _, counts = np.unique(bin_indices(x, bins), axis=0, return_counts=True)
    return counts.astype(np.int64)
