"""Parquet (``.parquet``, ``.pq``) and Arrow IPC / Feather (``.feather``, ``.arrow``) tables, through pyarrow.

What the key selects (``file.parquet:KEY``):

- ``emb``: one column. A list or fixed-size-list column of numbers (the layout Hugging Face
  ``datasets`` writes for embeddings) reads as an (N, D) array; every row must have the same
  length. A column of numbers reads as (N,); a column of strings (or a dictionary/categorical
  column) reads as labels, for references;
- ``a,b,c``: several numeric columns taken together, in that order, as (N, 3);
- ``*``: every numeric (integer or float) column, in the table's order;
- no key: the table's only list column (or its only column).

Lazy reads: the file is cut into its row groups (Parquet) or record batches (Arrow IPC, memory
mapped), and ``read(rows)`` reads only the groups that hold a row asked for, only the columns
selected, and keeps only those rows of each group before the next is read. Missing values
(nulls) are refused with the column named. Needs ``pyarrow`` (extra ``formats``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from dsecli.errors import InputError, suggest
from dsecli.inputs.readers._common import ArraySource, corrupt, head, optional_module, shown

PARQUET = (".parquet", ".pq")
IPC = (".feather", ".arrow")


def _pa(path: str) -> Any:
    return optional_module(path, "pyarrow", "Parquet" if path.lower().endswith(PARQUET) else "Arrow/Feather")


@dataclass
class _Table:
    """A table seen as groups of rows: ``starts[i]`` is group i's first row; ``group(i, cols)`` reads it."""

    schema: Any
    starts: np.ndarray
    n_rows: int
    group: Callable[[int, list[str]], Any]


def _parquet(path: str, data: bytes | None) -> _Table:
    _pa(path)
    import pyarrow.parquet as pq

    pf = pq.ParquetFile(_source(path, data))
    sizes = [pf.metadata.row_group(i).num_rows for i in range(pf.num_row_groups)]
    return _Table(pf.schema_arrow, _starts(sizes), int(sum(sizes)), lambda i, cols: pf.read_row_group(i, columns=cols))


def _starts(sizes: list[int]) -> np.ndarray:
    """Each group's first row; none for a table without groups (a Parquet file written with no row group)."""
    return np.cumsum([0] + sizes[:-1], dtype=np.int64) if sizes else np.zeros(0, dtype=np.int64)


def _ipc(path: str, data: bytes | None) -> _Table:
    pa = _pa(path)
    try:
        reader = pa.ipc.open_file(_source(path, data))
    except pa.ArrowInvalid:
        # the streaming format (no footer, no random access): read once, then serve from memory
        table = pa.ipc.open_stream(_source(path, data)).read_all()
        batches = table.to_batches()
        sizes = [b.num_rows for b in batches]
        return _Table(table.schema, _starts(sizes), int(sum(sizes)), lambda i, cols: batches[i].select(cols))
    schema = reader.schema
    readers: dict[tuple[str, ...], Any] = {}

    def with_fields(cols: list[str]) -> Any:
        # a reader that decodes (and decompresses) only these columns of each batch
        if tuple(cols) not in readers:
            fields = [schema.get_field_index(c) for c in cols]
            readers[tuple(cols)] = pa.ipc.open_file(_source(path, data),
                                                    options=pa.ipc.IpcReadOptions(included_fields=fields))
        return readers[tuple(cols)]

    # the batch sizes, read through the cheapest column (a plain number column when there is one)
    cheap = next((n for n in schema.names if _kind(schema.field(n).type) == "number"), None)
    counter = with_fields([cheap]) if cheap else reader
    sizes = [counter.get_batch(i).num_rows for i in range(counter.num_record_batches)]
    return _Table(schema, _starts(sizes), int(sum(sizes)), lambda i, cols: with_fields(cols).get_batch(i).select(cols))


def _source(path: str, data: bytes | None) -> Any:
    import pyarrow as pa

    if data is not None:
        return pa.BufferReader(data)
    return pa.memory_map(path, "r") if path.lower().endswith(IPC) else path


def _open_table(path: str, data: bytes | None) -> _Table:
    if not head(path, data):
        raise InputError(f"{path}: file is empty")
    try:
        return _parquet(path, data) if path.lower().endswith(PARQUET) else _ipc(path, data)
    except InputError:
        raise
    except Exception as exc:  # noqa: BLE001 - ArrowInvalid / OSError for a bad footer or truncation
        raise corrupt(path, "Parquet" if path.lower().endswith(PARQUET) else "Arrow IPC", exc) from exc


