"""HDF5 files (``.h5``, ``.hdf5``, ``.hdf``, ``.he5``): one dataset, read by runs of rows.

A dataset whose values HDF5 would invent is refused, not read: one created but never written
(no storage allocated, or chunks never written, which read back as the fill value), and a
virtual dataset whose source file or dataset is missing (read back as the fill value too).
Scalar datasets and the null dataspace are refused with one line; big-endian data are
returned in the machine's byte order.
"""

from __future__ import annotations

import io
import math
import os
from typing import Any

import numpy as np

from dsecli.errors import InputError, suggest
from dsecli.inputs.readers._common import ArraySource, corrupt, default_key, few, head, is_locked, locked_error


def h5py_module() -> Any:
    try:
        import h5py
    except ImportError as exc:  # pragma: no cover - h5py is a dependency
        raise InputError("reading HDF5 needs h5py: pip install h5py") from exc
    return h5py


def _open(path: str, data: bytes | None) -> Any:
    h5py = h5py_module()
    return h5py.File(io.BytesIO(data) if data is not None else path, "r")


def h5_open(path: str, data: bytes | None = None) -> Any:
    if not head(path, data):
        raise InputError(f"{path}: file is empty")
    try:
        return _open(path, data)
    except Exception as exc:  # noqa: BLE001 - h5py raises OSError for bad signatures, truncation and locks alike
        if is_locked(exc):
            raise locked_error(path) from exc
        if "already open for write" in str(exc):  # the superblock's "open for writing" mark (HDF5 1.10+ format)
            raise InputError(f"{path}: the file is marked as open for writing, by a program still writing it or one "
                             "that stopped without closing it; when no program has it open, h5clear -s clears the "
                             "mark") from exc
        raise corrupt(path, "HDF5", exc) from exc


def _datasets(fh: Any) -> list[str]:
    h5py = h5py_module()
    names: list[str] = []
    fh.visititems(lambda name, obj: names.append("/" + name) if isinstance(obj, h5py.Dataset) else None)
    return names


def _source_exists(path: str, file_name: str, dset_name: str) -> bool:
    """Whether a virtual dataset's source can be opened where HDF5 looks for it."""
    h5py = h5py_module()
    if file_name == ".":
        candidates = [path]
    elif os.path.isabs(file_name):
        candidates = [file_name]
    else:
        prefix = os.environ.get("HDF5_VDS_PREFIX")
        candidates = ([os.path.join(prefix, file_name)] if prefix else []) + [
            os.path.join(os.path.dirname(os.path.abspath(path)), file_name), file_name]
    for cand in candidates:
        if not os.path.isfile(cand):
            continue
        try:
            with h5py.File(cand, "r") as f:
                if isinstance(f.get(dset_name), h5py.Dataset):
                    return True
        except Exception:  # noqa: BLE001 - an unreadable source is a missing one
            continue
    return False


def _invented(path: str, ds: Any) -> str | None:
    """Why reading ``ds`` would return values nobody wrote, or None."""
    h5py = h5py_module()
    dcpl = ds.id.get_create_plist()
    layout = dcpl.get_layout()
    if layout == h5py.h5d.VIRTUAL:
        for vs in ds.virtual_sources():
            if not _source_exists(path, vs.file_name, vs.dset_name):
                return (f"is a virtual dataset whose source {vs.file_name}:{vs.dset_name} is missing, so HDF5 would "
                        "read those rows as the fill value; put the source file next to it")
        return None
    if dcpl.get_external_count() > 0:
        base = os.path.dirname(os.path.abspath(path))
        for i in range(dcpl.get_external_count()):
            name = os.fsdecode(dcpl.get_external(i)[0])
            if not (os.path.isfile(name) or os.path.isfile(os.path.join(base, name))):
                return (f"keeps its values in the external file {name}, which is missing; put it next to the HDF5 "
                        "file or in the working directory")
        return None
    if layout == h5py.h5d.COMPACT or math.prod(ds.shape) == 0:
        return None
    fill = ds.fillvalue.item() if hasattr(ds.fillvalue, "item") else ds.fillvalue
    if ds.id.get_storage_size() == 0:
        return (f"was created but never written (no data stored), so HDF5 would read every value as the fill value "
                f"({fill!r}); write the data first")
    if layout == h5py.h5d.CHUNKED:
        expected = math.prod(math.ceil(n / c) for n, c in zip(ds.shape, ds.chunks))
        stored = ds.id.get_num_chunks()
        if stored < expected:
            return (f"was only partly written ({expected - stored} of {expected} chunks never written), so HDF5 would "
                    f"read those values as the fill value ({fill!r}); write the data first")
    return None


