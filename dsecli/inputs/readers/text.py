"""Text tables (``.csv``, ``.tsv``, ``.txt``), parsed here rather than by ``np.loadtxt``.

The rules, in order:

- Encoding: UTF-8; a UTF-8 byte-order mark (Excel's "CSV UTF-8") is removed; UTF-16 with a
  byte-order mark is decoded too.
- Lines: blank lines and lines whose first non-blank character is ``#`` are skipped.
- Fields: ``.csv`` splits at commas and ``.tsv`` at tabs, with the usual double-quote rules;
  ``.txt`` splits at commas when its first line holds one, else at runs of whitespace.
  Surrounding spaces and quotes are removed. A delimiter at the end of every line (an empty
  last field on every line, e.g. ``1,2,``) is ignored; any other empty field is an error.
  Every line must have as many fields as the first.
- Header: with ``header=True`` (``--header``) the first line is a header; with ``header=False``
  (``--no-header``) it is data. Otherwise (``header=None``) the first line is a header only when
  (a) some of its fields are not numbers, (b) there are later lines, and (c) in every column
  where the first line is not a number, every later line is a number. A numeric table has
  numbers in every row, so such a first line cannot be one of its rows: this rule never takes a
  data row for a header. A table of strings (e.g. one column of class labels) never gets a header
  by this rule: its first line is data unless ``--header`` says otherwise.
- Values: a number is an optional sign, digits with an optional decimal point and exponent, or
  ``nan``/``inf``/``infinity`` (any case). When every field is an integer (digits only) that fits
  in int64 the table is int64 (so a column of class ids is read as labels), else when every field
  is a number it is float64, else it is a table of strings.
- Shape: numbers are always N x D (one column is N x 1); strings in one column are N labels;
  text in a table of several columns is an error naming the first such field.

The file is read in one go (so FIFOs and pipes are read once).
"""

from __future__ import annotations

import csv
import re

import numpy as np

from dsecli.errors import InputError
from dsecli.inputs.readers._common import ArraySource, from_memory

_INT_TEXT = r"[+-]?\d+"
_NUMBER_TEXT = r"[+-]?(?:\d+\.?\d*(?:[eE][+-]?\d+)?|\.\d+(?:[eE][+-]?\d+)?|nan|inf|infinity)"
_NUMBER = re.compile(_NUMBER_TEXT + r"[ \t]*", re.IGNORECASE)
# one match per line, over its fields joined by a unit separator: far faster than one match per field
_SEP = "\x1f"
_INT_ROW = re.compile(rf"{_INT_TEXT}[ \t]*(?:{_SEP}{_INT_TEXT}[ \t]*)*")
_NUMBER_ROW = re.compile(rf"{_NUMBER_TEXT}[ \t]*(?:{_SEP}{_NUMBER_TEXT}[ \t]*)*", re.IGNORECASE)
_INT64 = (-(2**63), 2**63 - 1)


def _decode(path: str, raw: bytes) -> str:
    try:
        if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
            return raw.decode("utf-16")
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InputError(f"{path}: not a UTF-8 text file (is it a binary format with a text extension?)") from exc


def _split(path: str, text: str) -> list[tuple[int, list[str]]]:
    """``(line number, fields)`` of every data line (fields may keep trailing blanks; see :func:`_strip`)."""
    lines = [(i + 1, line.strip()) for i, line in enumerate(text.splitlines())]
    lines = [(n, line) for n, line in lines if line and not line.startswith("#")]
    if not lines:
        return []
    low = path.lower()
    delimiter = "\t" if low.endswith(".tsv") else "," if low.endswith(".csv") or "," in lines[0][1] else None
    if delimiter is None:
        return [(n, [f.strip('"') for f in line.split()]) for n, line in lines]
    rows = csv.reader((line for _n, line in lines), delimiter=delimiter, quotechar='"', skipinitialspace=True)
    try:
        return [(n, fields) for (n, _line), fields in zip(lines, rows)]
    except csv.Error as exc:
        raise InputError(f"{path}: cannot parse as a table ({exc})") from exc


def _strip(rows: list[tuple[int, list[str]]]) -> list[tuple[int, list[str]]]:
    return [(n, [f.strip() for f in fields]) for n, fields in rows]


