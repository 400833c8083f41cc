"""Where the inputs of a batch are computed: in this process, in local worker processes, or on Dask.

Every runner takes the same jobs (one input and its pending methods each) and yields
``(job, outcome)`` pairs as they finish; an outcome holds the finished rows, the error that
stopped the input (errors come back as data, so rows already computed are kept) and the
warnings raised while computing it. Each row's ``warnings`` holds every warning raised for it:
the result's own, those of reading and preparing its input, and those of its reference, so a
warning printed by the batch is also in the results file.
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from dsecli.device import cpu_threads
from dsecli.errors import ComputationError, DseError, DseWarning, InputError, first_line, quiet
from dsecli.inputs.specs import BatchInput
from dsecli.methods import METHOD_OPTIONS, RESAMPLING_OPTIONS
from dsecli.results import json_safe
from dsecli.version import __version__

__all__ = ["Reference", "Job", "Outcome", "results_row", "rows_digest", "run_in_process", "run_in_processes", "run_on_dask", "dask_client_class",
]


@dataclass(frozen=True)
class Reference:
    """The reference file, read once: its values for every row (each input's rows of it are read,
    and classed, by the library call that measures the input).

    fingerprint : its file's :func:`dsecli.batch.store.file_stat` and the
    :func:`~dsecli.batch.store.data_sha256` of the values read; warnings : those raised while
    reading it (copied into every mutual-information row).
    """

    label: str
    identity: str
    values: np.ndarray
    ref_kind: str
    fingerprint: dict[str, Any]
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True)
class Job:
    """One input and its pending methods: (kind "entropy" | "mi", method, key, replaces) each.

    ``replaces`` is None, or what the new row records about the stored row it supersedes.
    ``notes`` are warnings the batch itself printed about the input (copied into its rows).
    """

    input: BatchInput
    methods: tuple[tuple[str, str, str, dict[str, Any] | None], ...]
    notes: tuple[str, ...] = ()  # warnings the batch printed about this input, copied into its rows


@dataclass
class Outcome:
    rows: list[dict[str, Any]]
    error: tuple[type, str] | None = None
    warnings: list[tuple[type, str]] = field(default_factory=list)


def rows_digest(indices: np.ndarray | None) -> str:
    """A short digest of the row numbers used ("all" when every row was used in order)."""
    if indices is None:
        return "all"
    return hashlib.sha1(np.ascontiguousarray(indices, dtype=np.int64).tobytes()).hexdigest()[:16]


def results_row(inp: BatchInput, result: Any, *, key: str, rows_digest: str, ref: Reference | None,
              input_fingerprint: dict[str, Any], replaces: dict[str, Any] | None,
              extra_warnings: list[str]) -> dict[str, Any]:
    d = result.to_dict(include_eigenvalues=False)
    row_warnings = list(d["warnings"])
    row_warnings += [w for w in extra_warnings if w not in row_warnings]
    return json_safe({
        "file": inp.file,  # first: an interrupted write leaves '{"file":', which the store recognises
        "dataset": inp.dataset,
        "input": inp.label,
        "index": inp.index,
        "checkpoint": inp.checkpoint,
        "series": inp.series,
        "reference": ref.label if ref is not None else None,
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
        "input_fingerprint": input_fingerprint,
        "reference_fingerprint": ref.fingerprint if ref is not None else None,
        "replaces": replaces,
        "seconds": d["elapsed_s"],
        "warnings": row_warnings,
        "extra": d["extra"],
        "key": key,
        "dsecli_version": __version__,
    })


def _execute(job: Job, ref: Reference | None, settings: dict[str, Any]) -> Outcome:
    """Run one input's pending methods: one library call per kind (entropy, mutual information), which
    prepares the rows and reads the reference once for all of its methods. Errors come back as data."""
    from dsecli.batch.store import data_sha256, file_stat
    from dsecli.inputs.prepare import prepare_rows
    from dsecli.inputs.readers import open_array
    from dsecli.methods import estimate

    inp = job.input
    sel = settings["selection"]
    params = settings["params"]
    seen: list[tuple[type, str]] = []
    rows_out: list[dict[str, Any]] = []
    try:
        with quiet():  # each warning is in its result and shown once, by the batch
            stat_before = file_stat(os.path.abspath(inp.file))  # before reading: a later change shows on resume
            # relabel so messages name the input as the user wrote it
            src = replace(open_array(inp.spec), path=inp.file)
            rows = prepare_rows(src, **sel)
            input_fp = {**stat_before, "rows_sha256": data_sha256(rows.data)}
            digest = rows_digest(rows.indices)
            names = [method for _, method, _, _ in job.methods]
            # the batch's options were checked against all of its methods: this call takes their share
            taken = set().union(*(METHOD_OPTIONS[n] for n in names)) | RESAMPLING_OPTIONS
            mine = {k: v for k, v in params.items() if k in taken}
            # a job of entropy rows alone (the mutual-information rows of this input were reused) takes no
            # reference, nor its options
            use_ref = ref is not None and any(kind == "mi" for kind, _, _, _ in job.methods)
            if use_ref:
                mine["ref_kind"] = ref.ref_kind
            else:
                mine.pop("permutations", None)
            results = estimate(rows, ref.values if use_ref else None, methods=names, **sel, **mine)
            for (kind, _, key, replaces), result in zip(job.methods, results):
                extra = list(job.notes) + (list(ref.warnings) if kind == "mi" and ref else [])
                rows_out.append(results_row(inp, result, key=key, rows_digest=digest,
                                            ref=ref if kind == "mi" else None, input_fingerprint=input_fp,
                                            replaces=replaces, extra_warnings=extra))
                seen += [(DseWarning, w) for w in result.warnings if (DseWarning, w) not in seen]
    except Exception as exc:  # noqa: BLE001 - reported per input; the rows already computed are kept
        cls = type(exc) if isinstance(exc, DseError) else ComputationError
        text = first_line(exc)
        if isinstance(exc, OSError) and not isinstance(exc, DseError):
            cls = InputError
            text = f"cannot read the input ({exc.strerror or text})"
        elif not isinstance(exc, DseError):
            text = f"{type(exc).__name__}: {text}"
        if inp.label not in text and inp.file not in text:
            text = f"{inp.label}: {text}"
        return Outcome(rows_out, (cls, text), seen)
    return Outcome(rows_out, None, seen)


# process-pool workers keep the reference and settings from their initializer
_WORKER_STATE: dict[str, Any] = {}


def _watch_parent(parent: int) -> None:
    # a worker whose parent died (SIGKILL) would otherwise wait for jobs forever
    while True:
        time.sleep(1.0)
        if os.getppid() != parent:
            os._exit(1)


def _init_worker(ref: Reference | None, settings: dict[str, Any], threads: int | None, parent: int) -> None:
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    if threads:
        import torch

        torch.set_num_threads(threads)
    _WORKER_STATE.update(ref=ref, settings=settings)
    threading.Thread(target=_watch_parent, args=(parent,), daemon=True).start()


def _execute_in_worker(job: Job) -> Outcome:
    return _execute(job, _WORKER_STATE["ref"], _WORKER_STATE["settings"])


def _execute_on_dask(job: Job, ref: Reference | None, settings: dict[str, Any], threads: int | None) -> Outcome:
    # a Dask worker may run other tasks in the same process: the thread count only for this job
    with cpu_threads(threads or None):
        return _execute(job, ref, settings)


def run_in_process(jobs: list[Job], ref: Reference | None, settings: dict[str, Any],
                   threads: int | None) -> Iterator[tuple[Job, Outcome]]:
    """Compute the jobs one after the other in this process."""
    # the caller's process gets its own thread count back afterwards
    with cpu_threads(threads or None):
        for job in jobs:
            yield job, _execute(job, ref, settings)


def run_in_processes(jobs: list[Job], ref: Reference | None, settings: dict[str, Any], workers: int,
                     threads: int | None) -> Iterator[tuple[Job, Outcome]]:
    """Compute the jobs in ``workers`` spawned local processes; stopped early, the workers are ended."""
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


def dask_client_class() -> Any:
    """``distributed.Client``, or a one-line error when dask.distributed is not installed."""
    try:
        from distributed import Client
    except ImportError:
        raise InputError(
            "`scheduler` needs dask.distributed, which is not installed; install it with: pip install 'dsecli[dask]'"
        ) from None
    return Client


def _dask_client(scheduler: Any) -> tuple[Any, bool]:
    Client = dask_client_class()
    if isinstance(scheduler, Client):
        return scheduler, False
    try:
        return Client(scheduler, timeout="10s", set_as_default=False), True
    except (OSError, TimeoutError, ValueError) as exc:
        raise InputError(f"`scheduler`: cannot connect to the Dask scheduler at {scheduler!r} ({exc})") from None


def run_on_dask(jobs: list[Job], ref: Reference | None, settings: dict[str, Any], scheduler: Any,
                threads: int | None) -> Iterator[tuple[Job, Outcome]]:
    """Compute the jobs as Dask tasks (the reference is scattered once); stopped early, the tasks are cancelled."""
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
