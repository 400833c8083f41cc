"""Many inputs, one results file: entropy and mutual information over checkpoints, resumable.

:func:`run_batch` expands input specs into arrays, runs the requested methods on each (in this
process, in local worker processes, or on a Dask cluster) and appends one JSON Lines row per
(input, method) to a results file as soon as it is known. Rerunning the same command skips the
rows already there, so an interrupted batch resumes where it stopped.

Input specs (:func:`expand_inputs`)
-----------------------------------
- a path: ``emb.npy``, ``run.h5:/grp/ds`` (any reader of :func:`dsecli.inputs.readers.open_array`);
- a shell glob on file names: ``'runs/*.npy'`` (sorted naturally: ``ep2`` before ``ep10``);
- a key pattern inside a file: ``run.h5:/true/epoch_*/embeddings`` (:func:`fnmatch.fnmatchcase`
  on the dataset paths of an HDF5 file, or on the keys of an ``.npz``/``.pt`` file; ``*`` also
  matches ``/``); both parts may be patterns (``'runs/*.h5:/emb'``);
- ``@list.txt``: one spec per line (blank lines and lines starting with ``#`` are skipped;
  relative paths are relative to the current directory).

Inputs keep the order of the specs; one spec's matches are sorted; repeats are dropped.

Rows
----
One JSON object per line (strict JSON, NaN written as null)::

    {"file": "run.h5", "dataset": "/true/epoch_004/embeddings",
     "input": "run.h5:/true/epoch_004/embeddings", "index": 3, "checkpoint": 4,
     "series": "run.h5:/true/epoch_*/embeddings", "reference": "run.h5:/labels",
     "method": "dsmi", "quantity": "mutual_information", "value": 1.82, "units": "bits",
     "base": 2.0, "params": {...}, "n_used": 1000, "n_total": 1000, "subsampled": false,
     "rows_digest": "all", "seconds": 0.91, "warnings": [], "extra": {...},
     "key": "5f0c...", "dsecli_version": "0.1.0"}

``index`` is the input's position in the expanded list; ``checkpoint`` the number read from
the dataset path or file name (``epoch_004`` -> 4, see :func:`dsecli.report.plots.checkpoint_of`) or
null; ``series`` that path with the number replaced by ``*``. ``params`` is the result's
``params`` (every parameter used, numeric sigma included). ``rows_digest`` identifies the rows
used (``"all"`` or a hash of the subsample's indices): inputs with the same number of rows get
the same subsample (:func:`dsecli.inputs.sampling.choose_rows` depends only on N, ``max_n``, ``seed``
and ``sampler``), so a curve over checkpoints shows training, not sampling noise.
``key`` identifies the row for resuming: a hash of the input (real path and dataset), the method,
the reference (for mutual information) and the parameters given to the method that differ from its
defaults (device excluded). Rows computed with other parameters are not reused; rows computed
with the same parameters by an older dsecli whose defaults were different are.

Results file
------------
Rows are appended one complete line at a time (a single ``write`` of the whole line, then
``fsync``), so a run that is killed keeps every finished row. On start, a last line without
its newline (a write cut short) is removed if it is not a complete row, or completed with a
newline if it is; nothing else in the file is ever changed. The file is locked (``flock``)
while a batch writes to it, so two batches cannot interleave their rows.
"""

from __future__ import annotations

import fnmatch
import glob
import hashlib
import json
import os
import re
import threading
import time
import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from dsecli.device import MAX_THREADS, cpu_threads
from dsecli.errors import (
    ComputationError,
    DataQualityWarning,
    DseError,
    DseWarning,
    InputError,
    check_choice,
    check_positive_int,
)
from dsecli.inputs.sampling import DEFAULT_MAX_N, SAMPLERS, choose_rows
from dsecli.methods import ENTROPY_ALL, ENTROPY_METHODS, MI_ALL, MI_METHODS, _accepted, parse_methods
from dsecli.results import json_safe
from dsecli.version import __version__

__all__ = [
    "BatchInput",
    "BatchSummary",
    "ResultsFile",
    "expand_inputs",
    "split_methods",
    "run_batch",
    "row_key",
]

_GLOB_CHARS = re.compile(r"[*?\[]")
# parameters that change where or how fast a value is computed, not the value: not part of a row's key
_NOT_IN_KEY = {"device", "cpu_threads"}


