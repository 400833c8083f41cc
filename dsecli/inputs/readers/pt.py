"""PyTorch files (``.pt``, ``.pth``): a tensor or (nested) dicts of tensors, loaded with ``weights_only=True``.

No pickle code ever runs. When torch refuses a file, the cause is found from the file's own
pickle, not from torch's wording (which changed between 2.2, 2.4 and 2.13): the pickle's
opcodes are listed (``pickletools``, nothing is executed) and the first global that torch's
weights-only loader does not allow is named. A refused file is "pickled Python code/objects",
anything else that fails is corrupt.

Keys: ``a.b`` is a dotted name, ``/a/b`` (or ``a/b``) a path of exact keys. A dotted name that
names two values (a key ``'a.b'`` beside ``{'a': {'b': ...}}``) is refused, naming both paths;
listings then show the two as ``/a.b`` and ``/a/b``. A key that holds a dict, a list or a number
is reported as such, with the tensors inside it.

A file in torch's zip format (``torch.save`` since 1.6) is memory-mapped (``mmap=True``), so
only the rows used are read from disk; the legacy format is read whole.

dtypes: float16/32/64 and integers keep their dtype; bfloat16 and the float8 types are
widened to float32, which holds each of their values exactly; complex stays complex (and is
refused by the checks). Sparse, quantized and other non-strided tensors are refused.
"""

from __future__ import annotations

import io
import pickletools
import re
import zipfile
from typing import Any

from dsecli.errors import InputError, suggest
from dsecli.inputs.readers._common import ZIP_MAGIC, ArraySource, corrupt, default_key, few, from_memory, head

# torch's refusal texts across versions, used only when the pickle itself cannot be scanned
_REFUSAL_PHRASES = ("Unsupported global", "Unsupported class", "is blocked", "Trying to call reduce",
                    "Trying to instantiate unsupported class", "was not an allowed global")
_SAFE_FALLBACK = re.compile(r"^(torch\.(_utils\._rebuild_\w+|_tensor\._rebuild_\w+|\w*Storage|Size|device|"
                            r"nn\.parameter\.Parameter|serialization\._get_layout|[a-z0-9_]+)|"
                            r"collections\.(OrderedDict|Counter))$")


def _pickles(path: str, data: bytes | None) -> list[bytes]:
    """The pickle streams in a torch file: ``*/data.pkl`` of the zip format, or the legacy file itself."""
    if data is None:
        with open(path, "rb") as fh:
            data = fh.read()
    raw = data
    if raw.startswith(ZIP_MAGIC):
        try:
            with zipfile.ZipFile(io.BytesIO(raw)) as zf:
                return [zf.read(n) for n in zf.namelist() if n.endswith(".pkl")]
        except (zipfile.BadZipFile, OSError, EOFError):
            return []
    return [raw]


def _globals(stream: bytes) -> list[str]:
    """``module.name`` of every GLOBAL / STACK_GLOBAL in one or more concatenated pickles (nothing is run)."""
    found: list[str] = []
    buf = io.BytesIO(stream)
    while buf.tell() < len(stream):
        strings: list[str] = []
        memo: dict[int, str] = {}
        try:
            for op, arg, _pos in pickletools.genops(buf):
                if op.name == "GLOBAL":
                    found.append(str(arg).replace(" ", "."))
                elif op.name == "STACK_GLOBAL" and len(strings) >= 2:
                    found.append(f"{strings[-2]}.{strings[-1]}")
                elif isinstance(arg, str) and "UNICODE" in op.name:
                    strings.append(arg)
                elif op.name in ("MEMOIZE",) and strings:
                    memo[len(memo)] = strings[-1]
                elif op.name in ("BINPUT", "LONG_BINPUT", "PUT") and strings:
                    memo[int(arg)] = strings[-1]
                elif op.name in ("BINGET", "LONG_BINGET", "GET") and int(arg) in memo:
                    strings.append(memo[int(arg)])
        except Exception:  # noqa: BLE001 - a broken pickle: what was found so far stands
            break
    return found


def _allowed_globals() -> set[str]:
    """What torch's weights-only loader allows (its private list where it has one; else our pattern alone)."""
    try:
        from torch._weights_only_unpickler import _get_allowed_globals

        return set(_get_allowed_globals())
    except Exception:  # noqa: BLE001 - a private API that may move
        return set()


