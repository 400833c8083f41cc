"""``dse correlate``: the rank correlation of each series of a results file with outcomes (accuracy, loss)
read from a table, joined on a key.

:func:`correlate` reads the results (:func:`dsecli.batch.read.read_result_rows`) and groups them into
series (:func:`dsecli.batch.series.batch_series`: method, name pattern, reference, σ policy, t, bins, k);
reads the outcomes table (CSV, TSV, JSON or JSON Lines; :func:`read_outcomes`); joins each row to the
outcome row whose key (the column ``on``) names it; and gives, for every series and outcome column,
:func:`dsecli.correlation.rank_correlation` of the values and the outcomes.

The join. Keys that are all numbers are checkpoints: a key matches the point of each series at that x
(``/true/epoch_004/embeddings`` is x = 4, as :func:`~dsecli.batch.series.batch_series` reads it), and each
series is correlated on its own. Other keys name inputs: a key matches a row whose ``input`` label, or
``dataset``, or file name (whichever of the three matches the most keys) equals it, and the rows of one
method and settings are correlated across inputs whatever their name pattern (models compared with each
other). A key given twice is an error; a key matching no row, and a row without an outcome, are left out
and counted (a warning names the first few).
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from dsecli.batch.read import read_result_rows, read_text
from dsecli.batch.series import Series, batch_series, rows_of_methods, warn_sigma_policies
from dsecli.correlation import RankCorrelation, rank_correlation
from dsecli.errors import CollectWarnings, DseWarning, InputError, suggest
from dsecli.results import json_safe

__all__ = ["OutcomeTable", "read_outcomes", "CorrelationEntry", "Correlations", "correlate"]

# the row fields a non-numeric key may name, in order of preference on a tie
LABEL_FIELDS = ("input", "dataset", "file")
# how many keys or rows a warning names before it counts the rest
_NAMED = 5


@dataclass(frozen=True)
class OutcomeTable:
    """An outcomes table: its ``columns`` (in file order) and ``rows`` (dicts of cell text or JSON values),
    with the ``lines`` they come from (line numbers for CSV/TSV/JSON Lines, item numbers for JSON)."""

    path: str
    columns: tuple[str, ...]
    rows: tuple[dict[str, Any], ...]
    lines: tuple[int, ...]


def read_outcomes(path: str | os.PathLike[str]) -> OutcomeTable:
    """Read an outcomes table: CSV (``.csv``, ``.txt``), TSV (``.tsv``) with a header line, a JSON array of
    objects (or ``{"rows": [...]}``), or JSON Lines (``.jsonl``, ``.ndjson``: one object per line).

    Returns
    -------
    OutcomeTable
        Columns in the order first seen, and the rows.
    """
    path = os.fspath(path)
    text = read_text(path, what="outcomes", encoding="utf-8-sig")  # a spreadsheet's byte-order mark is dropped
    ext = os.path.splitext(path)[1].lower()
    stripped = text.lstrip()
    rows: list[dict[str, Any]] = []
    lines: list[int] = []
    if ext in (".jsonl", ".ndjson") or (ext not in (".csv", ".tsv", ".txt") and stripped.startswith("{")
                                        and "\n{" in stripped):
        for lineno, line in enumerate(text.splitlines(), start=1):
            if line.strip():
                rows.append(_object(path, _json(path, line, f"line {lineno}"), f"line {lineno}"))
                lines.append(lineno)
    elif ext == ".json" or stripped.startswith(("[", "{")):
        data = _json(path, text, "the file")
        if isinstance(data, dict) and isinstance(data.get("rows"), list):
            data = data["rows"]
        if not isinstance(data, list):
            raise InputError(f"{path}: outcomes must be a JSON array of objects (or {{\"rows\": [...]}})")
        for i, item in enumerate(data, start=1):
            rows.append(_object(path, item, f"item {i}"))
            lines.append(i)
    else:
        reader = csv.reader(io.StringIO(text), delimiter="\t" if ext == ".tsv" else ",")
        header: list[str] | None = None
        for lineno, cells in enumerate(reader, start=1):
            if not any(c.strip() for c in cells):
                continue
            if header is None:
                header = [c.strip() for c in cells]
                continue
            if len(cells) != len(header):
                raise InputError(f"{path}: line {lineno} has {len(cells)} cells but the header has {len(header)}")
            rows.append({h: c.strip() for h, c in zip(header, cells)})
            lines.append(lineno)
        if header is None:
            raise InputError(f"{path}: no header line (a CSV outcomes table starts with its column names)")
    columns = tuple(dict.fromkeys(k for r in rows for k in r))
    if not rows:
        raise InputError(f"{path}: no outcome rows")
    return OutcomeTable(path, columns, tuple(rows), tuple(lines))


def _json(path: str, text: str, where: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(f"{path}: {where} is not valid JSON ({exc.msg})") from None


def _object(path: str, item: Any, where: str) -> dict[str, Any]:
    if not isinstance(item, dict):
        raise InputError(f"{path}: {where} is not a JSON object (an outcome row maps column names to values)")
    return item


def _number(cell: Any) -> float | None:
    """A finite number from a cell (a JSON number or text), None for an empty cell; raises ValueError else."""
    if cell is None or (isinstance(cell, str) and not cell.strip()):
        return None
    if isinstance(cell, bool):
        raise ValueError(cell)
    value = float(cell)
    if not math.isfinite(value):
        raise ValueError(cell)
    return value


def _numeric(cells: Sequence[Any]) -> bool:
    try:
        values = [_number(c) for c in cells]
    except (TypeError, ValueError):
        return False
    return any(v is not None for v in values)


@dataclass(frozen=True)
class CorrelationEntry:
    """One series against one outcome column: ``n`` pairs out of the series' ``n_rows`` rows, and their
    :class:`~dsecli.correlation.RankCorrelation`; None, with the reason in ``note``, where there is none
    (fewer than 3 pairs, or a side constant)."""

    series: str
    quantity: str
    method: str
    pattern: str | None
    settings: str
    sigma_policy: str | None
    outcome: str
    n_rows: int
    n: int
    correlation: RankCorrelation | None
    note: str | None = None  # why there is no correlation

    def to_dict(self) -> dict[str, Any]:
        """One flat row: the series, the outcome, the counts and the correlation's fields.

        Returns
        -------
        dict
        """
        corr = self.correlation.to_dict() if self.correlation is not None else {}
        return json_safe({
            "series": self.series, "quantity": self.quantity, "method": self.method, "pattern": self.pattern,
            "settings": self.settings, "sigma_policy": self.sigma_policy, "outcome": self.outcome,
            "n_rows": self.n_rows, "n": self.n,
            **{k: corr.get(k) for k in ("spearman", "spearman_ci", "spearman_p", "kendall", "kendall_ci",
                                        "kendall_p", "bootstrap_used")},
            "note": self.note,
        })


@dataclass(frozen=True)
class Correlations:
    """What :func:`correlate` found: one entry per series and outcome column, how rows were matched
    (``matched_by``: ``"checkpoint"``, ``"input"``, ``"dataset"`` or ``"file"``), the outcome keys that
    matched no row, and the warnings given."""

    results: str
    outcomes: str
    on: str
    matched_by: str
    entries: tuple[CorrelationEntry, ...]
    unmatched_keys: tuple[str, ...]
    bootstrap: int
    confidence: float
    seed: int
    warnings: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe report: the inputs, the settings, ``rows`` (one per entry) and the unmatched keys.

        Returns
        -------
        dict
        """
        from dsecli.correlation import METHOD_NAMES

        return json_safe({
            "results": self.results, "outcomes": self.outcomes, "on": self.on, "matched_by": self.matched_by,
            "bootstrap": self.bootstrap, "confidence": self.confidence, "seed": self.seed,
            "methods": dict(METHOD_NAMES), "rows": [e.to_dict() for e in self.entries],
            "unmatched_keys": list(self.unmatched_keys), "warnings": list(self.warnings),
        })