# ------------------------------------------------------------------------------------------ inputs


@dataclass(frozen=True)
class BatchInput:
    """One array of a batch.

    file : the path as the user wrote it (or as a glob matched it); dataset : the key inside
    the file (HDF5 dataset path, npz/pt key) or None; index : position in the expanded list;
    n_total : its number of rows; checkpoint, series : see the module docstring.
    """

    file: str
    dataset: str | None
    index: int
    n_total: int
    checkpoint: int | None
    series: str

    @property
    def label(self) -> str:
        return f"{self.file}:{self.dataset}" if self.dataset else self.file

    @property
    def spec(self) -> str:
        """What :func:`dsecli.inputs.readers.open_array` opens, with an absolute path (worker processes, Dask)."""
        path = os.path.abspath(self.file)
        return f"{path}:{self.dataset}" if self.dataset else path

    @property
    def identity(self) -> str:
        """The input in a row's key: real path and dataset, so ``./a.h5`` and ``a.h5`` are one input."""
        path = os.path.realpath(self.file)
        return f"{path}:{self.dataset}" if self.dataset else path


def _natural_key(text: str) -> list[Any]:
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", text)]


def _read_list_file(spec: str) -> list[str]:
    path = spec[1:]
    if not path:
        raise InputError("`inputs`: '@' must be followed by a list file name (@list.txt)")
    if not os.path.exists(path):
        raise InputError(f"{path}: list file not found (given as {spec})")
    if os.path.isdir(path):
        raise InputError(f"{path}: list file is a directory (given as {spec})")
    try:
        with open(path, encoding="utf-8") as fh:
            lines = fh.read().splitlines()
    except UnicodeDecodeError:
        raise InputError(f"{path}: list file is not UTF-8 text") from None
    except OSError as exc:
        raise InputError(f"{path}: cannot read the list file ({exc.strerror or exc})") from None
    specs = [s.strip() for s in lines]
    specs = [s for s in specs if s and not s.startswith("#")]
    for s in specs:
        if s.startswith("@"):
            raise InputError(f"{path}: list files cannot name other list files; got {s!r}")
    if not specs:
        raise InputError(f"{path}: list file names no inputs (one spec per line; # starts a comment)")
    return specs


def _keys_of(path: str) -> list[str]:
    from dsecli.inputs.readers import list_arrays

    return [str(a["key"]) for a in list_arrays(path) if a.get("key") is not None]


def _expand_one(spec: str) -> list[tuple[str, str | None]]:
    from dsecli.inputs.readers import split_spec

    path_part, key_part = split_spec(spec)
    if _GLOB_CHARS.search(path_part) and not os.path.exists(path_part):
        files = sorted((p for p in glob.glob(path_part) if os.path.isfile(p)), key=_natural_key)
        if not files:
            raise InputError(f"`inputs`: no file matches {path_part!r}")
    else:
        files = [path_part]
    out: list[tuple[str, str | None]] = []
    for f in files:
        if key_part is not None and _GLOB_CHARS.search(key_part):
            from dsecli.inputs.readers import _HDF5, _check_file

            _check_file(f)
            hdf5 = os.path.splitext(f)[1].lower() in _HDF5
            pattern = key_part if not hdf5 or key_part.startswith("/") else "/" + key_part
            keys = _keys_of(f)
            matched = sorted((k for k in keys if fnmatch.fnmatchcase(k, pattern)), key=_natural_key)
            if not matched:
                shown = ", ".join(keys[:12]) + (", ..." if len(keys) > 12 else "")
                what = "dataset" if hdf5 else "key"
                raise InputError(f"{f}: no {what} matches {key_part!r}; {what}s: {shown or '(none)'}")
            out.extend((f, k) for k in matched)
        else:
            out.append((f, key_part))
    return out


def _checkpoint(file: str, dataset: str | None) -> tuple[int | None, str]:
    from dsecli.report.plots import checkpoint_of

    d_pat, d_num, _ = checkpoint_of(dataset or "")
    f_pat, f_num, _ = checkpoint_of(os.path.basename(file))
    number = d_num if d_num is not None else f_num
    series = f"{f_pat}:{d_pat}" if dataset else f_pat
    return number, series


