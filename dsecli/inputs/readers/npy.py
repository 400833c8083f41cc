"""NumPy files: ``.npy`` (memory-mapped), ``.npz`` archives, and ``.npy``/``.npz`` bytes on standard input."""

from __future__ import annotations

import io
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np

from dsecli.errors import InputError, suggest
from dsecli.inputs.readers._common import (
    NPY_MAGIC,
    ZIP_MAGIC,
    ArraySource,
    corrupt,
    default_key,
    from_memory,
    head,
    native_dtype,
    rows_of,
)

_OBJECTS = "holds Python objects (dtype object); expected a numeric array"


def open_npy(path: str, key: str | None, data: bytes | None = None) -> ArraySource:
    if key:
        raise InputError(f"{path}: a .npy file holds one array; remove the key {key!r}")
    start = head(path, data)
    if not start:
        raise InputError(f"{path}: file is empty")
    if start.startswith(ZIP_MAGIC):
        return open_npz(path, key, data)  # an .npz archive saved under a .npy name
    if not start.startswith(NPY_MAGIC):
        raise InputError(f"{path}: not a .npy file (no NumPy header); is it another format?")
    if data is not None:
        return from_memory(path, None, _load_bytes(path, data, ".npy"))
    try:
        arr = np.load(path, mmap_mode="r", allow_pickle=False)
    except ValueError as exc:
        if "allow_pickle" in str(exc):
            raise InputError(f"{path}: {_OBJECTS}") from exc
        # memory mapping fails for some valid files (e.g. truncated data): read it, or say why not
        try:
            arr = np.load(path, allow_pickle=False)
        except Exception as exc2:  # noqa: BLE001 - any parse failure means a corrupt file
            raise corrupt(path, ".npy", exc2) from exc2
    except Exception as exc:  # noqa: BLE001
        raise corrupt(path, ".npy", exc) from exc
    return ArraySource(path, None, tuple(arr.shape), arr.dtype, lambda rows: rows_of(arr, rows))


def _load_bytes(label: str, data: bytes, kind: str) -> Any:
    try:
        return np.load(io.BytesIO(data), allow_pickle=False)
    except ValueError as exc:
        if "allow_pickle" in str(exc):
            raise InputError(f"{label}: {_OBJECTS}") from exc
        raise corrupt(label, kind, exc) from exc
    except Exception as exc:  # noqa: BLE001
        raise corrupt(label, kind, exc) from exc


def open_stdin(key: str | None) -> ArraySource:
    data = sys.stdin.buffer.read()
    if not data:
        raise InputError("-: standard input is empty; expected .npy bytes")
    if data.startswith(ZIP_MAGIC):
        with npz_file("-", data) as npz:
            return pick_npz("-", key, npz)
    if not data.startswith(NPY_MAGIC):
        raise InputError("-: standard input is not .npy data (no NumPy header); pipe the bytes of a file written by "
                         "np.save")
    if key:
        raise InputError(f"-: .npy data holds one array; remove the key {key!r}")
    return from_memory("-", None, _load_bytes("-", data, ".npy"))


def pick_npz(path: str, key: str | None, npz: Any) -> ArraySource:
    names = list(npz.files)
    if not names:
        raise InputError(f"{path}: the .npz archive holds no arrays")
    if key is None:
        key = default_key(path, [(n, _ndim(npz, n)) for n in names], what="array", how="KEY")
    if key not in names:
        raise InputError(f"{path}: key {key!r} not found{suggest(key, names, what='array')}")
    try:
        arr = npz[key]
    except ValueError as exc:
        if "allow_pickle" in str(exc):
            raise InputError(f"{path}:{key}: {_OBJECTS}") from exc
        raise corrupt(f"{path}:{key}", ".npz", exc) from exc
    except Exception as exc:  # noqa: BLE001
        raise corrupt(f"{path}:{key}", ".npz", exc) from exc
    return from_memory(path, key, arr)


@contextmanager
def npz_file(path: str, data: bytes | None = None) -> Iterator[Any]:
    """``np.load`` of an .npz through a file we close ourselves: NumPy leaks the handle of a corrupt archive."""
    try:
        fh = io.BytesIO(data) if data is not None else open(path, "rb")  # noqa: SIM115 - closed below
    except PermissionError as exc:
        raise InputError(f"{path}: file is not readable (permission denied)") from exc
    npz = None
    try:
        try:
            npz = np.load(fh, allow_pickle=False)
        except Exception as exc:  # noqa: BLE001
            raise corrupt(path, ".npz", exc) from exc
        yield npz
    finally:
        if isinstance(npz, np.lib.npyio.NpzFile):
            npz.close()
        fh.close()


def open_npz(path: str, key: str | None, data: bytes | None = None) -> ArraySource:
    with npz_file(path, data) as npz:
        if not isinstance(npz, np.lib.npyio.NpzFile):
            return from_memory(path, None, np.asarray(npz))
        return pick_npz(path, key, npz)


def list_npz(path: str, data: bytes | None = None) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    with npz_file(path, data) as npz:
        if not isinstance(npz, np.lib.npyio.NpzFile):
            return [{"key": None, "shape": list(np.shape(npz)), "dtype": str(np.asarray(npz).dtype)}]
        for name in npz.files:
            header = _npz_header(npz, name)
            if header is None:  # an unusual member: load it to learn its shape
                src = pick_npz(path, name, npz)
                header = src.shape, src.dtype
            shape, dtype = header
            what = "object (not numeric: Python objects)" if dtype.hasobject else str(native_dtype(dtype))
            out.append({"key": name, "shape": list(shape), "dtype": what})
    return out


def _ndim(npz: Any, name: str) -> int:
    header = _npz_header(npz, name)
    if header is None:
        try:
            return int(np.ndim(npz[name]))
        except Exception:  # noqa: BLE001 - an unreadable member is never the default
            return 0
    return len(header[0])


def _npz_header(npz: Any, name: str) -> tuple[tuple[int, ...], np.dtype] | None:
    """Shape and dtype of an .npz member from its .npy header alone (nothing loaded, no pickle run); None if unread."""
    members = [m for m in npz.zip.namelist() if m in (name, name + ".npy")]
    if not members:
        return None
    try:
        with npz.zip.open(members[0]) as fh:
            version = np.lib.format.read_magic(fh)
            read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
            shape, _fortran, dtype = read(fh)
    except Exception:  # noqa: BLE001 - a header this code cannot parse: the caller loads the member
        return None
    return tuple(int(n) for n in shape), np.dtype(dtype)

