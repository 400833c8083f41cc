"""Reading embeddings and references from files, lazily.

Supported inputs (``SPEC`` is a path, optionally followed by ``:key``):

========================  ===============================================================
``emb.npy``               memory-mapped: only the rows used are read
``emb.npz[:key]``         the only array, or ``key``
``emb.h5[:/grp/ds]``      HDF5 (also .hdf5, .hdf, .he5); the only dataset, or the given path;
                          only the rows used are read
``emb.pt[:key]``          a tensor, or a dict of tensors (``key``), loaded with
                          ``torch.load(weights_only=True)``: no pickle code runs
``emb.csv|.tsv|.txt``     numeric text; a non-numeric first line is taken as a header
``-``                     ``.npy`` bytes on standard input
========================  ===============================================================

h5py and torch are imported only when such a file is read.
"""

from __future__ import annotations

import io as _io
import os
import re
import sys
import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from dsecli.errors import InputError

__all__ = [
    "EXTENSIONS",
    "ArraySource",
    "open_array",
    "load_array",
    "list_arrays",
    "split_spec",
]

_NPY = (".npy",)
_NPZ = (".npz",)
_HDF5 = (".h5", ".hdf5", ".hdf", ".he5")
_TORCH = (".pt", ".pth")
_TEXT = (".csv", ".tsv", ".txt")
EXTENSIONS = _NPY + _NPZ + _HDF5 + _TORCH + _TEXT


def split_spec(spec: str) -> tuple[str, str | None]:
    """Split ``"file.ext:key"`` into ``("file.ext", "key")``; a path that exists is never split.

    Returns
    -------
    tuple of (str, str or None)
        The path and the key (None when the spec names no key).
    """
    spec = os.fspath(spec)
    if spec == "-" or os.path.exists(spec):
        return spec, None
    low = spec.lower()
    for ext in sorted(EXTENSIONS, key=len, reverse=True):
        pos = low.find(ext + ":")
        if pos >= 0:
            cut = pos + len(ext)
            return spec[:cut], spec[cut + 1 :] or None
    return spec, None


def _ext(path: str) -> str:
    return os.path.splitext(path)[1].lower()


@dataclass
class ArraySource:
    """An array in a file, opened lazily.

    ``shape`` and ``dtype`` are known without reading the data; ``read(rows)`` returns the
    given rows (sorted indices, or None for all) as a NumPy array.
    """

    path: str
    key: str | None
    shape: tuple[int, ...]
    dtype: np.dtype
    _reader: Callable[[np.ndarray | None], np.ndarray] = field(repr=False)

    @property
    def label(self) -> str:
        return f"{self.path}:{self.key}" if self.key else self.path

    def read(self, rows: np.ndarray | None = None) -> np.ndarray:
        try:
            out = self._reader(rows)
        except InputError:
            raise
        except PermissionError as exc:
            raise InputError(f"{self.label}: file is not readable (permission denied)") from exc
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:
            raise InputError(f"{self.label}: cannot read the data, the file may be corrupt or truncated "
                             f"({_first_line(exc)})") from exc
        return np.asarray(out)


def _first_line(exc: BaseException, limit: int = 160) -> str:
    """The first line of an exception's text, cut at its first sentence when long (torch's run on)."""
    text = (str(exc).strip() or type(exc).__name__).splitlines()[0]
    if len(text) > limit and ". " in text[:limit]:
        text = text[: text.index(". ", 0, limit) + 1]
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _corrupt(path: str, kind: str, exc: BaseException) -> InputError:
    if isinstance(exc, PermissionError):
        return InputError(f"{path}: file is not readable (permission denied)")
    if "allow_pickle" in str(exc):
        return InputError(f"{path}: holds Python objects (dtype object); expected a numeric array")
    return InputError(f"{path}: corrupt or truncated {kind} file ({_first_line(exc)})")


_NPY_MAGIC = b"\x93NUMPY"
_ZIP_MAGIC = b"PK"


def _head(path: str, size: int = 8) -> bytes:
    try:
        with open(path, "rb") as fh:
            return fh.read(size)
    except PermissionError as exc:
        raise InputError(f"{path}: file is not readable (permission denied)") from exc
    except OSError as exc:
        raise InputError(f"{path}: cannot open ({_first_line(exc)})") from exc


