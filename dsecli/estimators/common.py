"""Helpers shared by the baseline estimators: units, column scaling, duplicate counts."""

from __future__ import annotations

import math

import numpy as np

from dsecli.inputs.arrays import host_array

__all__ = [
    "nats_to", "duplicate_count", "as_matrix",
    "standardize_columns",
]


def nats_to(value: float, base: float) -> float:
    return float(value) / math.log(base)


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
