"""``dse batch``: many inputs (globs, HDF5 dataset patterns, list files) -> one resumable JSON Lines file."""

from __future__ import annotations

import sys
from typing import Annotated, Any

import typer

from dsecli.cli._app import (
    BaseOpt,
    DeviceOpt,
    DropNonfiniteOpt,
    FlattenOpt,
    MaxNOpt,
    QuietOpt,
    SamplerOpt,
    SeedOpt,
    TracebackOpt,
    app,
    emit,
    given_options,
    note_written,
    parse_base,
    run_command,
)
from dsecli.cli.core import (
    BinsOpt,
    BootstrapOpt,
    ConfidenceOpt,
    KOpt,
    MetricOpt,
    MIDtypeOpt,
    NClustersOpt,
    RefKindOpt,
    RepetitionsOpt,
    SolverOpt,
    TolOpt,
    TOpt,
)
from dsecli.report.help import all_methods_help


@app.command()
def batch(
    inputs: Annotated[list[str], typer.Argument(
        help="Inputs: files, quoted globs ('runs/*.npy'), HDF5 dataset patterns (run.h5:/true/epoch_*/embeddings), "
             "or @list.txt (one spec per line).", show_default=False)],
    ref: Annotated[str | None, typer.Option("--ref", help="Reference (labels, scalars or vectors; N rows, the same "
                                            "for every input) for mutual-information methods.")] = None,
    method: Annotated[str | None, typer.Option("--method", "-m", help="Comma-separated methods or all "
                                               f"({all_methods_help('batch')}): entropy (dse, cse, knn, knn-weighted, "
                                               "ase-*, matrix-entry, renyi-gram, vne-cov, rankme) and, with --ref, "
                                               "mutual information (dsmi, csmi, ksg, mine, infonce). Default: dse, "
                                               "plus dsmi with --ref.")] = None,
    output: Annotated[str | None, typer.Option("--output", "-o", help="JSON Lines results file (new, or one written "
                                               "by dse batch; anything else is refused untouched). Rows already "
                                               "there are reused when their input and reference are unchanged "
                                               "(resume); new rows are appended as they finish. Without it rows go "
                                               "to standard output.")] = None,
    workers: Annotated[int, typer.Option("--workers", help="Local worker processes; 0 computes in this process.",
                                         min=0)] = 0,
    scheduler: Annotated[str | None, typer.Option("--scheduler", help="Address of a running Dask scheduler "
                                                  "(tcp://host:8786); needs dsecli[dask].")] = None,
    threads: Annotated[int | None, typer.Option("--threads", help="torch threads per worker (default: cores / "
                                                "workers).", min=1)] = None,
    keep_going: Annotated[bool, typer.Option("--keep-going", help="Go on after an input fails to open or to compute "
                                             "(a warning names it; no row is written for it; exit 1 at the end).")] = False,
    ref_kind: RefKindOpt = "auto",
    n_clusters: NClustersOpt = 10,
    repetitions: RepetitionsOpt = 5,
    sigma: Annotated[str, typer.Option("--sigma", help="Kernel bandwidth: median (default; the median rule on "
                                       "each input), median-first or median-pooled (the median rule once, on the "
                                       "first input or on a seeded pooled sample of every input's rows, held fixed "
                                       "for all inputs: one scale along a curve; rule and value in every row's "
                                       "params), sqrt-d, or a number in data units (10: the paper's setting).")
                     ] = "median",
    t: TOpt = 1,
    bins: BinsOpt = None,
    k: KOpt = None,
    metric: MetricOpt = None,
    solver: SolverOpt = "exact",
    tol_bits: TolOpt = None,
    bootstrap: BootstrapOpt = 0,
    permutations: Annotated[int, typer.Option("--permutations", help="P >= 1: the null of every mutual-information "
                                              "method from P re-evaluations with the reference permuted (seeded); "
                                              "p-value (count(null >= value) + 1) / (P + 1); 0: off.",
                                              min=0)] = 0,
    confidence: ConfidenceOpt = 0.95,
    max_n: MaxNOpt = 10_000,
    seed: SeedOpt = 0,
    sampler: SamplerOpt = "numpy",
    device: DeviceOpt = "auto",
    dtype: MIDtypeOpt = None,
    base: BaseOpt = "2",
    flatten: FlattenOpt = False,
    drop_nonfinite: DropNonfiniteOpt = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON summary on stdout instead of the table (the "
                                          "same as --format json).")] = False,
    fmt: Annotated[str | None, typer.Option("--format", help="Standard output: jsonl (the rows as they finish; the "
                                            "default without --output), table (the default with --output), json "
                                            "(the summary), csv or tsv (the rows, at the end).",
                                            show_default=False)] = None,
    quiet: QuietOpt = False,
    traceback: TracebackOpt = False,
) -> None:
    """Entropy (and with --ref mutual information) of many inputs: one JSON Lines row per input and method.

    Every input uses the same rows when inputs have the same N (same --max-n and --seed), so a
    curve over checkpoints shows training, not sampling noise. Rerunning with the same --output
    skips rows already written: an interrupted batch resumes where it stopped.
    """

    def body() -> None:
        from dsecli import run_batch
        from dsecli.errors import ComputationError
        from dsecli.report.progress import BatchBar
        from dsecli.report.rows import check_format
        from dsecli.report.tables import batch_table
        from dsecli.report.writing import to_json

        fmt_ = check_format(fmt, as_json=as_json)
        if fmt is None and not as_json and output is None:
            fmt_ = "jsonl"
        # JSON Lines without --output are streamed as rows finish (a pipe sees them at once)
        stream = output is None and fmt_ == "jsonl"

        def to_stdout(row: dict[str, Any]) -> None:
            sys.stdout.write(to_json(row, indent=None) + "\n")
            sys.stdout.flush()

        if output is not None:
            note_written(f"{output} (finished rows are kept; rerun the same command to resume)")
        options = given_options(repetitions=repetitions, sigma=sigma, t=t, bins=bins, k=k, metric=metric,
                                device=device, dtype=dtype, solver=solver, tol_bits=tol_bits)
        from dsecli import check_resampling

        check_resampling(bootstrap, permutations, confidence)
        bar = BatchBar(quiet)
        try:
            summary = run_batch(
                inputs, reference=ref, methods=method, output=output, workers=workers, scheduler=scheduler,
                threads=threads, keep_going=keep_going, max_n=max_n, seed=seed, sampler=sampler, flatten=flatten,
                drop_nonfinite=drop_nonfinite, ref_kind=ref_kind, n_clusters=n_clusters, base=parse_base(base),
                on_row=to_stdout if stream else None, progress=bar, bootstrap=bootstrap,
                permutations=permutations, confidence=confidence, **options,
            )
        finally:
            bar.stop()
        if not stream:  # the summary (json), the table, or the rows (csv, tsv, jsonl at the end)
            emit(summary.to_dict(), as_json=as_json, output=None, fmt=fmt_, rows=summary.rows,
                 render=(lambda r: batch_table(r, summary.rows)) if summary.rows else None)
        if summary.failures:
            first = summary.failures[0]
            total = summary.inputs + sum(1 for f in summary.failures if f.get("stage") == "open")
            raise ComputationError(f"{len(summary.failures)} of {total} inputs failed; first: {first['error']}")

    run_command(body, traceback=traceback, quiet=quiet)
