"""Result types shared by every estimator; this module imports nothing from dsecli.

Results are small frozen dataclasses holding plain Python/NumPy values (never device
tensors), so they can be pickled, compared and turned into strict JSON with ``to_dict()``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np

__all__ = ["EntropyResult", "MIResult", "units_for_base", "json_safe"]


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
        Method-specific details (e.g. the approximate solver's error estimate).
    """

    eigenvalues: np.ndarray | None = None
    quantity = "entropy"


@dataclass(frozen=True)
class MIResult(_Result):
    """A mutual-information estimate; fields as :class:`EntropyResult`.

    ``extra`` holds the decomposition when the estimator has one (e.g. DSMI's
    ``h_marginal``/``h_conditional`` and per-class terms).
    """

    quantity = "mutual_information"
