"""Checks on arrays, applied once where data enter the library (one policy, one place).

Every message has the shape ``<file>[:<key>]: `<param>` must <rule>; got <what>`` and, where
there is one, says how to fix it. Non-finite values are refused with their count and the
first bad row (numbered as in the input, even after subsampling), unless the caller asks for
those rows to be dropped (then the drop is reported as a warning).

Torch tensors: detached, then a CPU tensor becomes a numpy array (float32/float64 shared, not
copied; float16/bfloat16 widened to float64); a GPU tensor stays a tensor on its device and these
checks run there with torch ops (only counts and row positions come to the host). See
docs/method.md (working precision) for the dtype rule.

Decisions about references Y (see also :mod:`dsecli.inputs.reference`):

- strings are class labels (each distinct string is a class);
- integers (negative ones included) and booleans are class labels as given;
- floats are continuous (binned); integral floats stay continuous under ``ref_kind="auto"``
  with a warning, and are labels with ``ref_kind="discrete"``;
- a class with a single row is allowed but warned about: its conditional entropy is 0 by
  definition, so it contributes nothing to the mutual information.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np

from dsecli.errors import DataQualityWarning, InputError, where_prefix

__all__ = [
    "CheckedMatrix",
    "check_embeddings",
    "check_reference_array",
    "check_same_rows",
    "nonfinite_rows",
    "warn_single_row_classes",
    "source_label",
    "describe_dtype",
    "max_safe_magnitude",
    "as_float_matrix",
    "exact_integers_as_float",
    "native_numbers",
    "check_working_range",
    "is_tensor",
    "host_array",
    "stays_on_device",
]

_FLOAT64_MAX = float(np.finfo(np.float64).max)


def is_tensor(x: Any) -> bool:
    """True for a torch tensor (checked without importing torch)."""
    return hasattr(x, "detach") and hasattr(x, "device") and hasattr(x, "dtype")


def stays_on_device(t: Any) -> bool:
    """True for a tensor that is checked and computed on where it is (a GPU's): every non-CPU tensor."""
    return t.device.type != "cpu"


def _host_numbers(t: Any) -> np.ndarray:
    """A CPU tensor as numpy, detached; float16/bfloat16 widened to float64 (numpy has no bfloat16).

    float32/float64 tensors are shared, not copied (whatever their strides); the widening is exact.
    """
    import torch

    t = t.detach()
    if t.dtype in (torch.float16, torch.bfloat16):
        t = t.to(torch.float64)
    return t.cpu().numpy()


def host_array(x: Any, dtype: Any = None) -> np.ndarray:
    """``x`` as a numpy array (a tensor detached and brought to the host), optionally as ``dtype``.

    For the estimators that compute with numpy (binned, Kozachenko-Leonenko, KSG, MINE's setup):
    rows that :func:`dsecli.inputs.prepare.prepare_rows` kept on a GPU come to the host here.
    """
    arr = _host_numbers(x) if is_tensor(x) else x
    return np.asarray(arr) if dtype is None else np.asarray(arr, dtype=dtype)


def _max_abs(arr: Any) -> float:
    # max |x| without an |x| temporary the size of the data
    if is_tensor(arr):
        return float(max(abs(float(arr.max())), abs(float(arr.min()))))
    return float(max(abs(float(np.max(arr))), abs(float(np.min(arr)))))


def max_safe_magnitude(n_features: int, dtype: Any = np.float64) -> float:
    """Largest |x| for which squared distances ``||x||^2 + ||y||^2 - 2 x.y`` stay finite in ``dtype``."""
    return math.sqrt(float(np.finfo(np.dtype(dtype)).max) / (4.0 * max(int(n_features), 1)))


@dataclass(frozen=True)
class CheckedMatrix:
    """A float matrix ready for computation and what was done to get it."""

    data: Any  # (n, D), float32 or float64: numpy, or a tensor left on its GPU
    dropped_rows: np.ndarray  # positions (in the given rows) dropped as non-finite
    flattened_from: tuple[int, ...] | None = None


def source_label(obj: Any) -> str | None:
    """The label of an input for messages: ``file:key`` of a lazy source or of :class:`~dsecli.inputs.sampling.Rows`."""
    return getattr(obj, "label", None) or getattr(obj, "source", None)


def describe_dtype(dtype: np.dtype) -> str:
    """``"<U1"`` -> ``"<U1 (strings)"``; used in dtype messages."""
    kind = {"U": "strings", "S": "byte strings", "O": "Python objects", "V": "raw/structured records",
            "M": "datetimes", "m": "timedeltas", "c": "complex numbers"}.get(dtype.kind)
    return f"{dtype} ({kind})" if kind else str(dtype)


def nonfinite_rows(arr: np.ndarray) -> np.ndarray:
    """Positions of rows holding NaN or +-Inf."""
    if arr.shape[0] == 0:
        return np.zeros(0, dtype=np.int64)
    flat = arr.reshape(arr.shape[0], -1)
    if is_tensor(flat):  # on the tensor's device; only the bad rows' positions come to the host
        import torch

        return torch.nonzero(~torch.isfinite(flat).all(dim=1)).flatten().cpu().numpy().astype(np.int64)
    return np.flatnonzero(~np.isfinite(flat).all(axis=1))


def _row_note(bad: np.ndarray, n: int, row_numbers: np.ndarray | None, n_total: int | None) -> str:
    first = int(bad[0]) if row_numbers is None else int(row_numbers[bad[0]])
    of = f"{bad.size} of {n} rows"
    if row_numbers is not None and n_total is not None and n_total > n:
        of = f"{bad.size} of the {n} sampled rows (of {n_total})"
    return f"{of}, first at row {first}"


def native_numbers(arr: np.ndarray, *, where: str | None = None, name: str = "embeddings") -> np.ndarray:
    """``arr`` in the machine's byte order, with floats wider than float64 narrowed to float64.

    float128/longdouble: converted to float64 when every finite value is within float64's
    range (|x| <= 1.8e308); each value is then rounded to float64's 53-bit significand (about
    16 significant digits), which is the precision every computation here uses anyway. A value
    beyond that range is refused: it would become Inf. NaN/Inf stay as they are (the finiteness
    check reports them).
    """
    if arr.dtype.fields is None and not arr.dtype.isnative:
        arr = arr.astype(arr.dtype.newbyteorder("="))
    if arr.dtype.kind == "f" and arr.dtype.itemsize > 8:
        finite = arr[np.isfinite(arr)]
        big = np.max(np.abs(finite)) if finite.size else 0
        if big > _FLOAT64_MAX:
            shown = np.format_float_scientific(big, precision=2, trim="-")
            raise InputError(
                f"{where_prefix(where)}`{name}` must fit in float64 (|x| <= {_FLOAT64_MAX:.3g}); got dtype "
                f"{arr.dtype} with |values| up to {shown}: rescale the data"
            )
        arr = arr.astype(np.float64)
    return arr


def as_float_matrix(
    arr: Any, *, where: str | None = None, name: str = "embeddings", flatten: bool = False, min_rows: int = 2
) -> tuple[np.ndarray, tuple[int, ...] | None]:
    """The structural checks of :func:`check_embeddings` (dtype, dimensions, N = 0, D = 0).

    Returns ``(matrix as float32/float64, original shape if flattened else None)``; NaN/Inf
    are left in place (the sanity report counts them). dtype rules: float32 and float64 are
    kept; float16, integers and booleans become float64 (exactly: 64-bit integer columns beyond 2^53
    are first centred in integer arithmetic, :func:`exact_integers_as_float`);
    wider floats follow :func:`native_numbers`. The values are those of the same numbers in a
    plain float64 C-order array, whatever the byte order or memory layout.
    """
    w = where_prefix(where)
    if is_tensor(arr):
        if stays_on_device(arr):
            return _device_float_matrix(arr, where=where, name=name, flatten=flatten, min_rows=min_rows)
        arr = _host_numbers(arr)
    arr = native_numbers(np.asarray(arr), where=where, name=name)
    if arr.dtype.kind == "c":
        raise InputError(
            f"{w}`{name}` must be real numbers; got dtype {describe_dtype(arr.dtype)}: take x.real or abs(x) first"
        )
    if arr.dtype.kind not in "biuf":
        raise InputError(f"{w}`{name}` must be numeric; got dtype {describe_dtype(arr.dtype)}")
    arr, flattened_from = _two_dimensional(arr, where=where, name=name, flatten=flatten, min_rows=min_rows)
    if arr.dtype.kind in "iu" and arr.dtype.itemsize >= 8:
        arr = exact_integers_as_float(arr, where=where, name=name)
    elif arr.dtype.kind != "f" or arr.dtype.itemsize < 4:
        arr = arr.astype(np.float64)
    return arr, flattened_from


_EXACT_INT = 2**53  # every integer of magnitude up to 2**53 is exact in float64


def _cast_is_exact(col: np.ndarray, cast: np.ndarray) -> bool:
    """True when every integer of ``col`` equals its float64 ``cast`` (2**63 and 2**64 themselves do not fit back)."""
    top = 2.0**63 if col.dtype.kind == "i" else 2.0**64
    if (cast >= top).any():
        return False
    return bool((cast.astype(col.dtype) == col).all())


def exact_integers_as_float(arr: np.ndarray, *, where: str | None = None, name: str = "embeddings") -> np.ndarray:
    """A 2-D int64/uint64 matrix as float64 without merging distinct values.

    Integers up to 2**53 in magnitude are exact in float64 and are converted as they are, and
    so is a column whose values float64 holds exactly. Beyond that (ids, hashes, counters near
    2**63), float64 would round neighbouring values to one number, making distinct rows look like
    duplicates: each such column is then centred on
    its (lower) median in exact integer arithmetic before the conversion, which leaves every
    distance, and so every translation-invariant measure (DSE, CSE, kNN), as it was. A column
    whose values still differ from its median by more than 2**53 cannot be converted without
    rounding; if the rounding merges two of its distinct values it is refused.
    """
    lo, hi = arr.min(axis=0), arr.max(axis=0)
    big = (hi > _EXACT_INT) | (lo < -_EXACT_INT) if arr.dtype.kind == "i" else hi > _EXACT_INT
    if arr.shape[0] == 0 or not big.any():
        return arr.astype(np.float64)
    out = arr.astype(np.float64)
    n = arr.shape[0]
    for j in np.flatnonzero(big):
        col = arr[:, j]
        if _cast_is_exact(col, out[:, j]):
            continue  # e.g. multiples of 2**11 near 2**63: float64 holds them as they are
        med = np.partition(col, (n - 1) // 2)[(n - 1) // 2]
        # in uint64, order-preserving (int64 shifted by 2**63), so that |x - median| < 2**64 never overflows
        u = col.view(np.uint64) ^ np.uint64(1 << 63) if arr.dtype.kind == "i" else col
        m = np.uint64(int(med) + (1 << 63)) if arr.dtype.kind == "i" else np.uint64(med)
        up = u >= m
        diff = np.where(up, u - np.where(up, m, u), m - np.where(up, m, u))
        centred = np.where(up, 1.0, -1.0) * diff.astype(np.float64)
        if diff.max(initial=0) > _EXACT_INT and len(np.unique(centred)) < len(np.unique(col)):
            raise InputError(
                f"{where_prefix(where)}`{name}` column {j} holds integers ({arr.dtype}) spread over more than 2**53 "
                f"(from {int(lo[j])} to {int(hi[j])}), so float64 would merge some distinct values into one: "
                "compute with a transform that keeps them apart (e.g. rescale, or map ids to ranks)"
            )
        out[:, j] = centred
    return out


def _two_dimensional(arr: Any, *, where: str | None, name: str, flatten: bool,
                     min_rows: int) -> tuple[Any, tuple[int, ...] | None]:
    """The dimension rules of :func:`as_float_matrix` (array or tensor): (N, D) matrix, original shape if flattened."""
    w = where_prefix(where)
    shape = tuple(int(s) for s in arr.shape)
    flattened_from = None
    if len(shape) == 0:
        raise InputError(f"{w}`{name}` must be a 2-D array (N rows x D features); got a scalar")
    if len(shape) == 1:
        raise InputError(
            f"{w}`{name}` must be 2-D (N rows x D features); got 1-D shape ({shape[0]},): "
            f"use x.reshape(-1, 1) for {shape[0]} points of one feature, or x.reshape(1, -1) for one point"
        )
    if len(shape) > 2:
        if not flatten:
            rest = int(np.prod(shape[1:]))
            raise InputError(
                f"{w}`{name}` must be 2-D (N rows x D features); got shape {shape}: "
                f"pass --flatten (flatten=True) to use {shape[0]} rows x {rest} features"
            )
        flattened_from = shape
        arr = arr.reshape(shape[0], -1)
    n, d = (int(s) for s in arr.shape)
    if n == 0:
        raise InputError(f"{w}`{name}` must have at least {min_rows} rows; got N = 0 (shape {tuple(arr.shape)})")
    if d == 0:
        raise InputError(f"{w}`{name}` must have at least 1 feature (column); got D = 0 (shape {tuple(arr.shape)})")
    return arr, flattened_from


def _device_float_matrix(t: Any, *, where: str | None, name: str, flatten: bool,
                         min_rows: int) -> tuple[Any, tuple[int, ...] | None]:
    """:func:`as_float_matrix` for a tensor on a GPU: it stays there (detached), under the same dtype rules.

    float32/float64 are kept; float16, bfloat16, integers and booleans become float64; complex is refused.
    """
    import torch

    t = t.detach()
    if t.is_complex():
        raise InputError(f"{where_prefix(where)}`{name}` must be real numbers; got dtype "
                         f"{str(t.dtype).replace('torch.', '')} (complex numbers): take x.real or abs(x) first")
    t, flattened_from = _two_dimensional(t, where=where, name=name, flatten=flatten, min_rows=min_rows)
    if t.dtype == torch.int64 and t.numel() and max(int(t.max()), -int(t.min())) > _EXACT_INT:
        # rare (ids near 2**63): centred exactly on the host, then back on the device
        host = exact_integers_as_float(t.cpu().numpy(), where=where, name=name)
        return torch.as_tensor(host, device=t.device), flattened_from
    if t.dtype not in (torch.float32, torch.float64):
        t = t.to(torch.float64)
    return t, flattened_from


def check_embeddings(
    arr: np.ndarray,
    *,
    where: str | None = None,
    name: str = "embeddings",
    flatten: bool = False,
    drop_nonfinite: bool = False,
    min_rows: int = 2,
    row_numbers: np.ndarray | None = None,
    n_total: int | None = None,
) -> CheckedMatrix:
    """Validate an embedding matrix X of shape (N, D) and return it as floats.

    Refuses: non-numeric dtypes (strings, objects, complex), 1-D arrays (with the reshape to
    use), arrays with more than 2 dimensions unless ``flatten``, N = 0, D = 0, fewer than
    ``min_rows`` rows, NaN/Inf unless ``drop_nonfinite``, and magnitudes whose squared
    distances would overflow float64. ``row_numbers`` (the input's row number of each given
    row, when the rows were subsampled) makes messages point at rows of the input.
    """
    w = where_prefix(where)
    arr, flattened_from = as_float_matrix(arr, where=where, name=name, flatten=flatten, min_rows=min_rows)
    n, d = arr.shape
    dropped = np.zeros(0, dtype=np.int64)
    bad = nonfinite_rows(arr)
    if bad.size:
        if not drop_nonfinite:
            raise InputError(
                f"{w}`{name}` must be finite; got NaN or Inf in {_row_note(bad, n, row_numbers, n_total)}: "
                "clean them or pass --drop-nonfinite (drop_nonfinite=True) to drop those rows"
            )
        dropped = bad
        if is_tensor(arr):
            import torch

            keep = torch.ones(n, dtype=torch.bool, device=arr.device)
            keep[torch.as_tensor(bad, device=arr.device)] = False
            arr = arr[keep]
        else:
            arr = np.delete(arr, bad, axis=0)
        n = arr.shape[0]
    if n < min_rows:
        after = f" after dropping {dropped.size} row(s) with NaN/Inf" if dropped.size else ""
        raise InputError(f"{w}`{name}` must have at least {min_rows} rows; got N = {n}{after}")
    big = _max_abs(arr)
    limit = max_safe_magnitude(d)
    if big > limit:
        raise InputError(
            f"{w}`{name}` must have |values| <= {limit:.3g} for D = {d} (squared distances overflow float64); "
            f"got {big:.3g}: rescale the data"
        )
    return CheckedMatrix(arr.contiguous() if is_tensor(arr) else np.ascontiguousarray(arr), dropped, flattened_from)


def check_same_rows(n_embeddings: int, n_reference: int, *, where: str | None = None,
                    embeddings: str | None = None) -> None:
    """Raise unless X and Y have the same number of rows N."""
    if n_embeddings != n_reference:
        emb = f" ({embeddings})" if embeddings else ""
        raise InputError(
            f"{where_prefix(where)}`reference` must have one row per embedding row; "
            f"embeddings{emb} have {n_embeddings} rows but the reference has {n_reference}"
        )


def check_reference_array(arr: np.ndarray, *, where: str | None = None, n_rows: int | None = None,
                          row_numbers: np.ndarray | None = None) -> np.ndarray:
    """Validate a reference Y: one row per sample, labels (int/str/bool), scalars or vectors."""
    w = where_prefix(where)
    arr = np.asarray(arr)
    if arr.dtype.kind in "biufc":
        arr = native_numbers(arr, where=where, name="reference")
    if arr.ndim == 0:
        raise InputError(f"{w}`reference` must have one entry per row; got a scalar")
    if arr.dtype.kind == "c":
        raise InputError(f"{w}`reference` must be real; got dtype {describe_dtype(arr.dtype)}")
    if arr.dtype.kind not in "biufUS":
        raise InputError(
            f"{w}`reference` must hold numbers or strings; got dtype {describe_dtype(arr.dtype)}"
        )
    if arr.ndim > 2:
        raise InputError(
            f"{w}`reference` must be 1-D (labels or scalars) or 2-D (vectors); got shape {tuple(arr.shape)}"
        )
    if arr.ndim == 2 and arr.shape[1] == 0:
        raise InputError(f"{w}`reference` must have at least 1 column; got shape {tuple(arr.shape)}")
    if arr.ndim == 2 and arr.shape[1] > 1 and arr.dtype.kind in "US":
        raise InputError(
            f"{w}`reference` with strings must be 1-D (one label per row); got shape {tuple(arr.shape)}"
        )
    if n_rows is not None:
        check_same_rows(n_rows, arr.shape[0], where=where)
    if arr.dtype.kind == "f":
        bad = nonfinite_rows(arr)
        if bad.size:
            first = int(bad[0]) if row_numbers is None else int(row_numbers[bad[0]])
            raise InputError(
                f"{w}`reference` must be finite; got NaN or Inf in {bad.size} of {arr.shape[0]} rows, first at "
                f"row {first}: clean them (--drop-nonfinite drops rows of the embeddings only)"
            )
        if arr.size:
            d = 1 if arr.ndim == 1 else arr.shape[1]
            big = _max_abs(arr)
            if big > max_safe_magnitude(d):
                raise InputError(
                    f"{w}`reference` must have |values| <= {max_safe_magnitude(d):.3g} (squared distances overflow "
                    f"float64); got {big:.3g}: rescale it"
                )
    return arr


def check_working_range(arr: np.ndarray, dtype: Any, *, where: str | None = None, name: str = "embeddings") -> None:
    """Refuse values whose squared distances overflow the working dtype (float32 overflows near 1e19)."""
    if not is_tensor(arr):
        arr = np.asarray(arr)
    if arr.ndim != 2 or arr.shape[0] * arr.shape[1] == 0:
        return
    dt = np.dtype(str(dtype).replace("torch.", ""))
    limit = max_safe_magnitude(arr.shape[1], dt)
    big = _max_abs(arr)
    if big > limit:
        raise InputError(
            f"{where_prefix(where)}`{name}` must have |values| <= {limit:.3g} for D = {arr.shape[1]} in {dt.name} "
            f"(squared distances overflow); got {big:.3g}: use --dtype float64 or rescale the data"
        )


def warn_single_row_classes(names: list[Any], counts: np.ndarray, *, where: str | None = None) -> list[Any]:
    """Warn (:class:`DataQualityWarning`) about classes of one row; return their names.

    A class of one row has conditional entropy 0 by definition and its size-matched marginal
    term is 0 too, so it adds nothing to DSMI/CSMI; many such classes push the estimate to 0.
    """
    single = [name for name, c in zip(names, counts) if int(c) == 1]
    if single:
        shown = ", ".join(repr(s) for s in single[:10]) + (", ..." if len(single) > 10 else "")
        what = f"class {shown} has" if len(single) == 1 else f"{len(single)} of {len(names)} classes ({shown}) have"
        warnings.warn(
            f"{where_prefix(where)}reference {what} a single row: the entropy of one row is 0 by definition, "
            "so such a class adds nothing to the mutual information; merge rare classes or collect more rows",
            DataQualityWarning,
            stacklevel=3,
        )
    return single
