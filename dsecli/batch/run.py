"""``dse batch``: many inputs, one results file; entropy and mutual information over checkpoints, resumable.

:func:`run_batch` expands input specs into arrays (:func:`dsecli.inputs.specs.expand_inputs`),
runs the requested methods on each (in this process, in local worker processes, or on a Dask
cluster: :mod:`dsecli.batch.runners`) and appends one JSON Lines row per (input, method) to a
results file as soon as it is known (:mod:`dsecli.batch.store`). Rerunning the same command
reuses the rows already there whose input and reference are still the same data, so an
interrupted batch resumes where it stopped and a regenerated input is recomputed.

Rows
----
One JSON object per line (strict JSON, NaN written as null)::

    {"file": "run.h5", "dataset": "/true/epoch_004/embeddings",
     "input": "run.h5:/true/epoch_004/embeddings", "index": 3, "checkpoint": 4,
     "series": "run.h5:/true/epoch_*/embeddings", "reference": "run.h5:/labels",
     "method": "dsmi", "quantity": "mutual_information", "value": 1.82, "units": "bits",
     "base": 2.0, "params": {...}, "n_used": 1000, "n_total": 1000, "subsampled": false,
     "rows_digest": "all",
     "input_fingerprint": {"size": 81920, "mtime_ns": ..., "ctime_ns": ..., "rows_sha256": "..."},
     "reference_fingerprint": {...}, "replaces": null,
     "seconds": 0.91, "warnings": [], "extra": {...}, "key": "5f0c...", "dsecli_version": "0.1.0"}

``index`` is the input's position in the expanded list; ``checkpoint`` the number read from
the dataset path or file name (``epoch_004`` -> 4, see :func:`dsecli.inputs.specs.checkpoint_of`)
or null; ``series`` that path with the number replaced by ``*``. ``params`` is the result's
``params`` (every parameter used, numeric sigma included). ``rows_digest`` identifies the rows
used (``"all"`` or a hash of the subsample's indices): inputs with the same number of rows get
the same subsample (:func:`dsecli.inputs.sampling.choose_rows` depends only on N, ``max_n``,
``seed`` and ``sampler``), so a curve over checkpoints shows training, not sampling noise.
``input_fingerprint`` / ``reference_fingerprint`` identify the data used (see
:mod:`dsecli.batch.store`); ``replaces`` is null, or why this row supersedes an earlier row with
the same key (``{"reason": ..., "value": ..., "dsecli_version": ...}``). ``warnings`` holds every
warning printed for the row. ``key`` identifies the row for resuming
(:func:`dsecli.batch.store.row_key`).
"""

from __future__ import annotations

import os
import time
import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from dsecli.batch.read import stored_row_problem
from dsecli.batch.runners import (
    Job,
    Outcome,
    Reference,
    dask_client_class,
    run_in_process,
    run_in_processes,
    run_on_dask,
)
from dsecli.batch.store import (
    ResultsFile,
    data_sha256,
    file_stat,
    latest_rows,
    looks_like_results_file,
    request_params,
    row_key,
    stale_reason,
)
from dsecli.device import MAX_THREADS
from dsecli.errors import (
    CollectWarnings,
    ComputationError,
    DataQualityWarning,
    DseError,
    DseWarning,
    InputError,
    check_choice,
    check_positive_int,
)
from dsecli.inputs.sampling import DEFAULT_MAX_N, SAMPLERS
from dsecli.inputs.specs import BatchInput, InputFailure, expand_inputs
from dsecli.measures.resampling import check_resampling
from dsecli.methods import (
    ENTROPY_ALL,
    ENTROPY_METHODS,
    METHOD_OPTIONS,
    MI_ALL,
    MI_METHODS,
    RESAMPLING_OPTIONS,
    method_options,
    parse_methods,
)
from dsecli.results import json_safe

__all__ = ["BatchSummary", "split_methods", "run_batch"]


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


# ------------------------------------------------------------------------------------------ run_batch


@dataclass(frozen=True)
class BatchSummary:
    """What a batch did: rows (all requested rows, in input order), counts, failures.

    failures : one ``{"input", "error", "stage"}`` per input that failed, ``stage`` being ``"open"``
    (it could not be opened or does not fit the reference) or ``"compute"``.
    """

    inputs: int
    computed: int
    skipped: int
    rows: list[dict[str, Any]]
    failures: list[dict[str, str]]
    output: str | None
    elapsed_s: float
    notes: list[str] = field(default_factory=list)
    replaced: int = 0

    def to_dict(self) -> dict[str, Any]:
        return json_safe({
            "inputs": self.inputs, "rows_computed": self.computed, "rows_skipped": self.skipped,
            "rows_replaced": self.replaced, "rows": len(self.rows), "failures": self.failures,
            "output": self.output, "elapsed_s": self.elapsed_s, "notes": self.notes,
        })


