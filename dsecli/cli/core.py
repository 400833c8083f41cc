"""``dse entropy``, ``dse mi`` and ``dse info``."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Annotated, Any

import typer

from dsecli.cli._app import (
    BaseOpt,
    DeviceOpt,
    DropNonfiniteOpt,
    DtypeOpt,
    FlattenOpt,
    FormatOpt,
    HeaderOpt,
    JsonOpt,
    MaxNOpt,
    OutputOpt,
    QuietOpt,
    SamplerOpt,
    SeedOpt,
    TracebackOpt,
    app,
    check_output_early,
    emit,
    given_options,
    parse_base,
    run_command,
)
from dsecli.report.help import INPUT_HELP, all_methods_help, input_help, library_default
from dsecli.report.rows import check_format

ENTROPY_ALL_HELP = all_methods_help("entropy")
MI_ALL_HELP = all_methods_help("mi")


def _mine_default(parameter: str) -> str:
    # shown in --help, never passed: the library's default applies unless the option is given
    from dsecli import infonce_mutual_information, mine_mutual_information

    return library_default(parameter, mine_mutual_information, infonce_mutual_information)

SigmaOpt = Annotated[
    str, typer.Option("--sigma", help="Kernel bandwidth: median (default; the median rule, "
                         "scale-invariant), sqrt-d, or a number in data units (10 is the paper's setting; a number far "
                         "from the median rule is warned about).")
]
TOpt = Annotated[int, typer.Option("--t", "-t", help="Diffusion time t >= 1 (eigenvalues raised to the power t).")]
BinsOpt = Annotated[int | None, typer.Option("--bins", help="Bins per dimension for cse/csmi (default 2).")]
KOpt = Annotated[int | None, typer.Option("--k", help="Neighbours for knn/ksg (default 3) and ase-knn (default 10).")]
MetricOpt = Annotated[str | None, typer.Option("--metric", help="Norm for knn/knn-weighted (default euclidean) and ksg (per variable; default euclidean for continuous Y, max for labels): euclidean, max or manhattan.")]
MIDtypeOpt = Annotated[
    str | None,
    typer.Option("--dtype", help="Working precision: float64 (default; MINE trains in float32 unless this is given) or float32."),
]
RefKindOpt = Annotated[str, typer.Option("--ref-kind", help="auto (by dtype), discrete (labels) or continuous "
                                          "(scalars binned, vectors clustered).")]
NClustersOpt = Annotated[int, typer.Option("--n-clusters", help="Bins for scalar references, clusters for vector "
                                           "references.")]
RepetitionsOpt = Annotated[int, typer.Option("--repetitions", "-r", help="Size-matched subset draws per class "
                                             "(DSMI/CSMI).")]
SolverOpt = Annotated[str, typer.Option("--solver", help="Eigen-solver for dse and dsmi: exact (default), approx "
                                          "(large N, with an error estimate) or auto (exact up to 10,000 rows).")]
ThreadsOpt = Annotated[int | None, typer.Option("--threads", help="CPU threads for torch (default: all cores); "
                                                "for shared machines.")]
TolOpt = Annotated[float | None, typer.Option("--tol-bits", help="Error target of the approximate solver in bits "
                                              "(default 0.01).")]
BootstrapOpt = Annotated[int, typer.Option("--bootstrap", help="B >= 2: a seeded percentile interval for every "
                                           "method from B re-evaluations on resampled rows (the subsample stays "
                                           "fixed; cse with replacement, other methods on half-size subsamples "
                                           "without replacement); 0: off.", min=0)]
PermutationsOpt = Annotated[int, typer.Option("--permutations", help="P >= 1: the null of every method from P "
                                              "re-evaluations with Y permuted (seeded); p-value (count(null >= "
                                              "value) + 1) / (P + 1); 0: off.", min=0)]
ConfidenceOpt = Annotated[float, typer.Option("--confidence", help="Confidence of the --bootstrap interval "
                                              "(between 0 and 1).")]


def _note_subsample(report: dict[str, Any], quiet: bool) -> None:
    # subsampling is never silent: JSON users see it on stderr too
    max_n = (report["results"][0].get("params") or {}).get("max_n") if report.get("results") else None
    if report.get("subsampled") and max_n and report["n_total"] > max_n and not quiet:
        from dsecli.cli._app import stderr_console

        stderr_console().print(
            f"note: used {report['n_used']:,} of {report['n_total']:,} rows (seeded subsample; --max-n 0 uses all rows)",
            markup=False,
        )


def _print_plan(src: Any, *, max_n: int, solver: str, device: str, dtype: str, t: int, as_json: bool,
                eigenvalues: bool, bootstrap: int = 0) -> None:
    """``--dry-run``: the plan for the rows that would be used, from the file's shape alone."""
    from dsecli import dry_run_entropy
    from dsecli.cli._app import stdout_console
    from dsecli.report.plans import entropy_plan_text
    from dsecli.report.writing import to_json

    plan = dry_run_entropy(src, max_n=max_n, solver=solver, device=device, dtype=dtype, t=t,
                           return_eigenvalues=eigenvalues, bootstrap=bootstrap)
    not_written = getattr(src, "not_written", None)  # planned from the shape; running would refuse it
    if not_written:
        plan["data_not_written"] = not_written
    if as_json:
        typer.echo(to_json(plan, indent=None))
        return
    stdout_console().print(entropy_plan_text(plan, src.label), markup=False)