def _check_file(path: str) -> None:
    if path == "-":
        return
    if not os.path.exists(path):
        raise InputError(f"{path}: file not found")
    if os.path.isdir(path):
        raise InputError(f"{path}: is a directory, not a file")
    if not os.access(path, os.R_OK):
        raise InputError(f"{path}: file is not readable (permission denied)")
    ext = _ext(path)
    if ext not in EXTENSIONS:
        raise InputError(
            f"{path}: unknown extension {ext or '(none)'!r}; expected one of {', '.join(EXTENSIONS)} "
            "(or - for .npy on stdin)"
        )


def _rows_of(arr: Any, rows: np.ndarray | None) -> np.ndarray:
    return np.asarray(arr if rows is None else arr[rows])


def _from_memory(path: str, key: str | None, arr: np.ndarray) -> ArraySource:
    return ArraySource(path, key, tuple(arr.shape), arr.dtype, lambda rows: _rows_of(arr, rows))


def _open_npy(path: str, key: str | None) -> ArraySource:
    if key:
        raise InputError(f"{path}: a .npy file holds one array; remove the key {key!r}")
    head = _head(path)
    if not head:
        raise InputError(f"{path}: file is empty")
    if head.startswith(_ZIP_MAGIC):
        return _open_npz(path, key)  # an .npz archive saved under a .npy name
    if not head.startswith(_NPY_MAGIC):
        raise InputError(f"{path}: not a .npy file (no NumPy header); is it another format?")
    try:
        arr = np.load(path, mmap_mode="r", allow_pickle=False)
    except ValueError as exc:
        if "allow_pickle" in str(exc):
            raise InputError(f"{path}: holds Python objects (dtype object); expected a numeric array") from exc
        # memory mapping fails for some valid files (e.g. Fortran order, truncated data): read it
        try:
            arr = np.load(path, allow_pickle=False)
        except Exception as exc2:  # noqa: BLE001 - any parse failure means a corrupt file
            raise _corrupt(path, ".npy", exc2) from exc2
    except Exception as exc:  # noqa: BLE001
        raise _corrupt(path, ".npy", exc) from exc
    return ArraySource(path, None, tuple(arr.shape), arr.dtype, lambda rows: _rows_of(arr, rows))


def _open_stdin(key: str | None) -> ArraySource:
    data = sys.stdin.buffer.read()
    if not data:
        raise InputError("-: standard input is empty; expected .npy bytes")
    try:
        arr = np.load(_io.BytesIO(data), allow_pickle=False)
    except Exception as exc:  # noqa: BLE001
        raise InputError(f"-: standard input is not .npy data ({_first_line(exc)})") from exc
    if isinstance(arr, np.lib.npyio.NpzFile):
        return _pick_npz("-", key, arr)
    return _from_memory("-", None, arr)


def _pick_npz(path: str, key: str | None, npz: Any) -> ArraySource:
    names = list(npz.files)
    if not names:
        raise InputError(f"{path}: the .npz archive holds no arrays")
    if key is None:
        if len(names) > 1:
            raise InputError(f"{path}: holds several arrays ({', '.join(names)}); choose one with {path}:KEY")
        key = names[0]
    if key not in names:
        raise InputError(f"{path}: key {key!r} not found; arrays: {', '.join(names)}")
    try:
        arr = npz[key]
    except ValueError as exc:
        if "allow_pickle" in str(exc):
            raise InputError(f"{path}:{key}: holds Python objects (dtype object); expected a numeric array") from exc
        raise _corrupt(f"{path}:{key}", ".npz", exc) from exc
    except Exception as exc:  # noqa: BLE001
        raise _corrupt(f"{path}:{key}", ".npz", exc) from exc
    return _from_memory(path, key, arr)


@contextmanager
def _npz_file(path: str) -> Iterator[Any]:
    """``np.load`` of an .npz through a file we close ourselves: NumPy leaks the handle of a corrupt archive."""
    try:
        fh = open(path, "rb")  # noqa: SIM115 - closed in the finally below
    except PermissionError as exc:
        raise InputError(f"{path}: file is not readable (permission denied)") from exc
    npz = None
    try:
        try:
            npz = np.load(fh, allow_pickle=False)
        except Exception as exc:  # noqa: BLE001
            raise _corrupt(path, ".npz", exc) from exc
        yield npz
    finally:
        if isinstance(npz, np.lib.npyio.NpzFile):
            npz.close()
        fh.close()


def _open_npz(path: str, key: str | None) -> ArraySource:
    with _npz_file(path) as npz:
        if not isinstance(npz, np.lib.npyio.NpzFile):
            return _from_memory(path, None, np.asarray(npz))
        return _pick_npz(path, key, npz)