def _warn_again(records: Iterable[tuple[type, str]]) -> list[str]:
    out = []
    for category, message in records:
        cat = category if isinstance(category, type) and issubclass(category, Warning) else UserWarning
        warnings.warn(message, cat, stacklevel=3)
        out.append(message)
    return out


def _load_reference(spec: str, *, ref_kind: str) -> Reference:
    from dsecli.inputs.arrays import check_reference_array
    from dsecli.inputs.readers import open_array
    from dsecli.inputs.reference import REF_KINDS

    check_choice(ref_kind, "ref_kind", REF_KINDS)
    with CollectWarnings() as printed:
        src = open_array(spec)
        stat_before = file_stat(src.path)
        values = check_reference_array(src.read(), where=src.label)
        identity = os.path.realpath(src.path) + (f":{src.key}" if src.key else "")
    fp = {**stat_before, "rows_sha256": data_sha256(values)}
    return Reference(src.label, identity, values, ref_kind, fp, tuple(printed))


# one data-derived sigma for every input of a batch, so that a curve over checkpoints is at one scale
FIXED_SIGMA_RULES = ("median-first", "median-pooled")


def fixed_sigma(rule: str, batch_inputs: Sequence[BatchInput], selection: dict[str, Any]) -> dict[str, Any]:
    """The numeric sigma a batch holds fixed: the median rule on the first input's rows ("median-first") or on
    a seeded pooled sample of rows from every input ("median-pooled": ceil(4096 / inputs) rows of each,
    ``np.random.default_rng([seed, index])``), both on the rows the methods use (same selection).

    Returns
    -------
    dict
        ``rule``, ``value`` (data units), ``from`` (the input, or how many inputs), ``inputs`` (how many
        inputs gave rows), ``rows`` used, and the median rule's ``detail``.
    """
    import math

    import torch

    from dsecli.diffusion.kernels import MEDIAN_MAX_ROWS, resolve_sigma
    from dsecli.inputs.prepare import prepare_rows
    from dsecli.inputs.readers import open_array

    check_choice(rule, "sigma", FIXED_SIGMA_RULES)

    def rows_of(inp: BatchInput) -> np.ndarray:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # printed with the input's own rows
            return np.array(prepare_rows(open_array(inp.spec), **selection).data, dtype=np.float64)

    seed = int(selection.get("seed") or 0)
    if rule == "median-first":
        x = rows_of(batch_inputs[0])
        source = batch_inputs[0].label
    else:
        per = math.ceil(MEDIAN_MAX_ROWS / len(batch_inputs))
        parts: list[np.ndarray] = []
        for inp in batch_inputs:
            xi = rows_of(inp)
            if parts and xi.shape[1] != parts[0].shape[1]:
                raise InputError(f"{inp.label}: `sigma` median-pooled needs one width for every input: it has "
                                 f"{xi.shape[1]} features, {batch_inputs[0].label} has {parts[0].shape[1]}")
            take = np.random.default_rng([seed, inp.index]).choice(xi.shape[0], min(per, xi.shape[0]), replace=False)
            parts.append(xi[np.sort(take)])
        x = np.concatenate(parts)
        source = f"{len(batch_inputs)} inputs, up to {per} rows each"
    choice = resolve_sigma("median", torch.from_numpy(x), seed=seed, where=source)
    return {"rule": rule, "value": choice.value, "from": source, "inputs": 1 if rule == "median-first" else len(batch_inputs),
            "rows": int(x.shape[0]), "detail": choice.detail}


def fixed_choice(fixed: dict[str, Any]) -> Any:
    """The sigma a batch holds fixed (:func:`fixed_sigma`) as the methods take it: the value with its rule
    (``sigma_rule``) and how it was found (``sigma_detail``)."""
    from dsecli.diffusion.kernels import SigmaChoice

    return SigmaChoice(fixed["value"], fixed["rule"], fixed)


def _request(name: str, fn: Any, common: dict[str, Any]) -> dict[str, Any]:
    """The resume request of a method; sigma is always written out, so rows computed under the old
    default (10, left out of old keys) are never taken for rows of the median-rule default."""
    req = request_params(name, fn, common)
    if "sigma" in METHOD_OPTIONS[name] and "sigma" not in req:
        req["sigma"] = "median"
    return req


