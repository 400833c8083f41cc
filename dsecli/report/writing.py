"""The one output policy: every file dsecli writes goes through :func:`write_atomic`.

Rules, in the order they are checked (:func:`output_target`, run before any computation and
again when writing):

1. The path must name a file: an empty path (an unset shell variable), an existing directory
   and a directory-shaped path (ending in ``/``, ``.`` or ``..``) are usage errors
   (:class:`~dsecli.errors.InputError`, exit status 2).
2. It must not be one of the command's inputs, whatever path names it: the file it names is
   compared with each input by device and inode (``os.stat``), so a symbolic link, a hard link,
   ``..`` components and relative versus absolute spellings are all seen through. (A character
   device such as a terminal may be both: nothing is lost by writing to it.)
3. A regular file, or a new one, is written atomically: a temporary file with a short random
   name (``.dse-XXXXXXXX.tmp``, so that a long but valid output name never fails because of our
   own name) in the same directory as the file, flushed to disk and renamed over it. The target
   is either the old file or the complete new one, never half of either; a symbolic link is
   kept and the file it points to gets the new content. Permissions of a replaced file are kept.
4. Anything else that exists is written to directly and never replaced or renamed over: a
   character device (``/dev/null``, a terminal), a FIFO (the write waits for a reader, as any
   writer's does), and the process's own streams (``/dev/stdout``, ``/dev/fd/N``,
   ``/proc/self/fd/N``, whatever they are connected to; appended to). Block devices and sockets
   are refused.
5. Before computing, a probe file (the same short name) is created and removed in the target
   directory, the only test that also holds for root, read-only mounts and network file systems,
   and the name's length is checked against the file system's limit.

A temporary file left by an interrupted write is removed, also when the process is ended by the
CLI's signal watchdog (:func:`remove_pending_files`).
"""

from __future__ import annotations

import errno
import json
import os
import stat
import tempfile
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from dsecli.errors import InputError, OutputError

__all__ = [
    "OutputTarget",
    "output_target",
    "check_output_path",
    "check_distinct_outputs",
    "write_atomic",
    "to_json",
    "remove_pending_files",
]

# temporary files being written right now (removed on failure, or by the signal watchdog)
_PENDING: set[str] = set()
_PENDING_LOCK = threading.Lock()

# the short names of our temporary and probe files: never longer than any file name a user may choose
_TMP_PREFIX = ".dse-"

# paths that name an open file descriptor of this process rather than a file in a directory
_FD_ALIASES = ("/dev/stdout", "/dev/stderr", "/dev/stdin", "/dev/fd/", "/proc/")


def _reason(exc: OSError) -> str:
    if exc.errno in (errno.EACCES, errno.EPERM):
        return "permission denied"
    if exc.errno == errno.EROFS:
        return "read-only file system"
    if exc.errno == errno.ENOSPC:
        return "no space left on device"
    if exc.errno == errno.ENAMETOOLONG:
        return "file name too long"
    return exc.strerror or type(exc).__name__


@dataclass(frozen=True)
class OutputTarget:
    """Where and how an output is written.

    path : as given ; file : the file written (symbolic links resolved) ; kind : ``"new"`` (does
    not exist yet), ``"regular"`` (an existing regular file, replaced atomically) or ``"direct"``
    (a character device, FIFO or the process's own stream: written to, never replaced).
    """

    path: str
    file: str
    kind: str

    @property
    def direct(self) -> bool:
        return self.kind == "direct"


def _input_paths(inputs: Iterable[str | os.PathLike[str] | None]) -> list[tuple[str, str]]:
    """(how the input is named in messages, a path to stat) for each input spec."""
    from dsecli.inputs.readers import split_spec

    out = []
    for spec in inputs:
        if spec is None:
            continue
        path, _key = split_spec(os.fspath(spec))
        if path == "-":
            # standard input redirected from a file (dse check - -o emb.npy < emb.npy) is that file
            if os.path.exists("/dev/stdin"):
                out.append(("standard input", "/dev/stdin"))
        elif path:
            out.append((path, path))
    return out