def _h5py() -> Any:
    try:
        import h5py
    except ImportError as exc:  # pragma: no cover - h5py is a dependency
        raise InputError("reading HDF5 needs h5py: pip install h5py") from exc
    return h5py


def _h5_datasets(fh: Any) -> list[str]:
    h5py = _h5py()
    names: list[str] = []
    fh.visititems(lambda name, obj: names.append("/" + name) if isinstance(obj, h5py.Dataset) else None)
    return names


def _h5_open(path: str) -> Any:
    h5py = _h5py()
    if not _head(path):
        raise InputError(f"{path}: file is empty")
    try:
        return h5py.File(path, "r")
    except Exception as exc:  # noqa: BLE001 - h5py raises OSError for bad signatures and truncation alike
        raise _corrupt(path, "HDF5", exc) from exc


def _torch_load(path: str) -> Any:
    import torch

    head = _head(path)
    if not head:
        raise InputError(f"{path}: file is empty")
    if not (head.startswith(_ZIP_MAGIC) or head.startswith(b"\x80")):
        # torch.save writes a zip archive (or, before torch 1.6, a pickle starting with PROTO 0x80)
        raise InputError(f"{path}: not a torch file (no zip or pickle header); is it another format?")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except PermissionError as exc:
        raise InputError(f"{path}: file is not readable (permission denied)") from exc
    except Exception as exc:  # noqa: BLE001 - unpickling refusals and corrupt archives alike
        text = str(exc)
        found = re.search(r"Unsupported global: GLOBAL ([\w.]+)", text)
        if found:
            raise InputError(
                f"{path}: holds Python objects ({found.group(1)}) that torch.load(weights_only=True) refuses to "
                "run; save plain tensors (or a dict of tensors) with torch.save"
            ) from exc
        raise _corrupt(path, ".pt", exc) from exc


def _open_hdf5(path: str, key: str | None) -> ArraySource:
    h5py = _h5py()
    fh = _h5_open(path)
    with fh:
        names = _h5_datasets(fh)
        if key is None:
            if not names:
                raise InputError(f"{path}: the HDF5 file holds no datasets")
            if len(names) > 1:
                shown = ", ".join(names[:20]) + (", ..." if len(names) > 20 else "")
                raise InputError(f"{path}: holds several datasets ({shown}); choose one with {path}:/DATASET")
            key = names[0]
        if not key.startswith("/"):
            key = "/" + key
        obj = fh.get(key)
        if obj is None or not isinstance(obj, h5py.Dataset):
            shown = ", ".join(names[:20]) + (", ..." if len(names) > 20 else "")
            what = "is a group, not a dataset" if obj is not None else "not found"
            raise InputError(f"{path}: dataset {key!r} {what}; datasets: {shown or '(none)'}")
        shape, dtype = tuple(obj.shape), obj.dtype

    def reader(rows: np.ndarray | None) -> np.ndarray:
        with h5py.File(path, "r") as f:
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
            with h5py.File(path, "r") as f:
                data = f[key].asstr()[()] if dtype.kind != "V" else f[key][()]
            # asstr() gives an object array of str; labels are compared as a str array
            data = np.asarray(data, dtype=str) if dtype.kind != "V" else np.asarray(data)
            return data if rows is None else data[rows]

        return ArraySource(path, key, shape, np.dtype("U"), str_reader)
    return ArraySource(path, key, shape, dtype, reader)


def _open_torch(path: str, key: str | None) -> ArraySource:
    import torch

    obj = _torch_load(path)
    if isinstance(obj, dict):
        names = [str(k) for k, v in obj.items() if isinstance(v, torch.Tensor)]
        if key is None:
            if len(names) != 1:
                raise InputError(
                    f"{path}: holds {'several' if names else 'no'} tensors ({', '.join(names) or 'none'}); "
                    f"choose one with {path}:KEY"
                )
            key = names[0]
        if key not in names:
            raise InputError(f"{path}: key {key!r} not found; tensors: {', '.join(names) or '(none)'}")
        obj = obj[key]
    elif key is not None:
        raise InputError(f"{path}: holds a single tensor; remove the key {key!r}")
    if not isinstance(obj, torch.Tensor):
        raise InputError(f"{path}: holds a {type(obj).__name__}, not a tensor")
    t = obj.detach().cpu()
    if t.dtype == torch.bfloat16:
        t = t.float()
    return _from_memory(path, key, t.numpy())


