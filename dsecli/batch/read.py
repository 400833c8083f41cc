"""Results files as tables: :func:`read_results` (a pandas DataFrame, or a list of flat dicts).

A row of ``dse batch`` holds some hundred fields once flattened (fingerprints, plans, timings);
an analysis needs a few. ``read_results(path)`` gives one row per result with the columns of
:data:`RESULT_COLUMNS`:

==================  ==========================================================================
``input``           the input spec of the row (file, or ``file:dataset``)
``dataset``         the dataset or key inside the file (None for a plain array file)
``checkpoint``      the checkpoint number read from the name (``epoch_004`` -> 4), or None
``series``          the input's name pattern with the number replaced (``epoch_*``)
``reference``       the reference file of a mutual-information row, else None
``method``          the method (``dse``, ``dsmi``, ``knn``, ...)
``quantity``        ``entropy`` or ``mutual_information``
``value``           the value (None for a row that failed)
``units``           ``bits``, ``nats``, ...
``error``           the +- error the tables show: the approximate solver's estimate, MINE's or
                    DSMI's spread (the first of :data:`dsecli.results.ERROR_KEYS`), or None
``ceiling``         the largest value the method can give on these rows (e.g. log2 N), or None
``n_used``          rows used (after subsampling)
``n_total``         rows in the input
``sigma``, ``t``    the kernel bandwidth and diffusion time, for the methods that have them
``run_id``          the run that wrote the row, when rows carry one
``key``             the resume key (rows with the same key are one result; the last is kept)
==================  ==========================================================================

``flatten=True`` gives every field instead, nested objects as dotted columns (``params.sigma``,
``extra.plan.solver``), as ``dse batch --format csv`` writes them.
"""

from __future__ import annotations

import json
import os
import warnings
from typing import Any

from dsecli.batch.store import latest_rows
from dsecli.errors import DseWarning, InputError
from dsecli.results import ERROR_KEYS, row_ceiling

__all__ = ["RESULT_COLUMNS", "read_results", "read_result_rows", "read_text", "row_problem", "stored_row_problem"]

RESULT_COLUMNS = ("input", "dataset", "checkpoint", "series", "reference", "method", "quantity", "value", "units",
                  "error", "ceiling", "n_used", "n_total", "sigma", "t", "run_id", "key")


def read_result_rows(path: str | os.PathLike[str], *, latest: bool = True) -> list[dict[str, Any]]:
    """Rows of a results file: JSON Lines (``dse batch``, ``dse entropy/mi --format jsonl``, the monitor), a
    JSON array, or ``{"results": [...]}`` reports (``--json``). The one reader behind ``dse plot``,
    :func:`read_results` and :func:`dsecli.monitor.monitor.read_runs`.

    Every row is checked (:func:`row_problem`); a line that is not a row is an
    :class:`~dsecli.errors.InputError` naming the file and line. With ``latest`` (default), of rows
    with the same ``key`` only the last is kept and checked (a row recomputed on resume supersedes
    the earlier one).
    """
    path = os.fspath(path)
    text = read_text(path, what="results")
    stripped = text.lstrip()
    rows: list[Any]
    if stripped.startswith("["):
        try:
            rows = json.loads(text)
        except json.JSONDecodeError as exc:
            raise InputError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno})") from None
        if not isinstance(rows, list):
            raise InputError(f"{path}: not a list of result rows (a JSON {type(rows).__name__})")
        for i, row in enumerate(rows, start=1):
            _check_row(path, f"row {i}", row)
    else:
        rows = []
        lines: list[tuple[int, Any]] = []
        split = text.splitlines()
        for lineno, line in enumerate(split, start=1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                if lineno == len(split) and not text.endswith(("\n", "\r")):
                    # a last line without its newline: a row being written (a live monitor or batch) or cut short
                    warnings.warn(f"{path}: line {lineno}, the last, is incomplete (a row being written, or cut "
                                  "short); it is left out", DseWarning, stacklevel=2)
                    continue
                raise InputError(f"{path}: line {lineno} is not valid JSON ({exc.msg})") from None
            if isinstance(obj, dict) and isinstance(obj.get("results"), list) and "value" not in obj:
                for i, row in enumerate(obj["results"], start=1):  # a single `dse entropy --json` report
                    _check_row(path, f"line {lineno} (result {i})", row)
                rows.extend(obj["results"])
            else:
                lines.append((lineno, obj))
        # a row a resume recomputed (a later row with its key) is not read, so it is not checked
        last = {o["key"]: n for n, o in lines if isinstance(o, dict) and isinstance(o.get("key"), str)}
        for lineno, obj in lines:
            if not (latest and isinstance(obj, dict) and isinstance(obj.get("key"), str) and last[obj["key"]] != lineno):
                _check_row(path, f"line {lineno}", obj)
                rows.append(obj)
    if not rows:
        raise InputError(f"{path}: no result rows")
    return latest_rows(rows) if latest else rows


def read_text(path: str, *, what: str, encoding: str = "utf-8") -> str:
    """The text of a file the user named as ``what`` ("results", "outcomes"), or an
    :class:`~dsecli.errors.InputError` in one line: ``"<path>: results file not found"``,
    ``"<path>: cannot read results (<why>)"``.

    Returns
    -------
    str
    """
    if not os.path.isfile(path):
        raise InputError(f"{path}: {what} file not found")
    try:
        with open(path, encoding=encoding) as fh:
            return fh.read()
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: cannot read {what} ({exc})") from exc


def row_problem(row: Any) -> str | None:
    """Why ``row`` is not a result row that can be drawn, or None.

    A row is a JSON object with ``method`` (a non-empty string) and ``value`` (a number, or null
    for a failed row, which is skipped); ``quantity``, ``units``, ``dataset``, ``file`` and
    ``series`` are strings when present, ``params`` and ``extra`` objects.
    """
    if not isinstance(row, dict):
        return f"is not a JSON object (a JSON {_json_type(row)})"
    missing = [f for f in ("method", "value") if f not in row]
    if missing:
        return f"has no {' or '.join(repr(m) for m in missing)} field, so it is not a result row"
    if not isinstance(row["method"], str) or not row["method"]:
        return f"has a 'method' field that is not a non-empty string ({_json_type(row['method'])} {_short(row['method'])})"
    v = row["value"]
    if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float))):
        return f"has a 'value' field that is not a number or null ({_json_type(v)} {_short(v)})"
    for name in ("quantity", "units", "dataset", "file", "series"):
        if row.get(name) is not None and not isinstance(row[name], str):
            return f"has a {name!r} field that is not a string ({_json_type(row[name])} {_short(row[name])})"
    for name in ("params", "extra"):
        if row.get(name) is not None and not isinstance(row[name], dict):
            return f"has a {name!r} field that is not an object ({_json_type(row[name])} {_short(row[name])})"
    return None