def _kind(t: Any) -> str:
    """'vector', 'number', 'label' or 'other' for an Arrow type."""
    import pyarrow.types as pt

    if pt.is_dictionary(t):
        return "label" if _kind(t.value_type) == "label" or pt.is_integer(t.value_type) else "other"
    if pt.is_list(t) or pt.is_large_list(t) or pt.is_fixed_size_list(t):
        return "vector" if _kind(t.value_type) == "number" else "other"
    if pt.is_integer(t) or pt.is_floating(t):
        return "number"
    if pt.is_string(t) or pt.is_large_string(t) or pt.is_boolean(t):
        return "label"
    return "other"


def _numpy_dtype(t: Any) -> np.dtype:
    import pyarrow.types as pt

    if pt.is_list(t) or pt.is_large_list(t) or pt.is_fixed_size_list(t):
        t = t.value_type
    if pt.is_boolean(t):
        return np.dtype(bool)
    # from the bit width (to_pandas_dtype would need pandas)
    letter = "f" if pt.is_floating(t) else "i" if pt.is_signed_integer(t) else "u"
    return np.dtype(f"{letter}{t.bit_width // 8}")


def _columns(path: str, table: _Table, key: str | None) -> list[str]:
    names = list(table.schema.names)
    kinds = {n: _kind(table.schema.field(n).type) for n in names}
    if key is None:
        vectors = [n for n in names if kinds[n] == "vector"]
        if len(vectors) == 1 or len(names) == 1:
            return vectors or names
        raise InputError(f"{path}: holds several columns ({shown(names)}); choose one with {path}:COLUMN, "
                         f"several with {path}:COL1,COL2, or every numeric column with {path}:*")
    if key == "*":
        numeric = [n for n in names if kinds[n] == "number"]
        if not numeric:
            raise InputError(f"{path}: has no numeric columns for {path}:*; columns: {shown(names)}")
        return numeric
    cols = [c.strip() for c in key.split(",")]
    for c in cols:
        if c not in kinds:
            raise InputError(f"{path}: column {c!r} not found{suggest(c, names, what='column')}")
        if kinds[c] == "other":
            raise InputError(f"{path}: column {c!r} has type {table.schema.field(c).type}, which is not numbers, a "
                             "list of numbers, or labels")
    if len(cols) > 1:
        bad = [c for c in cols if kinds[c] != "number"]
        if bad:
            raise InputError(f"{path}: column {bad[0]!r} ({table.schema.field(bad[0]).type}) cannot be taken "
                             f"together with others; {path}:COL1,COL2 takes numeric columns only")
    return cols


def _vector_width(label: str, table: _Table, col: str) -> int:
    t = table.schema.field(col).type
    if hasattr(t, "list_size"):
        return int(t.list_size)
    # a variable-size list column: the first row's length (every row read is checked against it)
    for i in range(len(table.starts)):
        arr = table.group(i, [col]).column(0)
        if len(arr):
            first = arr.slice(0, 1).combine_chunks() if hasattr(arr, "combine_chunks") else arr.slice(0, 1)
            return int(first.value_lengths()[0].as_py() or 0)
    return 0