def _open_text(path: str, key: str | None) -> ArraySource:
    if key:
        raise InputError(f"{path}: text files hold one table; remove the key {key!r}")
    delimiter = "\t" if path.lower().endswith(".tsv") else ("," if path.lower().endswith(".csv") else None)
    try:
        with open(path, encoding="utf-8") as fh:
            first = fh.readline()
    except UnicodeDecodeError as exc:
        raise InputError(f"{path}: not a UTF-8 text file (is it a binary format with a text extension?)") from exc
    except PermissionError as exc:
        raise InputError(f"{path}: file is not readable (permission denied)") from exc
    if not first.strip():
        raise InputError(f"{path}: file is empty")
    cells = [c.strip().strip('"') for c in (first.split(delimiter) if delimiter else first.split())]
    skip = 0
    try:
        [float(c) for c in cells if c]
    except ValueError:
        skip = 1  # a header line
    try:
        # always a table: one column is N x 1 (one feature, or one label per row), one line is 1 x D.
        # Integers written as integers stay integers, so a column of class ids is read as labels.
        try:
            arr = np.loadtxt(path, delimiter=delimiter, skiprows=skip, ndmin=2, dtype=np.int64)
        except (ValueError, OverflowError):
            arr = np.loadtxt(path, delimiter=delimiter, skiprows=skip, ndmin=2, dtype=np.float64)
    except ValueError:
        # non-numeric cells: a column of string labels is still a valid reference
        try:
            arr = np.loadtxt(path, delimiter=delimiter, skiprows=skip, ndmin=1, dtype=str)
        except Exception as exc:  # noqa: BLE001
            raise InputError(f"{path}: cannot parse as a numeric table ({_first_line(exc)})") from exc
        arr = np.char.strip(np.char.strip(arr), '"')
    return _from_memory(path, None, arr)


def open_array(spec: str) -> ArraySource:
    """Open ``SPEC`` (``path[:key]`` or ``-``) lazily; raise :class:`InputError` with the file named.

    Returns
    -------
    ArraySource
        ``label`` (the spec as given), ``shape`` and ``dtype`` known without reading the data,
        and ``read(rows=None)`` returning all rows, or the given sorted row indices, as an ndarray.
    """
    path, key = split_spec(str(spec))
    _check_file(path)
    if path == "-":
        return _open_stdin(key)
    ext = _ext(path)
    if ext in _NPY:
        return _open_npy(path, key)
    if ext in _NPZ:
        return _open_npz(path, key)
    if ext in _HDF5:
        return _open_hdf5(path, key)
    if ext in _TORCH:
        return _open_torch(path, key)
    return _open_text(path, key)


def load_array(spec: str, rows: np.ndarray | None = None) -> np.ndarray:
    """Read ``SPEC`` (all rows, or the given sorted row indices) into memory."""
    return open_array(spec).read(rows)


def list_arrays(path: str) -> list[dict[str, Any]]:
    """Every array in a file (behind ``dse info``).

    Returns
    -------
    list of dict
        One ``{"key": ..., "shape": [...], "dtype": "..."}`` per array or HDF5 dataset; ``key``
        is None for a file that holds a single array (.npy, text).
    """
    path = os.fspath(path)
    _check_file(path)
    ext = _ext(path)
    out: list[dict[str, Any]] = []
    if ext in _HDF5:
        h5py = _h5py()
        fh = _h5_open(path)
        with fh:
            def visit(name: str, obj: Any) -> None:
                if isinstance(obj, h5py.Dataset):
                    out.append({"key": "/" + name, "shape": list(obj.shape), "dtype": str(obj.dtype)})

            fh.visititems(visit)
        return out
    if ext in _NPZ:
        with _npz_file(path) as npz:
            if not isinstance(npz, np.lib.npyio.NpzFile):
                return [{"key": None, "shape": list(np.shape(npz)), "dtype": str(np.asarray(npz).dtype)}]
            for name in npz.files:
                src = _pick_npz(path, name, npz)
                out.append({"key": name, "shape": list(src.shape), "dtype": str(src.dtype)})
        return out
    if ext in _TORCH:
        import torch

        obj = _torch_load(path)
        items = obj.items() if isinstance(obj, dict) else [(None, obj)]
        for name, v in items:
            if isinstance(v, torch.Tensor):
                out.append({"key": name, "shape": list(v.shape), "dtype": str(v.dtype).replace("torch.", "")})
        return out
    src = open_array(path)
    out.append({"key": None, "shape": list(src.shape), "dtype": str(src.dtype)})
    return out
