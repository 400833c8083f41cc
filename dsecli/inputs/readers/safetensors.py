"""safetensors files (``.safetensors``): one tensor by name, read lazily with the package's ``safe_open``.

The header (names, shapes, dtypes) is read without touching the data; ``read(rows)`` reads
each run of consecutive rows as one slice of the memory-mapped file (``get_slice``), so a
subsample reads only its rows. bfloat16 and float8 tensors have no NumPy dtype: they are read
through torch and widened to float32, which holds each of their values exactly (as in
:mod:`.pt`). Needs the ``safetensors`` package (extra ``formats``).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from dsecli.errors import InputError, suggest
from dsecli.inputs.readers._common import ArraySource, corrupt, default_key, head, optional_module, runs

# safetensors dtype names -> NumPy; the others (BF16, F8_*) go through torch
_NUMPY = {"F64": "float64", "F32": "float32", "F16": "float16", "I64": "int64", "I32": "int32", "I16": "int16",
          "I8": "int8", "U64": "uint64", "U32": "uint32", "U16": "uint16", "U8": "uint8", "BOOL": "bool"}


def _module(path: str) -> Any:
    return optional_module(path, "safetensors", "safetensors")


def _header(path: str, data: bytes | None) -> dict[str, tuple[tuple[int, ...], str]]:
    """name -> (shape, safetensors dtype name), from the header alone."""
    st = _module(path)
    if not head(path, data):
        raise InputError(f"{path}: file is empty")
    try:
        if data is not None:
            from safetensors.numpy import load

            return {k: (tuple(v.shape), _name_of(v.dtype)) for k, v in load(data).items()}
        with st.safe_open(path, framework="numpy") as fh:
            return {k: (tuple(fh.get_slice(k).get_shape()), fh.get_slice(k).get_dtype()) for k in fh.keys()}  # noqa: SIM118
    except InputError:
        raise
    except Exception as exc:  # noqa: BLE001 - SafetensorError, and OSError for truncated maps
        raise corrupt(path, "safetensors", exc) from exc


def _name_of(dtype: np.dtype) -> str:
    for name, np_name in _NUMPY.items():
        if np.dtype(np_name) == dtype:
            return name
    return str(dtype)


def _read(path: str, key: str, kind: str, data: bytes | None, rows: np.ndarray | None) -> np.ndarray:
    if data is not None:
        from safetensors.numpy import load

        arr = load(data)[key]
        return arr if rows is None else arr[rows]
    framework = "numpy" if kind in _NUMPY else "pt"
    with _module(path).safe_open(path, framework=framework) as fh:
        part = fh.get_slice(key)
        if rows is None:
            pieces = [fh.get_tensor(key)]
        else:
            pieces = [part[int(run[0]) : int(run[-1]) + 1] for run in runs(rows)]
        if framework == "pt":
            import torch

            return np.concatenate([p.to(torch.float32).numpy() for p in pieces]) if pieces else np.empty(
                (0,) + tuple(part.get_shape()[1:]), dtype=np.float32)
        if not pieces:
            return np.empty((0,) + tuple(part.get_shape()[1:]), dtype=_NUMPY[kind])
        return np.concatenate(pieces) if len(pieces) > 1 else np.asarray(pieces[0])


def open_safetensors(path: str, key: str | None, data: bytes | None = None) -> ArraySource:
    tensors = _header(path, data)
    names = list(tensors)
    if key is None:
        key = default_key(path, [(n, len(tensors[n][0])) for n in names], what="tensor", how="NAME")
    if key not in tensors:
        raise InputError(f"{path}: tensor {key!r} not found{suggest(key, names, what='tensor')}")
    shape, kind = tensors[key]
    if kind not in _NUMPY and kind not in ("BF16", "F8_E4M3", "F8_E5M2"):
        raise InputError(f"{path}:{key}: holds a tensor of dtype {kind}, which has no NumPy equivalent; save it as "
                         "float32 or float64")
    dtype = np.dtype(_NUMPY.get(kind, "float32"))
    return ArraySource(path, key, shape, dtype, lambda rows: _read(path, key, kind, data, rows))


def list_safetensors(path: str, data: bytes | None = None) -> list[dict[str, Any]]:
    return [{"key": k, "shape": list(shape), "dtype": _NUMPY.get(kind, kind.lower())}
            for k, (shape, kind) in _header(path, data).items()]
