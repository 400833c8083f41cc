"""What every reader shares: the lazy :class:`ArraySource`, the input's bytes, and error wording."""

from __future__ import annotations

import os
import stat
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from dsecli.errors import InputError, first_line

NPY_MAGIC = b"\x93NUMPY"
ZIP_MAGIC = b"PK"
HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"


def native(arr: np.ndarray) -> np.ndarray:
    """``arr`` in the machine's byte order (same values): torch and the kernels refuse big-endian data."""
    if arr.dtype.fields is None and arr.dtype.byteorder not in ("=", "|") and not arr.dtype.isnative:
        return arr.astype(arr.dtype.newbyteorder("="))
    return arr


def native_dtype(dtype: np.dtype) -> np.dtype:
    return dtype.newbyteorder("=") if dtype.fields is None and not dtype.isnative else dtype


@dataclass
class ArraySource:
    """An array in a file, opened lazily.

    ``shape`` and ``dtype`` are known without reading the data; ``read(rows)`` returns the
    given rows (sorted indices, or None for all) as a NumPy array in the machine's byte order
    (``dtype`` is that native dtype: a big-endian ``>f8`` file reads as ``float64``).
    """

    path: str
    key: str | None
    shape: tuple[int, ...]
    dtype: np.dtype
    _reader: Callable[[np.ndarray | None], np.ndarray] = field(repr=False)
    #: why the values cannot be read yet (an HDF5 dataset or zarr array created but not, or only partly,
    #: written), or None. The shape is known, so a plan (``--dry-run``) works; ``read`` raises this reason.
    not_written: str | None = None

    def __post_init__(self) -> None:
        self.dtype = native_dtype(np.dtype(self.dtype))

    @property
    def label(self) -> str:
        return f"{self.path}:{self.key}" if self.key else self.path

    def __array__(self, dtype: Any = None, copy: bool | None = None) -> np.ndarray:
        """``np.asarray(source)``: every row, read now (as :meth:`read`); ``copy=False`` is refused, as
        NumPy asks, since the values are always read into a new array."""
        if copy is False:
            raise ValueError(f"{self.label}: the values of a file are read into a new array; np.asarray(source, "
                             "copy=False) cannot avoid that copy")
        out = self.read()
        return out if dtype is None or out.dtype == np.dtype(dtype) else out.astype(dtype)

    def read(self, rows: np.ndarray | None = None) -> np.ndarray:
        if self.not_written:
            raise InputError(f"{self.label}: {self.not_written}")
        try:
            out = self._reader(rows)
        except InputError:
            raise
        except PermissionError as exc:
            raise InputError(f"{self.label}: file is not readable (permission denied)") from exc
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:
            if is_locked(exc):
                raise locked_error(self.label) from exc
            raise InputError(f"{self.label}: cannot read the data, the file may be corrupt or truncated "
                             f"({first_line(exc)})") from exc
        return native(np.asarray(out))


def is_locked(exc: BaseException) -> bool:
    """HDF5's file lock held by a writer: errno EAGAIN/EWOULDBLOCK, or the library's own words."""
    import errno

    text = str(exc).lower()
    return "unable to lock file" in text or (
        isinstance(exc, OSError) and exc.errno in (errno.EAGAIN, errno.EWOULDBLOCK, errno.EACCES)
        and "lock" in text)


def locked_error(label: str) -> InputError:
    return InputError(
        f"{label}: the file is locked by a program that has it open for writing (HDF5 file locking); "
        "wait until that program closes it"
    )


def corrupt(path: str, kind: str, exc: BaseException) -> InputError:
    if isinstance(exc, PermissionError):
        return InputError(f"{path}: file is not readable (permission denied)")
    if "allow_pickle" in str(exc):
        return InputError(f"{path}: holds Python objects (dtype object); expected a numeric array")
    return InputError(f"{path}: corrupt or truncated {kind} file ({first_line(exc)})")


def _mode(path: str) -> int:
    try:
        return os.stat(path).st_mode
    except OSError:
        return 0


