"""Helpers shared by the baseline estimators: argument checks, reference typing, warnings."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from dsecli.errors import (
    CollectWarnings,
    InputError,
    check_positive,
    check_positive_int,
)
from dsecli.inputs.checks import host_array

__all__ = [
    "check_base", "check_seed", "check_max_n", "nats_to", "Collect", "duplicate_count", "as_matrix",
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
