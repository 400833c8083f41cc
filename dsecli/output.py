"""Writing results without ever leaving a partial or damaged file.

:func:`check_output_path` runs before any computation (a missing or read-only directory is
reported at once, not after minutes of work); :func:`write_atomic` writes to a temporary file
in the same directory, flushes it to disk and renames it over the target, so the target is
either the old file or the complete new one, never half of either. A temporary file left by an
interrupted write is removed.
"""

from __future__ import annotations

import json
import os
import tempfile
from typing import Any

from .errors import InputError

__all__ = ["check_output_path", "write_atomic", "to_json"]


def check_output_path(path: str | os.PathLike[str], *, name: str = "output") -> str:
    """Validate that ``path`` can be written: its directory exists and is writable, it is not a directory."""
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    if os.path.isdir(path):
        raise InputError(f"{path}: `{name}` is a directory; give a file name")
    if not os.path.isdir(directory):
        raise InputError(f"{path}: `{name}` directory {directory} does not exist")
    if not os.access(directory, os.W_OK | os.X_OK):
        raise InputError(f"{path}: `{name}` directory {directory} is not writable")
    if os.path.exists(path) and not os.access(path, os.W_OK):
        raise InputError(f"{path}: `{name}` file exists and is not writable")
    return path


def to_json(obj: Any, *, indent: int | None = 2) -> str:
    """Strict JSON (no NaN/Infinity): raises ValueError rather than emitting invalid JSON."""
    return json.dumps(obj, indent=indent, allow_nan=False)


def write_atomic(path: str | os.PathLike[str], text: str | bytes) -> None:
    """Write ``text`` to ``path`` atomically (temporary file + fsync + rename)."""
    path = check_output_path(path)
    directory = os.path.dirname(os.path.abspath(path))
    data = text.encode("utf-8") if isinstance(text, str) else text
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        if os.path.exists(path):
            # keep the permissions a user gave the file they are replacing
            os.chmod(tmp, os.stat(path).st_mode & 0o7777)
        else:
            umask = os.umask(0)
            os.umask(umask)
            os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