def _rows_hash_now(inp: BatchInput, selection: dict[str, Any]) -> str | None:
    """The input's rows hash as a computation would see it now (None when it cannot be read)."""
    from dsecli.inputs.prepare import prepare_rows
    from dsecli.inputs.readers import open_array

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # printed again, with the row, if the input is recomputed
            return data_sha256(prepare_rows(open_array(inp.spec), **selection).data)
    except (DseError, OSError):
        return None


def _protected_paths(specs: str | os.PathLike[str] | Sequence[str], batch_inputs: list[BatchInput],
                     reference: str | None, open_failures: list[InputFailure]) -> list[str]:
    """Every file the batch reads (list files, inputs, the reference, inputs that failed): never its output."""
    given = [os.fspath(specs)] if isinstance(specs, (str, os.PathLike)) else [os.fspath(s) for s in specs]
    paths = [s[1:] if s.startswith("@") else s for s in given]
    paths += [inp.file for inp in batch_inputs] + [f.input for f in open_failures]
    return paths + ([reference] if reference else [])


def _failure(label: str, message: str, stage: str, keep_going: bool) -> dict[str, str]:
    text = message if label in message else f"{label}: {message}"
    if keep_going:
        warnings.warn(f"{text}; skipped (keep_going=True)", DseWarning, stacklevel=3)
    return {"input": label, "error": text, "stage": stage}


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
        Input specs: paths, globs, ``file.h5:/pattern``, ``@list.txt`` (:mod:`dsecli.inputs.specs`).
    reference : str, optional
        Labels, scalars or vectors with one row per input row (``file[:key]``), read once. Needed
        by mutual-information methods. Vector references are clustered (k-means) once, on the rows
        every input uses, and the classes reused for every input.
    methods : str or sequence, optional
        Comma-separated names from ``ENTROPY_METHODS`` and ``MI_METHODS``, or ``all``.
        Default: ``dse``, plus ``dsmi`` with a reference.
    output : path, optional
        JSON Lines results file (:mod:`dsecli.batch.store`): recognised as one before anything in
        it changes, never one of the inputs. Rows already there (same key, same input and
        reference data) are reused; new rows are appended one complete line at a time. Without it
        rows go only to ``on_row``.
    workers : int
        0 (default): compute in this process. N >= 1: N local worker processes (spawned).
    scheduler : str or distributed.Client, optional
        Address of a running Dask scheduler (or a client): inputs become Dask tasks. The workers
        must be able to import dsecli and read the input paths (given to them as absolute paths).
        Rows are still written here, by this process, as results arrive.
    threads : int, optional
        torch threads per worker; default: cores / workers for local processes, unchanged otherwise.
    keep_going : bool
        On an input that cannot be opened or computed, record the failure (``failures``, and a
        warning) and go on (no row is written for it, so a rerun retries it); by default the batch
        stops at the first failure (finished rows are kept).
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
        ...): each method receives those its signature takes. ``bootstrap``, ``confidence``
        (and ``bootstrap_scheme``) apply to every method and ``permutations`` to the
        mutual-information methods, as in :func:`dsecli.methods.estimate_mutual_information`;
        their results are in each row's ``extra`` and, when on, they are part of the row's key.
        ``sigma`` may also be ``"median-first"`` or ``"median-pooled"``: one numeric sigma from the
        median rule on the first input's rows or on a seeded pooled sample of every input's rows
        (:func:`fixed_sigma`), used for every input; each row's ``params`` then has ``sigma_rule``
        (that name) and ``sigma_detail``.

    Returns
    -------
    BatchSummary
        All rows the batch asked for (read back from ``output`` for reused ones), in input and
        method order; counts of rows computed now, reused and replaced; failures. After the run, the
        rows of ``output`` (earlier batches' included; without an output, this batch's rows) are checked
        for trends whose direction depends on the σ policy and for comparisons that mix σ policies
        (:func:`dsecli.batch.series.warn_sigma_policies`): each finding is a warning and a line of ``notes``.
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
    check_resampling(params.get("bootstrap", 0), params.get("permutations", 0), params.get("confidence", 0.95))
    if params.get("permutations") and not mi_methods:
        raise InputError("`permutations` applies to mutual-information methods, and this batch has none "
                         f"({', '.join(entropy_methods)}): add one with --method and --ref, or leave it out")
    if reference is not None and not mi_methods:
        warnings.warn(f"{reference}: a reference was given but no mutual-information method was asked for; "
                      "it is not used", DseWarning, stacklevel=2)
    if output is not None:
        from dsecli.report.writing import output_target

        output_target(output, name="--output")  # an empty or directory-shaped path fails before reading anything
    if scheduler is not None:
        dask_client_class()  # fail now, before reading anything, when dask is missing
    open_failures: list[InputFailure] = []
    # a glob over the folder of the results file ('runs/*' -o runs/r.jsonl) does not take the results file;
    # any other file a glob matches stays an input, so naming it as the output is refused as such
    exclude = output if output is not None and looks_like_results_file(output) else None
    batch_inputs = expand_inputs(inputs, failures=open_failures if keep_going else None, exclude=exclude,
                                 reference=reference)
    method_options([*entropy_methods, *mi_methods], {k: v for k, v in params.items() if k not in RESAMPLING_OPTIONS})
    failures = [_failure(f.input, str(f.error), "open", keep_going) for f in open_failures]
    if max_n is None:
        max_n = 0  # both mean every row; one spelling keeps resume keys equal
    selection = {"max_n": max_n, "seed": seed, "sampler": sampler, "flatten": flatten,
                 "drop_nonfinite": drop_nonfinite}
    ref = None
    if reference is not None and mi_methods:
        ref = _load_reference(reference, ref_kind=ref_kind)
        fitting = []
        for inp in batch_inputs:
            if inp.n_total == ref.values.shape[0]:
                fitting.append(inp)
                continue
            message = (f"{inp.label}: embeddings have {inp.n_total} rows but the reference "
                       f"{ref.label} has {ref.values.shape[0]}")
            if not keep_going:
                raise InputError(message)
            failures.append(_failure(inp.label, message, "open", keep_going))
        batch_inputs = fitting
    method_params = {**params, "n_clusters": n_clusters}
    fixed = None
    if isinstance(params.get("sigma"), str) and params["sigma"].strip().lower() in FIXED_SIGMA_RULES:
        if batch_inputs and any("sigma" in METHOD_OPTIONS[m] for m in (*entropy_methods, *mi_methods)):
            fixed = fixed_sigma(params["sigma"].strip().lower(), batch_inputs, selection)
            method_params["sigma"] = fixed["value"]
        else:
            method_params.pop("sigma")
    common = {**selection, **method_params, "ref_kind": ref_kind}
    requests = {("entropy", m): {**_request(m, ENTROPY_METHODS[m], common), **_resampling_request(params, "entropy")}
                for m in entropy_methods}
    requests.update({("mi", m): {**_request(m, MI_METHODS[m], common), **_resampling_request(params, "mi")}
                     for m in mi_methods})

    planned: list[tuple[BatchInput, list[tuple[str, str, str]]]] = []
    for inp in batch_inputs:
        entries = [("entropy", m, row_key(inp.identity, m, requests["entropy", m])) for m in entropy_methods]
        entries += [("mi", m, row_key(inp.identity, m, requests["mi", m], ref.identity if ref else None))
                    for m in mi_methods]
        planned.append((inp, entries))

    results_file = None
    if output is not None:
        results_file = ResultsFile(output, inputs=_protected_paths(inputs, batch_inputs, reference, open_failures))
    notes: list[str] = []
    new_rows: dict[str, dict[str, Any]] = {}
    existing: dict[str, dict[str, Any]] = {}
    if results_file is not None:
        results_file.open()
    try:
        if results_file is not None:
            if results_file.repaired:
                notes.append(f"{results_file.path}: {results_file.repaired}")
                warnings.warn(f"{results_file.path}: {results_file.repaired}", DataQualityWarning, stacklevel=2)
            if results_file.direct:
                notes.append(f"{results_file.path}: not a regular file; rows are written to it and none are read "
                             "back (nothing to resume from)")
            existing = {r["key"]: r for r in latest_rows(results_file.rows)}
        jobs, reused = _plan_jobs(planned, existing, ref, selection)
        # the fixed sigma goes to the methods with its rule, so every row records it as computed
        settings = {"selection": selection,
                    "params": method_params if fixed is None else {**method_params, "sigma": fixed_choice(fixed)}}
        if progress:
            progress(0, len(jobs), None)
        if not jobs:
            runner: Iterable[tuple[Job, Outcome]] = iter(())
        elif scheduler is not None:
            runner = run_on_dask(jobs, ref, settings, scheduler, threads)
        elif workers:
            runner = run_in_processes(jobs, ref, settings, workers,
                                      threads or max(1, (os.cpu_count() or 1) // workers))
        else:
            runner = run_in_process(jobs, ref, settings, threads)
        done = 0
        try:
            for job, outcome in runner:
                _warn_again(outcome.warnings)
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
                    failures.append(_failure(job.input.label, message, "compute", keep_going))
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
    # every row of the file as it now stands, earlier batches' too (else this batch's)
    notes += _sigma_policy_notes(latest_rows(results_file.rows) if results_file is not None and not results_file.direct
                                 else all_rows)
    return BatchSummary(len(batch_inputs), len(new_rows), reused, all_rows, failures,
                        os.fspath(output) if output is not None else None, time.perf_counter() - start, notes,
                        sum(1 for r in new_rows.values() if r.get("replaces")))


def _sigma_policy_notes(rows: list[dict[str, Any]]) -> list[str]:
    """Warn when ``rows`` (the results as they now stand) hold a trend whose direction depends on the σ policy
    or a comparison across inputs that mixes σ policies (:func:`dsecli.batch.series.warn_sigma_policies`)."""
    from dsecli.batch.series import batch_series, warn_sigma_policies

    return warn_sigma_policies(batch_series(rows)) if rows else []


def _resampling_request(params: dict[str, Any], kind: str) -> dict[str, Any]:
    """The bootstrap / permutation settings that change a row (none when off, so older keys stay valid)."""
    out: dict[str, Any] = {}
    if params.get("bootstrap"):
        out.update(bootstrap=int(params["bootstrap"]), confidence=float(params.get("confidence", 0.95)))
        if params.get("bootstrap_scheme", "auto") != "auto":
            out["bootstrap_scheme"] = params["bootstrap_scheme"]
    if kind == "mi" and params.get("permutations"):
        out["permutations"] = int(params["permutations"])
    return out


def _plan_jobs(planned: list[tuple[BatchInput, list[tuple[str, str, str]]]], existing: dict[str, dict[str, Any]],
               ref: Reference | None, selection: dict[str, Any]) -> tuple[list[Job], int]:
    """The rows to compute: new keys, and stored rows whose input or reference data changed (with why).

    Returns (jobs, rows reused); a warning names each input recomputed because its data changed,
    and the same text goes into its new rows.
    """
    jobs: list[Job] = []
    reused = 0
    for inp, entries in planned:
        stat_now: dict[str, int] | None | bool = False  # False: not looked at yet
        hashed: list[str | None] = []

        def rows_hash(inp: BatchInput = inp, hashed: list[str | None] = hashed) -> str | None:
            if not hashed:
                hashed.append(_rows_hash_now(inp, selection))
            return hashed[0]

        pending: list[tuple[str, str, str, dict[str, Any] | None]] = []
        reasons: list[str] = []
        for kind, method, key in entries:
            old = existing.get(key)
            if old is None:
                pending.append((kind, method, key, None))
                continue
            problem = stored_row_problem(old)
            if problem is not None:  # edited or damaged: never reused, and never silently
                warnings.warn(f"{inp.label}: its stored {method} row {problem}; recomputing it", DseWarning,
                              stacklevel=3)
                pending.append((kind, method, key, {"reason": f"stored row {problem}", "value": None,
                                                    "dsecli_version": old.get("dsecli_version")}))
                continue
            if stat_now is False:
                try:
                    stat_now = file_stat(inp.file)
                except OSError:
                    stat_now = None
            why = [stale_reason(old.get("input_fingerprint"), what="input",
                                stat_now=stat_now if isinstance(stat_now, dict) else None, rows_hash=rows_hash)]
            if kind == "mi" and ref is not None:
                why.append(stale_reason(old.get("reference_fingerprint"), what="reference", now=ref.fingerprint))
            reason = "; ".join(w for w in why if w)
            if not reason:
                reused += 1
                continue
            if reason not in reasons:
                reasons.append(reason)
            pending.append((kind, method, key, {"reason": reason, "value": old.get("value"),
                                                "dsecli_version": old.get("dsecli_version")}))
        if pending:
            notes = tuple(f"{inp.label}: {r}; recomputing its stored rows" for r in reasons)
            for note in notes:
                warnings.warn(note, DseWarning, stacklevel=3)
            jobs.append(Job(inp, tuple(pending), notes))
    return jobs, reused


def _rebuild(cls: type, message: str) -> BaseException:
    try:
        exc = cls(message)
    except Exception:  # noqa: BLE001 - an exception class with another signature
        exc = ComputationError(message)
    return exc if isinstance(exc, DseError) else ComputationError(message)
