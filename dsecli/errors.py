"""Exceptions, exit statuses and the one validation policy of dsecli.

Every check that rejects user input lives here (or calls a helper from here) so that
messages share one shape: ``<where>: `<parameter>` <what was wrong>; got <value>``.
The library raises; the CLI turns a :class:`DseError` into one line on stderr and
the exit code in :class:`ExitStatus`.
"""

from __future__ import annotations

import contextlib
import contextvars
import math
import warnings
from collections.abc import Iterator
from enum import IntEnum
from typing import Any

__all__ = [
    "DseError",
    "InputError",
    "ComputationError",
    "DeviceError",
    "MemoryLimitError",
    "ExitStatus",
    "DseWarning",
    "DegenerateKernelWarning",
    "DataQualityWarning",
    "ComparabilityWarning",
    "check_positive",
    "check_positive_int",
    "MAX_INT",
    "check_choice",
    "check_finite_number",
    "check_at_most",
    "check_neighbors",
    "where_prefix",
    "OutputError",
    "CollectWarnings",
    "quiet",
    "first_line",
]


class ExitStatus(IntEnum):
    """Exit codes of the ``dse`` command (documented in README.md)."""

    SUCCESS = 0
    COMPUTATION_FAILED = 1
    USAGE_OR_INPUT = 2
    INTERRUPTED = 130  # SIGINT (128 + 2)
    TERMINATED = 143  # SIGTERM (128 + 15)


class DseError(Exception):
    """Base class of every error dsecli raises on purpose."""

    exit_status: ExitStatus = ExitStatus.COMPUTATION_FAILED


class InputError(DseError, ValueError):
    """Bad input: a file, a dataset/key, a parameter value, or shapes that do not match."""

    exit_status = ExitStatus.USAGE_OR_INPUT


class ComputationError(DseError, RuntimeError):
    """The input was valid but the computation could not finish (e.g. no convergence)."""

    exit_status = ExitStatus.COMPUTATION_FAILED


class OutputError(DseError, OSError):
    """The result was computed but could not be written (disk full, I/O error)."""

    exit_status = ExitStatus.COMPUTATION_FAILED


class DeviceError(DseError, RuntimeError):
    """A requested device is not available (e.g. ``cuda`` on a machine without a GPU)."""

    exit_status = ExitStatus.USAGE_OR_INPUT


class MemoryLimitError(DseError, MemoryError):
    """An N x N matrix would not fit in the memory of the chosen device."""

    exit_status = ExitStatus.COMPUTATION_FAILED


class DseWarning(UserWarning):
    """Base class of dsecli's warnings; the CLI prints them on stderr."""


class DegenerateKernelWarning(DseWarning, RuntimeWarning):
    """The Gaussian kernel is (nearly) all ones or all zeros off the diagonal."""


class DataQualityWarning(DseWarning):
    """Duplicate rows, constant columns and similar properties that bias estimates."""


class ComparabilityWarning(DseWarning):
    """Values set side by side that were computed under different settings (e.g. σ policies)."""


def where_prefix(where: str | None) -> str:
    """``"file.h5:/ds: "`` for an input label, ``""`` for none: the start of every message."""
    return f"{where}: " if where else ""


_where = where_prefix