def _keys(table: OutcomeTable, on: str) -> list[str]:
    if on not in table.columns:
        raise InputError(f"{table.path}: no key column {on!r}{suggest(on, table.columns, what='column', limit=_listed(table.columns))}")
    seen: dict[str, int] = {}
    keys = []
    for row, line in zip(table.rows, table.lines):
        cell = row.get(on)
        key = "" if cell is None else str(cell).strip()
        if not key:
            raise InputError(f"{table.path}: line {line} has no {on!r} key")
        if key in seen:
            raise InputError(f"{table.path}: key {key!r} of column {on!r} is given twice (lines {seen[key]} and "
                             f"{line}); each input needs one outcome row")
        seen[key] = line
        keys.append(key)
    return keys


def _listed(columns: Sequence[str]) -> int:
    # a table's columns are listed whole up to 30 (suggest lists at most `limit`, then counts)
    return max(5, min(len(columns), 30))


def _outcome_columns(table: OutcomeTable, on: str, wanted: Sequence[str] | None) -> list[str]:
    if wanted:
        for name in wanted:
            if name not in table.columns or name == on:
                others = [c for c in table.columns if c != on]
                raise InputError(f"{table.path}: no outcome column {name!r}{suggest(name, others, what='column', limit=_listed(others))}")
            for row, line in zip(table.rows, table.lines):
                try:
                    _number(row.get(name))
                except (TypeError, ValueError):
                    raise InputError(f"{table.path}: outcome column {name!r} is not numeric: {row.get(name)!r} at "
                                     f"line {line}") from None
        return list(dict.fromkeys(wanted))
    columns = [c for c in table.columns if c != on and _numeric([r.get(c) for r in table.rows])]
    if not columns:
        others = ", ".join(c for c in table.columns if c != on) or "none"
        raise InputError(f"{table.path}: no numeric outcome column besides the key {on!r} (columns: {others})")
    return columns