def expand_inputs(specs: str | Sequence[str]) -> list[BatchInput]:
    """Expand globs, key patterns and ``@list`` files into inputs, each opened once to check it.

    Raises :class:`~dsecli.errors.InputError` when a pattern matches nothing, a list file is
    missing or empty, or an input cannot be opened (the message names it).

    Returns
    -------
    list of BatchInput
        One per array, in the order given (globs sorted), each with its file, dataset key,
        index, number of rows and checkpoint number.
    """
    from dsecli.inputs.readers import open_array

    if isinstance(specs, (str, os.PathLike)):
        specs = [os.fspath(specs)]
    flat: list[str] = []
    for spec in specs:
        spec = os.fspath(spec).strip()
        if not spec:
            raise InputError("`inputs`: got an empty input spec")
        flat.extend(_read_list_file(spec) if spec.startswith("@") else [spec])
    if not flat:
        raise InputError("`inputs`: give at least one input (a file, a glob, file.h5:/pattern or @list.txt)")
    seen: set[tuple[str, str | None]] = set()
    inputs: list[BatchInput] = []
    for spec in flat:
        if spec == "-":
            raise InputError("`inputs`: standard input (-) cannot be a batch input; save it to a file")
        for file, key in _expand_one(spec):
            src = open_array(f"{file}:{key}" if key else file)
            dataset = src.key
            ident = (os.path.realpath(file), dataset)
            if ident in seen:
                continue
            seen.add(ident)
            number, series = _checkpoint(file, dataset)
            inputs.append(BatchInput(file, dataset, len(inputs), int(src.shape[0]) if src.shape else 0,
                                     number, series))
    return inputs


# ------------------------------------------------------------------------------------------ methods


def split_methods(spec: str | Sequence[str] | None, *, has_reference: bool) -> tuple[list[str], list[str]]:
    """``"dse,dsmi"`` -> (entropy methods, mutual-information methods), validated.

    None: DSE, plus DSMI when there is a reference. ``all``: every entropy method of
    ``ENTROPY_ALL`` and, with a reference, every method of ``MI_ALL``.
    """
    if spec is None:
        return ["dse"], (["dsmi"] if has_reference else [])
    names = parse_methods(spec, [*ENTROPY_METHODS, *MI_METHODS], [*ENTROPY_ALL, *(MI_ALL if has_reference else [])])
    mi = [n for n in names if n in MI_METHODS]
    if mi and not has_reference:
        raise InputError(f"`method` {mi[0]!r} is a mutual-information method and needs a reference (--ref FILE)")
    return [n for n in names if n in ENTROPY_METHODS], mi


def _is_class_based(method: str) -> bool:
    # DSMI and CSMI partition the reference into classes (k-means for vectors); KSG and MINE use it as is
    import inspect

    return "n_clusters" in inspect.signature(MI_METHODS[method]).parameters


def _defaults(fn: Callable[..., Any]) -> dict[str, Any]:
    """The keyword defaults of a method, so that leaving a parameter out and passing its default give one key."""
    import inspect
    from functools import partial

    out = {name: p.default for name, p in inspect.signature(fn).parameters.items()
           if p.kind is inspect.Parameter.KEYWORD_ONLY and p.default is not inspect.Parameter.empty}
    if isinstance(fn, partial):
        out.update(fn.keywords)
    return out