def is_stream(path: str) -> bool:
    """A FIFO or socket (``mkfifo``, ``<(...)``, ``/dev/stdin`` from a pipe): readable once, so read once into memory."""
    mode = _mode(path)
    return stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode)


def is_device(path: str) -> bool:
    """A character or block device (``/dev/zero``, a disk, a terminal): never read as data."""
    mode = _mode(path)
    return stat.S_ISCHR(mode) or stat.S_ISBLK(mode)


def read_stream(path: str) -> bytes:
    """All bytes of a FIFO or pipe, read with a single open (a second open would wait for a writer forever)."""
    try:
        with open(path, "rb") as fh:
            return fh.read()
    except PermissionError as exc:
        raise InputError(f"{path}: file is not readable (permission denied)") from exc
    except OSError as exc:
        raise InputError(f"{path}: cannot open ({first_line(exc)})") from exc


def head(path: str, data: bytes | None, size: int = 8) -> bytes:
    """The first ``size`` bytes: from memory for streams, else from the file."""
    if data is not None:
        return data[:size]
    try:
        with open(path, "rb") as fh:
            return fh.read(size)
    except PermissionError as exc:
        raise InputError(f"{path}: file is not readable (permission denied)") from exc
    except OSError as exc:
        raise InputError(f"{path}: cannot open ({first_line(exc)})") from exc


def rows_of(arr: Any, rows: np.ndarray | None) -> np.ndarray:
    return np.asarray(arr if rows is None else arr[rows])


def from_memory(path: str, key: str | None, arr: np.ndarray) -> ArraySource:
    return ArraySource(path, key, tuple(arr.shape), arr.dtype, lambda rows: rows_of(arr, rows))


def optional_module(path: str, module: str, what: str) -> Any:
    """Import an optional reader's package, or say which extra installs it (one line naming the file)."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        package = module.split(".")[0]
        raise InputError(f"{path}: reading {what} needs {package}; install it with pip install \"dsecli[formats]\""
                         ) from exc


def runs(rows: np.ndarray) -> list[np.ndarray]:
    """Sorted row indices cut into runs of consecutive rows (each read as one slice)."""
    if not len(rows):
        return []
    return np.split(rows, np.flatnonzero(np.diff(rows) != 1) + 1)


def shown(names: list[str], limit: int = 20) -> str:
    """A list of keys for an error message: the first ``limit``, then '...'."""
    return (", ".join(names[:limit]) + (", ..." if len(names) > limit else "")) or "(none)"


def default_key(path: str, entries: list[tuple[str, int]], *, what: str, how: str) -> str:
    """The one rule every container follows when no key is given.

    ``entries`` are (name, number of dimensions) of what the file holds. Without a key, the file's
    only array is used; else its only array of 2 or more dimensions (the embeddings beside 1-D
    labels or ids); else the user is asked to choose, with the candidates listed (those of 2 or
    more dimensions when there are several).
    """
    if len(entries) == 1:
        return entries[0][0]
    multi = [n for n, ndim in entries if ndim >= 2]
    if len(multi) == 1:
        return multi[0]
    if not entries:
        raise InputError(f"{path}: holds no {what}s")
    listed = multi or [n for n, _ in entries]
    which = f"several {what}s of 2 or more dimensions" if multi else f"several {what}s, none of 2 or more dimensions"
    more = f" (dse info {path} lists them)" if len(listed) > 5 else ""
    raise InputError(f"{path}: holds {which} ({few(listed)}){more}; choose one with {path}:{how}")


def few(names: list[str], limit: int = 5) -> str:
    """A handful of names for a message, then a count of the rest (never hundreds)."""
    if len(names) <= limit:
        return ", ".join(names) or "(none)"
    return f"{', '.join(names[:limit])} and {len(names) - limit} more"


def natural_key(text: str) -> list[Any]:
    """Sort key that orders numbers by value: ``ep2`` before ``ep10``."""
    import re

    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", text)]
