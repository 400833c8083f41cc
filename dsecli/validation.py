"""Checks on arrays, applied once where data enter the library (one policy, one place).

Messages name the input (``file:key`` when it came from a file), the parameter and the
problem, and suggest the fix. Non-finite values are refused with their count and first row,
unless the caller asks for those rows to be dropped (then the drop is reported).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .errors import InputError

__all__ = ["CheckedMatrix", "check_embeddings", "check_reference_array", "nonfinite_rows"]


@dataclass(frozen=True)
class CheckedMatrix:
    """A float matrix ready for computation and what was done to get it."""

    data: np.ndarray  # (n, D), float32 or float64
    dropped_rows: np.ndarray  # positions (in the given rows) dropped as non-finite
    flattened_from: tuple[int, ...] | None = None


def _w(where: str | None) -> str:
    return f"{where}: " if where else ""


def nonfinite_rows(arr: np.ndarray) -> np.ndarray:
    """Positions of rows holding NaN or +-Inf."""
    flat = arr.reshape(arr.shape[0], -1)
    return np.flatnonzero(~np.isfinite(flat).all(axis=1))


def check_embeddings(
    arr: np.ndarray,
    *,
    where: str | None = None,
    name: str = "embeddings",
    flatten: bool = False,
    drop_nonfinite: bool = False,
    min_rows: int = 2,
) -> CheckedMatrix:
    """Validate an embedding matrix X of shape (N, D) and return it as floats.

    Refuses: non-numeric dtypes (strings, objects, complex), 1-D arrays (with the reshape to
    use), arrays with more than 2 dimensions unless ``flatten``, D = 0, fewer than
    ``min_rows`` rows, and NaN/Inf unless ``drop_nonfinite``.
    """
    arr = np.asarray(arr)
    if arr.dtype.kind in "OSUV":
        raise InputError(f"{_w(where)}{name} must be numeric; got dtype {arr.dtype} (strings/objects)")
    if arr.dtype.kind == "c":
        raise InputError(f"{_w(where)}{name} must be real; got complex dtype {arr.dtype} (take .real or abs first)")
    if arr.dtype.kind not in "biuf":
        raise InputError(f"{_w(where)}{name} must be numeric; got dtype {arr.dtype}")
    flattened_from = None
    if arr.ndim == 0:
        raise InputError(f"{_w(where)}{name} must be a 2-D array (N rows x D features); got a scalar")
    if arr.ndim == 1:
        raise InputError(
            f"{_w(where)}{name} must be 2-D (N rows x D features); got 1-D shape ({arr.shape[0]},): "
            f"for N points of one feature use x.reshape(-1, 1), for one point use x.reshape(1, -1)"
        )
    if arr.ndim > 2:
        if not flatten:
            raise InputError(
                f"{_w(where)}{name} must be 2-D (N rows x D features); got shape {tuple(arr.shape)}: "
                "pass --flatten (flatten=True) to use rows of shape N x prod(rest)"
            )
        flattened_from = tuple(arr.shape)
        arr = arr.reshape(arr.shape[0], -1)
    n, d = arr.shape
    if d == 0:
        raise InputError(f"{_w(where)}{name} have D = 0 features (shape {tuple(arr.shape)})")
    if arr.dtype.kind != "f" or arr.dtype.itemsize < 4:
        arr = arr.astype(np.float64)
    dropped = np.zeros(0, dtype=np.int64)
    bad = nonfinite_rows(arr)
    if bad.size:
        if not drop_nonfinite:
            raise InputError(
                f"{_w(where)}{name} contain NaN or Inf in {bad.size} row(s), first at row {int(bad[0])}; "
                "clean them or pass --drop-nonfinite (drop_nonfinite=True)"
            )
        dropped = bad
        arr = np.delete(arr, bad, axis=0)
        n = arr.shape[0]
    if n < min_rows:
        raise InputError(f"{_w(where)}{name} need at least {min_rows} rows; got N = {n}")
    return CheckedMatrix(np.ascontiguousarray(arr), dropped, flattened_from)


def check_reference_array(arr: np.ndarray, *, where: str | None = None, n_rows: int | None = None) -> np.ndarray:
    """Validate a reference Y: one row per sample, labels (int/str), scalars or vectors."""
    arr = np.asarray(arr)
    if arr.ndim == 0:
        raise InputError(f"{_w(where)}reference must have one entry per row; got a scalar")
    if arr.dtype.kind == "c":
        raise InputError(f"{_w(where)}reference must be real; got complex dtype {arr.dtype}")
    if arr.dtype.kind == "O":
        raise InputError(f"{_w(where)}reference holds Python objects; expected numbers or strings")
    if arr.ndim > 2:
        raise InputError(f"{_w(where)}reference must be 1-D (labels/scalars) or 2-D (vectors); got shape {arr.shape}")
    if arr.ndim == 2 and arr.shape[1] == 0:
        raise InputError(f"{_w(where)}reference has 0 columns (shape {arr.shape})")
    if n_rows is not None and arr.shape[0] != n_rows:
        raise InputError(f"{_w(where)}embeddings have {n_rows} rows but the reference has {arr.shape[0]}")
    if arr.dtype.kind == "f":
        bad = nonfinite_rows(arr)
        if bad.size:
            raise InputError(
                f"{_w(where)}reference contains NaN or Inf in {bad.size} row(s), first at row {int(bad[0])}"
            )
    return arr