def _drop_trailing_delimiter(rows: list[tuple[int, list[str]]]) -> None:
    if all(len(f) > 1 and not f[-1].strip() for _n, f in rows):
        for _n, f in rows:
            f.pop()


def _check_table(path: str, rows: list[tuple[int, list[str]]]) -> None:
    width = len(rows[0][1])
    for n, fields in rows:
        if len(fields) != width:
            raise InputError(f"{path}: line {n} has {len(fields)} field(s) but line {rows[0][0]} has {width}; "
                             "every line must have the same number of fields")
        if "" in fields:  # a blank-only field is not a number either: found once the strings are stripped
            raise InputError(f"{path}: line {n}, field {fields.index('') + 1} is empty (a missing value?); fill it "
                             "in or remove the line")


def _all_rows(pattern: re.Pattern[str], rows: list[tuple[int, list[str]]]) -> bool:
    return all(pattern.fullmatch(_SEP.join(fields)) for _n, fields in rows)


def _takes_header(rows: list[tuple[int, list[str]]]) -> bool:
    first = rows[0][1]
    text_cols = [j for j, f in enumerate(first) if not _NUMBER.fullmatch(f)]
    if not text_cols or len(rows) < 2:
        return False
    if _all_rows(_NUMBER_ROW, rows[1:]):
        return True
    return all(_NUMBER.fullmatch(fields[j]) for _n, fields in rows[1:] for j in text_cols)


def _values(path: str, rows: list[tuple[int, list[str]]]) -> np.ndarray:
    try:
        if _all_rows(_INT_ROW, rows):
            ints = [[int(f) for f in fields] for _n, fields in rows]
            if all(_INT64[0] <= v <= _INT64[1] for fields in ints for v in fields):
                return np.array(ints, dtype=np.int64).reshape(len(rows), -1)
        if _all_rows(_NUMBER_ROW, rows):
            return np.array([[float(f) for f in fields] for _n, fields in rows],
                            dtype=np.float64).reshape(len(rows), -1)
    except ValueError:  # a field holding the separator itself: not a number after all
        pass
    rows = _strip(rows)
    _check_table(path, rows)
    arr = np.array([fields for _n, fields in rows], dtype=str)
    return arr[:, 0] if arr.shape[1] == 1 else arr


def _first_text(rows: list[tuple[int, list[str]]]) -> tuple[int, int, str]:
    for n, fields in rows:
        for j, f in enumerate(fields):
            if not _NUMBER.fullmatch(f):
                return n, j + 1, f.strip()
    raise AssertionError("no text field")  # pragma: no cover - called only for a table with text


def parse_table(path: str, raw: bytes, *, header: bool | None = None) -> np.ndarray:
    """The array a text table holds, by the rules of this module's docstring."""
    rows = _split(path, _decode(path, raw))
    if not rows:
        raise InputError(f"{path}: file is empty (no data lines)")
    _drop_trailing_delimiter(rows)
    _check_table(path, rows)
    if header is True or (header is None and _takes_header(rows)):
        rows = rows[1:]
    if not rows:
        raise InputError(f"{path}: holds only a header line, no data")
    values = _values(path, rows)
    if values.dtype.kind == "U" and values.ndim == 2:
        # strings are labels, one per row: a table of several columns must be all numbers
        n, j, text = _first_text(rows)
        said = " (--no-header: the first line is data)" if header is False and n == rows[0][0] else ""
        raise InputError(f"{path}: line {n}, field {j} is not a number ({text!r}){said}; a table of several columns "
                         "must hold numbers only (a file of labels has one column)")
    return values


def open_text(path: str, key: str | None, data: bytes | None = None, *, header: bool | None = None) -> ArraySource:
    if key:
        raise InputError(f"{path}: text files hold one table; remove the key {key!r}")
    if data is None:
        try:
            with open(path, "rb") as fh:
                data = fh.read()
        except PermissionError as exc:
            raise InputError(f"{path}: file is not readable (permission denied)") from exc
    if not data.strip():
        raise InputError(f"{path}: file is empty")
    return from_memory(path, None, parse_table(path, data, header=header))

