"""``dse check``: a report on embeddings (and a reference) before estimating anything."""

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
from dsecli.cli.core import NClustersOpt, RefKindOpt, SigmaOpt, TOpt
from dsecli.report.help import INPUT_HELP
from dsecli.report.rows import check_format


def check_source(spec: str, *, max_n: int, seed: int, sampler: str, flatten: bool, bins: int = 2,
                 sigma: float | str = "median", t: int = 1, ref: str | None = None, ref_kind: str = "auto",
                 n_clusters: int = 10, header: bool | None = None) -> dict[str, Any]:
    """Open ``spec`` (``file[:key]``) and ``ref`` if given (as ``dse mi`` does), and return the check report as a dict."""
    from dsecli import open_array, sanity_report

    src = open_array(spec, header=header)
    reference = open_array(ref, header=header) if ref is not None else None
    return sanity_report(src, max_n=max_n, seed=seed, sampler=sampler, flatten=flatten, bins=bins, sigma=sigma, t=t,
                         reference=reference, ref_kind=ref_kind, n_clusters=n_clusters).to_dict()


@app.command()
def check(
    emb: Annotated[str, typer.Argument(help=INPUT_HELP)],
    ref: Annotated[str | None, typer.Option("--ref", help="Reference Y of dse mi (N rows: labels, scalars or "
                                            "vectors): how it would be read, its classes, and whether EMB and "
                                            "REF look swapped.")] = None,
    bins: Annotated[int, typer.Option("--bins", help="Bins per feature for the binned-entropy saturation check.")] = 2,
    sigma: SigmaOpt = "median",  # as dse entropy: the estimators' default (tests keep the two in step)
    t: TOpt = 1,
    ref_kind: RefKindOpt = "auto",
    n_clusters: NClustersOpt = 10,
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
    """Check EMB before estimating: NaN/Inf, constant columns, duplicate rows, N versus D, precision, the kernel
    bandwidth the estimators would use (--sigma, as dse entropy takes it), whether binned entropy saturates at
    log2 N, and with --ref how the reference would be read (single class, one-row classes, EMB and REF swapped).

    Checks the rows the estimators would use (the same seeded subsample; --max-n 0 checks all).
    Exits 0 when the report was made, whatever it found; the JSON field "ok" is false when it
    found errors or warnings.
    """

    def body() -> None:
        fmt_ = check_format(fmt, as_json=as_json)
        inputs = (emb,) if ref is None else (emb, ref)
        check_output_early(output, inputs=inputs)
        from dsecli.report.tables import findings_table

        report = check_source(emb, max_n=max_n, seed=seed, sampler=sampler, flatten=flatten, bins=bins, sigma=sigma,
                              t=t, ref=ref, ref_kind=ref_kind, n_clusters=n_clusters, header=header)
        emit(report, as_json=as_json, output=output, render=findings_table, inputs=inputs, fmt=fmt_)

    run_command(body, traceback=traceback, quiet=quiet)