def _print_mi_plan(x_src: Any, y_src: Any, *, max_n: int, seed: int, sampler: str, ref_kind: str, n_clusters: int,
                   repetitions: int, solver: str, device: str, dtype: str | None, t: int, as_json: bool,
                   bootstrap: int = 0, permutations: int = 0, sigma: Any = "median") -> None:
    """``dse mi --dry-run``: DSMI's plan from the file's shape and the reference's classes (read, not X)."""
    from dsecli import dry_run_mutual_information
    from dsecli.cli._app import stdout_console
    from dsecli.report.plans import mi_plan_text
    from dsecli.report.writing import to_json

    plan = dry_run_mutual_information(x_src, y_src, max_n=max_n, seed=seed, sampler=sampler, ref_kind=ref_kind,
                                      n_clusters=n_clusters, repetitions=repetitions, solver=solver, device=device,
                                      dtype=dtype or "float64", t=t, bootstrap=bootstrap,
                                      permutations=permutations, sigma=sigma)
    not_written = getattr(x_src, "not_written", None)  # planned from the shape; running would refuse it
    if not_written:
        plan["data_not_written"] = not_written
    if as_json:
        typer.echo(to_json(plan, indent=None))
        return
    stdout_console().print(mi_plan_text(plan, x_src.label, y_src.label), markup=False)


@contextlib.contextmanager
def progress(quiet: bool) -> Iterator[None]:
    """The spinner of a long solve on a terminal (not with --quiet): it shows the plan the library
    announces when it starts computing (:func:`dsecli.diffusion.plan.on_plan`), and stops with the block."""
    from dsecli import on_plan
    from dsecli.cli._app import stderr_console
    from dsecli.report.progress import solve_spinner

    console = stderr_console()
    if quiet or not console.is_terminal:
        yield
        return
    with contextlib.ExitStack() as spinners:
        def show(label: str, expected: float) -> None:
            spinners.close()  # the previous solve of the call is over
            spinners.enter_context(solve_spinner(label, expected, console=console))

        with on_plan(show):
            yield


@app.command()
def entropy(
    emb: Annotated[str, typer.Argument(help=INPUT_HELP)],
    method: Annotated[str, typer.Option("--method", "-m", help=f"Comma-separated methods, or all ({ENTROPY_ALL_HELP}). dse (default); "
                                        "published variants ase-gaussian, ase-normalized, ase-knn, matrix-entry; "
                                        "baselines cse, knn, knn-weighted; spectral metrics renyi-gram, vne-cov, rankme.")] = "dse",
    sigma: SigmaOpt = "median",
    t: TOpt = 1,
    bins: BinsOpt = None,
    k: KOpt = None,
    metric: MetricOpt = None,
    solver: SolverOpt = "exact",
    tol_bits: TolOpt = None,
    max_n: MaxNOpt = 10_000,
    seed: SeedOpt = 0,
    sampler: SamplerOpt = "numpy",
    device: DeviceOpt = "auto",
    dtype: DtypeOpt = "float64",
    threads: ThreadsOpt = None,
    base: BaseOpt = "2",
    eigenvalues: Annotated[bool, typer.Option("--eigenvalues", help="Include the eigenvalues in the JSON report.")] = False,
    bootstrap: BootstrapOpt = 0,
    confidence: ConfidenceOpt = 0.95,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print the plan for dse (solver, operator, memory, "
                                          "expected time) without computing.")] = False,
    flatten: FlattenOpt = False,
    drop_nonfinite: DropNonfiniteOpt = False,
    header: HeaderOpt = None,
    as_json: JsonOpt = False,
    fmt: FormatOpt = None,
    output: OutputOpt = None,
    quiet: QuietOpt = False,
    traceback: TracebackOpt = False,
) -> None:
    """Entropy of the rows of EMB (one row per sample): DSE by default, other methods with --method."""

    def body() -> None:
        fmt_ = check_format(fmt, as_json=as_json)
        check_output_early(output, inputs=(emb,))
        from dsecli import cpu_threads, estimate_entropy, open_array
        from dsecli.report.tables import make_report, report_table

        options = given_options(sigma=sigma, t=t, bins=bins, k=k, metric=metric, device=device, dtype=dtype,
                                solver=solver, tol_bits=tol_bits)
        from dsecli import check_resampling

        check_resampling(bootstrap, 0, confidence)
        src = open_array(emb, header=header)
        if dry_run:
            _print_plan(src, max_n=max_n, solver=solver, device=device, dtype=dtype, t=t, as_json=fmt_ == "json",
                        eigenvalues=eigenvalues, bootstrap=bootstrap)
            return
        with cpu_threads(threads), progress(quiet):
            results = estimate_entropy(
                src, methods=method, max_n=max_n, seed=seed, sampler=sampler, base=parse_base(base), flatten=flatten,
                drop_nonfinite=drop_nonfinite, return_eigenvalues=eigenvalues or None, bootstrap=bootstrap,
                confidence=confidence, **options,
            )
        report = make_report("entropy", results, inputs={"embeddings": src.label}, include_eigenvalues=eigenvalues)
        _note_subsample(report, quiet)
        emit(report, as_json=as_json, output=output, render=report_table, inputs=(emb,), fmt=fmt_)

    run_command(body, traceback=traceback, quiet=quiet)


