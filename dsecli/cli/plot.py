"""``dse plot``: batch results (JSON Lines) as curves versus checkpoint, saved as PNG, PDF or SVG."""

from __future__ import annotations

from typing import Annotated

import typer

from dsecli.cli._app import JsonOpt, QuietOpt, TracebackOpt, app, emit, run_command


@app.command()
def plot(
    results: Annotated[str, typer.Argument(help="Results of dse batch (JSON Lines, one result per line).")],
    out: Annotated[str, typer.Option("--output", "-o", help="Figure to write (atomically): .png, .pdf or .svg.")],
    method: Annotated[str | None, typer.Option("--method", "-m", help="Only these methods (comma-separated).")] = None,
    title: Annotated[str | None, typer.Option("--title", help="Figure title (default: the results file name).")] = None,
    xscale: Annotated[str, typer.Option("--xscale", help="auto (log when checkpoints grow geometrically), linear "
                                        "or log.")] = "auto",
    as_json: JsonOpt = False,
    quiet: QuietOpt = False,
    traceback: TracebackOpt = False,
) -> None:
    """Plot DSE/DSMI and baselines versus checkpoint: one line per method and dataset pattern.

    The checkpoint is read from the dataset path or file name (epoch_012, step-500, ckpt3, ...):
    /true/epoch_003/embeddings is point 3 of the series /true/epoch_*/embeddings. Without a
    number there, the row's checkpoint or index field, else the row order, is used. Rows with an
    uncertainty (a bootstrap interval, the approximate solver's error bound, a spread) get a
    shaded band; a ceiling shared by every row of a panel (e.g. log2 N) is a dotted line.
    """

    def body() -> None:
        from dsecli import ENTROPY_METHODS, MI_METHODS, parse_methods
        from dsecli.report.plots import check_plot_path, plot_batch_results, require_matplotlib
        from dsecli.report.tables import series_table

        check_plot_path(out, name="--output", inputs=(results,))

        require_matplotlib()
        # "all" here is every method there is: plot filters rows, it runs nothing
        methods = parse_methods(method, [*ENTROPY_METHODS, *MI_METHODS]) if method else None
        summary = plot_batch_results(results, out, title=title, methods=methods, xscale=xscale)
        emit(summary, as_json=as_json, output=None, render=series_table)

    run_command(body, traceback=traceback, quiet=quiet)
