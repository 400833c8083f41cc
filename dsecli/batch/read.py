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
                    DSMI's spread (the first of :data:`dsecli.report.tables.ERROR_KEYS`), or None
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
from typing import Any

from dsecli.errors import InputError

__all__ = ["RESULT_COLUMNS", "read_results"]

RESULT_COLUMNS = ("input", "dataset", "checkpoint", "series", "reference", "method", "quantity", "value", "units",
                  "error", "ceiling", "n_used", "n_total", "sigma", "t", "run_id", "key")


def _rows(path: str) -> list[dict[str, Any]]:
    if not os.path.isfile(path):
        raise InputError(f"{path}: results file not found")
    try:
        with open(path, encoding="utf-8") as fh:
            lines = fh.read().splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: cannot read results ({exc})") from None
    rows = []
    for lineno, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise InputError(f"{path}: line {lineno} is not valid JSON ({exc.msg})") from None
        if not isinstance(row, dict) or not isinstance(row.get("method"), str) or "value" not in row:
            raise InputError(f"{path}: line {lineno} is not a result row (a JSON object with method and value); "
                             "read_results reads the JSON Lines of dse batch or of dse entropy/mi --format jsonl")
        rows.append(row)
    return rows


def _summary(row: dict[str, Any]) -> dict[str, Any]:
    from dsecli.report.tables import ERROR_KEYS

    params = row.get("params") if isinstance(row.get("params"), dict) else {}
    extra = row.get("extra") if isinstance(row.get("extra"), dict) else {}
    ceiling = extra.get("ceiling")
    if isinstance(ceiling, dict):
        ceiling = next((ceiling[k] for k in ("value", "bits") if ceiling.get(k) is not None), None)
    return {
        "input": row.get("input"), "dataset": row.get("dataset"), "checkpoint": row.get("checkpoint"),
        "series": row.get("series"), "reference": row.get("reference"), "method": row.get("method"),
        "quantity": row.get("quantity"), "value": row.get("value"), "units": row.get("units"),
        "error": next((extra[k] for k in ERROR_KEYS if extra.get(k) is not None), None), "ceiling": ceiling,
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
    from dsecli.batch.store import latest_rows
    from dsecli.report.rows import flatten_row

    path = os.fspath(path)
    rows = _rows(path)
    if latest:
        rows = latest_rows(rows)
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
