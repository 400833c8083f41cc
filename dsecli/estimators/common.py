"""Helpers shared by the baseline estimators: argument checks, reference typing, warnings."""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np

from dsecli.errors import (
    CollectWarnings,
    DataQualityWarning,
    InputError,
    check_choice,
    check_positive,
    check_positive_int,
)
from dsecli.inputs.checks import host_array
from dsecli.inputs.reference import REF_KINDS, Classes, reference_classes

__all__ = [
    "check_base", "check_seed", "check_max_n", "nats_to", "Collect", "split_reference", "duplicate_count", "as_matrix",
    "standardize_columns",
]


def check_base(base: Any) -> float:
    base = check_positive(base, "base")
    if base == 1:
        raise InputError("`base` must be > 0 and != 1; got 1")
    return base


def check_seed(seed: Any) -> int:
    return check_positive_int(seed, "seed", minimum=0)


def check_max_n(max_n: Any) -> None:
    if max_n is not None:
        check_positive_int(max_n, "max_n", minimum=0)


def nats_to(value: float, base: float) -> float:
    return float(value) / math.log(base)


Collect = CollectWarnings  # one implementation, shared with the spectral estimators


def as_matrix(a: np.ndarray) -> np.ndarray:
    """(N,) -> (N, 1) float64; (N, D) -> float64 C-contiguous."""
    a = host_array(a, np.float64)
    return np.ascontiguousarray(a[:, None] if a.ndim == 1 else a)


def standardize_columns(a: np.ndarray) -> np.ndarray:
    """``(a - mean) / std`` per column (population std); a constant column is only centred.

    Mutual information is invariant to per-coordinate affine maps, the KSG estimate is not:
    with Euclidean or max norms a coordinate of large scale would dominate every distance.
    """
    sd = a.std(axis=0)
    return (a - a.mean(axis=0)) / np.where(sd > 0, sd, 1.0)


def duplicate_count(a: np.ndarray) -> int:
    """Rows that repeat an earlier row exactly."""
    return int(a.shape[0] - np.unique(a, axis=0).shape[0])


def split_reference(
    yv: np.ndarray, *, ref_kind: str, n_clusters: int, seed: int, where: str | None
) -> tuple[Classes | None, np.ndarray | None]:
    """Decide whether the reference is discrete (labels) or continuous, as the kNN/MINE estimators need.

    Discrete: ``ref_kind="discrete"``, or under ``"auto"`` one column of integers, booleans or
    strings (the rule of :func:`dsecli.inputs.reference.reference_classes`); returns ``(classes, None)``.
    Continuous: everything else; returns ``(None, y as float64 (N, D'))``. Continuous values are
    never binned or clustered here: the estimators use them as they are. Under ``"auto"`` a
    float reference holding few distinct integral values gets a :class:`DataQualityWarning`.
    """
    check_choice(ref_kind, "ref_kind", REF_KINDS)
    y = np.asarray(yv)
    col = y[:, 0] if y.ndim == 2 and y.shape[1] == 1 else y
    discrete_dtype = col.ndim == 1 and col.dtype.kind in "iubSU"
    if ref_kind == "discrete" or (ref_kind == "auto" and discrete_dtype):
        return reference_classes(y, kind="discrete" if ref_kind == "discrete" else "auto", n_clusters=n_clusters,
                                 seed=seed, where=where), None
    if y.dtype.kind not in "iuf" and y.dtype.kind != "b":
        raise InputError(
            f"{where + ': ' if where else ''}`ref_kind` continuous needs numeric reference values; got dtype {y.dtype}"
        )
    ym = as_matrix(y.astype(np.float64))
    if ref_kind == "auto" and col.ndim == 1 and np.all(np.mod(col, 1) == 0) and np.unique(col).size <= 20:
        warnings.warn(
            f"{where + ': ' if where else ''}reference is float with {np.unique(col).size} distinct integral values; "
            "it is treated as continuous (ties broken by jitter). Use ref_kind='discrete' to treat them as labels",
            DataQualityWarning,
            stacklevel=3,
        )
    return None, ym