def _to_numpy(label: str, col: str, arr: Any, kind: str, width: int, row_of: Callable[[int], int]) -> np.ndarray:
    """``arr`` as numbers or labels; ``row_of(i)`` is the input's row number of ``arr[i]`` (for messages)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks() if arr.num_chunks != 1 else arr.chunk(0)
    if arr.null_count:
        where = row_of(int(np.flatnonzero(np.asarray(arr.is_null()))[0]))
        raise InputError(f"{label}: column {col!r} has missing values (null), first at row {where}; fill or drop them")
    if kind == "label":
        if pa.types.is_dictionary(arr.type):
            arr = arr.dictionary_decode()
        if pa.types.is_integer(arr.type):
            return arr.to_numpy(zero_copy_only=False)
        return np.asarray(arr.to_pylist(), dtype=str) if not pa.types.is_boolean(arr.type) else arr.to_numpy(
            zero_copy_only=False)
    if kind == "number":
        return arr.to_numpy(zero_copy_only=False)
    lengths = np.asarray(pc.list_value_length(arr)) if not pa.types.is_fixed_size_list(arr.type) else None
    if lengths is not None and len(lengths) and (lengths != width).any():
        bad = int(np.flatnonzero(lengths != width)[0])
        raise InputError(f"{label}: column {col!r} row {row_of(bad)} has {int(lengths[bad])} values, the first row "
                         f"{width}; every vector must have the same length")
    flat = arr.flatten()
    if flat.null_count:
        raise InputError(f"{label}: column {col!r} has missing values (null) inside its vectors; fill or drop them")
    return flat.to_numpy(zero_copy_only=False).reshape(len(arr), width)


def _read_rows(label: str, table: _Table, cols: list[str], kinds: list[str], width: int,
               rows: np.ndarray | None) -> np.ndarray:
    groups = range(len(table.starts)) if rows is None else np.unique(
        np.searchsorted(table.starts, rows, side="right") - 1)
    total = table.n_rows if rows is None else len(rows)
    filled = 0
    out: np.ndarray | None = None
    parts: list[np.ndarray] = []  # labels only: their str width differs between groups
    for g in groups:
        g = int(g)
        t = table.group(g, cols)
        first = int(table.starts[g])
        row_of: Callable[[int], int] = lambda i, first=first: first + i  # noqa: E731
        if rows is not None:
            end = int(table.starts[g + 1]) if g + 1 < len(table.starts) else table.n_rows
            local = rows[(rows >= first) & (rows < end)] - first
            t = t.take(local)  # keep only the rows asked for before converting (and before the next group)
            row_of = lambda i, taken=local + first: int(taken[i])  # noqa: E731 - messages name the file's rows
        vals = [_to_numpy(label, c, t.column(c), k, width, row_of) for c, k in zip(cols, kinds)]
        part = vals[0] if len(cols) == 1 else np.stack(vals, axis=1)
        if part.dtype.kind == "U":
            parts.append(part)
            continue
        if out is None:  # filled group by group: no second copy of the whole result
            out = np.empty((total,) + part.shape[1:], dtype=part.dtype)
        out[filled : filled + len(part)] = part
        filled += len(part)
    if parts:
        return np.concatenate(parts)
    return out if out is not None else np.empty((0,), dtype=np.float64)


def open_arrow(path: str, key: str | None, data: bytes | None = None) -> ArraySource:
    table = _open_table(path, data)
    cols = _columns(path, table, key)
    types = [table.schema.field(c).type for c in cols]
    kinds = [_kind(t) for t in types]
    label = f"{path}:{key}" if key else path
    width = _vector_width(label, table, cols[0]) if kinds[0] == "vector" else 0
    if kinds[0] == "vector":
        shape: tuple[int, ...] = (table.n_rows, width)
        dtype = _numpy_dtype(types[0])
    elif len(cols) > 1:
        shape = (table.n_rows, len(cols))
        dtype = np.result_type(*[_numpy_dtype(t) for t in types])
    else:
        shape, dtype = (table.n_rows,), _single_dtype(types[0])
    keyname = key if key is not None else cols[0]

    def reader(rows: np.ndarray | None) -> np.ndarray:
        out = _read_rows(label, table, cols, kinds, width, rows)
        return out.reshape((0,) + shape[1:]).astype(dtype) if out.size == 0 else out

    return ArraySource(path, keyname, shape, dtype, reader)


def _single_dtype(t: Any) -> np.dtype:
    """What one number or label column reads as: strings as str, a dictionary as its values' dtype."""
    import pyarrow.types as pt

    if pt.is_dictionary(t):
        t = t.value_type
    if pt.is_string(t) or pt.is_large_string(t):
        return np.dtype("U")
    return _numpy_dtype(t)


def list_arrow(path: str, data: bytes | None = None) -> list[dict[str, Any]]:
    """One entry per usable column (vectors with their width), then ``*`` for all numeric columns together."""
    table = _open_table(path, data)
    out: list[dict[str, Any]] = []
    numeric: list[str] = []
    for name in table.schema.names:
        t = table.schema.field(name).type
        kind = _kind(t)
        if kind == "vector":
            out.append({"key": name, "shape": [table.n_rows, _vector_width(path, table, name)],
                        "dtype": str(_numpy_dtype(t))})
        elif kind != "other":
            out.append({"key": name, "shape": [table.n_rows], "dtype": "str" if _single_dtype(t).kind == "U" else
                        str(_single_dtype(t))})
            numeric += [name] if kind == "number" else []
        else:
            out.append({"key": name, "shape": [table.n_rows], "dtype": f"{t} (not readable as numbers or labels)"})
    if len(numeric) > 1:
        out.append({"key": "*", "shape": [table.n_rows, len(numeric)],
                    "dtype": str(np.result_type(*[_numpy_dtype(table.schema.field(n).type) for n in numeric]))})
    return out
