"""Machine-readable renderings of a report: one JSON object, JSON Lines, CSV or TSV.

``--format table|json|jsonl|csv|tsv`` on the result commands. ``json`` is the whole report (the
same object ``--json`` prints). The other three print the report's *rows*, one line each:

- ``entropy`` / ``mi``: one row per method (``results``), led by ``input`` (and for ``mi``
  ``reference``), the labels of the files measured, as in ``batch`` rows;
- ``validate``: one row per case (``cases``); ``check``: one row per finding (``findings``);
- ``spectrum``: one row per diffusion time (``dse``); ``info``: one row per array (``arrays``);
- ``batch``: one row per input and method (the rows of the results file).

For CSV and TSV a row's nested fields are flattened to dotted columns (``params.sigma``,
``extra.error_estimate_bits``); lists (eigenvalues, warnings) are written as JSON text in one
cell. Numbers are written with Python's shortest round-trip repr (``float(cell)`` gives back
the exact value of the JSON report); a missing or null value is an empty cell; booleans are
``true``/``false``, as in JSON. Columns are the union of the rows' fields in first-seen order.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Iterable, Sequence
from typing import Any

from dsecli.errors import InputError

__all__ = ["FORMATS", "check_format", "report_rows", "flatten_row", "rows_text"]

FORMATS = ("table", "json", "jsonl", "csv", "tsv")

# where each command's report keeps its rows, tried in this order
_ROW_KEYS = ("results", "cases", "findings", "dse", "arrays", "rows")


def check_format(fmt: str | None, *, as_json: bool = False) -> str:
    """The output format: ``fmt`` (one of :data:`FORMATS`), ``"json"`` for ``--json``, else ``"table"``.

    Returns
    -------
    str
        One of :data:`FORMATS`.
    """
    if fmt is None:
        return "json" if as_json else "table"
    name = fmt.strip().lower()
    if name not in FORMATS:
        raise InputError(f"`--format` must be one of {', '.join(FORMATS)}; got {fmt!r}")
    if as_json and name != "json":
        raise InputError(f"`--json` and `--format {name}` disagree; give one of them")
    return name


def report_rows(report: dict[str, Any]) -> list[dict[str, Any]]:
    """The rows of a report (see the module docstring); a report without a row list is one row.

    Returns
    -------
    list of dict
        The row objects, as in the JSON report.
    """
    for key in _ROW_KEYS:
        rows = report.get(key)
        if isinstance(rows, list) and all(isinstance(r, dict) for r in rows):
            return _with_inputs(rows, report.get("inputs")) if key == "results" else rows
    return [report]


def _with_inputs(rows: list[dict[str, Any]], inputs: Any) -> list[dict[str, Any]]:
    # entropy / mi rows name what they measured, as batch rows do: a loop over files keeps them apart
    if not isinstance(inputs, dict) or "embeddings" not in inputs:
        return rows
    where = {"input": inputs["embeddings"]}
    if "reference" in inputs:
        where["reference"] = inputs["reference"]
    return [{**where, **row} for row in rows]


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else ("nan" if math.isnan(value) else ("inf" if value > 0 else "-inf"))
    if isinstance(value, (int, str)):
        return str(value)
    return json.dumps(value, separators=(",", ":"), allow_nan=False, default=str)


def flatten_row(row: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested dicts become dotted keys (``{"params": {"t": 1}}`` -> ``{"params.t": 1}``); other values stay.

    Returns
    -------
    dict
        Flat mapping of column name to value.
    """
    out: dict[str, Any] = {}
    for key, value in row.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            out.update(flatten_row(value, prefix=f"{name}."))
        else:
            out[name] = value
    return out


def _columns(flat: Sequence[dict[str, Any]]) -> list[str]:
    return list(dict.fromkeys(k for row in flat for k in row))


def rows_text(rows: Iterable[dict[str, Any]], fmt: str) -> str:
    """``rows`` as JSON Lines, CSV or TSV text (a header line first for CSV/TSV), ending in a newline.

    Returns
    -------
    str
        The text to print.
    """
    from dsecli.report.writing import to_json

    rows = list(rows)
    if fmt == "jsonl":
        return "".join(to_json(r, indent=None) + "\n" for r in rows)
    if fmt not in ("csv", "tsv"):
        raise InputError(f"rows are written as jsonl, csv or tsv; got {fmt!r}")
    flat = [flatten_row(r) for r in rows]
    columns = _columns(flat)
    buf = io.StringIO()
    writer = csv.writer(buf, delimiter="," if fmt == "csv" else "\t", lineterminator="\n",
                        quoting=csv.QUOTE_MINIMAL)
    writer.writerow(columns)
    for row in flat:
        writer.writerow([_cell(row.get(c)) for c in columns])
    return buf.getvalue()