def _canonical(params: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in sorted(params.items()):
        if k in _NOT_IN_KEY:
            continue
        if isinstance(v, str):
            try:
                v = float(v)  # "10" and 10.0 ask for the same sigma
            except ValueError:
                v = v.strip().lower()
        out[k] = v
    return json_safe(out)


def row_key(input_identity: str, method: str, request: dict[str, Any], reference: str | None = None) -> str:
    """The resume key of a row: a hash of the input, the method, its parameters and the reference."""
    doc = {"input": input_identity, "method": method, "request": request, "reference": reference}
    return hashlib.sha256(json.dumps(doc, sort_keys=True, allow_nan=False).encode()).hexdigest()[:24]


# ------------------------------------------------------------------------------------------ results file


class ResultsFile:
    """A JSON Lines file that only ever grows by complete lines (see the module docstring).

    ``open()`` locks the file, repairs a cut-short last line and reads the rows already there;
    ``append(row)`` writes one line and fsyncs it.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = os.fspath(path)
        self.rows: list[dict[str, Any]] = []
        self.repaired: str | None = None
        self._fd: int | None = None

    def __enter__(self) -> ResultsFile:
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def open(self) -> None:
        from dsecli.report.writing import check_output_path

        check_output_path(self.path, name="--output")
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o666)
        except OSError as exc:
            raise InputError(f"{self.path}: cannot open the results file ({exc.strerror or exc})") from None
        try:
            self._lock(fd)
            self._load(fd)
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd

    def _lock(self, fd: int) -> None:
        try:
            import fcntl
        except ImportError:  # pragma: no cover - not POSIX: no locking
            return
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise InputError(
                f"{self.path}: another dse batch is writing to this results file; wait for it or use another --output"
            ) from None

    def _load(self, fd: int) -> None:
        size = os.fstat(fd).st_size
        data = b""
        while len(data) < size:
            chunk = os.pread(fd, size - len(data), len(data))
            if not chunk:
                break
            data += chunk
        complete, _, tail = data.rpartition(b"\n")
        if tail:
            row = self._parse(tail, None)
            if row is None:
                # a write cut short: drop exactly those bytes, never anything before them
                os.ftruncate(fd, len(data) - len(tail))
                os.fsync(fd)
                self.repaired = f"removed an incomplete last line ({len(tail)} bytes) left by an interrupted run"
            else:
                os.write(fd, b"\n")
                os.fsync(fd)
                self.repaired = "added the missing newline after the last row"
                complete = data
        for lineno, line in enumerate(complete.split(b"\n") if complete else [], start=1):
            if not line.strip():
                continue
            row = self._parse(line, lineno)
            if row is not None:
                self.rows.append(row)

    def _parse(self, line: bytes, lineno: int | None) -> dict[str, Any] | None:
        try:
            obj = json.loads(line.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError):
            if lineno is None:
                return None
            raise InputError(
                f"{self.path}: line {lineno} is not JSON; is this a dse batch results file? Fix that line or "
                "choose another --output"
            ) from None
        if not isinstance(obj, dict):
            if lineno is None:
                return None
            raise InputError(f"{self.path}: line {lineno} is not a JSON object; choose another --output")
        return obj

    @property
    def keys(self) -> set[str]:
        return {r["key"] for r in self.rows if isinstance(r.get("key"), str)}

    def append(self, row: dict[str, Any]) -> None:
        if self._fd is None:
            raise ValueError("results file is not open")
        line = (json.dumps(row, allow_nan=False, separators=(",", ":")) + "\n").encode("utf-8")
        view = memoryview(line)
        while view:
            written = os.write(self._fd, view)
            view = view[written:]
        os.fsync(self._fd)
        self.rows.append(row)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # also releases the lock
            self._fd = None


# ------------------------------------------------------------------------------------------ jobs


@dataclass(frozen=True)
class _Reference:
    """The reference, read once: values for every row, and k-means classes computed once for vectors."""

    label: str
    identity: str
    values: np.ndarray
    ref_kind: str
    codes: np.ndarray | None = None  # full length; -1 on rows outside the common subsample
    classes_detail: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class _Job:
    input: BatchInput
    methods: tuple[tuple[str, str, str], ...]  # (kind "entropy"|"mi", method, key)


@dataclass
class _Outcome:
    rows: list[dict[str, Any]]
    error: tuple[type, str] | None = None
    warnings: list[tuple[type, str]] = field(default_factory=list)


def _digest(indices: np.ndarray | None) -> str:
    if indices is None:
        return "all"
    return hashlib.sha1(np.ascontiguousarray(indices, dtype=np.int64).tobytes()).hexdigest()[:16]


def _make_row(inp: BatchInput, result: Any, *, key: str, rows_digest: str, reference: str | None) -> dict[str, Any]:
    d = result.to_dict(include_eigenvalues=False)
    return json_safe({
        "file": inp.file,
        "dataset": inp.dataset,
        "input": inp.label,
        "index": inp.index,
        "checkpoint": inp.checkpoint,
        "series": inp.series,
        "reference": reference,
        "method": d["method"],
        "quantity": d["quantity"],
        "value": d["value"],
        "units": d["units"],
        "base": d["base"],
        "params": d["params"],
        "n_used": d["n_used"],
        "n_total": d["n_total"],
        "subsampled": d["subsampled"],
        "rows_digest": rows_digest,
        "seconds": d["elapsed_s"],
        "warnings": d["warnings"],
        "extra": d["extra"],
        "key": key,
        "dsecli_version": __version__,
    })


def _execute(job: _Job, ref: _Reference | None, settings: dict[str, Any], capture: bool) -> _Outcome:
    """Run one input's pending methods; errors come back as data so finished rows are kept."""
    if not capture:
        return _compute(job, ref, settings)
    with warnings.catch_warnings(record=True) as log:
        warnings.simplefilter("always")
        outcome = _compute(job, ref, settings)
    seen: set[str] = set()
    for w in log:
        msg = str(w.message)
        if msg not in seen:
            seen.add(msg)
            outcome.warnings.append((w.category, msg))
    return outcome


def _compute(job: _Job, ref: _Reference | None, settings: dict[str, Any]) -> _Outcome:
    from dsecli.inputs.prepare import prepare_rows
    from dsecli.inputs.readers import open_array
    from dsecli.methods import estimate_entropy, estimate_mutual_information

    inp = job.input
    sel = settings["selection"]
    params = settings["params"]
    rows_out: list[dict[str, Any]] = []
    try:
        src = open_array(inp.spec)
        # relabel so messages name the input as the user wrote it
        src = replace(src, path=inp.file)
        rows = prepare_rows(src, **sel)
        digest = _digest(rows.indices)
        for kind, method, key in job.methods:
            if kind == "entropy":
                (result,) = estimate_entropy(rows, methods=[method], **sel, **params)
            else:
                assert ref is not None
                if ref.codes is not None and _is_class_based(method):
                    y = ref.codes
                    (result,) = estimate_mutual_information(rows, y, methods=[method], **sel,
                                                            **{**params, "ref_kind": "discrete"})
                    p = dict(result.params)
                    p.update({"ref_kind": ref.ref_kind, "classes_from": "clustered",
                              "reference_detail": {**ref.classes_detail, "computed_once": True}})
                    result = replace(result, params=p)
                else:
                    (result,) = estimate_mutual_information(rows, ref.values, methods=[method], **sel,
                                                            **{**params, "ref_kind": ref.ref_kind})
            rows_out.append(_make_row(inp, result, key=key, rows_digest=digest,
                                      reference=ref.label if kind == "mi" and ref else None))
    except Exception as exc:  # noqa: BLE001 - reported per input; the rows already computed are kept
        cls = type(exc) if isinstance(exc, DseError) else ComputationError
        text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if not isinstance(exc, DseError):
            text = f"{type(exc).__name__}: {text}"
        if inp.label not in text and inp.file not in text:
            text = f"{inp.label}: {text}"
        return _Outcome(rows_out, (cls, text))
    return _Outcome(rows_out)


# process-pool workers keep the reference and settings from their initializer
_WORKER_STATE: dict[str, Any] = {}


def _watch_parent(parent: int) -> None:
    # a worker whose parent died (SIGKILL) would otherwise wait for jobs forever
    while True:
        time.sleep(1.0)
        if os.getppid() != parent:
            os._exit(1)


def _init_worker(ref: _Reference | None, settings: dict[str, Any], threads: int | None, parent: int) -> None:
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    if threads:
        import torch

        torch.set_num_threads(threads)
    _WORKER_STATE.update(ref=ref, settings=settings)
    threading.Thread(target=_watch_parent, args=(parent,), daemon=True).start()


def _execute_in_worker(job: _Job) -> _Outcome:
    return _execute(job, _WORKER_STATE["ref"], _WORKER_STATE["settings"], True)


def _execute_on_dask(job: _Job, ref: _Reference | None, settings: dict[str, Any], threads: int | None) -> _Outcome:
    if threads:
        import torch

        torch.set_num_threads(threads)
    return _execute(job, ref, settings, True)


# ------------------------------------------------------------------------------------------ runners


def _run_in_process(jobs: list[_Job], ref: _Reference | None, settings: dict[str, Any],
                    threads: int | None) -> Iterator[tuple[_Job, _Outcome]]:
    # the caller's process gets its own thread count back afterwards
    with cpu_threads(threads or None):
        for job in jobs:
            yield job, _execute(job, ref, settings, False)


def _run_in_processes(jobs: list[_Job], ref: _Reference | None, settings: dict[str, Any], workers: int,
                      threads: int | None) -> Iterator[tuple[_Job, _Outcome]]:
    import multiprocessing
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

    ctx = multiprocessing.get_context("spawn")
    executor = ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=_init_worker,
                                   initargs=(ref, settings, threads, os.getpid()))
    clean = False
    try:
        pending = {executor.submit(_execute_in_worker, job): job for job in jobs}
        while pending:
            done, _ = wait(pending, return_when=FIRST_COMPLETED)
            for fut in sorted(done, key=lambda f: pending[f].input.index):
                job = pending.pop(fut)
                yield job, fut.result()
        clean = True
    finally:
        if clean:
            executor.shutdown(wait=True)
        else:
            # interrupted or stopped at an error: do not wait for running jobs
            procs = list((getattr(executor, "_processes", None) or {}).values())
            executor.shutdown(wait=False, cancel_futures=True)
            for p in procs:
                if p.is_alive():
                    p.terminate()
            for p in procs:
                p.join(timeout=5)