def _names_an_fd(path: str) -> bool:
    """True for /dev/stdout, /dev/fd/N, /proc/self/fd/N and links to them (they are no file in a directory)."""
    hop = os.path.abspath(path)
    for _ in range(40):
        if hop.startswith(_FD_ALIASES):
            return True
        if not os.path.islink(hop):
            return False
        hop = os.path.join(os.path.dirname(hop), os.readlink(hop))
    return False


def _refuse_inputs(path: str, st: os.stat_result, name: str, inputs: list[tuple[str, str]]) -> None:
    if stat.S_ISCHR(st.st_mode):
        return  # a terminal or /dev/null holds no data to lose
    for label, inp in inputs:
        try:
            ist = os.stat(inp)
        except OSError:
            continue
        if (ist.st_dev, ist.st_ino) == (st.st_dev, st.st_ino):
            how = "" if os.path.abspath(inp) == os.path.abspath(path) else ", the same file by another path or link"
            raise InputError(f"{path}: `{name}` names an input file ({label}{how}); writing there would destroy it; "
                             "choose another file name")


def _check_name_length(path: str, file: str, name: str) -> None:
    base = os.path.basename(file)
    try:
        limit = os.pathconf(os.path.dirname(file) or ".", "PC_NAME_MAX")
    except (OSError, ValueError):
        return
    size = len(os.fsencode(base))
    if limit and size > limit:
        raise InputError(f"{path}: `{name}` file name is {size} bytes long; this file system allows at most {limit}")


def output_target(path: str | os.PathLike[str], *, name: str = "output",
                  inputs: Iterable[str | os.PathLike[str] | None] = ()) -> OutputTarget:
    """Apply the output policy (module docstring) to ``path``; return how it will be written.

    ``inputs`` are the command's input specs (``file[:key]``, ``-`` ignored): the output may not be
    any of them. Raises :class:`~dsecli.errors.InputError` (exit status 2) naming the path, the
    option (``name``) and the reason. Touches nothing but a probe file, created and removed.
    """
    path = os.fspath(path)
    if not path or not path.strip():
        raise InputError(f"`{name}` must be a file path; got an empty string (an unset shell variable?)")
    if os.path.isdir(path):
        raise InputError(f"{path}: `{name}` must be a file, not a directory")
    if path.endswith(("/", os.sep)) or os.path.basename(path) in (".", ".."):
        raise InputError(f"{path}: `{name}` must be a file name, not a directory (it ends with "
                         f"{'/' if path.endswith(('/', os.sep)) else os.path.basename(path)!r})")
    protected = _input_paths(inputs)
    try:
        st: os.stat_result | None = os.stat(path)
    except OSError as exc:
        if exc.errno not in (errno.ENOENT, errno.ENAMETOOLONG):  # a name too long is reported below, with the limit
            raise InputError(f"{path}: `{name}` cannot be used ({_reason(exc)})") from None
        st = None
    if st is not None:
        _refuse_inputs(path, st, name, protected)
        mode = st.st_mode
        if stat.S_ISCHR(mode) or stat.S_ISFIFO(mode) or (_names_an_fd(path) and not stat.S_ISDIR(mode)):
            if not os.access(path, os.W_OK):
                raise InputError(f"{path}: `{name}` must be writable; permission denied")
            return OutputTarget(path, path, "direct")
        if not stat.S_ISREG(mode):
            what = "a block device" if stat.S_ISBLK(mode) else "a socket" if stat.S_ISSOCK(mode) else "not a file"
            raise InputError(f"{path}: `{name}` is {what}; give a regular file, a character device or a FIFO")
        if not os.access(path, os.W_OK):
            raise InputError(f"{path}: `{name}` must be writable; the file exists and is read-only")
    file = os.path.realpath(path)  # a link is kept: the file it points to gets the new content
    directory = os.path.dirname(file)
    if not os.path.isdir(directory):
        shown = os.path.dirname(os.path.abspath(path))
        raise InputError(f"{path}: `{name}` must be in an existing directory; {shown} does not exist")
    _check_name_length(path, file, name)
    try:
        fd, probe = tempfile.mkstemp(prefix=_TMP_PREFIX, suffix=".probe", dir=directory)
    except OSError as exc:
        raise InputError(
            f"{path}: `{name}` must be in a writable directory; cannot create files in {directory} ({_reason(exc)})"
        ) from None
    os.close(fd)
    os.unlink(probe)
    return OutputTarget(path, file, "regular" if st is not None else "new")


