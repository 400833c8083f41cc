"""Reading embeddings and references from files, lazily.

Supported inputs (``SPEC`` is a path, optionally followed by ``:key``):

========================  ===============================================================
``emb.npy``               memory-mapped: only the rows used are read
``emb.npz[:key]``         the array named by ``key`` (without one: the key rule below)
``emb.h5[:/grp/ds]``      HDF5 (also .hdf5, .hdf, .he5); the given path (or the key rule);
                          only the rows used are read (:mod:`.hdf5`)
``emb.pt[:key]``          a tensor, or (nested) dicts of tensors (``a.b`` or ``/a/b``), loaded with
                          ``torch.load(weights_only=True)``: no pickle code runs (:mod:`.pt`)
``emb.csv|.tsv|.txt``     numeric text, or one column of string labels; the header rule is
                          in :mod:`.text` (``header=True/False`` says it)
``emb.safetensors[:name]`` one tensor, read by slices of rows (:mod:`.safetensors`)
``t.parquet[:col]``       Parquet (also .pq) or Arrow IPC/Feather (.feather, .arrow): a vector
                          column, ``col1,col2`` or ``*`` (all numeric columns), a label column;
                          only the row groups holding the rows used are read (:mod:`.arrow`)
``s.zarr[:/grp/array]``   a zarr store (format 2 or 3); chunks holding the rows used (:mod:`.zarr`)
``-``                     ``.npy`` (or ``.npz``) bytes on standard input
========================  ===============================================================

The key rule, the same for every container (npz, HDF5, .pt, safetensors, tables, zarr): without a
key, the only array; else the only array of 2 or more dimensions (a table's only vector column);
else an error listing the candidates (:func:`._common.default_key`). A key that does not exist gets
the nearest names (:func:`dsecli.errors.suggest`).

Whatever the format, :meth:`ArraySource.read` returns the values in the machine's byte order,
so a big-endian or Fortran-order file gives the same numbers as a plain C-order ``.npy``.
A FIFO or pipe (``mkfifo``, ``<(...)``, ``/dev/stdin``) is read once, into memory, and then
parsed by its extension: it is never opened twice. A character or block device is refused.
A 0-d array (a single value) is refused
when opened: no command takes one.

One module per format family: :mod:`.npy` (``.npy``, ``.npz``, stdin), :mod:`.hdf5`,
:mod:`.pt`, :mod:`.text`, :mod:`.safetensors`, :mod:`.arrow` and :mod:`.zarr`. h5py, torch and the
optional packages (safetensors, pyarrow, zarr: extra ``formats``) are imported only when such a
file is read.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from dsecli.errors import InputError
from dsecli.inputs.readers import arrow, hdf5, npy, pt, safetensors, text, zarr
from dsecli.inputs.readers._common import ArraySource, is_device, is_stream, natural_key, read_stream

__all__ = [
    "EXTENSIONS",
    "ArraySource",
    "open_array",
    "load_array",
    "list_arrays",
    "split_spec",
    "check_file",
    "HDF5_EXTENSIONS",
]

_NPY = (".npy",)
_NPZ = (".npz",)
HDF5_EXTENSIONS = (".h5", ".hdf5", ".hdf", ".he5")
_TORCH = (".pt", ".pth")
_TEXT = (".csv", ".tsv", ".txt")
_SAFETENSORS = (".safetensors",)
_ARROW = arrow.PARQUET + arrow.IPC
_ZARR = (".zarr",)
EXTENSIONS = _NPY + _NPZ + HDF5_EXTENSIONS + _TORCH + _TEXT + _SAFETENSORS + _ARROW + _ZARR


def split_spec(spec: str) -> tuple[str, str | None]:
    """Split ``"file.ext:key"`` into ``("file.ext", "key")``; a path that exists is never split.

    Returns
    -------
    (str, str or None)
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
    pos = spec.find(":")
    while pos > 0:  # a zarr store without the .zarr extension: "store:/group/array"
        if zarr.is_zarr_dir(spec[:pos]):
            return spec[:pos], spec[pos + 1 :] or None
        pos = spec.find(":", pos + 1)
    return spec, None


def _ext(path: str) -> str:
    return os.path.splitext(path)[1].lower()


def check_file(path: str) -> None:
    """Refuse what cannot be opened as an input: a missing path, a directory (a zarr store is fine), a device,
    an unreadable file or an unknown extension ("-", standard input, is fine)."""
    if path == "-":
        return
    if not os.path.exists(path):
        if os.path.islink(path):
            raise InputError(f"{path}: is a symbolic link to {os.readlink(path)}, which does not exist")
        raise InputError(f"{path}: file not found")
    if os.path.isdir(path):
        if _ext(path) in _ZARR or zarr.is_zarr_dir(path):
            return
        raise InputError(f"{path}: is a directory, not a file; {_folder_hint(path)}")
    if is_device(path):
        raise InputError(f"{path}: is a device, not a file; save the data to a file, or pipe it to - (standard input)")
    if not os.access(path, os.R_OK):
        raise InputError(f"{path}: file is not readable (permission denied)")
    ext = _ext(path)
    if ext not in EXTENSIONS:
        raise InputError(
            f"{path}: unknown extension {ext or '(none)'!r}; expected one of {', '.join(EXTENSIONS)} "
            "(or - for .npy on stdin)"
        )


