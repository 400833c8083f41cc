"""The results file of ``dse batch``: recognised before it is touched, locked, grown one row at a time.

Format
------
JSON Lines: one row (a JSON object, written compactly, ``"file"`` first) per line, nothing else.
There is no header: every line is a row, so the file reads as it is with any JSON Lines reader.

Recognition, before a single byte changes
-----------------------------------------
An existing file is used only when it is empty, or when every line is a JSON object holding the
row fields :data:`ROW_FIELDS` (blank lines aside) and a last line without its newline is either
such a row or the beginning of one (``{"file":``, what an interrupted write leaves). Anything
else (a text file, an ``.npy``, a JSON report of another command) is refused with one line
naming the file, the line and why, and left exactly as it was. The file is never one of the
batch's inputs (:func:`dsecli.report.writing.output_target`).

Only after recognition: a cut-short last row is removed (exactly its bytes), or completed with
a newline if it is a whole row; nothing else in the file is ever changed. Rows are appended one
complete line at a time (a single ``write`` of whole lines, then ``fsync``), so a run that is killed
keeps every finished row. A writer that reopens the file often (the training monitor, every step)
reads only what was appended since it last closed it (:class:`FileMark`). The file is locked (``flock``) while a batch writes to it, so two batches cannot
interleave their rows. A results file this batch created and wrote no row to is removed at the end.

A character device or FIFO (``/dev/null``, ``/dev/stdout``) as results file is written to and
never read: there is nothing to resume from.

Resume
------
A row is found again by its ``key`` (:func:`row_key`: the input's real path and dataset, the
method, the parameters that differ from the method's defaults, the reference's real path). It
is reused only when its data are the same as now (:func:`stale_reason`): each row records the
fingerprint of its input and, for mutual information, of its reference, ``{"size", "mtime_ns",
"ctime_ns", "rows_sha256"}`` (the file's size and times, and :func:`data_sha256` of the rows
actually used). Deciding:

- the file's size, mtime and ctime are those recorded: unchanged, reused without reading it
  (the ctime changes with every write to the file and cannot be set back by its owner);
- otherwise the rows are read and hashed: the same hash means the same data (the file was
  touched, copied, or another dataset was added to it) and the row is reused; a different hash,
  or a row without a fingerprint (older dsecli), is recomputed, and the new row's ``replaces``
  says why (``{"reason": "input changed: size, mtime, rows hash differ", ...}``). A row reused
  after hashing keeps the times it recorded (the file only grows), so later runs hash that input
  again: reading rows costs far less than computing on them.

The reference is read whole by every batch that uses it, so its hash is always compared.
Later rows supersede earlier rows with the same key (:func:`latest_rows`).
"""

from __future__ import annotations

import hashlib
import inspect
import json
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np

from dsecli.errors import InputError
from dsecli.results import json_safe

__all__ = [
    "ROW_FIELDS",
    "FileMark",
    "ResultsFile",
    "row_key",
    "request_params",
    "file_stat",
    "data_sha256",
    "stale_reason",
    "latest_rows",
]

# fields every batch row has: what makes a JSON object a row of ours
ROW_FIELDS = ("file", "input", "method", "quantity", "value", "key")
# how every row we write begins (compact JSON, "file" first): an interrupted write leaves a prefix of it
_ROW_START = b'{"file":'
# parameters that change where or how fast a value is computed, not the value: not part of a row's key
_NOT_IN_KEY = {"device", "cpu_threads"}


# ------------------------------------------------------------------------------------------ keys


def _defaults(fn: Callable[..., Any]) -> dict[str, Any]:
    """The keyword defaults of a method, so that leaving a parameter out and passing its default give one key."""
    out = {name: p.default for name, p in inspect.signature(fn).parameters.items()
           if p.kind is inspect.Parameter.KEYWORD_ONLY and p.default is not inspect.Parameter.empty}
    if isinstance(fn, partial):
        out.update(fn.keywords)
    return out