def _dask_client(scheduler: Any) -> tuple[Any, bool]:
    Client = _dask_client_class()
    if isinstance(scheduler, Client):
        return scheduler, False
    try:
        return Client(scheduler, timeout="10s", set_as_default=False), True
    except (OSError, TimeoutError, ValueError) as exc:
        raise InputError(f"`scheduler`: cannot connect to the Dask scheduler at {scheduler!r} ({exc})") from None


def _run_on_dask(jobs: list[_Job], ref: _Reference | None, settings: dict[str, Any], scheduler: Any,
                 threads: int | None) -> Iterator[tuple[_Job, _Outcome]]:
    from distributed import as_completed

    client, owned = _dask_client(scheduler)
    futures: list[Any] = []
    clean = False
    try:
        ref_data = client.scatter(ref, broadcast=True) if ref is not None else None
        by_key = {}
        for job in jobs:
            fut = client.submit(_execute_on_dask, job, ref_data, settings, threads, pure=False)
            futures.append(fut)
            by_key[fut.key] = job
        for fut in as_completed(futures, loop=client.loop):
            yield by_key[fut.key], fut.result()
        clean = True
    finally:
        if not clean and futures:
            try:
                client.cancel(futures)
            except Exception:  # noqa: BLE001 - best effort while stopping
                pass
        if owned:
            client.close()


