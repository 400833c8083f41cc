"""Result types shared by every estimator; this module imports nothing from dsecli.

Results are small frozen dataclasses holding plain Python/NumPy values (never device
tensors), so they can be pickled, compared and turned into strict JSON with ``to_dict()``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np

__all__ = ["EntropyResult", "MIResult", "units_for_base", "json_safe", "ceiling_fields", "row_ceiling", "is_finite_number", "units_dependent_fields",
           "SATURATION_FRACTION", "SATURATION_RULE", "labels_entropy", "log_n_ceiling", "reference_ceiling",
           "ERROR_KEYS"]

# A value is "saturated" when it reaches this fraction of its ceiling: it then says more about the
# ceiling (N, the number of classes, the critic's batch) than about the data.
SATURATION_FRACTION = 0.95
SATURATION_RULE = "value >= 95% of ceiling"

# the fields of a result's ``extra`` that hold the estimator's own uncertainty, in order of preference (the
# approximate solver's error bound, MINE's or DSMI's spread): the "± error" of tables, rows and plot bands
ERROR_KEYS = ("error_estimate_bits", "error_estimate", "std", "spread", "repetition_stderr")


def units_for_base(base: float) -> str:
    """Name of the unit for a logarithm base: 2 -> bits, e -> nats, 10 -> hartleys."""
    if base == 2:
        return "bits"
    if math.isclose(base, math.e):
        return "nats"
    if base == 10:
        return "hartleys"
    return f"log{base:g} units"


def json_safe(value: Any) -> Any:
    """Convert ``value`` to something ``json.dumps(..., allow_nan=False)`` accepts.

    NumPy scalars and arrays become Python numbers and lists; NaN and +-Inf become ``None``.
    """
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, np.ndarray):
        return json_safe(value.tolist())
    if isinstance(value, (np.bool_, bool)):
        return bool(value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, (float, np.floating)):
        f = float(value)
        return f if math.isfinite(f) else None
    if isinstance(value, complex):
        return json_safe([value.real, value.imag])
    if value is None or isinstance(value, (str, int)):
        return value
    return str(value)


def labels_entropy(counts: Any, base: float) -> float:
    """Plug-in entropy H(Y) = -sum p log p of class counts (empty classes skipped), in log base ``base``."""
    c = np.asarray(counts, dtype=np.float64)
    c = c[c > 0]
    if c.size == 0:
        return 0.0
    p = c / c.sum()
    # + 0.0: one class gives -0.0, which would print as "-0"
    return float(-(p * np.log(p)).sum() / math.log(base)) + 0.0


def ceiling_fields(value: float, ceiling: float | None, rule: str, *, saturated: bool | None = None,
                   saturation_rule: str = SATURATION_RULE) -> dict[str, Any]:
    """The range of a value, for a result's ``extra``: ``ceiling`` (in the value's units), ``ceiling_rule``,
    ``fraction_of_ceiling`` = value / ceiling, and ``saturated`` with the rule that set it.

    ``saturated`` defaults to ``value >= SATURATION_FRACTION * ceiling``; a ceiling of 0 (one class,
    one row) has no fraction and is never saturated. ``ceiling=None`` means no finite ceiling.

    Returns
    -------
    dict
        ``ceiling``, ``ceiling_rule``, ``fraction_of_ceiling``, ``saturated``, ``saturation_rule``.
    """
    fraction = value / ceiling if ceiling is not None and ceiling > 0 and math.isfinite(value) else None
    if saturated is None:
        saturated = fraction is not None and fraction >= SATURATION_FRACTION
    return {"ceiling": ceiling, "ceiling_rule": rule, "fraction_of_ceiling": fraction, "saturated": bool(saturated),
            "saturation_rule": saturation_rule}


def log_n_ceiling(value: float, n: int, base: float, *, power: int = 1) -> dict[str, Any]:
    """The ceiling of a spectral entropy of N rows: log N (``power`` 2: log N^2, the matrix-entry entropy).

    Returns
    -------
    dict
        :func:`ceiling_fields` with ceiling ``power * log N / log base``.
    """
    rule = "log N_used" if power == 1 else "log N_used^2 = 2 log N_used"
    return ceiling_fields(value, power * math.log(n) / math.log(base), rule)


def reference_ceiling(value: float, counts: Any, base: float, *, what: str = "labels") -> dict[str, Any]:
    """The ceiling of a mutual information with a discrete reference: H(Y) of the classes used (I(X;Y) <= H(Y)).

    Returns
    -------
    dict
        :func:`ceiling_fields` with ceiling :func:`labels_entropy` of ``counts``.
    """
    return ceiling_fields(value, labels_entropy(counts, base), f"H(Y) of the {what} used")


def units_dependent_fields() -> dict[str, Any]:
    """``extra`` of a differential entropy: no ceiling, and the value moves with the data's units
    (H(aX) = H(X) + D log|a|).

    Returns
    -------
    dict
        ``depends_on_units`` (True), ``ceiling`` (None), ``ceiling_rule``, ``saturated`` (False).
    """
    return {"depends_on_units": True, "ceiling": None,
            "ceiling_rule": "none: a differential entropy, H(aX) = H(X) + D log|a| (depends on the data's units)",
            "fraction_of_ceiling": None, "saturated": False}


@dataclass(frozen=True)
class _Result:
    method: str
    value: float
    units: str
    base: float
    n_used: int
    n_total: int
    params: dict[str, Any] = field(default_factory=dict)
    elapsed_s: float | None = None
    warnings: tuple[str, ...] = ()
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def subsampled(self) -> bool:
        """True when fewer rows than the input held were used."""
        return self.n_used < self.n_total

    def to_dict(self, *, include_eigenvalues: bool = True) -> dict[str, Any]:
        """JSON-safe dictionary: ``json.dumps(r.to_dict(), allow_nan=False)`` always works."""
        out: dict[str, Any] = {"quantity": self.quantity}
        for f in fields(self):
            v = getattr(self, f.name)
            if f.name == "eigenvalues" and (v is None or not include_eigenvalues):
                continue
            out[f.name] = v
        out["subsampled"] = self.subsampled
        return json_safe(out)

    quantity = "result"


@dataclass(frozen=True)
class EntropyResult(_Result):
    """An entropy estimate.

    Attributes
    ----------
    method : str
        Estimator name (``"dse"``, ``"cse"``, ``"knn"``, ...).
    value : float
        The estimate, in ``units``.
    units : str
        ``"bits"`` for base 2, ``"nats"`` for base e.
    base : float
        Logarithm base.
    n_used, n_total : int
        Rows used, rows in the input (``n_used < n_total`` means the rows were subsampled).
    params : dict
        Every parameter actually used (numeric sigma, t, device, dtype, seed, ...).
    elapsed_s : float
        Wall-clock seconds of the computation.
    warnings : tuple of str
        Diagnostics raised while computing (degenerate kernel, duplicates, ...).
    eigenvalues : numpy.ndarray or None
        The operator's eigenvalues (float64, descending) for spectral methods when requested.
    extra : dict
        Method-specific details (e.g. the approximate solver's error estimate), and the value's
        range (:func:`ceiling_fields`): ``ceiling`` (same units; log N for DSE and the spectral
        entropies), ``ceiling_rule``, ``fraction_of_ceiling``, ``saturated``; differential
        entropies (knn) have ``depends_on_units`` instead of a ceiling.
    """

    eigenvalues: np.ndarray | None = None
    quantity = "entropy"


@dataclass(frozen=True)
class MIResult(_Result):
    """A mutual-information estimate; fields as :class:`EntropyResult`.

    ``extra`` holds the decomposition when the estimator has one (e.g. DSMI's
    ``h_marginal``/``h_conditional`` and per-class terms) and the value's range
    (:func:`ceiling_fields`): H(Y) of the labels or classes used when the reference is discrete
    (I(X; Y) <= H(Y)), log K for InfoNCE, none for a continuous reference.
    """

    quantity = "mutual_information"


def row_ceiling(row: dict[str, Any]) -> float | None:
    """The ceiling of a result row's value (``extra["ceiling"]``: a number, or a dict with ``value`` or
    ``bits``), or None.

    Returns
    -------
    float or None
        The ceiling in the row's units.
    """
    extra = row.get("extra")
    c = extra.get("ceiling") if isinstance(extra, dict) else None
    if isinstance(c, dict):
        c = next((c[k] for k in ("value", "bits") if is_finite_number(c.get(k))), None)
    return float(c) if is_finite_number(c) else None


def is_finite_number(v: Any) -> bool:
    """Whether ``v`` is a finite int or float (not a bool): a usable number in a result row."""
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
