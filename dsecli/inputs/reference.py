"""Reading a reference variable Y, once per call, by one rule (docs/method.md#reference).

:func:`read_reference` decides what Y is, and every mutual-information method of a call uses that
one reading (:meth:`dsecli.inputs.prepare.Prepared.reference_reading` keeps it). The readings,
under ``ref_kind="auto"``:

============== ===================================================== ===============================
reading        Y                                                     classes (DSMI, CSMI)
============== ===================================================== ===============================
labels         one column of integers or booleans                    as given
strings        one column of strings                                 each distinct string (sorted)
one-hot        (N, K) of 0/1 with exactly one 1 per row              the column of the 1
scalars        one column of floats                                  ``n_clusters`` equal-width bins
vectors        (N, D') otherwise                                     k-means into ``n_clusters``
============== ===================================================== ===============================

The first three are *discrete*: every method uses the classes (KSG and MINE their
continuous-discrete forms). ``scalars`` and ``vectors`` are *continuous*: the class-based methods
(DSMI, CSMI) use the bins or clusters, computed once per call; KSG and MINE use Y as it is.
A float column whose values are all integral (at most :data:`MAX_INTEGRAL_LABELS` distinct) is
read as a scalar, as the published implementation reads it, with a warning that says how to read
it as labels: ``ref_kind="discrete"`` (the reading ``integral``). ``ref_kind="discrete"`` demands
a discrete reading (an error otherwise), ``"continuous"`` forces a continuous one (integer labels
are then binned). A single class is warned about: I(X; Y) = 0 then, for every
method. A class of a single row is allowed and warned about (its entropy is 0 by definition).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from dsecli.errors import DataQualityWarning, InputError, check_at_most, check_choice, check_positive_int, where_prefix
from dsecli.inputs.arrays import warn_single_row_classes
from dsecli.inputs.binning import bin_scalars
from dsecli.inputs.clustering import kmeans

__all__ = ["REF_KINDS", "READINGS", "MAX_INTEGRAL_LABELS", "Classes", "ReferenceReading", "read_reference",
           "reference_classes", "one_hot_codes"]

REF_KINDS = ("auto", "discrete", "continuous")
READINGS = ("labels", "strings", "integral", "one-hot", "scalars", "vectors")
# A float column of integral values with at most this many distinct values may be labels saved as
# floats (pandas, CSV, one-column HDF5): the reading warns; more look like a measured quantity.
MAX_INTEGRAL_LABELS = 256


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


@dataclass(frozen=True, eq=False)
class ReferenceReading:
    """Y read once: what it is (``reading``), its classes, and its values for continuous estimators.

    Attributes
    ----------
    reading : str
        One of :data:`READINGS`.
    values : numpy.ndarray, shape (N, D')
        Y as float64 columns (continuous readings; for discrete ones the class codes as one column).
    where : str or None
        The reference's label for messages.
    detail : dict
        How the reading was decided (recorded in results' ``params["reference"]``).
    """

    reading: str
    values: np.ndarray
    where: str | None
    seed: int
    detail: dict[str, Any]
    _classes: dict[int | None, Classes] = field(default_factory=dict, repr=False)

    @property
    def discrete(self) -> bool:
        """True when every method uses the classes (labels, strings, integral, one-hot)."""
        return self.reading not in ("scalars", "vectors")

    def classes(self, n_clusters: int = 10) -> Classes:
        """The classes: as read for a discrete reading (``n_clusters`` unused); for a continuous one,
        ``n_clusters`` bins (scalars) or k-means clusters (vectors), computed once per ``n_clusters``.

        Warns (:class:`~dsecli.errors.DataQualityWarning`) when they are computed here, as for a
        discrete reading in :func:`read_reference`, about a single class or single-row classes.
        """
        if self.discrete:
            return self._classes[None]
        n_clusters = check_positive_int(n_clusters, "n_clusters")
        if n_clusters not in self._classes:
            check_at_most(n_clusters, self.values.shape[0], "n_clusters", where=self.where,
                          why="rows of the reference")
            if self.reading == "scalars":
                classes = _binned(self.values[:, 0], n_clusters)
            else:
                codes = kmeans(self.values, n_clusters, seed=self.seed, where=self.where)
                classes = Classes(codes, list(range(int(codes.max()) + 1)), "clustered",
                                  {"algorithm": "kmeans++/lloyd", "n_init": 10, "seed": self.seed,
                                   "n_clusters": n_clusters})
            _warn_classes(classes, self.where)
            self._classes[n_clusters] = classes
        return self._classes[n_clusters]

    def params(self) -> dict[str, Any]:
        """What a result records of the reading: ``{"reading": ..., **detail}``."""
        return {"reading": self.reading, **self.detail}


def read_reference(y: Any, *, ref_kind: str = "auto", seed: int = 0, where: str | None = None) -> ReferenceReading:
    """Read the reference ``y`` (shape (N,), (N, 1) or (N, D')) by the rule of this module.

    Discrete readings compute their classes here (and warn about a single class or single-row
    classes); continuous readings compute theirs on first use of :attr:`ReferenceReading.classes`.

    Raises
    ------
    InputError
        ``ref_kind`` not one of :data:`REF_KINDS`, a reading it forbids, non-numeric vectors.
    """
    check_choice(ref_kind, "ref_kind", REF_KINDS)
    w = where_prefix(where)
    y = np.asarray(y)
    col = y[:, 0] if y.ndim == 2 and y.shape[1] == 1 else y
    if col.dtype.kind == "b":
        col = col.astype(np.int64)

    def discrete(reading: str, codes: np.ndarray, names: list[Any], detail: dict[str, Any]) -> ReferenceReading:
        classes = Classes(codes, names, "labels", {"from": reading} if reading != "labels" else {})
        _warn_classes(classes, where)
        return ReferenceReading(reading, codes.astype(np.float64)[:, None], where, seed, detail, {None: classes})

    def continuous(reading: str, values: np.ndarray, detail: dict[str, Any]) -> ReferenceReading:
        return ReferenceReading(reading, np.ascontiguousarray(values.reshape(values.shape[0], -1), dtype=np.float64),
                                where, seed, detail)

    if col.ndim == 1 and col.dtype.kind in "SUO":
        if ref_kind == "continuous":
            raise InputError(f"{w}`ref_kind` must be auto or discrete for a reference of strings (labels); "
                             "got 'continuous'")
        if col.dtype.kind == "S":
            # byte strings (HDF5 and NumPy's "S" labels) are text: named "a", not "b'a'"; bytes that are
            # not UTF-8 keep their escapes, so distinct labels stay distinct
            col = np.char.decode(col, "utf-8", "backslashreplace")
        codes, names = _encode(col.astype(str) if col.dtype.kind == "O" else col)
        return discrete("strings", codes, names, {})
    if col.ndim == 1 and col.dtype.kind in "iu":
        if ref_kind == "continuous":
            return continuous("scalars", col, {"forced_by": "ref_kind=continuous"})
        codes, names = _encode(col)
        return discrete("labels", codes, names, {})
    if col.dtype.kind not in "iuf":
        raise InputError(f"{w}`reference` must be numeric labels, strings or numeric vectors; got dtype {y.dtype}")
    if col.ndim == 1:
        integral = bool(np.all(np.mod(col, 1) == 0))
        if ref_kind == "discrete" and not integral:
            raise InputError(
                f"{w}`ref_kind` discrete needs integer labels; got non-integral float values "
                f"(e.g. {float(col[np.mod(col, 1) != 0][0])!r}): use --ref-kind continuous or auto"
            )
        if ref_kind == "discrete":
            # encoded as floats (a cast to int64 would overflow beyond 2**63), named as Python ints
            codes, names = _encode(col)
            return discrete("integral", codes, [int(v) for v in names], {"forced_by": "ref_kind=discrete"})
        distinct = int(np.unique(col).size)
        if integral and distinct <= MAX_INTEGRAL_LABELS:
            warnings.warn(
                f"{w}reference is a float column of {distinct} distinct integral values: read as a scalar, as the "
                "published implementation does (binned into n_clusters equal-width bins by dsmi and csmi, used as "
                "it is by ksg and mine); pass ref_kind='discrete' (--ref-kind discrete) to read the values as labels",
                DataQualityWarning,
                stacklevel=3,
            )
            return continuous("scalars", col, {"integral_values": distinct})
        return continuous("scalars", col, {})
    hot = one_hot_codes(y)
    if hot is not None and ref_kind != "continuous":
        codes, names = _encode(hot)
        return discrete("one-hot", codes, names,
                        {"rule": f"{y.shape[1]} columns of 0/1 with one 1 per row read as the column of the 1",
                         "columns": int(y.shape[1])})
    if ref_kind == "discrete":
        raise InputError(
            f"{w}`ref_kind` discrete needs one label per row (or one-hot rows); got a reference with "
            f"{y.shape[1]} columns: use ref_kind auto (vectors are clustered)"
        )
    return continuous("vectors", y, {})


def reference_classes(y: Any, *, kind: str = "auto", n_clusters: int = 10, seed: int = 0,
                      where: str | None = None) -> Classes:
    """The classes of :func:`read_reference` (bins or k-means for a continuous reading)."""
    return read_reference(y, ref_kind=kind, seed=seed, where=where).classes(n_clusters)


def one_hot_codes(y: np.ndarray) -> np.ndarray | None:
    """The column of the 1 in each row when ``y`` (N, K >= 2) holds only 0 and 1 with one 1 per row."""
    if y.ndim != 2 or y.shape[1] < 2 or y.dtype.kind not in "biuf":
        return None
    ones = y == 1
    if not np.all(ones | (y == 0)) or not np.all(ones.sum(axis=1) == 1):
        return None
    return np.argmax(ones, axis=1).astype(np.int64)


def _warn_classes(classes: Classes, where: str | None) -> None:
    if len(classes.names) == 1:
        warnings.warn(
            f"{where_prefix(where)}reference has a single class ({classes.names[0]!r}) on the rows used: "
            "I(X; Y) = 0 for every method (H(Y) = 0); check that the reference column is the one meant",
            DataQualityWarning,
            stacklevel=4,
        )
        return
    warn_single_row_classes(classes.names, classes.counts, where=where)


def _encode(values: np.ndarray) -> tuple[np.ndarray, list[Any]]:
    names, codes = np.unique(values, return_inverse=True)
    return codes.astype(np.int64).ravel(), [v.item() if hasattr(v, "item") else v for v in names]


def _binned(y: np.ndarray, n_bins: int) -> Classes:
    bins = bin_scalars(y, n_bins)
    codes, names = _encode(bins)
    return Classes(codes, names, "binned", {"n_bins": n_bins, "min": float(np.min(y)), "max": float(np.max(y))})