def _as_number(key: str) -> float | None:
    try:
        value = float(key)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def _label_of(row: dict[str, Any], name: str) -> str | None:
    value = row.get(name)
    if not isinstance(value, str) or not value:
        return None
    return os.path.basename(value) if name == "file" else value


def _groups(series: list[Series], keys: list[str]) -> tuple[str, list[tuple[Series, list[tuple[str | None, float]]]]]:
    """How keys match rows, and the groups to correlate: (a series standing for the group, [(key or None, value)])."""
    numbers = [_as_number(k) for k in keys]
    if all(n is not None for n in numbers):
        by_x = dict(zip(numbers, keys))
        return "checkpoint", [(s, [(by_x.get(x), y) for x, y in zip(s.x, s.y)]) for s in series]
    wanted = set(keys)
    counts = {name: len({_label_of(r, name) for s in series for r in s.rows} & wanted) for name in LABEL_FIELDS}
    field = max(LABEL_FIELDS, key=lambda name: counts[name])  # the first of the best on a tie
    merged: dict[tuple[str, str, str], tuple[Series, list[tuple[str | None, float]], dict[str, str]]] = {}
    for s in series:
        first, points, seen = merged.setdefault((s.quantity, s.method, s.settings), (s, [], {}))
        for row, y in zip(s.rows, s.y):
            label = _label_of(row, field)
            key = label if label in wanted else None
            if key is not None and key in seen:
                raise InputError(f"{field} {key!r} names two {s.method} rows ({seen[key]} and "
                                 f"{row.get('input') or s.pattern}); use a key that tells them apart "
                                 "(the input label)")
            if key is not None:
                seen[key] = str(row.get("input") or s.pattern)
            points.append((key, y))
    return field, [(first, points) for first, points, _ in merged.values()]


def _row_names(series: list[Series], matched_by: str) -> list[str]:
    """A few names the rows go by under ``matched_by`` (for the message when no key matches)."""
    if matched_by == "checkpoint":
        return [f"{x:g}" for x in dict.fromkeys(x for s in series for x in s.x)][:3]
    names = (_label_of(r, matched_by) for s in series for r in s.rows)
    return [n for n in dict.fromkeys(names) if n][:3]


