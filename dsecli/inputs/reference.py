"""Turning a reference variable Y into classes for conditional entropies (docs/method.md#reference).

- integer (or boolean) labels, one column: classes as given;
- strings: each distinct string is a class (sorted order);
- float scalars: min-max scaled and cut into ``n_clusters`` equal-width bins by the one binning
  rule of :mod:`dsecli.inputs.binning` (linspace edges; a value on an edge goes to the upper
  bin, the maximum to the last; docs/method.md#binning);
- vectors (more than one column): k-means into ``n_clusters`` groups (:mod:`dsecli.inputs.clustering`).

``kind="auto"`` decides by dtype and shape: integers/strings are discrete, floats continuous.
Floats that happen to be integral stay continuous under ``auto`` (a warning says how to use
them as labels: ``kind="discrete"``). Negative integers are labels like any other. A class of
a single row is allowed and warned about (its entropy is 0 by definition).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from dsecli.errors import DataQualityWarning, InputError, check_at_most, check_choice, check_positive_int
from dsecli.inputs.binning import bin_scalars
from dsecli.inputs.checks import warn_single_row_classes
from dsecli.inputs.clustering import kmeans

__all__ = ["REF_KINDS", "Classes", "reference_classes"]

REF_KINDS = ("auto", "discrete", "continuous")


@dataclass(frozen=True)
class Classes:
    """A partition of the rows: ``codes`` in 0..C-1 and what each code stands for."""

    codes: np.ndarray  # (N,) int64
    names: list[Any]  # label / bin number / cluster id of each code
    kind: str  # "labels", "binned", "clustered"
    detail: dict[str, Any] = field(default_factory=dict)

    @property
    def counts(self) -> np.ndarray:
        return np.bincount(self.codes, minlength=len(self.names))


def _encode(values: np.ndarray) -> tuple[np.ndarray, list[Any]]:
    names, codes = np.unique(values, return_inverse=True)
    return codes.astype(np.int64).ravel(), [v.item() if hasattr(v, "item") else v for v in names]


def reference_classes(
    y: Any, *, kind: str = "auto", n_clusters: int = 10, seed: int = 0, where: str | None = None
) -> Classes:
    """Partition rows by the reference ``y`` (shape (N,), (N, 1) or (N, D')).

    Warns (:class:`DataQualityWarning`) when a class holds a single row.
    """
    classes = _partition(y, kind=kind, n_clusters=n_clusters, seed=seed, where=where)
    warn_single_row_classes(classes.names, classes.counts, where=where)
    return classes


def _partition(y: Any, *, kind: str, n_clusters: int, seed: int, where: str | None) -> Classes:
    check_choice(kind, "ref_kind", REF_KINDS)
    n_clusters = check_positive_int(n_clusters, "n_clusters")
    y = np.asarray(y)
    w = f"{where}: " if where else ""
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.dtype.kind == "b":
        y = y.astype(np.int64)
    if y.ndim == 1 and y.dtype.kind in "SU":
        if kind == "continuous":
            raise InputError(
                f"{w}`ref_kind` must be auto or discrete for a reference of strings (labels); got 'continuous'"
            )
        codes, names = _encode(y)
        return Classes(codes, names, "labels", {"from": "strings"})
    if y.ndim == 1 and y.dtype.kind in "iu":
        if kind == "continuous":
            return _binned(y, n_clusters, w)
        codes, names = _encode(y)
        return Classes(codes, names, "labels", {})
    if y.ndim == 1:  # floats
        integral = bool(np.all(np.mod(y, 1) == 0))
        if kind == "discrete":
            if not integral:
                raise InputError(
                    f"{w}`ref_kind` discrete needs integer labels; got non-integral float values "
                    f"(e.g. {float(y[np.mod(y, 1) != 0][0])!r}): use --ref-kind continuous or auto"
                )
            # encoded as floats (a cast to int64 would overflow beyond 2**63), named as Python ints
            codes, names = _encode(y)
            return Classes(codes, [int(v) for v in names], "labels", {"from": "integral floats"})
        if kind == "auto" and integral and np.unique(y).size <= max(n_clusters, 20):
            warnings.warn(
                f"{w}reference is float with {np.unique(y).size} distinct integral values; under --ref-kind auto "
                f"it is binned into {n_clusters} equal-width bins as a continuous variable; use --ref-kind discrete "
                "to treat the values as class labels",
                DataQualityWarning,
                stacklevel=2,
            )
        return _binned(y, n_clusters, w)
    # vectors
    if kind == "discrete":
        raise InputError(
            f"{w}`ref_kind` discrete needs one label per row; got a reference with {y.shape[1]} columns: "
            "use --ref-kind auto (vectors are clustered)"
        )
    if y.dtype.kind not in "iuf":
        raise InputError(f"{w}`reference` vectors must be numeric; got dtype {y.dtype}")
    check_at_most(n_clusters, y.shape[0], "n_clusters", where=where, why="rows of the reference")
    codes = kmeans(y, n_clusters, seed=seed)
    return Classes(codes, list(range(int(codes.max()) + 1)), "clustered",
                   {"algorithm": "kmeans++/lloyd", "n_init": 10, "seed": seed, "n_clusters": n_clusters})


def _binned(y: np.ndarray, n_bins: int, w: str) -> Classes:
    check_at_most(n_bins, y.shape[0], "n_clusters", where=w[:-2] or None, why="rows of the reference")
    bins = bin_scalars(y, n_bins)
    codes, names = _encode(bins)
    return Classes(codes, names, "binned", {"n_bins": n_bins, "min": float(np.min(y)), "max": float(np.max(y))})
