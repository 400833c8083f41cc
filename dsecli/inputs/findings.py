"""Data-quality findings that every estimator reports: duplicate rows and constant columns.

:func:`data_quality_warnings` costs O(N D) (rows are hashed, not sorted) and runs once per call
in :func:`dsecli.inputs.prepare.prepare_rows`, which turns each message into a
:class:`~dsecli.errors.DataQualityWarning`; the sanity report (:mod:`dsecli.diagnostics.check`)
uses the same counts for its findings.

Why these matter: duplicates are points at distance 0 (DSE counts them as one point at small
sigma, the kNN and KSG estimators take log 0); constant columns add nothing to distances or
bins (dead units).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from dsecli.errors import where_prefix

__all__ = ["constant_columns", "duplicate_rows", "distinct_row_counts", "data_quality_warnings"]

_HASH_SEED = 0x5EED_D5E


def _row_hashes(x: np.ndarray) -> np.ndarray:
    """64-bit hash of each row's bytes: sum of (bits * odd random multiplier), wrapping.

    Integer arithmetic is exact and order-independent, so equal rows always get equal hashes
    (unlike a floating-point projection); unequal rows collide with probability ~2^-63, and
    callers verify candidates byte by byte anyway.
    """
    x = np.ascontiguousarray(x)
    if x.dtype.itemsize == 8:
        bits = x.view(np.uint64)
    else:
        bits = x.view(np.dtype(f"u{x.dtype.itemsize}")).astype(np.uint64)
    mult = np.random.default_rng(_HASH_SEED).integers(1, 2**62, size=x.shape[1], dtype=np.uint64) * 2 + 1
    return bits @ mult


def distinct_row_counts(x: np.ndarray) -> tuple[np.ndarray, tuple[int, int] | None]:
    """Multiplicities of the distinct rows of a 2-D array (exact), and one repeated pair.

    Returns ``(counts, pair)``: ``counts`` has one entry per distinct row (any order);
    ``pair`` is ``(i, j)`` with row j an exact repeat of the earlier row i, or None. O(N D).
    """
    n = x.shape[0]
    if n == 0:
        return np.zeros(0, dtype=np.int64), None
    x = np.ascontiguousarray(x)
    if x.dtype.kind == "f":
        x = x + x.dtype.type(0)  # -0.0 -> 0.0: the same point, different bytes
    h = _row_hashes(x)
    _, inverse, hcounts = np.unique(h, return_inverse=True, return_counts=True)
    shared = np.flatnonzero(hcounts[inverse] > 1)
    singles = np.ones(int((hcounts == 1).sum()), dtype=np.int64)
    if shared.size == 0:
        return singles, None
    groups: dict[bytes, list[int]] = {}
    for i in shared:
        groups.setdefault(x[i].tobytes(), []).append(int(i))
    pair = None
    for rows in groups.values():
        if len(rows) > 1 and (pair is None or rows[1] < pair[1]):
            pair = (rows[0], rows[1])
    counts = np.concatenate([singles, np.array([len(r) for r in groups.values()], dtype=np.int64)])
    return counts, pair


def _device_duplicates(x: Any) -> tuple[int, int, tuple[int, int] | None]:
    """:func:`duplicate_rows` of a tensor on its device: only each row's group number (N integers) comes to the host."""
    import torch

    n = int(x.shape[0])
    _, inverse = torch.unique(x + 0.0, dim=0, return_inverse=True)  # + 0.0: -0.0 and 0.0 are one point
    inv = inverse.cpu().numpy()
    first = np.full(int(inv.max()) + 1 if n else 0, n, dtype=np.int64)
    np.minimum.at(first, inv, np.arange(n))
    repeats = np.flatnonzero(first[inv] != np.arange(n))
    pair = (int(first[inv[repeats[0]]]), int(repeats[0])) if repeats.size else None
    return int(n - first.size), int(first.size), pair


def duplicate_rows(x: Any) -> tuple[int, int, tuple[int, int] | None]:
    """``(rows that repeat an earlier row, distinct rows, an example pair (i, j))``; exact, O(N D).

    ``x``: a numpy array, or a tensor (counted on its device).
    """
    if hasattr(x, "detach"):
        return _device_duplicates(x)
    counts, pair = distinct_row_counts(x)
    return int(x.shape[0] - counts.size), int(counts.size), pair


def constant_columns(x: Any) -> np.ndarray:
    """Indices of the columns holding a single value (over the given rows); ``x`` numpy or a tensor (on its device)."""
    if x.shape[0] == 0:
        return np.zeros(0, dtype=np.int64)
    if hasattr(x, "detach"):
        import torch

        return torch.nonzero(x.amax(0) == x.amin(0)).flatten().cpu().numpy().astype(np.int64)
    return np.flatnonzero(np.max(x, axis=0) == np.min(x, axis=0))


def shown_numbers(idx: np.ndarray, limit: int = 8) -> str:
    """``"3, 8, 9"``: the first ``limit`` numbers, then ``", ..."`` when there are more."""
    out = ", ".join(str(int(i)) for i in idx[:limit])
    return out + (", ..." if idx.size > limit else "")


def columns_phrase(idx: np.ndarray) -> str:
    """``"column 2"`` or ``"columns 1, 4"``."""
    return f"column {int(idx[0])}" if idx.size == 1 else f"columns {shown_numbers(idx)}"


def are(count: int) -> str:
    """The verb agreeing with ``count``."""
    return "is" if count == 1 else "are"


def input_row(i: int, row_numbers: np.ndarray | None) -> int:
    """The input's row number of position ``i`` of the rows used (after subsampling)."""
    return int(i) if row_numbers is None else int(row_numbers[i])


def data_quality_warnings(x: np.ndarray, *, where: str | None = None,
                          row_numbers: np.ndarray | None = None) -> list[str]:
    """Messages about duplicate rows and constant columns of a finite float matrix (N, D); O(N D).

    ``row_numbers`` maps positions to the input's row numbers (after subsampling).
    """
    w = where_prefix(where)
    n, d = x.shape
    out: list[str] = []
    if n < 2:
        return out
    const = constant_columns(x)
    if const.size == d:
        return [f"{w}all {d} columns are constant: every row is the same point, so every entropy of these "
                "rows is 0 and every mutual information is 0"]
    if const.size:
        out.append(
            f"{w}{const.size} of {d} columns {are(const.size)} constant ({columns_phrase(const)}): "
            "constant columns add nothing to distances or bins (dead units?)"
        )
    n_dup, n_distinct, pair = duplicate_rows(x)
    if n_dup:
        eg = f"; e.g. row {input_row(pair[1], row_numbers)} repeats row {input_row(pair[0], row_numbers)}" if pair else ""
        out.append(
            f"{w}{n_dup} of {n} rows {'repeats' if n_dup == 1 else 'repeat'} an earlier row ({n_distinct} distinct{eg}): duplicates are points at "
            "distance 0, which lower DSE and make kNN/KSG distances 0; `dse check` reports more"
        )
    return out