def correlate(
    results: str | os.PathLike[str],
    outcomes: str | os.PathLike[str],
    *,
    on: str = "input",
    outcome_columns: Sequence[str] | None = None,
    methods: Sequence[str] | None = None,
    bootstrap: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
) -> Correlations:
    """Rank correlations of the series of a results file with the outcome columns of a table.

    Parameters
    ----------
    results : path
        A results file (``dse batch`` JSON Lines, ``dse entropy/mi --format jsonl``, the training monitor).
    outcomes : path
        A table (CSV, TSV, JSON, JSON Lines; :func:`read_outcomes`) with a key column and numeric columns.
    on : str
        The key column (default ``"input"``): checkpoint numbers, or input labels, datasets or file names
        (module docstring).
    outcome_columns : sequence of str, optional
        The outcome columns; default every column besides the key whose cells are all numbers (or empty).
        An empty cell leaves its pair out.
    methods : sequence of str, optional
        Only the rows of these methods.
    bootstrap, confidence, seed
        As for :func:`dsecli.correlation.rank_correlation`; each entry uses the same seed.

    Returns
    -------
    Correlations
        One :class:`CorrelationEntry` per series (quantity, method, settings with the σ policy, and the
        name pattern when keys are checkpoints) and outcome column, in the order of the results file.
        Warns (:class:`~dsecli.errors.DseWarning`) about keys matching no row and rows without an
        outcome, and (:func:`dsecli.batch.series.warn_sigma_policies`) about series whose trend
        depends on the σ policy or comparisons that mix σ policies.
    """
    results, outcomes_path = os.fspath(results), os.fspath(outcomes)
    rows = rows_of_methods(read_result_rows(results), methods)
    table = read_outcomes(outcomes_path)
    keys = _keys(table, on)
    columns = _outcome_columns(table, on, outcome_columns)
    series = batch_series(rows)
    if not series:
        raise InputError(f"{results}: no result rows with a finite value"
                         + (f" for methods {', '.join(methods)}" if methods else ""))
    outcome_of = {k: {c: _number(r.get(c)) for c in columns} for k, r in zip(keys, table.rows)}
    entries = []
    with CollectWarnings() as shown:
        matched_by, groups = _groups(series, keys)
        used = {k for _, points in groups for k, _ in points if k is not None}
        if not used:
            names = ", ".join(repr(n) for n in _row_names(series, matched_by))
            by = "checkpoints" if matched_by == "checkpoint" else f"{matched_by} labels"
            raise InputError(f"{outcomes_path}: no key of column {on!r} matches a row of {results} (keys such as "
                             f"{_first(keys, 3)}; the rows' {by} are such as {names})")
        unmatched = [k for k in keys if k not in used]
        if unmatched:
            warnings.warn(f"{outcomes_path}: {len(unmatched)} of {len(keys)} keys match no row of {results}: "
                          f"{_first(unmatched)}", DseWarning, stacklevel=2)
        missing = sum(1 for _, points in groups for k, _ in points if k is None)
        if missing:
            warnings.warn(f"{results}: {missing} result rows have no outcome row in {outcomes_path} and are left out",
                          DseWarning, stacklevel=2)
        for s, points in groups:
            for c in columns:
                pairs = [(y, outcome_of[k][c]) for k, y in points if k is not None and outcome_of[k][c] is not None]
                corr, why = None, None
                try:
                    corr = rank_correlation([p[0] for p in pairs], [p[1] for p in pairs], bootstrap=bootstrap,
                                            confidence=confidence, seed=seed)
                except InputError as exc:  # too few pairs, or one side constant: no correlation for this entry
                    why = str(exc)
                entries.append(CorrelationEntry(
                    _series_name(s, matched_by), s.quantity, s.method, s.pattern if matched_by == "checkpoint" else None,
                    s.settings, s.sigma_policy, c, len(points), len(pairs), corr, why))
        warn_sigma_policies(series)
    return Correlations(results, outcomes_path, on, matched_by, tuple(entries), tuple(unmatched), int(bootstrap),
                        float(confidence), int(seed), tuple(shown))


def _first(items: Sequence[str], limit: int = _NAMED) -> str:
    shown = ", ".join(repr(i) for i in items[:limit])
    return shown + (f" and {len(items) - limit} more" if len(items) > limit else "")


def _series_name(s: Series, matched_by: str) -> str:
    if matched_by == "checkpoint":
        return s.label
    return " · ".join(p for p in (s.method, f"({s.settings})" if s.settings else "") if p)