# ------------------------------------------------------------------------------------------ run_batch


@dataclass(frozen=True)
class BatchSummary:
    """What a batch did: rows (all requested rows, in input order), counts, failures."""

    inputs: int
    computed: int
    skipped: int
    rows: list[dict[str, Any]]
    failures: list[dict[str, str]]
    output: str | None
    elapsed_s: float
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return json_safe({
            "inputs": self.inputs, "rows_computed": self.computed, "rows_skipped": self.skipped,
            "rows": len(self.rows), "failures": self.failures, "output": self.output,
            "elapsed_s": self.elapsed_s, "notes": self.notes,
        })


def _load_reference(spec: str, *, ref_kind: str, n_clusters: int, selection: dict[str, Any],
                    class_based: bool) -> _Reference:
    from dsecli.inputs.checks import check_reference_array
    from dsecli.inputs.readers import open_array
    from dsecli.inputs.reference import REF_KINDS, reference_classes

    check_choice(ref_kind, "ref_kind", REF_KINDS)
    src = open_array(spec)
    values = check_reference_array(src.read(), where=src.label)
    identity = os.path.realpath(src.path) + (f":{src.key}" if src.key else "")
    codes = None
    detail: dict[str, Any] = {}
    if class_based and values.ndim == 2 and values.shape[1] > 1 and ref_kind != "discrete":
        # k-means once on the rows every input uses (same N -> same subsample), not once per input
        idx = choose_rows(values.shape[0], selection["max_n"], seed=selection["seed"], sampler=selection["sampler"])
        chosen = values if idx is None else values[idx]
        classes = reference_classes(chosen, kind=ref_kind, n_clusters=n_clusters, seed=selection["seed"],
                                    where=src.label)
        codes = np.full(values.shape[0], -1, dtype=np.int64)
        codes[slice(None) if idx is None else idx] = classes.codes
        detail = dict(classes.detail)
    return _Reference(src.label, identity, values, ref_kind, codes, detail)