def refused_global(path: str, data: bytes | None, exc: BaseException) -> str | None:
    """The global that made ``torch.load(weights_only=True)`` refuse the file, or None when it is not a refusal."""
    import pickle

    if not isinstance(exc, (pickle.UnpicklingError, RuntimeError)):
        return None
    try:
        names = [g for s in _pickles(path, data) for g in _globals(s)]
    except OSError:
        names = []
    allowed = _allowed_globals()
    bad = [g for g in names if g not in allowed and not _SAFE_FALLBACK.match(g)]
    if bad:
        return bad[0]
    text = str(exc)
    if any(p in text for p in _REFUSAL_PHRASES):
        found = re.search(r"GLOBAL ([\w.]+)|Unsupported class ([\w.]+)", text)
        return (found.group(1) or found.group(2)) if found else "a Python object"
    return None


def torch_load(path: str, data: bytes | None = None) -> Any:
    import torch

    start = head(path, data)
    if not start:
        raise InputError(f"{path}: file is empty")
    if not (start.startswith(ZIP_MAGIC) or start.startswith(b"\x80")):
        # torch.save writes a zip archive (or, before torch 1.6, a pickle starting with PROTO 0x80)
        raise InputError(f"{path}: not a torch file (no zip or pickle header); is it another format?")
    if data is None and start.startswith(ZIP_MAGIC):
        try:
            # memory-mapped: a subsample then reads only its rows' pages, not the whole file
            return torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        except Exception:  # noqa: BLE001 - refused or corrupt: the plain load below says which
            pass
    try:
        return torch.load(io.BytesIO(data) if data is not None else path, map_location="cpu", weights_only=True)
    except PermissionError as exc:
        raise InputError(f"{path}: file is not readable (permission denied)") from exc
    except Exception as exc:  # noqa: BLE001 - unpickling refusals and corrupt archives alike
        name = refused_global(path, data, exc)
        if name:
            raise InputError(
                f"{path}: contains pickled Python code/objects ({name}) that weights_only loading refuses, so it was "
                "not loaded; save plain tensors (or a dict of tensors) with torch.save"
            ) from exc
        raise corrupt(path, ".pt", exc) from exc


def tensor_to_numpy(label: str, t: Any) -> Any:
    """A CPU tensor as a NumPy array: the rules of the module docstring."""
    import torch

    if t.layout != torch.strided:
        raise InputError(f"{label}: holds a {str(t.layout).replace('torch.', '')} tensor; save it dense "
                         "(t.to_dense()) with torch.save")
    if t.is_quantized:
        raise InputError(f"{label}: holds a quantized tensor ({t.dtype}); save t.dequantize() with torch.save")
    if t.device.type == "meta":
        raise InputError(f"{label}: holds a meta tensor (a shape without values); save a tensor that holds data")
    t = t.detach().cpu().resolve_conj().resolve_neg()
    if t.dtype.is_floating_point and t.dtype not in (torch.float16, torch.float32, torch.float64):
        t = t.float()  # bfloat16 and float8 values are all exact in float32
    try:
        return t.numpy()
    except (TypeError, RuntimeError, NotImplementedError) as exc:
        raise InputError(f"{label}: holds a tensor of dtype {str(t.dtype).replace('torch.', '')}, which has no "
                         "NumPy equivalent; save it as float32 or float64") from exc


def _nodes(obj: Any, path: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], Any]]:
    """Every value in nested dicts/lists/tuples (containers included), by its path of keys, depth first."""
    found = [(path, obj)]
    items = obj.items() if isinstance(obj, dict) else enumerate(obj) if isinstance(obj, (list, tuple)) else []
    for k, v in items:
        found += _nodes(v, (*path, str(k)))
    return found


def _tensors(obj: Any) -> list[tuple[tuple[str, ...], Any]]:
    """Every tensor in nested dicts/lists/tuples, by its path of keys (``('embeddings', 'train')``)."""
    import torch

    return [(p, v) for p, v in _nodes(obj) if isinstance(v, torch.Tensor)]


def _names(paths: list[tuple[str, ...]]) -> list[str]:
    """The name of each path for listings and messages: dotted (``a.b``), or ``/a/b`` where two paths share a dotted
    name (a key ``'a.b'`` beside ``{'a': {'b': ...}}``), so that every name listed opens exactly one value."""
    dotted = [".".join(p) for p in paths]
    return [d if dotted.count(d) == 1 else "/" + "/".join(p) for p, d in zip(paths, dotted)]