def _canonical(params: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in sorted(params.items()):
        if k in _NOT_IN_KEY:
            continue
        if isinstance(v, str):
            try:
                v = float(v)  # "10" and 10.0 ask for the same sigma
            except ValueError:
                v = v.strip().lower()
        out[k] = v
    return json_safe(out)


def request_params(name: str, fn: Callable[..., Any], given: dict[str, Any]) -> dict[str, Any]:
    """The parameters of ``fn`` in ``given`` that differ from its defaults (canonical form), for :func:`row_key`.

    Only values that differ from the method's defaults: leaving a parameter out and passing its
    default give one key, and a parameter added to a method later does not change old keys.
    """
    from dsecli.methods import METHOD_OPTIONS, SELECTION_OPTIONS

    taken = METHOD_OPTIONS[name] | SELECTION_OPTIONS
    defaults = _canonical(_defaults(fn))
    mine = {k: v for k, v in given.items() if k in taken and v is not None}
    return {k: v for k, v in _canonical(mine).items() if k not in defaults or defaults[k] != v}


def row_key(input_identity: str, method: str, request: dict[str, Any], reference: str | None = None) -> str:
    """The resume key of a row: a hash of the input, the method, its parameters and the reference."""
    doc = {"input": input_identity, "method": method, "request": request, "reference": reference}
    return hashlib.sha256(json.dumps(doc, sort_keys=True, allow_nan=False).encode()).hexdigest()[:24]


# ------------------------------------------------------------------------------------------ fingerprints


def file_stat(path: str | os.PathLike[str]) -> dict[str, int]:
    """``{"size", "mtime_ns", "ctime_ns"}`` of the file ``path`` names (links followed)."""
    st = os.stat(path)
    return {"size": int(st.st_size), "mtime_ns": int(st.st_mtime_ns), "ctime_ns": int(st.st_ctime_ns)}


def data_sha256(values: Any) -> str:
    """SHA-256 of rows: numbers as float64 C-order bytes with the shape (as ``dse spectrum``'s ``rows_sha256``);
    labels (strings, objects) as their text, one per row, with the shape."""
    from dsecli.measures.spectrum_scan import rows_sha256

    arr = values.detach().cpu().numpy() if hasattr(values, "detach") else np.asarray(values)
    if arr.dtype.kind in "biuf":
        return rows_sha256(arr)
    h = hashlib.sha256()
    h.update(("rows-text:" + "x".join(map(str, arr.shape)) + ";").encode("ascii"))
    for v in arr.reshape(-1):
        h.update(str(v).encode("utf-8", "surrogatepass") + b"\0")
    return h.hexdigest()


def _differences(recorded: dict[str, Any], now: dict[str, Any]) -> list[str]:
    names = {"size": "size", "mtime_ns": "mtime", "rows_sha256": "rows hash"}
    return [label for field, label in names.items() if field in now and recorded.get(field) != now.get(field)]


def stale_reason(recorded: Any, *, what: str, stat_now: dict[str, int] | None = None,
                 rows_hash: Callable[[], str | None] | None = None, now: dict[str, Any] | None = None) -> str | None:
    """Why a stored row's ``what`` (``"input"`` or ``"reference"``) is not the same data now, or None.

    ``recorded`` is the row's fingerprint. Either ``now``, the full fingerprint of data already
    read (its hash decides), or ``stat_now``, the file's :func:`file_stat` now (None: it cannot be
    read), and ``rows_hash()``, which reads and hashes the rows (called only when the file's size
    or times changed; None when they cannot be read). See the module docstring.
    """
    if not isinstance(recorded, dict) or not isinstance(recorded.get("rows_sha256"), str):
        return f"no {what} fingerprint recorded (a row from an older dsecli)"
    if now is None:
        if stat_now is None:
            return f"{what} cannot be read now"
        if all(recorded.get(k) == v for k, v in stat_now.items()):
            return None
        digest = rows_hash() if rows_hash is not None else None
        if digest is None:
            return f"{what} cannot be read now"
        now = {**stat_now, "rows_sha256": digest}
    if now["rows_sha256"] == recorded["rows_sha256"]:
        return None
    return f"{what} changed: {', '.join(_differences(recorded, now))} differ"


def latest_rows(rows: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows with a later row of the same ``key`` dropped in favour of it (a recomputed row supersedes the old one)."""
    rows = list(rows)
    last = {r["key"]: i for i, r in enumerate(rows) if isinstance(r.get("key"), str)}
    return [r for i, r in enumerate(rows) if not isinstance(r.get("key"), str) or last[r["key"]] == i]


# ------------------------------------------------------------------------------------------ results file


def _row_problem(line: bytes) -> tuple[dict[str, Any] | None, str]:
    """(the row, "") or (None, why the line is not a row)."""
    try:
        obj = json.loads(line.decode("utf-8"))
    except UnicodeDecodeError:
        return None, "is not UTF-8 text"
    except json.JSONDecodeError:
        return None, "is not JSON"
    if not isinstance(obj, dict):
        return None, "is not a JSON object"
    missing = [f for f in ROW_FIELDS if f not in obj]
    if missing:
        return None, f"is a JSON object without the row fields {', '.join(missing)}"
    if not isinstance(obj["key"], str) or not isinstance(obj["method"], str):
        return None, "has a key or method that is not a string"
    return obj, ""


def looks_like_results_file(path: str | os.PathLike[str]) -> bool:
    """True when ``path`` is a regular file whose first line is a results row (only that line is read)."""
    if not os.path.isfile(path):  # opening a FIFO to look would block until a writer comes
        return False
    try:
        with open(path, "rb") as fh:
            first = fh.readline(1 << 20)
    except OSError:
        return False
    return bool(first.strip()) and _row_problem(first.rstrip(b"\n"))[0] is not None


def recognise(data: bytes, path: str, *, first_line: int = 1) -> tuple[list[dict[str, Any]], str | None]:
    """Parse a results file's bytes: (rows, repair) where repair is None, ``"trim"`` or ``"newline"``.

    ``first_line`` is the line number of the first byte (greater than 1 when only the rows appended
    since a :class:`FileMark` are read), so a refusal names the line as it is in the file.
    Raises :class:`~dsecli.errors.InputError` when the bytes are not a results file (module
    docstring). Pure: the caller changes the file only after this returned.
    """
    if not data:
        return [], None
    complete, newline, tail = data.rpartition(b"\n")
    body = complete.split(b"\n") if newline else []

    def refuse(lineno: int, why: str) -> InputError:
        return InputError(f"{path}: not a dse batch results file (line {lineno} {why}); it was left unchanged; "
                          "give a new file name or the results file of an earlier batch as --output")

    rows: list[dict[str, Any]] = []
    for lineno, line in enumerate(body, start=first_line):
        if not line.strip():
            continue
        row, why = _row_problem(line)
        if row is None:
            raise refuse(lineno, why)
        rows.append(row)
    repair = None
    if tail:
        row, why = _row_problem(tail)
        if row is not None:
            rows.append(row)
            repair = "newline"
        elif tail.startswith(_ROW_START):
            repair = "trim"
        else:
            raise refuse(first_line + len(body), f"{why}, and the file does not end with a newline")
    elif not rows and first_line == 1:
        raise refuse(1, "is blank and no line holds a row")
    return rows, repair


@dataclass(frozen=True)
class FileMark:
    """Where a results file ended when it was last closed: its device and inode, its size and how many
    lines it held. A :class:`ResultsFile` opened ``since`` a mark reads only what was appended after it,
    when the file is still that file and has only grown (the byte before the mark still ends a line);
    otherwise it reads the whole file."""

    device: int
    inode: int
    size: int
    lines: int


class ResultsFile:
    """A JSON Lines results file that only ever grows by complete rows (see the module docstring).

    ``open()`` applies the output policy (never one of ``inputs``), locks the file, recognises it
    and only then repairs a cut-short last line; ``rows`` are the rows already there, or with
    ``since`` (a :class:`FileMark` of an earlier ``close()``) only the rows appended after that mark
    when the file has only grown since (``incremental`` says which: a training monitor that reopens
    its file every step reads each row once, not the whole run again). ``append(row)`` writes one
    line and fsyncs it; ``append_many(rows)`` writes complete lines and fsyncs once. ``close()``
    releases the lock, removes a file it created and wrote nothing to, and sets ``mark``.
    """

    def __init__(self, path: str | os.PathLike[str], *, inputs: Iterable[str | None] = (),
                 since: FileMark | None = None) -> None:
        self.path = os.fspath(path)
        self.inputs = tuple(inputs)
        self.rows: list[dict[str, Any]] = []
        self.repaired: str | None = None
        self.direct = False
        self.incremental = False
        self.mark: FileMark | None = None
        self._since = since
        self._lines = 0
        self._fd: int | None = None
        self._created: str | None = None
        self._appended = 0

    def __enter__(self) -> ResultsFile:
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def open(self) -> None:
        from dsecli.report.writing import output_target

        target = output_target(self.path, name="--output", inputs=self.inputs)
        if target.direct:
            self.direct = True
            flags = os.O_WRONLY | os.O_APPEND
        else:
            flags = os.O_RDWR | os.O_APPEND | os.O_CREAT
        existed = os.path.exists(target.file)
        try:
            fd = os.open(target.file, flags | getattr(os, "O_NOCTTY", 0), 0o666)
        except OSError as exc:
            raise InputError(f"{self.path}: cannot open the results file ({exc.strerror or exc})") from None
        if not existed and not target.direct:
            self._created = target.file
        try:
            if not target.direct:
                self._lock(fd)
                self._load(fd)
        except BaseException:
            os.close(fd)
            self._remove_if_created()
            raise
        self._fd = fd

    def _lock(self, fd: int) -> None:
        try:
            import fcntl
        except ImportError:  # pragma: no cover - not POSIX: no locking
            return
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise InputError(
                f"{self.path}: another dse batch is writing to this results file; wait for it or use another --output"
            ) from None

    def _start(self, fd: int, st: os.stat_result) -> tuple[int, int]:
        """(byte offset, lines before it) to read from: after ``since`` when the file only grew since."""
        m = self._since
        if (m is None or (st.st_dev, st.st_ino) != (m.device, m.inode) or st.st_size < m.size
                or (m.size > 0 and os.pread(fd, 1, m.size - 1) != b"\n")):
            return 0, 0
        return m.size, m.lines

    def _load(self, fd: int) -> None:
        st = os.fstat(fd)
        start, lines_before = self._start(fd, st)
        self.incremental = start > 0
        chunks = []
        read = start
        while read < st.st_size:
            chunk = os.pread(fd, st.st_size - read, read)
            if not chunk:
                break
            chunks.append(chunk)
            read += len(chunk)
        data = b"".join(chunks)
        self.rows, repair = recognise(data, self.path, first_line=lines_before + 1)
        self._lines = lines_before + data.count(b"\n")
        if repair == "trim":
            tail = len(data) - (data.rfind(b"\n") + 1)
            # a write cut short: drop exactly those bytes, never anything before them
            os.ftruncate(fd, start + len(data) - tail)
            os.fsync(fd)
            self.repaired = f"removed an incomplete last line ({tail} bytes) left by an interrupted run"
        elif repair == "newline":
            os.write(fd, b"\n")
            os.fsync(fd)
            self._lines += 1
            self.repaired = "added the missing newline after the last row"

    def append(self, row: dict[str, Any]) -> None:
        self.append_many([row])

    def append_many(self, rows: Iterable[dict[str, Any]]) -> None:
        """Append complete lines, one per row, and fsync once: a crash keeps every line written whole
        (a cut-short last one is removed at the next open)."""
        if self._fd is None:
            raise ValueError("results file is not open")
        rows = list(rows)
        if not rows:
            return
        text = "".join(json.dumps(row, allow_nan=False, separators=(",", ":")) + "\n" for row in rows)
        view = memoryview(text.encode("utf-8"))
        while view:
            view = view[os.write(self._fd, view):]
        if not self.direct:
            os.fsync(self._fd)
        self.rows.extend(rows)
        self._appended += len(rows)
        self._lines += len(rows)

    def _remove_if_created(self) -> None:
        if self._created is not None and self._appended == 0:
            try:
                if os.path.getsize(self._created) == 0:
                    os.unlink(self._created)
            except OSError:
                pass
        self._created = None

    def close(self) -> None:
        if self._fd is not None:
            if not self.direct:
                st = os.fstat(self._fd)
                self.mark = FileMark(st.st_dev, st.st_ino, st.st_size, self._lines)
            os.close(self._fd)  # also releases the lock
            self._fd = None
            self._remove_if_created()
