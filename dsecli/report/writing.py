"""Writing results without ever leaving a partial or damaged file.

:func:`check_output_path` runs before any computation (a missing or read-only directory is
reported at once, not after minutes of work): it creates and removes a probe file in the
target directory, which is the only test that also holds for root, read-only mounts and
network file systems. :func:`write_atomic` writes to a temporary file in the same directory,
flushes it to disk and renames it over the target, so the target is either the old file or
the complete new one, never half of either. A temporary file left by an interrupted write is
removed, also when the process is ended by the CLI's signal watchdog
(:func:`remove_pending_files`).
"""

from __future__ import annotations

import errno
import json
import os
import tempfile
import threading
from typing import Any

from dsecli.errors import InputError, OutputError

__all__ = ["check_output_path", "write_atomic", "to_json", "remove_pending_files"]

# temporary files being written right now (removed on failure, or by the signal watchdog)
_PENDING: set[str] = set()
_PENDING_LOCK = threading.Lock()


def _reason(exc: OSError) -> str:
    if exc.errno in (errno.EACCES, errno.EPERM):
        return "permission denied"
    if exc.errno == errno.EROFS:
        return "read-only file system"
    if exc.errno == errno.ENOSPC:
        return "no space left on device"
    return exc.strerror or type(exc).__name__


def check_output_path(path: str | os.PathLike[str], *, name: str = "output") -> str:
    """Validate that ``path`` can be written: its directory exists and accepts a new file, it is not a directory.

    Raises :class:`~dsecli.errors.InputError` (exit status 2) naming the path and the reason.
    """
    path = os.fspath(path)
    if not path or not path.strip():
        raise InputError(f"`{name}` must be a file path; got an empty string")
    directory = os.path.dirname(os.path.abspath(path))
    if os.path.isdir(path):
        raise InputError(f"{path}: `{name}` must be a file, not a directory")
    if not os.path.isdir(directory):
        raise InputError(f"{path}: `{name}` must be in an existing directory; {directory} does not exist")
    if os.path.exists(path) and not os.access(path, os.W_OK):
        raise InputError(f"{path}: `{name}` must be writable; the file exists and is read-only")
    try:
        fd, probe = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=".probe", dir=directory)
    except OSError as exc:
        raise InputError(
            f"{path}: `{name}` must be in a writable directory; cannot create files in {directory} ({_reason(exc)})"
        ) from None
    os.close(fd)
    os.unlink(probe)
    return path


def to_json(obj: Any, *, indent: int | None = 2) -> str:
    """Strict JSON (no NaN/Infinity): raises ValueError rather than emitting invalid JSON."""
    return json.dumps(obj, indent=indent, allow_nan=False)


def remove_pending_files() -> list[str]:
    """Delete the temporary files of writes in progress; return their paths.

    Called by the CLI's signal watchdog before it ends a process stuck in native code, so an
    interrupted write leaves nothing behind (the target itself is never touched before the rename).
    """
    with _PENDING_LOCK:
        paths = list(_PENDING)
        _PENDING.clear()
    for tmp in paths:
        try:
            os.unlink(tmp)
        except OSError:
            pass
    return paths


def write_atomic(path: str | os.PathLike[str], text: str | bytes, *, name: str = "output") -> None:
    """Write ``text`` to ``path`` atomically (temporary file + fsync + rename).

    The target is replaced only by the complete new content; on any failure (including
    KeyboardInterrupt) the temporary file is removed and the target is left as it was.
    I/O failures raise :class:`~dsecli.errors.OutputError` (exit status 1).
    """
    path = check_output_path(path, name=name)
    directory = os.path.dirname(os.path.abspath(path))
    data = text.encode("utf-8") if isinstance(text, str) else text
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=".tmp", dir=directory)
    except OSError as exc:
        raise OutputError(f"{path}: cannot write `{name}` ({_reason(exc)})") from None
    with _PENDING_LOCK:
        _PENDING.add(tmp)
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
    except BaseException as exc:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        if isinstance(exc, OSError):
            raise OutputError(f"{path}: cannot write `{name}` ({_reason(exc)}); the previous file, if any, "
                              "is unchanged") from None
        raise
    finally:
        with _PENDING_LOCK:
            _PENDING.discard(tmp)