def _matches(obj: Any, key: str) -> list[tuple[tuple[str, ...], Any]]:
    """The values a key names: ``/a/b`` (or ``a/b``) is a path of keys, each exact; ``a.b`` is a dotted name, which
    can name several values (the key ``'a.b'``, and ``'b'`` inside ``'a'``)."""
    nodes = [(p, v) for p, v in _nodes(obj) if p]
    if "/" in key:
        want = tuple(part for part in key.strip("/").split("/"))
        return [(p, v) for p, v in nodes if p == want]
    return [(p, v) for p, v in nodes if ".".join(p) == key]


def _describe(value: Any) -> str:
    """What a value that is not a tensor holds, in a few words."""
    if isinstance(value, (dict, list, tuple)):
        inner = _tensors(value)
        kind = type(value).__name__
        n = len(value)
        if inner:
            return f"a {kind} of {n} entr{'y' if n == 1 else 'ies'} with {len(inner)} tensor{'s' if len(inner) > 1 else ''}"
        return f"a {kind} of {n} entr{'y' if n == 1 else 'ies'} and no tensors"
    text = repr(value)
    return f"a {type(value).__name__} ({text if len(text) <= 30 else text[:27] + '...'})"


def open_torch(path: str, key: str | None, data: bytes | None = None) -> ArraySource:
    """A tensor of a ``.pt`` file; in nested dicts by ``a.b`` (dotted names) or ``/a/b`` (a path of keys)."""
    import torch

    obj = torch_load(path, data)
    if isinstance(obj, (dict, list, tuple)):
        tensors = _tensors(obj)
        names = _names([p for p, _ in tensors])
        if not names:
            keys = ", ".join(str(k) for k in (list(obj) if isinstance(obj, dict) else range(len(obj)))[:20])
            raise InputError(f"{path}: holds a {type(obj).__name__} with no tensors in it (keys: {keys or 'none'}); "
                             "save a tensor or a dict of tensors")
        if key is None:
            key = default_key(path, [(n, t.ndim) for n, (_, t) in zip(names, tensors)], what="tensor", how="KEY")
        found = _matches(obj, key)
        if len(found) > 1:
            spelled = ["/" + "/".join(p) for p, _ in found]
            raise InputError(f"{path}: key {key!r} is ambiguous: it names {len(found)} values ({' and '.join(spelled)}: "
                             f"a key with a dot in it, and nested keys); choose one with "
                             f"{' or '.join(f'{path}:{s}' for s in spelled)} (a path of exact keys)")
        if not found:
            raise InputError(f"{path}: key {key!r} not found{suggest(key, names, what='tensor')}")
        (where, value), = found
        if not isinstance(value, torch.Tensor):
            inside = [n for (p, _), n in zip(tensors, names) if p[: len(where)] == where]
            hint = f"; the tensors in it: {few(inside)}" if inside else f"; tensors: {few(names)}"
            raise InputError(f"{path}: key {key!r} holds {_describe(value)}, not a tensor{hint}")
        obj = value
    elif key is not None:
        raise InputError(f"{path}: holds a single tensor; remove the key {key!r}")
    if not isinstance(obj, torch.Tensor):
        raise InputError(f"{path}: holds a {type(obj).__name__}, not a tensor")
    return from_memory(path, key, tensor_to_numpy(f"{path}:{key}" if key else path, obj))


def list_torch(path: str, data: bytes | None = None) -> list[dict[str, Any]]:
    """Every tensor, nested ones by dotted name (``/a/b`` opens the same one; the only name where two share a dotted
    name)."""
    obj = torch_load(path, data)
    if _is_tensor(obj):
        return [{"key": None, "shape": list(obj.shape), "dtype": str(obj.dtype).replace("torch.", "")}]
    tensors = _tensors(obj)
    return [{"key": name, "shape": list(v.shape), "dtype": str(v.dtype).replace("torch.", "")}
            for name, (_, v) in zip(_names([p for p, _ in tensors]), tensors)]


def _is_tensor(obj: Any) -> bool:
    import torch

    return isinstance(obj, torch.Tensor)
