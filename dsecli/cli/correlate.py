"""``dse correlate``: each series of a results file against outcomes (accuracy, loss) from a table."""

from __future__ import annotations

from typing import Annotated

import typer

from dsecli.cli._app import FormatOpt, JsonOpt, OutputOpt, QuietOpt, SeedOpt, TracebackOpt, app, emit, run_command


@app.command()
def correlate(
    results: Annotated[str, typer.Argument(help="Results of dse batch (JSON Lines), dse entropy/mi --format jsonl, "
                                           "or the training monitor.")],
    outcomes: Annotated[str, typer.Argument(help="Outcomes table (CSV, TSV, JSON or JSON Lines): a key column and "
                                            "numeric columns (accuracy, loss).")],
    on: Annotated[str, typer.Option("--on", help="The key column: checkpoint numbers (matched to the epoch/step in "
                                    "the rows' names), or input labels, datasets or file names.")] = "input",
    outcome: Annotated[list[str] | None, typer.Option("--outcome", help="An outcome column (repeat for several); "
                                                      "default: every numeric column besides the key.",
                                                      show_default=False)] = None,
    method: Annotated[str | None, typer.Option("--method", "-m", help="Only these methods (comma-separated).")] = None,
    bootstrap: Annotated[int, typer.Option("--bootstrap", help="B: percentile bootstrap intervals from B resamples "
                                           "of the pairs; 0: none.", min=0)] = 2000,
    confidence: Annotated[float, typer.Option("--confidence", help="Level of the intervals, in (0, 1).")] = 0.95,
    seed: SeedOpt = 0,
    fmt: FormatOpt = None,
    as_json: JsonOpt = False,
    output: OutputOpt = None,
    quiet: QuietOpt = False,
    traceback: TracebackOpt = False,
) -> None:
    """Spearman's rho and Kendall's tau-b of each series with each outcome, with bootstrap intervals.

    A series is a method with its settings and σ policy (and, for checkpoint keys, one name pattern such
    as /true/epoch_*/embeddings). Keys that are numbers match checkpoints (epoch_004 is 4); others match
    input labels, datasets or file names. Warns when a trend's direction depends on the σ policy, or
    when the rows compared mix σ policies.
    """

    def body() -> None:
        from dsecli import ENTROPY_METHODS, MI_METHODS, correlate, parse_methods
        from dsecli.report.tables import correlation_table

        methods = parse_methods(method, [*ENTROPY_METHODS, *MI_METHODS]) if method else None
        result = correlate(results, outcomes, on=on, outcome_columns=outcome or None, methods=methods,
                           bootstrap=bootstrap, confidence=confidence, seed=seed)
        emit(result.to_dict(), as_json=as_json, output=output, fmt=fmt, render=correlation_table,
             inputs=(results, outcomes))

    run_command(body, traceback=traceback, quiet=quiet)