def check_output_path(path: str | os.PathLike[str], *, name: str = "output",
                      inputs: Iterable[str | os.PathLike[str] | None] = ()) -> str:
    """Validate ``path`` by the output policy (:func:`output_target`) before computing; return it."""
    return output_target(path, name=name, inputs=inputs).path


def check_distinct_outputs(outputs: dict[str, str | os.PathLike[str] | None]) -> None:
    """Refuse two options of one command that name the same file (the second would replace the first)."""
    seen: dict[tuple[int, int] | str, str] = {}
    for option, path in outputs.items():
        if path is None:
            continue
        path = os.fspath(path)
        try:
            st = os.stat(path)
            if stat.S_ISCHR(st.st_mode):
                continue
            ident: tuple[int, int] | str = (st.st_dev, st.st_ino)
        except OSError:
            ident = os.path.realpath(path)
        if ident in seen:
            raise InputError(f"{path}: `{option}` and `{seen[ident]}` name the same file; give each its own file")
        seen[ident] = option


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


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def _write_direct(target: OutputTarget, data: bytes, name: str) -> None:
    # O_APPEND: a stream redirected to a file (dse ... -o /dev/stdout > log) keeps what is already there
    try:
        fd = os.open(target.path, os.O_WRONLY | os.O_APPEND | getattr(os, "O_NOCTTY", 0))
    except OSError as exc:
        raise OutputError(f"{target.path}: cannot write `{name}` ({_reason(exc)})") from None
    try:
        _write_all(fd, data)
    except OSError as exc:
        raise OutputError(f"{target.path}: cannot write `{name}` ({_reason(exc)})") from None
    finally:
        os.close(fd)


def _fsync_directory(directory: str) -> None:
    # the rename itself reaches the disk only with its directory
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_atomic(path: str | os.PathLike[str], text: str | bytes, *, name: str = "output",
                 inputs: Iterable[str | os.PathLike[str] | None] = ()) -> None:
    """Write ``text`` to ``path`` by the output policy (module docstring).

    A regular or new file: temporary file + fsync + rename, so on any failure (including
    KeyboardInterrupt) the temporary file is removed and the target is left as it was. A character
    device, FIFO or stream: written to directly. ``inputs`` are checked again (the output may not be
    one of them). Policy violations raise :class:`~dsecli.errors.InputError` (exit status 2); I/O
    failures :class:`~dsecli.errors.OutputError` (exit status 1).
    """
    target = output_target(path, name=name, inputs=inputs)
    data = text.encode("utf-8") if isinstance(text, str) else bytes(text)
    if target.direct:
        _write_direct(target, data, name)
        return
    path = target.path
    directory = os.path.dirname(target.file)
    try:
        fd, tmp = tempfile.mkstemp(prefix=_TMP_PREFIX, suffix=".tmp", dir=directory)
    except OSError as exc:
        raise OutputError(f"{path}: cannot write `{name}` ({_reason(exc)})") from None
    with _PENDING_LOCK:
        _PENDING.add(tmp)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        if target.kind == "regular":
            # keep the permissions a user gave the file they are replacing
            os.chmod(tmp, os.stat(target.file).st_mode & 0o7777)
        else:
            umask = os.umask(0)
            os.umask(umask)
            os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, target.file)
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
    _fsync_directory(directory)