def check_finite_number(value: Any, name: str, *, where: str | None = None) -> float:
    """Return ``value`` as a float, or raise :class:`InputError` if it is not a finite number."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise InputError(f"{_where(where)}`{name}` must be a number; got {value!r}") from None
    if not math.isfinite(number):
        raise InputError(f"{_where(where)}`{name}` must be finite; got {value!r}")
    return number


def check_positive(value: Any, name: str, *, where: str | None = None) -> float:
    """Return ``value`` as a float, or raise :class:`InputError` unless it is finite and > 0."""
    number = check_finite_number(value, name, where=where)
    if number <= 0:
        raise InputError(f"{_where(where)}`{name}` must be > 0; got {value!r}")
    return number


# Integers go on to numpy and torch (seeds, sizes, counts), which hold them in 64 bits; a larger
# Python int would fail there with an OverflowError, far from the parameter that caused it.
MAX_INT = 2**63 - 1


def check_positive_int(
    value: Any, name: str, *, minimum: int = 1, maximum: int = MAX_INT, where: str | None = None
) -> int:
    """Return ``value`` as an int, or raise :class:`InputError` unless it is an integer in ``minimum..maximum``.

    ``maximum`` defaults to :data:`MAX_INT` (2**63 - 1), the largest value numpy and torch
    accept for seeds, sizes and counts.
    """
    bad = f"{_where(where)}`{name}` must be an integer >= {minimum}; got {value!r}"
    if isinstance(value, bool):
        raise InputError(bad)
    try:
        number = int(value)
    except (TypeError, ValueError, OverflowError):
        raise InputError(bad) from None
    if number != value and not (isinstance(value, float) and value.is_integer()):
        raise InputError(bad)
    if number < minimum:
        raise InputError(bad)
    if number > maximum:
        raise InputError(f"{_where(where)}`{name}` must be an integer in {minimum}..{maximum}; got {value!r}")
    return number


def check_choice(value: Any, name: str, choices: tuple[str, ...] | list[str], *, where: str | None = None) -> str:
    """Return ``value`` if it is one of ``choices``, else raise :class:`InputError` listing them."""
    if value not in choices:
        raise InputError(
            f"{_where(where)}`{name}` must be one of {', '.join(map(str, choices))}; got {value!r}"
        )
    return str(value)


def check_at_most(value: int, limit: int, name: str, *, limit_name: str = "N", where: str | None = None,
                  why: str = "") -> int:
    """Raise :class:`InputError` unless ``value <= limit`` (e.g. ``n_clusters`` <= N rows)."""
    if value > limit:
        reason = f" ({why})" if why else ""
        bound = f"{limit_name} = {limit}" if limit_name else f"{limit}"
        raise InputError(f"{_where(where)}`{name}` must be <= {bound}{reason}; got {value!r}")
    return value


def check_neighbors(k: Any, n: int, *, name: str = "k", where: str | None = None, method: str = "kNN estimators",
                    self_included: bool = False) -> int:
    """Validate a neighbour count against N rows: ``1 <= k < N`` (``k <= N`` when a point is its own neighbour).

    Every kNN-based method (kNN entropy, KSG, the kNN adjacency) calls this, so the message is
    the same everywhere: ``"`k` must be <= N - 1 = 4 for kNN estimators (each row needs k other rows); got 5"``.
    """
    k = check_positive_int(k, name, where=where)
    if self_included:
        if k > n:
            raise InputError(
                f"{_where(where)}`{name}` must be <= N = {n} for {method} (the row itself counts); got {k}"
            )
    elif k >= n:
        raise InputError(
            f"{_where(where)}`{name}` must be <= N - 1 = {n - 1} for {method} (each row needs {name} other rows); "
            f"got {k}"
        )
    return k


# Whether dsecli's warnings are kept in the results only (:func:`quiet`). Nesting needs no counter:
# an inner CollectWarnings re-raises into the outer one's record, so only the outermost shows them.
_QUIET: contextvars.ContextVar[bool] = contextvars.ContextVar("dsecli_quiet", default=False)


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """Inside the block, dsecli's warnings are kept in the results' ``warnings`` and not shown.

    For callers that read ``result.warnings`` themselves (batch, the monitor, re-evaluations).
    """
    token = _QUIET.set(True)
    try:
        yield
    finally:
        _QUIET.reset(token)


def first_line(exc: BaseException, limit: int = 160) -> str:
    """The first line of an exception's text, cut at its first sentence when long (torch's run on)."""
    text = (str(exc).strip() or type(exc).__name__).splitlines()[0]
    if len(text) > limit and ". " in text[:limit]:
        text = text[: text.index(". ", 0, limit) + 1]
    return text if len(text) <= limit else text[: limit - 3] + "..."


class CollectWarnings:
    """The one warnings channel: record dsecli warnings raised inside a ``with`` block, so that a
    result can carry them, and show each once.

    Blocks nest (a public call inside another): an inner block hands what it recorded to the
    outer one, and only the outermost shows them to the caller. Inside :func:`quiet` each block
    keeps what it recorded and hands nothing on.
    ``carried`` are messages recorded (and shown) earlier for the same result, e.g. while its rows
    were prepared (:attr:`dsecli.inputs.prepare.Prepared.warnings`): they head the list and are
    not shown again. The list holds each message once.
    """

    def __init__(self, carried: tuple[str, ...] | list[str] = ()) -> None:
        self.carried = tuple(carried)

    def __enter__(self) -> list[str]:
        self._cm = warnings.catch_warnings(record=True)
        self._log = self._cm.__enter__()
        warnings.simplefilter("always", DseWarning)
        self.messages: list[str] = list(dict.fromkeys(self.carried))
        return self.messages

    def __exit__(self, *exc: object) -> None:
        self._cm.__exit__(*exc)
        for w in self._log:
            if issubclass(w.category, DseWarning):
                if str(w.message) in self.messages:
                    continue
                self.messages.append(str(w.message))
                if _QUIET.get():  # kept in this block's result only
                    continue
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)


def suggest(name: str, candidates: Any, *, what: str = "key", limit: int = 5) -> str:
    """The end of a "not found" message: the nearest candidates, and a count instead of a long list.

    Up to ``limit`` candidates closest to ``name`` (a case-insensitive match; else, of the names
    with a :class:`difflib.SequenceMatcher` ratio of at least 0.6, those fewest edits away; else names
    that contain ``name`` or are contained in it) are offered as "did you mean"; the others are counted, never all listed. A short list (``limit`` or fewer) is shown
    whole. ``what`` names one candidate ("dataset", "column", ...); an "s" makes the plural.

    Returns
    -------
    str
        Text starting with "; ", e.g. ``"; did you mean '/emb/train'? (23 datasets in all; dse info lists them)"``.
    """
    import difflib

    names = [str(c) for c in candidates]
    plural = what + "s"
    if not names:
        return f"; there are no {plural}"
    if len(names) <= limit:
        close = difflib.get_close_matches(name, names, n=1, cutoff=0.6)
        hint = f"did you mean {close[0]!r}? " if close else ""
        return f"; {hint}{plural}: {', '.join(names)}"
    low = name.lower().strip("/")
    picked = [c for c in names if c.lower().strip("/") == low]
    if not picked:
        # of the names similar enough (difflib's ratio >= 0.6), those fewest characters away (ties all shown)
        scored = []
        for i, c in enumerate(names):
            m = difflib.SequenceMatcher(None, name, c)
            if m.ratio() >= 0.6:
                edits = sum(max(i2 - i1, j2 - j1) for op, i1, i2, j1, j2 in m.get_opcodes() if op != "equal")
                scored.append((edits, -m.ratio(), i))
        scored.sort()
        picked = [names[i] for e, _r, i in scored if e == scored[0][0]]
    if not picked and low:  # a name that holds the one asked for, or is held in it ('emb' for 'embedding')
        picked = [c for c in names if low in c.lower() or (len(c.strip("/")) >= 3 and c.lower().strip("/") in low)]
    picked = picked[:limit]
    if picked:
        shown = " or ".join(repr(c) for c in picked) if len(picked) <= 2 else \
            ", ".join(repr(c) for c in picked[:-1]) + f" or {picked[-1]!r}"
        return f"; did you mean {shown}? ({len(names)} {plural} in all; dse info lists them)"
    return (f"; {len(names)} {plural}, none close to {name!r}: {', '.join(names[:limit])} and {len(names) - limit} "
            "more (dse info lists them)")
