"""zarr stores (a ``.zarr`` directory, or any directory holding ``zarr.json``/``.zarray``/``.zgroup``).

Both store versions are read, with zarr 2.x (format 2) or zarr 3.x (formats 2 and 3). An array
inside groups is named by its path: ``store.zarr:/group/array``; a store holding one array needs
no key. ``read(rows)`` is an orthogonal selection on the first axis (``oindex``), so zarr
decodes only the chunks that hold a row asked for. Shapes come from each array's own
metadata: consolidated metadata (``.zmetadata``, or ``consolidated_metadata`` in ``zarr.json``)
is not used, since a store changed after ``zarr.consolidate_metadata`` keeps stale shapes there. An array with chunks never written (zarr
would return its fill value for them) is refused, as HDF5's are (:mod:`.hdf5`). Needs the
``zarr`` package (extra ``formats``).
"""

from __future__ import annotations

import json
import os
from typing import Any

import numpy as np

from dsecli.errors import InputError, suggest
from dsecli.inputs.readers._common import ArraySource, corrupt, default_key, few, first_line, optional_module

_MARKERS = ("zarr.json", ".zarray", ".zgroup")


def is_zarr_dir(path: str) -> bool:
    """A directory that is a zarr store (v3 ``zarr.json`` or v2 ``.zarray``/``.zgroup``)."""
    return os.path.isdir(path) and any(os.path.isfile(os.path.join(path, m)) for m in _MARKERS)


def _open(path: str) -> Any:
    zarr = optional_module(path, "zarr", "zarr")
    if not os.path.isdir(path):
        raise InputError(f"{path}: not a zarr store (a zarr store is a directory)")
    if not is_zarr_dir(path):
        raise InputError(f"{path}: not a zarr store (no zarr.json, .zarray or .zgroup in it)")
    try:
        if _root_is_array(path):
            return zarr.open_array(path, mode="r")
        if int(zarr.__version__.split(".")[0]) >= 3:
            # each array's own metadata, never the consolidated copy: a store resized or rewritten after
            # zarr.consolidate_metadata keeps the old shapes there, and would be read short
            return zarr.open_group(path, mode="r", use_consolidated=False)
        return zarr.open_group(path, mode="r")  # zarr 2 reads .zmetadata only through open_consolidated
    except Exception as exc:  # noqa: BLE001 - bad metadata raises many kinds
        raise corrupt(path, "zarr", exc) from exc


def _root_is_array(path: str) -> bool:
    """The store's root is an array (v2 ``.zarray``, or a v3 ``zarr.json`` whose node_type is array)."""
    if os.path.isfile(os.path.join(path, ".zarray")):
        return True
    try:
        with open(os.path.join(path, "zarr.json"), encoding="utf-8") as fh:
            return json.load(fh).get("node_type") == "array"
    except (OSError, ValueError, AttributeError):
        return False


def _is_array(obj: Any) -> bool:
    return hasattr(obj, "oindex") and hasattr(obj, "shape")


def _arrays(node: Any, prefix: str = "") -> list[tuple[str, Any]]:
    """Every array below a group, as ('/a/b', array), depth first (``arrays``/``groups`` exist in zarr 2 and 3)."""
    if _is_array(node):
        return [("/", node)]
    found = [(f"{prefix}/{name}", arr) for name, arr in sorted(node.arrays())]
    for name, group in sorted(node.groups()):
        found += _arrays(group, f"{prefix}/{name}")
    return found


def _is_group(root: Any, key: str) -> bool:
    """True when ``key`` names a group of the store (an empty one included)."""
    if _is_array(root):
        return False
    try:
        node = root[key.strip("/")] if key.strip("/") else root
    except Exception:  # noqa: BLE001 - zarr 2 and 3 raise different errors for a missing member
        return False
    return not _is_array(node)


def _unwritten(arr: Any) -> str | None:
    try:
        total, written = int(arr.nchunks), int(arr.nchunks_initialized)
    except Exception:  # noqa: BLE001 - a store that cannot list its chunks: nothing to say
        return None
    fill = arr.fill_value.item() if hasattr(arr.fill_value, "item") else arr.fill_value
    if written < total and np.prod(arr.shape) > 0:
        return (f"was only partly written ({total - written} of {total} chunks never written), so zarr would read "
                f"those values as the fill value ({fill!r}); write the data first")
    return None


def _labels(arr: Any) -> bool:
    """Strings: fixed width (U, S), objects, or NumPy 2's variable-width StringDType (kind T, zarr 3's ``str``)."""
    return np.dtype(arr.dtype).kind in "OUSTV" if not hasattr(arr.dtype, "to_native_dtype") else \
        np.dtype(arr.dtype.to_native_dtype()).kind in "OUSTV"


def _as_str(out: Any) -> np.ndarray:
    """Labels as a fixed-width str array (a StringDType array cannot be cast to ``str`` directly)."""
    a = np.asarray(out)
    if a.dtype.kind in "TOV":
        a = a.astype(object)
    if a.dtype.kind == "S" or (a.dtype == object and a.size and isinstance(a.flat[0], bytes)):
        return np.char.decode(a.astype("S"), "utf-8", errors="replace")
    return a.astype(str)


def open_zarr(path: str, key: str | None) -> ArraySource:
    root = _open(path)
    found = _arrays(root)
    names = [n for n, _ in found]
    if key is None:
        key = default_key(path, [(n, len(a.shape)) for n, a in found], what="array", how="/GROUP/ARRAY")
        arr = dict(found)[key]
    else:
        key = "/" + key.strip("/")
        arr = dict(found).get(key) if names != ["/"] else None
        if arr is None:
            inside = [n for n in names if n.startswith(key + "/")]
            if inside or _is_group(root, key):
                raise InputError(f"{path}: array {key!r} is a group, not an array; "
                                 + (f"the arrays in it: {few(inside)}" if inside else
                                    f"it holds no arrays{suggest(key, names, what='array')}"))
            raise InputError(f"{path}: array {key!r} not found{suggest(key, names, what='array')}")
    label = path if key == "/" else f"{path}:{key}"
    if arr.shape == ():
        raise InputError(f"{label}: is a scalar array (one value, shape ()); expected one row per sample")
    not_written = _unwritten(arr)  # read() raises it; the shape (a --dry-run plan) is fine
    labels = _labels(arr)
    shape = tuple(int(n) for n in arr.shape)

    def reader(rows: np.ndarray | None) -> np.ndarray:
        z = _open(path)
        a = z if key == "/" else z[key.lstrip("/")]
        try:
            out = a[...] if rows is None else a.oindex[(rows,) + (slice(None),) * (len(shape) - 1)]
        except Exception as exc:  # noqa: BLE001 - codecs raise their own errors (RuntimeError, ZstdError, ...)
            raise InputError(f"{label}: cannot read the data, a chunk may be corrupt or truncated "
                             f"({first_line(exc)})") from exc
        return _as_str(out) if labels else np.asarray(out)

    dtype = np.dtype("U") if labels else np.dtype(str(arr.dtype) if not hasattr(arr.dtype, "to_native_dtype")
                                                  else arr.dtype.to_native_dtype())
    return ArraySource(path, None if key == "/" else key, shape, dtype, reader, not_written)


def list_zarr(path: str) -> list[dict[str, Any]]:
    return [{"key": None if name == "/" else name, "shape": list(arr.shape),
             "dtype": "str" if _labels(arr) else str(arr.dtype)} for name, arr in _arrays(_open(path))]