@app.command()
def mi(
    emb: Annotated[str, typer.Argument(help=input_help("Embeddings X (N rows)"))],
    ref: Annotated[str, typer.Argument(help=input_help("Reference Y (N rows): integer or string labels, float "
                                                       "scalars, or vectors"))],
    method: Annotated[str, typer.Option("--method", "-m", help=f"Comma-separated methods, or all ({MI_ALL_HELP}): "
                                        "dsmi (default), csmi, ksg, mine, infonce.")] = "dsmi",
    ref_kind: RefKindOpt = "auto",
    n_clusters: NClustersOpt = 10,
    repetitions: RepetitionsOpt = 5,
    sigma: SigmaOpt = "median",
    t: TOpt = 1,
    bins: BinsOpt = None,
    k: KOpt = None,
    metric: MetricOpt = None,
    metric_y: Annotated[str | None, typer.Option("--metric-y", help="ksg: norm of a continuous Y (default: that of "
                                                 "X): euclidean, max or manhattan.")] = None,
    standardize: Annotated[bool | None, typer.Option("--standardize/--no-standardize", help="ksg: z-score each column "
                                                     "of X and Y first (default: yes for continuous Y, no for "
                                                     "labels).")] = None,
    hidden_units: Annotated[int | None, typer.Option("--hidden-units", help=f"MINE and InfoNCE: width of each hidden layer (default "
                                                                       f"{_mine_default('hidden_units')}).")] = None,
    hidden_layers: Annotated[int | None, typer.Option("--hidden-layers", help=f"MINE and InfoNCE: number of hidden layers (default "
                                                                         f"{_mine_default('hidden_layers')}).")] = None,
    epochs: Annotated[int | None, typer.Option("--epochs", help="MINE and InfoNCE: maximum training epochs (default "
                                                           f"{_mine_default('epochs')}).")] = None,
    batch_size: Annotated[int | None, typer.Option("--batch-size", help="MINE and InfoNCE: batch size (default "
                                                                   f"{_mine_default('batch_size')}).")] = None,
    learning_rate: Annotated[float | None, typer.Option("--learning-rate", help="MINE and InfoNCE: Adam learning rate (default "
                                                                           f"{_mine_default('learning_rate')}).")] = None,
    patience: Annotated[int | None, typer.Option("--patience", help="MINE and InfoNCE: early-stopping patience in epochs (default "
                                                               f"{_mine_default('patience')}).")] = None,
    holdout_fraction: Annotated[float | None, typer.Option("--holdout", help="MINE and InfoNCE: held-out fraction for "
                                                           "the reported value (default "
                                                           f"{_mine_default('holdout_fraction')}).")] = None,
    solver: SolverOpt = "exact",
    tol_bits: TolOpt = None,
    bootstrap: BootstrapOpt = 0,
    permutations: PermutationsOpt = 0,
    confidence: ConfidenceOpt = 0.95,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print the plan for dsmi (solver per class size, memory, "
                                          "expected time) without computing.")] = False,
    max_n: MaxNOpt = 10_000,
    seed: SeedOpt = 0,
    sampler: SamplerOpt = "numpy",
    device: DeviceOpt = "auto",
    dtype: MIDtypeOpt = None,
    threads: ThreadsOpt = None,
    base: BaseOpt = "2",
    flatten: FlattenOpt = False,
    drop_nonfinite: DropNonfiniteOpt = False,
    header: HeaderOpt = None,
    as_json: JsonOpt = False,
    fmt: FormatOpt = None,
    output: OutputOpt = None,
    quiet: QuietOpt = False,
    traceback: TracebackOpt = False,
) -> None:
    """Mutual information between the rows of EMB and the reference REF: DSMI by default."""

    def body() -> None:
        fmt_ = check_format(fmt, as_json=as_json)
        check_output_early(output, inputs=(emb, ref))
        from dsecli import cpu_threads, estimate_mutual_information, open_array
        from dsecli.report.tables import make_report, report_table

        options = given_options(
            ref_kind=ref_kind, n_clusters=n_clusters, repetitions=repetitions, sigma=sigma, t=t, bins=bins, k=k,
            metric=metric, metric_y=metric_y, standardize=standardize, hidden_units=hidden_units,
            hidden_layers=hidden_layers, epochs=epochs, batch_size=batch_size, learning_rate=learning_rate,
            patience=patience, holdout_fraction=holdout_fraction, device=device, dtype=dtype, solver=solver,
            tol_bits=tol_bits)
        from dsecli import check_resampling

        check_resampling(bootstrap, permutations, confidence)
        x_src = open_array(emb, header=header)
        y_src = open_array(ref, header=header)
        if dry_run:
            _print_mi_plan(x_src, y_src, max_n=max_n, seed=seed, sampler=sampler, ref_kind=ref_kind,
                           n_clusters=n_clusters, repetitions=repetitions, solver=solver, device=device, dtype=dtype,
                           t=t, as_json=fmt_ == "json", bootstrap=bootstrap, permutations=permutations,
                           sigma=sigma)
            return
        with cpu_threads(threads), progress(quiet):
            results = estimate_mutual_information(
                x_src, y_src, methods=method, max_n=max_n, seed=seed, sampler=sampler, base=parse_base(base),
                flatten=flatten, drop_nonfinite=drop_nonfinite, bootstrap=bootstrap, permutations=permutations,
                confidence=confidence, **options,
            )
        report = make_report("mi", results, inputs={"embeddings": x_src.label, "reference": y_src.label})
        _note_subsample(report, quiet)
        emit(report, as_json=as_json, output=output, render=report_table, inputs=(emb, ref), fmt=fmt_)

    run_command(body, traceback=traceback, quiet=quiet)


