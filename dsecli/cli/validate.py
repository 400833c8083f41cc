"""``dse validate``: run the known-answer suite (:mod:`dsecli.diagnostics.known_answers`) with the user's options."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from dsecli.cli._app import (
    DeviceOpt,
    DtypeOpt,
    FormatOpt,
    JsonOpt,
    OutputOpt,
    QuietOpt,
    TracebackOpt,
    app,
    check_output_early,
    emit,
    run_command,
    stderr_console,
)
from dsecli.errors import ExitStatus
from dsecli.report.rows import check_format


def _reference_files() -> tuple[str, ...]:
    """The files of the self-test's reference data (installed with the package)."""
    import os
    from importlib import resources

    base = resources.files("dsecli.diagnostics").joinpath("golden_data")
    try:
        return tuple(os.fspath(p) for p in base.iterdir() if p.is_file())  # type: ignore[call-overload]
    except (OSError, TypeError):  # a zipped install: nothing on disk to protect
        return ()


@app.command()
def validate(
    full: Annotated[bool, typer.Option("--full/--fast", help="--fast (default): core cases in seconds; --full: "
                                       "more golden records, larger cases and MINE training (about half a minute on 2 cores).")] = False,
    method: Annotated[str, typer.Option("--method", "-m", help="Only cases of these comma-separated methods "
                                        "(dse, dsmi, cse, csmi, knn, knn-weighted, ksg, mine, infonce, renyi-gram, vne-cov, rankme), or all.")] = "all",
    solver: Annotated[str, typer.Option("--solver", help="Eigen-solver for DSE: exact (default), approx or auto; "
                                        "an approximate solver's reported error bound widens each tolerance.")] = "exact",
    device: DeviceOpt = "auto",
    dtype: DtypeOpt = "float64",
    as_json: JsonOpt = False,
    fmt: FormatOpt = None,
    output: OutputOpt = None,
    quiet: QuietOpt = False,
    traceback: TracebackOpt = False,
) -> None:
    """Check the estimators against known answers: limits, closed forms and golden values.

    Prints a table (case, expected, got, tolerance, pass) and exits 1 if any case fails.
    """

    def body() -> None:
        fmt_ = check_format(fmt, as_json=as_json)
        # the suite's own reference data are its inputs: never written over
        inputs = _reference_files()
        check_output_early(output, inputs=inputs)
        from dsecli import run_validation
        from dsecli.report.tables import validation_table

        progress = None
        if full and not quiet:
            err = stderr_console()

            def progress(res: Any, i: int, n: int) -> None:
                err.print(f"[{i}/{n}] {res.name}: {'pass' if res.passed else 'FAIL'} ({res.elapsed_s:.1f} s)",
                          markup=False)

        report = run_validation(mode="full" if full else "fast", device=device, dtype=dtype, solver=solver,
                                methods=method, on_case=progress).to_dict()
        emit(report, as_json=as_json, output=output, render=validation_table, inputs=inputs, fmt=fmt_)
        if not report["passed"]:
            raise typer.Exit(int(ExitStatus.COMPUTATION_FAILED))

    run_command(body, traceback=traceback, quiet=quiet)