def run_batch(
    inputs: str | Sequence[str],
    *,
    reference: str | None = None,
    methods: str | Sequence[str] | None = None,
    output: str | os.PathLike[str] | None = None,
    workers: int = 0,
    scheduler: Any = None,
    threads: int | None = None,
    keep_going: bool = False,
    max_n: int | None = DEFAULT_MAX_N,
    seed: int = 0,
    sampler: str = "numpy",
    flatten: bool = False,
    drop_nonfinite: bool = False,
    ref_kind: str = "auto",
    n_clusters: int = 10,
    on_row: Callable[[dict[str, Any]], None] | None = None,
    progress: Callable[[int, int, str | None], None] | None = None,
    **params: Any,
) -> BatchSummary:
    """Run entropy (and, with ``reference``, mutual-information) methods over many inputs.

    Parameters
    ----------
    inputs : str or sequence of str
        Input specs: paths, globs, ``file.h5:/pattern``, ``@list.txt`` (see the module docstring).
    reference : str, optional
        Labels, scalars or vectors with one row per input row (``file[:key]``), read once. Needed
        by mutual-information methods. Vector references are clustered (k-means) once, on the rows
        every input uses, and the classes reused for every input.
    methods : str or sequence, optional
        Comma-separated names from ``ENTROPY_METHODS`` and ``MI_METHODS``, or ``all``.
        Default: ``dse``, plus ``dsmi`` with a reference.
    output : path, optional
        JSON Lines results file. Rows already there (same key) are skipped; new rows are appended
        one complete line at a time. Without it rows go only to ``on_row``.
    workers : int
        0 (default): compute in this process. N >= 1: N local worker processes (spawned).
    scheduler : str or distributed.Client, optional
        Address of a running Dask scheduler (or a client): inputs become Dask tasks. The workers
        must be able to import dsecli and read the input paths (given to them as absolute paths).
        Rows are still written here, by this process, as results arrive.
    threads : int, optional
        torch threads per worker; default: cores / workers for local processes, unchanged otherwise.
    keep_going : bool
        On a failed input, record the failure and go on (no row is written for it, so a rerun
        retries it); by default the batch stops at the first failure (finished rows are kept).
    max_n, seed, sampler, flatten, drop_nonfinite
        Row selection, the same for every input: inputs with the same number of rows use the
        same rows.
    ref_kind, n_clusters
        How the reference becomes classes (see :func:`dsecli.inputs.reference.reference_classes`).
    on_row : callable, optional
        Called with each new row as it is written.
    progress : callable, optional
        ``progress(done, total, label)``: called with (0, total, None) before the first input,
        then after each input.
    **params
        Method parameters (sigma, t, k, bins, metric, solver, repetitions, device, dtype, base,
        ...): each method receives those its signature takes.

    Returns
    -------
    BatchSummary
        All rows the batch asked for (read back from ``output`` for skipped ones), in input and
        method order; counts of rows computed now and skipped; failures.
    """
    start = time.perf_counter()
    workers = check_positive_int(workers, "workers", minimum=0)
    if threads is not None:
        threads = check_positive_int(threads, "threads", maximum=MAX_THREADS)
    if workers and scheduler is not None:
        raise InputError("`workers` and `scheduler` cannot be combined: local processes or a Dask cluster, not both")
    if sampler not in SAMPLERS:
        raise InputError(f"`sampler` must be one of {', '.join(SAMPLERS)}; got {sampler!r}")
    entropy_methods, mi_methods = split_methods(methods, has_reference=reference is not None)
    if reference is not None and not mi_methods:
        warnings.warn(f"{reference}: a reference was given but no mutual-information method was asked for; "
                      "it is not used", DseWarning, stacklevel=2)
    if scheduler is not None:
        _dask_client_class()  # fail now, before reading anything, when dask is missing
    batch_inputs = expand_inputs(inputs)
    if max_n is None:
        max_n = 0  # both mean every row; one spelling keeps resume keys equal
    selection = {"max_n": max_n, "seed": seed, "sampler": sampler, "flatten": flatten,
                 "drop_nonfinite": drop_nonfinite}
    ref = None
    if reference is not None and mi_methods:
        ref = _load_reference(reference, ref_kind=ref_kind, n_clusters=n_clusters, selection=selection,
                              class_based=any(_is_class_based(m) for m in mi_methods))
        for inp in batch_inputs:
            if inp.n_total != ref.values.shape[0]:
                raise InputError(f"{inp.label}: embeddings have {inp.n_total} rows but the reference "
                                 f"{ref.label} has {ref.values.shape[0]}")
    method_params = {**params, "n_clusters": n_clusters}
    common = {**selection, **method_params, "ref_kind": ref_kind}

    def request(kind: str, method: str) -> dict[str, Any]:
        fn = ENTROPY_METHODS[method] if kind == "entropy" else MI_METHODS[method]
        defaults = _canonical(_defaults(fn))
        # only values that differ from the method's defaults: leaving a parameter out and passing its
        # default give one key, and a parameter added to a method later does not change old keys
        return {k: v for k, v in _canonical(_accepted(fn, common)).items() if k not in defaults or defaults[k] != v}

    planned: list[tuple[BatchInput, list[tuple[str, str, str]]]] = []
    for inp in batch_inputs:
        entries = [("entropy", m, row_key(inp.identity, m, request("entropy", m))) for m in entropy_methods]
        entries += [("mi", m, row_key(inp.identity, m, request("mi", m), ref.identity if ref else None))
                    for m in mi_methods]
        planned.append((inp, entries))

    results_file = ResultsFile(output) if output is not None else None
    notes: list[str] = []
    failures: list[dict[str, str]] = []
    new_rows: dict[str, dict[str, Any]] = {}
    if results_file is not None:
        results_file.open()
    try:
        existing: dict[str, dict[str, Any]] = {}
        if results_file is not None:
            if results_file.repaired:
                notes.append(f"{results_file.path}: {results_file.repaired}")
                warnings.warn(f"{results_file.path}: {results_file.repaired}", DataQualityWarning, stacklevel=2)
            existing = {r["key"]: r for r in results_file.rows if isinstance(r.get("key"), str)}
        jobs = [_Job(inp, tuple(e for e in entries if e[2] not in existing)) for inp, entries in planned]
        jobs = [j for j in jobs if j.methods]
        skipped = sum(len(entries) for _, entries in planned) - sum(len(j.methods) for j in jobs)
        settings = {"selection": selection, "params": method_params}
        if progress:
            progress(0, len(jobs), None)
        if not jobs:
            runner: Iterable[tuple[_Job, _Outcome]] = iter(())
        elif scheduler is not None:
            runner = _run_on_dask(jobs, ref, settings, scheduler, threads)
        elif workers:
            runner = _run_in_processes(jobs, ref, settings, workers,
                                       threads or max(1, (os.cpu_count() or 1) // workers))
        else:
            runner = _run_in_process(jobs, ref, settings, threads)
        done = 0
        try:
            for job, outcome in runner:
                for category, message in outcome.warnings:
                    cat = category if isinstance(category, type) and issubclass(category, Warning) else UserWarning
                    warnings.warn(message, cat, stacklevel=2)
                for row in outcome.rows:
                    if results_file is not None:
                        results_file.append(row)
                    new_rows[row["key"]] = row
                    if on_row:
                        on_row(row)
                done += 1
                if progress:
                    progress(done, len(jobs), job.input.label)
                if outcome.error is not None:
                    cls, message = outcome.error
                    if not keep_going:
                        raise _rebuild(cls, message)
                    failures.append({"input": job.input.label, "error": message})
        finally:
            close = getattr(runner, "close", None)
            if close:
                close()  # ends worker processes / cancels Dask tasks when stopped early
    finally:
        if results_file is not None:
            results_file.close()
    all_rows = []
    for _, entries in planned:
        for _, _, key in entries:
            row = new_rows.get(key) or existing.get(key)
            if row is not None:
                all_rows.append(row)
    return BatchSummary(len(batch_inputs), len(new_rows), skipped, all_rows, failures,
                        os.fspath(output) if output is not None else None, time.perf_counter() - start, notes)


def _dask_client_class() -> Any:
    try:
        from distributed import Client
    except ImportError:
        raise InputError(
            "`scheduler` needs dask.distributed, which is not installed; install it with: pip install 'dsecli[dask]'"
        ) from None
    return Client


def _rebuild(cls: type, message: str) -> BaseException:
    try:
        exc = cls(message)
    except Exception:  # noqa: BLE001 - an exception class with another signature
        exc = ComputationError(message)
    return exc if isinstance(exc, DseError) else ComputationError(message)