def _numeric_dtype(name: str) -> bool:
    import numpy as np

    try:
        return np.dtype(name).kind in "biuf"
    except TypeError:
        return name == "bfloat16"


@app.command()
def info(
    file: Annotated[str, typer.Argument(help=input_help("A file of arrays"))],
    check: Annotated[bool, typer.Option("--check", help="Also run the sanity report (dse check) on each numeric "
                                        "array of 2 or more dimensions.")] = False,
    max_n: MaxNOpt = 10_000,
    seed: SeedOpt = 0,
    header: HeaderOpt = None,
    as_json: JsonOpt = False,
    fmt: FormatOpt = None,
    output: OutputOpt = None,
    quiet: QuietOpt = False,
    traceback: TracebackOpt = False,
) -> None:
    """List the arrays (or HDF5 datasets) in FILE with their shapes and dtypes; --check adds a sanity report."""

    def body() -> None:
        fmt_ = check_format(fmt, as_json=as_json)
        check_output_early(output, inputs=(file,))
        from dsecli import list_arrays, split_spec
        from dsecli.report.tables import info_view

        arrays = list_arrays(file, header=header)
        report: dict[str, Any] = {"file": file, "arrays": arrays}
        if check:
            from dsecli import open_array, sanity_report

            checks = []
            for a in arrays:
                if len(a["shape"]) < 2 or not _numeric_dtype(a["dtype"]):
                    checks.append({"key": a["key"], "skipped": "not a numeric array of 2 or more dimensions; "
                                   "labels or a reference?"})
                    continue
                spec = file if a["key"] is None else f"{split_spec(file)[0]}:{a['key']}"
                checks.append({"key": a["key"], "report": sanity_report(
                    open_array(spec, header=header), max_n=max_n, seed=seed, flatten=len(a["shape"]) > 2).to_dict()})
            report["checks"] = checks

        emit(report, as_json=as_json, output=output, render=info_view, inputs=(file,), fmt=fmt_)

    run_command(body, traceback=traceback, quiet=quiet)
