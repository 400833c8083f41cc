"""``dse spectrum``: the diffusion spectrum once, DSE at many t, automatic t, cache and plots."""

from __future__ import annotations

import os
from typing import Annotated, Any

import typer

from dsecli import DEFAULT_T, DEFAULT_T_MAX
from dsecli.cli._app import (
    BaseOpt,
    DeviceOpt,
    DropNonfiniteOpt,
    DtypeOpt,
    FlattenOpt,
    FormatOpt,
    JsonOpt,
    MaxNOpt,
    QuietOpt,
    SamplerOpt,
    SeedOpt,
    TracebackOpt,
    app,
    check_output_early,
    emit,
    parse_base,
    run_command,
)
from dsecli.report.help import INPUT_HELP
from dsecli.report.rows import check_format


def _write_output(path: str, report: dict[str, Any], scan: Any, *, inputs: tuple[str, ...]) -> None:
    """JSON report, or the eigenvalues as .npy, or eigenvalues + DSE(t) + report as .npz; by the output policy."""
    import io

    import numpy as np

    from dsecli.report.writing import to_json, write_atomic

    low = path.lower()
    if low.endswith(".npy"):
        buf = io.BytesIO()
        np.save(buf, np.asarray(scan.eigenvalues, dtype=np.float64))
        data: str | bytes = buf.getvalue()
    elif low.endswith(".npz"):
        buf = io.BytesIO()
        slim = {k: v for k, v in report.items() if k not in ("eigenvalues", "curve")}
        np.savez(buf, eigenvalues=np.asarray(scan.eigenvalues, dtype=np.float64),
                 t=np.asarray(scan.t_values, dtype=np.int64), dse=np.asarray(scan.dse_values),
                 curve_t=np.asarray(scan.curve_t, dtype=np.int64), curve_dse=np.asarray(scan.curve_dse),
                 report=np.array(to_json(slim, indent=None)))
        data = buf.getvalue()
    else:
        data = to_json(report) + "\n"
    write_atomic(path, data, name="--output", inputs=inputs)


@app.command()
def spectrum(
    emb: Annotated[str, typer.Argument(help=INPUT_HELP)],
    t: Annotated[str, typer.Option("--t", "-t", help="Diffusion times to report: 1,2,5,10, a range 1:50, or 1:50:5 "
                                   "(ranges include their end).")] = DEFAULT_T,
    t_max: Annotated[int, typer.Option("--t-max", min=3, help="The automatic (knee) t is searched on 1..t-max (log-t axis).")] = DEFAULT_T_MAX,
    sigma: Annotated[str, typer.Option("--sigma", help="Kernel bandwidth: median (default; the "
                                       "median rule, scale-invariant), sqrt-d, or a number in data units (10 is the "
                                       "paper's setting).")] = "median",
    max_n: MaxNOpt = 10_000,
    seed: SeedOpt = 0,
    sampler: SamplerOpt = "numpy",
    device: DeviceOpt = "auto",
    dtype: DtypeOpt = "float64",
    base: BaseOpt = "2",
    cache_dir: Annotated[str | None, typer.Option("--cache-dir", help="Spectrum cache directory (default "
                                                  "$DSECLI_CACHE_DIR, else $XDG_CACHE_HOME/dsecli or "
                                                  "~/.cache/dsecli).")] = None,
    no_cache: Annotated[bool, typer.Option("--no-cache", help="Neither read nor write the spectrum cache.")] = False,
    plot: Annotated[str | None, typer.Option("--plot", help="Write a figure (.png, .pdf or .svg): the spectrum (log scale) and DSE versus t.")] = None,
    plot_t: Annotated[str | None, typer.Option("--plot-t", help="Write a figure (.png, .pdf or .svg) of DSE versus t alone.")] = None,
    flatten: FlattenOpt = False,
    drop_nonfinite: DropNonfiniteOpt = False,
    as_json: JsonOpt = False,
    fmt: FormatOpt = None,
    output: Annotated[str | None, typer.Option("--output", "-o", help="Write the report atomically: .json (report "
                                               "with eigenvalues), .npy (eigenvalues) or .npz (eigenvalues, t, DSE, "
                                               "report).")] = None,
    quiet: QuietOpt = False,
    traceback: TracebackOpt = False,
) -> None:
    """Eigenvalues of the diffusion operator of EMB (computed once, cached), DSE at many t, and automatic t.

    Automatic t: "knee" is the Kneedle knee of DSE(t) against log t on t = 1..t-max (where
    DSE(t) reaches its plateau); "rule of thumb" is the smallest t at which at most ~1% of the
    eigenvalues stay above 0.01 after powering (the published implementation's advice).
    """

    def body() -> None:
        fmt_ = check_format(fmt, as_json=as_json)
        from dsecli.report.writing import check_distinct_outputs

        inputs = (emb,)
        check_output_early(output, inputs=inputs)
        if plot is not None or plot_t is not None:
            from dsecli.report.plots import check_plot_path, require_matplotlib

            for name, path in (("--plot", plot), ("--plot-t", plot_t)):
                if path is not None:
                    check_plot_path(path, name=name, inputs=inputs)
            require_matplotlib()
        check_distinct_outputs({"--output": output, "--plot": plot, "--plot-t": plot_t})
        from dsecli import __version__, open_array, spectrum_scan
        from dsecli.report.tables import spectrum_table

        src = open_array(emb)
        cache: bool | str = False if no_cache else (os.path.expanduser(cache_dir) if cache_dir else True)
        from dsecli.cli.core import progress

        with progress(quiet):
            scan = spectrum_scan(
                src, t=t, t_max=t_max, sigma=sigma, max_n=max_n, seed=seed, sampler=sampler, device=device,
                dtype=dtype, base=parse_base(base), flatten=flatten, drop_nonfinite=drop_nonfinite, cache=cache,
            )
        report = {"dsecli_version": __version__, "command": "spectrum", "inputs": {"embeddings": src.label},
                  **scan.to_dict()}
        if plot is not None or plot_t is not None:
            from dsecli.report.plots import plot_dse_versus_t, plot_spectrum

            key = getattr(src, "key", None)
            label = os.path.basename(getattr(src, "path", src.label)) + (f":{key}" if key else "")
            if plot is not None:
                plot_spectrum(report, plot, label=label, inputs=inputs)
            if plot_t is not None:
                plot_dse_versus_t(report, plot_t, label=label, inputs=inputs)
        if output is not None:
            _write_output(output, report, scan, inputs=inputs)
        # --output was written above (.json, .npy or .npz): standard output only here
        emit(report, as_json=as_json, output=None, render=spectrum_table, fmt=fmt_, soft_wrap=True)

    run_command(body, traceback=traceback, quiet=quiet)