def _check_readable(path: str, key: str, ds: Any) -> str | None:
    """Raise for a dataset without rows or with a missing source; return why its values cannot be read yet
    (never or only partly written: the shape is known, a plan works), or None."""
    label = f"{path}:{key}"
    if ds.shape is None:
        raise InputError(f"{label}: has an empty (null) dataspace: no shape and no values")
    if ds.shape == ():
        raise InputError(f"{label}: is a scalar dataset (one value, shape ()); expected one row per sample")
    reason = _invented(path, ds)
    if reason and "written" not in reason:  # a missing source or external file: refused now
        raise InputError(f"{label}: {reason}")
    return reason


def open_hdf5(path: str, key: str | None, data: bytes | None = None) -> ArraySource:
    h5py = h5py_module()
    with h5_open(path, data) as fh:
        names = _datasets(fh)
        if key is None:
            if not names:
                raise InputError(f"{path}: the HDF5 file holds no datasets")
            key = default_key(path, [(n, len(fh[n].shape or ())) for n in names], what="dataset", how="/DATASET")
        if not key.startswith("/"):
            key = "/" + key
        obj = fh.get(key)
        if obj is None or not isinstance(obj, h5py.Dataset):
            if obj is None:
                raise InputError(f"{path}: dataset {key!r} not found{suggest(key, names, what='dataset')}")
            inside = [n for n in names if n.startswith(key.rstrip("/") + "/")]
            raise InputError(f"{path}: dataset {key!r} is a group, not a dataset; "
                             + (f"the datasets in it: {few(inside)}" if inside else
                                f"it holds no datasets{suggest(key, names, what='dataset')}"))
        not_written = _check_readable(path, key, obj)
        shape, dtype = tuple(obj.shape), obj.dtype

    def reader(rows: np.ndarray | None) -> np.ndarray:
        with _open(path, data) as f:
            ds = f[key]
            if rows is None:
                return ds[()]
            out = np.empty((len(rows),) + tuple(ds.shape[1:]), dtype=ds.dtype)
            # contiguous runs read as slices: far faster than point selection in h5py
            if len(rows):
                breaks = np.flatnonzero(np.diff(rows) != 1) + 1
                pos = 0
                for run in np.split(rows, breaks):
                    out[pos : pos + len(run)] = ds[int(run[0]) : int(run[-1]) + 1]
                    pos += len(run)
            return out

    if h5py.check_dtype(vlen=dtype) is not None or dtype.kind in "OSUV":
        # strings (labels) are decoded on read
        def str_reader(rows: np.ndarray | None) -> np.ndarray:
            with _open(path, data) as f:
                values = f[key].asstr()[()] if dtype.kind != "V" else f[key][()]
            # asstr() gives an object array of str; labels are compared as a str array
            values = np.asarray(values, dtype=str) if dtype.kind != "V" else np.asarray(values)
            return values if rows is None else values[rows]

        return ArraySource(path, key, shape, np.dtype("U"), str_reader, not_written)
    return ArraySource(path, key, shape, dtype, reader, not_written)


def list_hdf5(path: str, data: bytes | None = None) -> list[dict[str, Any]]:
    h5py = h5py_module()
    out: list[dict[str, Any]] = []
    with h5_open(path, data) as fh:
        def visit(name: str, obj: Any) -> None:
            if isinstance(obj, h5py.Dataset):
                if obj.shape is None:  # the null dataspace: no shape at all
                    out.append({"key": "/" + name, "shape": [], "dtype": f"{obj.dtype} (null dataspace, no values)"})
                else:
                    out.append({"key": "/" + name, "shape": list(obj.shape), "dtype": str(obj.dtype)})

        fh.visititems(visit)
    return out
