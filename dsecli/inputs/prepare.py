"""Getting rows into the estimators: one subsample per call, validated once.

Every estimator (DSE, DSMI and the baselines) starts with :func:`prepare_rows` (and, for
mutual information, :func:`prepare_reference`), so all methods of one call see the same rows
and the same validation messages.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from dsecli.errors import DataQualityWarning, DseWarning, check_choice
from dsecli.inputs.checks import check_embeddings, check_reference_array, check_same_rows
from dsecli.inputs.sampling import SAMPLERS, Rows, take_rows

__all__ = ["prepare_rows", "prepare_reference"]


def prepare_rows(
    x: Any,
    *,
    max_n: int | None,
    seed: int,
    sampler: str = "numpy",
    min_rows: int = 2,
    flatten: bool = False,
    drop_nonfinite: bool = False,
) -> Rows:
    """Subsample (once) and validate embeddings; returns :class:`Rows` with float data.

    Raw input (anything but :class:`Rows`, which came from an earlier call) is also checked
    for duplicate rows and constant columns (:func:`dsecli.diagnostics.sanity.data_quality_warnings`,
    O(N D)); each finding is a :class:`~dsecli.errors.DataQualityWarning`.
    """
    check_choice(sampler, "sampler", SAMPLERS)
    fresh = not isinstance(x, Rows)
    rows = take_rows(x, max_n=max_n, seed=seed, sampler=sampler)
    data = rows.data
    if hasattr(data, "detach"):
        data = data.detach().cpu().numpy()
    checked = check_embeddings(
        data, where=rows.source, flatten=flatten, drop_nonfinite=drop_nonfinite, min_rows=min_rows,
        row_numbers=rows.indices, n_total=rows.n_total,
    )
    if fresh:
        from dsecli.diagnostics.sanity import data_quality_warnings

        numbers = rows.indices
        if checked.dropped_rows.size:
            numbers = np.delete(numbers if numbers is not None else np.arange(rows.n_used), checked.dropped_rows)
        for message in data_quality_warnings(checked.data, where=rows.source, row_numbers=numbers):
            warnings.warn(message, DataQualityWarning, stacklevel=2)
    if checked.dropped_rows.size:
        idx = rows.indices if rows.indices is not None else np.arange(rows.n_total)
        gone = idx[checked.dropped_rows]
        shown = ", ".join(str(int(i)) for i in gone[:8]) + (", ..." if gone.size > 8 else "")
        warnings.warn(
            f"{rows.source + ': ' if rows.source else ''}dropped {gone.size} row(s) holding NaN or Inf "
            f"(--drop-nonfinite): rows {shown}; {checked.data.shape[0]} rows remain",
            DseWarning,
            stacklevel=3,
        )
        keep = np.delete(idx, checked.dropped_rows)
        return Rows(checked.data, rows.n_total, keep, rows.source)
    if checked.data is data:
        return rows
    return Rows(checked.data, rows.n_total, rows.indices, rows.source)


def prepare_reference(y: Any, rows: Rows, *, where: str | None = None) -> np.ndarray:
    """Read the reference rows matching ``rows`` (same subsample, same dropped rows).

    ``y`` may be an array (N_total rows), a lazy file source, or :class:`Rows` already aligned
    with ``rows`` (as :func:`dsecli.methods.estimate_mutual_information` passes it).
    """
    if isinstance(y, Rows):
        return check_reference_array(np.asarray(y.data), where=where or y.source, n_rows=rows.n_used)
    if hasattr(y, "read") and hasattr(y, "shape"):
        where = where or getattr(y, "label", None)
        check_same_rows(rows.n_total, int(y.shape[0]), where=where, embeddings=rows.source)
        data = y.read(rows.indices)
    else:
        data = np.asarray(y.detach().cpu().numpy() if hasattr(y, "detach") else y)
        check_same_rows(rows.n_total, data.shape[0] if data.ndim else 0, where=where, embeddings=rows.source)
        if rows.indices is not None:
            data = data[rows.indices]
    return check_reference_array(data, where=where, n_rows=rows.n_used, row_numbers=rows.indices)