def folder_files(path: str) -> list[str]:
    """The array files (and zarr stores) directly in a folder, by extension, sorted naturally (``ep2`` before ``ep10``)."""
    try:
        names = os.listdir(path)
    except OSError as exc:
        raise InputError(f"{path}: cannot list the folder ({exc.strerror or exc})") from None
    found = []
    for name in names:
        full = os.path.join(path, name)
        if _ext(name) in EXTENSIONS and (os.path.isfile(full) or zarr.is_zarr_dir(full)):
            found.append(full)
    return sorted(found, key=natural_key)


def _folder_hint(path: str) -> str:
    """What to run instead, naming the extensions the folder holds."""
    counts: dict[str, int] = {}
    for f in folder_files(path):
        counts[_ext(f)] = counts.get(_ext(f), 0) + 1
    if not counts:
        return f"it holds no array files ({', '.join(EXTENSIONS)})"
    held = ", ".join(f"{n} {e}" for e, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))
    top = max(counts, key=lambda e: (counts[e], e))
    pattern = os.path.join(path, "*" + top)
    return f"it holds {held} file{'s' if sum(counts.values()) > 1 else ''}; to measure each use dse batch {path} " \
           f"(or dse batch '{pattern}')"


# binary formats: extensions -> opener(path, key, bytes of a stream or None)
_OPENERS = ((_NPY, npy.open_npy), (_NPZ, npy.open_npz), (HDF5_EXTENSIONS, hdf5.open_hdf5), (_TORCH, pt.open_torch),
            (_SAFETENSORS, safetensors.open_safetensors), (_ARROW, arrow.open_arrow))


def _open(path: str, key: str | None, header: bool | None) -> ArraySource:
    if path == "-":
        return npy.open_stdin(key)
    if os.path.isdir(path):
        return zarr.open_zarr(path, key)
    ext = _ext(path)
    if ext in _ZARR:
        return zarr.open_zarr(path, key)
    data = read_stream(path) if is_stream(path) else None
    for exts, opener in _OPENERS:
        if ext in exts:
            return opener(path, key, data)
    return text.open_text(path, key, data, header=header)


def open_array(spec: str, *, header: bool | None = None) -> ArraySource:
    """Open ``SPEC`` (``path[:key]`` or ``-``) lazily; raise :class:`InputError` with the file named.

    ``header`` applies to text tables only: True, the first line is a header; False, it is
    data; None, the rule of :mod:`dsecli.inputs.readers.text` decides.

    Returns
    -------
    ArraySource
        The array's label, shape and dtype, read without loading it; ``read(rows)`` loads only
        the rows asked for, in the machine's byte order.
    """
    path, key = split_spec(str(spec))
    check_file(path)
    src = _open(path, key, header)
    if len(src.shape) == 0:
        raise InputError(f"{src.label}: holds a 0-d array (a single value, shape ()); expected one row per sample")
    return src


def load_array(spec: str, rows: np.ndarray | None = None, *, header: bool | None = None) -> np.ndarray:
    """Read ``SPEC`` (all rows, or the given sorted row indices) into memory."""
    return open_array(spec, header=header).read(rows)


def list_arrays(path: str, *, header: bool | None = None) -> list[dict[str, Any]]:
    """Every array in a file (for ``dse info``); ``file:key`` lists that array alone.

    Returns
    -------
    list of dict
        ``{"key": ..., "shape": [...], "dtype": "..."}`` per array (HDF5 dataset or zarr array
        path, npz, checkpoint or safetensors key, table column (and ``*``); None for
        single-array files).
    """
    path, key = split_spec(os.fspath(path))
    check_file(path)
    if key is not None:  # ``file:key``: that array alone (or why it cannot be opened)
        src = _open(path, key, header)
        return [{"key": src.key, "shape": list(src.shape), "dtype": "str" if src.dtype.kind == "U" else
                 str(src.dtype)}]
    ext = _ext(path)
    data = read_stream(path) if path != "-" and is_stream(path) else None
    if ext in HDF5_EXTENSIONS:
        return hdf5.list_hdf5(path, data)
    if ext in _NPZ:
        return npy.list_npz(path, data)
    if ext in _TORCH:
        return pt.list_torch(path, data)
    if ext in _SAFETENSORS:
        return safetensors.list_safetensors(path, data)
    if ext in _ARROW:
        return arrow.list_arrow(path, data)
    if os.path.isdir(path) or ext in _ZARR:
        return zarr.list_zarr(path)
    src = _open(path, None, header)
    return [{"key": None, "shape": list(src.shape), "dtype": str(src.dtype)}]
