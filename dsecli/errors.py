"""Exceptions, exit statuses and the one validation policy of dsecli.

Every check that rejects user input lives here (or calls a helper from here) so that
messages share one shape: ``<where>: `<parameter>` <what was wrong>; got <value>``.
The library raises; the CLI turns a :class:`DseError` into one line on stderr and
the exit code in :class:`ExitStatus`.
"""

from __future__ import annotations

import math
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
    "check_positive",
    "check_positive_int",
    "check_choice",
    "check_finite_number",
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


def _where(where: str | None) -> str:
    return f"{where}: " if where else ""


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


def check_positive_int(
    value: Any, name: str, *, minimum: int = 1, where: str | None = None
) -> int:
    """Return ``value`` as an int, or raise :class:`InputError` unless it is an integer >= minimum."""
    if isinstance(value, bool):
        raise InputError(f"{_where(where)}`{name}` must be an integer >= {minimum}; got {value!r}")
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise InputError(
            f"{_where(where)}`{name}` must be an integer >= {minimum}; got {value!r}"
        ) from None
    if number != value and not (isinstance(value, float) and value.is_integer()):
        raise InputError(f"{_where(where)}`{name}` must be an integer >= {minimum}; got {value!r}")
    if number < minimum:
        raise InputError(f"{_where(where)}`{name}` must be an integer >= {minimum}; got {value!r}")
    return number


def check_choice(value: Any, name: str, choices: tuple[str, ...] | list[str], *, where: str | None = None) -> str:
    """Return ``value`` if it is one of ``choices``, else raise :class:`InputError` listing them."""
    if value not in choices:
        raise InputError(
            f"{_where(where)}`{name}` must be one of {', '.join(map(str, choices))}; got {value!r}"
        )
    return str(value)
