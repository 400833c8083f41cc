"""``dse check``: a sanity report on embeddings before estimating anything."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from dsecli.cli._app import (
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
    run_command,
)
from dsecli.report.rows import check_format


def check_source(spec: str, *, max_n: int, seed: int, sampler: str, flatten: bool, bins: int,
                 sigma: float, header: bool | None = None) -> dict[str, Any]:
    """Open ``spec`` (``file[:key]``) and return its sanity report as a dict."""
    from dsecli import open_array, sanity_report

    src = open_array(spec, header=header)
    return sanity_report(src, max_n=max_n, seed=seed, sampler=sampler, flatten=flatten, bins=bins,
                         sigma=sigma).to_dict()


@app.command()
def check(
    emb: Annotated[str, typer.Argument(help="Embeddings: file.npy, file.npz[:key], file.h5[:/dataset], .pt, .csv, or -.")],
    bins: Annotated[int, typer.Option("--bins", help="Bins per feature for the binned-entropy saturation check.")] = 2,
    sigma: Annotated[float, typer.Option("--sigma", help="Kernel bandwidth to judge against the median rule (default 10, the paper's setting; dse itself defaults to --sigma median).")] = 10.0,
    max_n: MaxNOpt = 10_000,
    seed: SeedOpt = 0,
    sampler: SamplerOpt = "numpy",
    flatten: FlattenOpt = False,
    header: HeaderOpt = None,
    as_json: JsonOpt = False,
    fmt: FormatOpt = None,
    output: OutputOpt = None,
    quiet: QuietOpt = False,
    traceback: TracebackOpt = False,
) -> None:
    """Sanity report on EMB: NaN/Inf, constant columns, duplicate rows, N versus D, precision, kernel scale,
    and whether binned entropy saturates at log2 N.

    Checks the rows the estimators would use (the same seeded subsample; --max-n 0 checks all).
    Exits 0 when the report was made, whatever it found; the JSON field "ok" is false when it
    found errors or warnings.
    """

    def body() -> None:
        fmt_ = check_format(fmt, as_json=as_json)
        check_output_early(output, inputs=(emb,))
        from dsecli.report.tables import findings_table

        report = check_source(emb, max_n=max_n, seed=seed, sampler=sampler, flatten=flatten, bins=bins, sigma=sigma,
                              header=header)
        emit(report, as_json=as_json, output=output, render=findings_table, inputs=(emb,), fmt=fmt_)

    run_command(body, traceback=traceback, quiet=quiet)