def stored_row_problem(row: dict[str, Any]) -> str | None:
    """Why a stored row cannot be reused as it is, by a resumed batch or training monitor (:func:`row_problem`, the
    rule ``dse plot`` reads rows by, and an integer ``n_used`` and numeric ``sigma``, ``t``, ``k``, ``bins``), or
    None."""
    def number(v: Any) -> bool:
        return isinstance(v, (int, float)) and not isinstance(v, bool)

    why = row_problem(row)
    if why is None and (not isinstance(row.get("n_used"), int) or isinstance(row.get("n_used"), bool)):
        why = "has an 'n_used' field that is not an integer"
    params = row.get("params") or {}
    for name in ("sigma", "t", "k", "bins"):
        if why is None and params.get(name) is not None and not number(params[name]):
            why = f"has a params.{name} that is not a number ({params[name]!r})"
    return why


def _json_type(v: Any) -> str:
    return {dict: "object", list: "array", str: "string", bool: "boolean", int: "number", float: "number",
            type(None): "null"}.get(type(v), type(v).__name__)


def _short(v: Any, limit: int = 40) -> str:
    text = json.dumps(v, default=str)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _check_row(path: str, where: str, row: Any) -> None:
    why = row_problem(row)
    if why:
        raise InputError(f"{path}: {where} {why}; results are the rows of dse batch, of dse entropy/mi --json or "
                         "--format jsonl, or of the training monitor")


def _summary(row: dict[str, Any]) -> dict[str, Any]:
    params = row.get("params") if isinstance(row.get("params"), dict) else {}
    extra = row.get("extra") if isinstance(row.get("extra"), dict) else {}
    return {
        "input": row.get("input"), "dataset": row.get("dataset"), "checkpoint": row.get("checkpoint"),
        "series": row.get("series"), "reference": row.get("reference"), "method": row.get("method"),
        "quantity": row.get("quantity"), "value": row.get("value"), "units": row.get("units"),
        "error": next((extra[k] for k in ERROR_KEYS if extra.get(k) is not None), None), "ceiling": row_ceiling(row),
        "n_used": row.get("n_used"), "n_total": row.get("n_total"), "sigma": params.get("sigma"),
        "t": params.get("t"), "run_id": row.get("run_id"), "key": row.get("key"),
    }


def read_results(path: str | os.PathLike[str], *, flatten: bool = False, latest: bool = True) -> Any:
    """The rows of a results file (``dse batch --output``, or ``dse entropy/mi --format jsonl``) as a table.

    Parameters
    ----------
    path : the JSON Lines file.
    flatten : False (default): the columns of :data:`RESULT_COLUMNS` (module docstring); True: every
        field, nested objects as dotted columns (``params.sigma``).
    latest : True (default): of rows with the same ``key``, only the last (a row recomputed on
        resume supersedes the earlier one); False: every row as written.

    Returns
    -------
    pandas.DataFrame or list of dict
        A DataFrame when pandas is installed, else a list of flat dicts (one per row, same columns).
        Raises :class:`~dsecli.errors.InputError` naming the file and line of a line that is not a row.

    Examples
    --------
    >>> df = read_results("results.jsonl")  # doctest: +SKIP
    >>> df.pivot_table(index="checkpoint", columns="method", values="value")  # doctest: +SKIP
    """
    from dsecli.report.rows import flatten_row

    path = os.fspath(path)
    rows = read_result_rows(path, latest=latest)
    if flatten:
        table = [flatten_row(r) for r in rows]
        columns = list(dict.fromkeys(k for r in table for k in r))
    else:
        table = [_summary(r) for r in rows]
        columns = list(RESULT_COLUMNS)
    try:
        import pandas as pd
    except ImportError:
        return [{c: r.get(c) for c in columns} for r in table]
    return pd.DataFrame(table, columns=columns)
