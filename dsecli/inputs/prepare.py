"""Getting rows into the estimators: validated once, at the public edge, into a :class:`Prepared`.

Every public estimator (DSE, DSMI, the published spectral variants, the baselines) accepts raw
data or a :class:`Prepared`. Raw data go through :func:`prepare_rows`: one seeded subsample, the
checks of :func:`dsecli.inputs.arrays.check_embeddings`, and the data-quality findings of
:func:`dsecli.inputs.findings.data_quality_warnings`. A :class:`Prepared` is trusted as it is (only
its row count is compared with what the method needs). :func:`dsecli.methods.estimate_entropy` and
:func:`dsecli.methods.estimate_mutual_information` prepare once and hand the same value to every
method, so all methods of one call see the same rows, the same messages and one device resolution.

The warnings raised while preparing travel in :attr:`Prepared.warnings`: they are shown once, when
the rows are prepared, and every result computed from the rows lists them in its ``warnings``.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import numpy as np

from dsecli.errors import CollectWarnings, DataQualityWarning, DseWarning, InputError, check_choice, where_prefix
from dsecli.inputs.arrays import (
    check_embeddings,
    check_reference_array,
    check_same_rows,
    check_working_range,
    host_array,
)
from dsecli.inputs.findings import data_quality_warnings
from dsecli.inputs.reference import ReferenceReading, read_reference
from dsecli.inputs.sampling import SAMPLERS, Rows, take_rows

if TYPE_CHECKING:  # pragma: no cover
    import torch

__all__ = ["Prepared", "prepare_rows", "prepare_pair", "prepare_reference", "with_reference", "replace_warnings"]

# the key under which Prepared._resolved lists the keys of the values kept for one call only
_FOR_CALL = ("for one call",)


@dataclass(frozen=True, eq=False)
class Prepared(Rows):
    """Rows validated once, ready for every estimator (made by :func:`prepare_rows`).

    A :class:`~dsecli.inputs.sampling.Rows` (``n_used``, ``label``, ``subsampled`` as there) whose
    data have passed every check.

    Attributes
    ----------
    data : numpy.ndarray or torch.Tensor, shape (n_used, D)
        float32 or float64, C-contiguous, finite, |values| within float64's safe range for
        squared distances: the matrix the estimators compute on. A tensor given on a GPU stays
        there (detached, checked with torch ops on its device); every other input, CPU tensors
        included, is a numpy array (a float32/float64 CPU tensor is shared, not copied).
    n_total : int
        Rows in the input.
    indices : numpy.ndarray or None
        The input's row number of each row (sorted); None when every input row is used in order.
    source : str or None
        The input's label for messages (``file:key``).
    warnings : tuple of str
        Messages raised while preparing (duplicate rows, constant columns, dropped rows). Shown
        once, when the rows were prepared; every result computed from these rows lists them.
    reference : numpy.ndarray or None
        Reference rows aligned with ``data`` (validated by
        :func:`dsecli.inputs.arrays.check_reference_array`), for mutual information.
    reference_source : str or None
        The reference's label for messages.
    device_request, dtype_request
        The device and dtype asked for (None: "auto", and each method's own dtype default).
        :attr:`device` and :meth:`working_dtype` resolve them once and keep the result.
    """

    data: np.ndarray
    warnings: tuple[str, ...] = ()
    reference: np.ndarray | None = None
    reference_source: str | None = None
    device_request: Any = None
    dtype_request: Any = None
    # resolved device/dtype, filled on first use (mutable on purpose: resolution is lazy, so a
    # method that needs no device, e.g. binned entropy, never imports torch)
    # (not an __init__ field: rows derived with dataclasses.replace start with an empty cache, so a
    # reading of another reference or of other rows is never reused)
    _resolved: dict[Any, Any] = field(default_factory=dict, init=False, repr=False)

    @property
    def device(self) -> torch.device:
        """The requested device (None or "auto": CUDA when available) as a torch.device; resolved once.

        Raises :class:`~dsecli.errors.DeviceError` when CUDA is asked for and absent.
        """
        if "device" not in self._resolved:
            from dsecli.device import resolve_device

            self._resolved["device"] = resolve_device("auto" if self.device_request is None else self.device_request)
        return self._resolved["device"]

    def working_dtype(self, default: Any = "float64") -> torch.dtype:
        """The requested dtype, else ``default`` (the method's own), as a torch dtype; each resolved once."""
        request = self.dtype_request if self.dtype_request is not None else default
        key = f"dtype {request}"
        if key not in self._resolved:
            from dsecli.device import resolve_dtype

            self._resolved[key] = resolve_dtype(request)
        return self._resolved[key]

    def once(self, key: Any, make: Callable[[], Any], *, for_call: bool = False) -> Any:
        """``make()`` the first time ``key`` is asked for on these rows, the kept value afterwards.

        For what every method of a call derives from the same rows (sigma by a rule, the kernel's
        regime): decided once per call, whichever method asks first. ``for_call``: the value is
        dropped by :meth:`end_call` (large values, such as the N x N squared distances, that a
        ``Prepared`` kept by the caller must not hold after the call).
        """
        if key not in self._resolved:
            self._resolved[key] = make()
            if for_call:
                self._resolved.setdefault(_FOR_CALL, set()).add(key)
        return self._resolved[key]

    def kept(self, key: Any) -> Any:
        """The value :meth:`once` keeps under ``key``, None when there is none."""
        return self._resolved.get(key)

    def end_call(self) -> None:
        """Drop the values kept with ``once(..., for_call=True)``: the public calls (each method's edge,
        :func:`dsecli.methods.estimate`) end with this."""
        for key in self._resolved.pop(_FOR_CALL, ()):
            self._resolved.pop(key, None)

    def tensor(self, default_dtype: Any = "float64") -> torch.Tensor:
        """The rows as a tensor on :attr:`device` in :meth:`working_dtype`, made once per dtype.

        Refuses values whose squared distances would overflow that dtype
        (:func:`dsecli.inputs.arrays.check_working_range`).
        """
        dt = self.working_dtype(default_dtype)
        key = ("tensor", str(dt))
        if key not in self._resolved:
            from dsecli.device import to_tensor

            check_working_range(self.data, dt, where=self.source)
            self._resolved[key] = to_tensor(self.data, device=self.device, dtype=dt)
        return self._resolved[key]

    def reference_reading(self, *, ref_kind: str = "auto", seed: int = 0) -> ReferenceReading:
        """The reference read by :func:`dsecli.inputs.reference.read_reference`, once per setting and kept:
        every mutual-information method given these rows uses the same reading (and the same
        bins or k-means clusters)."""
        if self.reference is None:
            raise InputError("`y` (the reference) is missing: pass it, or rows prepared with one "
                             "(prepare_rows(..., reference=y))")
        key = ("reference", ref_kind, seed)
        if key not in self._resolved:
            self._resolved[key] = read_reference(self.reference, ref_kind=ref_kind, seed=seed,
                                                 where=self.reference_source)
        return self._resolved[key]

    def placed(self, *, device: Any = None, dtype: Any = None) -> Prepared:
        """The same rows with another device and/or dtype request (None keeps the current one)."""
        same_device = device is None or str(device) == str(self.device_request)
        same_dtype = dtype is None or str(dtype) == str(self.dtype_request)
        if same_device and same_dtype:
            return self
        placed = replace(self, device_request=self.device_request if same_device else device,
                         dtype_request=self.dtype_request if same_dtype else dtype)
        placed._resolved.update((k, v) for k, v in self._resolved.items() if k != "device" or same_device)
        return placed


def _check_row_count(rows: Prepared, min_rows: int) -> None:
    # the one property of a Prepared that depends on the method (MINE needs 4 rows, others 2)
    if rows.n_used < min_rows:
        raise InputError(f"{where_prefix(rows.source)}`embeddings` must have at least {min_rows} rows; "
                         f"got N = {rows.n_used}")


def prepare_rows(
    x: Any,
    *,
    max_n: int | None,
    seed: int,
    sampler: str = "numpy",
    min_rows: int = 2,
    flatten: bool = False,
    drop_nonfinite: bool = False,
    device: Any = None,
    dtype: Any = None,
    reference: Any = None,
) -> Prepared:
    """Subsample (once) and validate embeddings, and the reference rows that match them.

    Tensors (as they come out of a model): detached first, so nothing is recorded in the autograd
    graph; any strides (transposed views, strided slices); float32/float64 kept, float16, bfloat16,
    integers and booleans widened to float64 (exact), as for numpy arrays. A tensor on a GPU
    stays on it: subsampling, checks and data-quality counts run there with torch ops, and the
    estimators that compute with torch use it in place. numpy memmaps (``np.memmap``,
    ``np.load(..., mmap_mode="r")``) are read for the selected rows only.

    Parameters
    ----------
    x : array-like (N, D), tensor, lazy file source (:func:`dsecli.inputs.readers.open_array`),
        :class:`~dsecli.inputs.sampling.Rows`, or a :class:`Prepared`
        A :class:`Prepared` is returned as it is (trusted: ``max_n``, ``seed``, ``sampler``,
        ``flatten`` and ``drop_nonfinite`` do not apply to it); only its row count is checked
        against ``min_rows``, and a ``device``/``dtype`` given here replaces its request.
    max_n, seed, sampler
        At most ``max_n`` rows (None or 0: all), drawn by :func:`dsecli.inputs.sampling.take_rows`.
    min_rows : int
        Fewest rows the caller's method accepts.
    flatten, drop_nonfinite
        As in :func:`dsecli.inputs.arrays.check_embeddings`; each dropped row is reported.
    device, dtype
        Recorded in the result (resolved on first use); None keeps the default ("auto", and each
        method's own dtype).
    reference : optional
        Y for mutual information (array, lazy source, or :class:`~dsecli.inputs.sampling.Rows`
        already aligned): its rows matching the prepared ones are read, validated and kept in
        :attr:`Prepared.reference` (see :func:`with_reference`).

    Returns
    -------
    Prepared
        Raw input is also checked for duplicate rows and constant columns (O(N D)); each finding
        is a :class:`~dsecli.errors.DataQualityWarning`, shown once here and kept in
        :attr:`Prepared.warnings`.
    """
    if isinstance(x, Prepared):
        _check_row_count(x, min_rows)
        prepared = x.placed(device=device, dtype=dtype)
    else:
        check_choice(sampler, "sampler", SAMPLERS)
        with CollectWarnings() as notes:
            data, n_total, indices, source = _validated_rows(
                x, max_n=max_n, seed=seed, sampler=sampler, min_rows=min_rows, flatten=flatten,
                drop_nonfinite=drop_nonfinite,
            )
        prepared = Prepared(data, n_total, indices, source, tuple(notes), device_request=device, dtype_request=dtype)
    if reference is not None:
        prepared = with_reference(prepared, reference)
    return prepared


def replace_warnings(rows: Prepared, notes: list[str] | tuple[str, ...]) -> Prepared:
    """``rows`` whose :attr:`Prepared.warnings` are ``notes`` (the caches kept: same rows, same reference)."""
    notes = tuple(dict.fromkeys(notes))
    if notes == rows.warnings:
        return rows
    out = replace(rows, warnings=notes)
    out._resolved.update(rows._resolved)
    return out


def prepare_pair(x: Any, y: Any, **selection: Any) -> Prepared:
    """:func:`prepare_rows` for mutual information: ``y`` is required unless ``x`` holds its reference.

    ``y`` given replaces a reference that ``x`` (a :class:`Prepared`) holds.
    """
    rows = prepare_rows(x, reference=y, **selection)
    if rows.reference is None:
        raise InputError("`y` (the reference) is missing: pass it, or rows prepared with one "
                         "(prepare_rows(..., reference=y))")
    return rows


def _validated_rows(x: Any, *, max_n: int | None, seed: int, sampler: str, min_rows: int, flatten: bool,
                    drop_nonfinite: bool) -> tuple[np.ndarray, int, np.ndarray | None, str | None]:
    """(data, n_total, indices, source) of the checked rows; warns about data quality and dropped rows."""
    rows = take_rows(x, max_n=max_n, seed=seed, sampler=sampler)
    checked = check_embeddings(
        rows.data, where=rows.source, flatten=flatten, drop_nonfinite=drop_nonfinite, min_rows=min_rows,
        row_numbers=rows.indices, n_total=rows.n_total,
    )
    indices = rows.indices
    gone = np.zeros(0, dtype=np.int64)
    if checked.dropped_rows.size:
        idx = indices if indices is not None else np.arange(rows.n_total)
        gone = idx[checked.dropped_rows]
        indices = np.delete(idx, checked.dropped_rows)
    for message in data_quality_warnings(checked.data, where=rows.source, row_numbers=indices):
        warnings.warn(message, DataQualityWarning, stacklevel=3)
    if gone.size:
        shown = ", ".join(str(int(i)) for i in gone[:8]) + (", ..." if gone.size > 8 else "")
        warnings.warn(
            f"{where_prefix(rows.source)}dropped {gone.size} row(s) holding NaN or Inf (--drop-nonfinite): rows "
            f"{shown}; {checked.data.shape[0]} rows remain",
            DseWarning,
            stacklevel=3,
        )
    return checked.data, rows.n_total, indices, rows.source


def with_reference(rows: Prepared, y: Any, *, where: str | None = None) -> Prepared:
    """``rows`` with the reference rows of ``y`` that match them (:func:`prepare_reference`)."""
    where = where or getattr(y, "label", None)
    out = replace(rows, reference=prepare_reference(y, rows, where=where), reference_source=where)
    # the same rows: what was resolved of them (device, tensors, sigma) holds; the old reference's reading does not
    out._resolved.update((k, v) for k, v in rows._resolved.items() if not (isinstance(k, tuple) and k[0] == "reference"))
    return out


def prepare_reference(y: Any, rows: Rows, *, where: str | None = None) -> np.ndarray:
    """Read the reference rows matching ``rows`` (same subsample, same dropped rows).

    ``y`` may be an array (N_total rows), a lazy file source, or :class:`~dsecli.inputs.sampling.Rows`
    already aligned with ``rows``.
    """
    if isinstance(y, Rows):
        return check_reference_array(host_array(y.data), where=where or y.source, n_rows=rows.n_used)
    if hasattr(y, "read") and hasattr(y, "shape"):
        where = where or getattr(y, "label", None)
        check_same_rows(rows.n_total, int(y.shape[0]), where=where, embeddings=rows.source)
        data = y.read(rows.indices)
    else:
        data = host_array(y)
        check_same_rows(rows.n_total, data.shape[0] if data.ndim else 0, where=where, embeddings=rows.source)
        if rows.indices is not None:
            data = data[rows.indices]
    return check_reference_array(data, where=where, n_rows=rows.n_used, row_numbers=rows.indices)
