"""``dse spectrum``: the diffusion spectrum once, DSE at many t, automatic t, cache and plots."""

from __future__ import annotations

import os
from typing import Annotated, Any

import typer

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
    parse_base,
    run_command,
)
from dsecli.report.rows import check_format

# kept in step with dsecli.measures.diffusion_time.DEFAULT_T / DEFAULT_T_MAX (not imported: the module pulls in numpy)
_DEFAULT_T = "1:10,20,50,100"
_DEFAULT_T_MAX = 1000


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


def spectrum_table(report: dict[str, Any]) -> Any:
    """A rich Table of DSE at each requested t and at the automatic t, then the provenance lines."""
    from rich.table import Table

    from dsecli.report.tables import format_value

    units = report["units"]
    auto = report.get("auto_t") or {}
    marks: dict[int, list[str]] = {}
    for key, label in (("knee", "knee (auto)"), ("rule_of_thumb", "rule of thumb")):
        t = (auto.get(key) or {}).get("t")
        if t is not None:
            marks.setdefault(int(t), []).append(label)
    values = {int(d["t"]): d["value"] for d in report["dse"]}
    for key in ("knee", "rule_of_thumb"):
        c = auto.get(key) or {}
        if c.get("t") is not None:
            values.setdefault(int(c["t"]), c["value"])
    table = Table(title="DSE versus diffusion time", title_justify="left")
    table.add_column("t", justify="right")
    table.add_column(f"DSE ({units})", justify="right")
    table.add_column("automatic t")
    for t in sorted(values):
        table.add_row(str(t), format_value(values[t]), ", ".join(marks.get(t, [])))
    p = report.get("params") or {}
    cache = report.get("cache") or {}
    summ = report.get("spectrum_summary") or {}
    lines = [f"input: {report['inputs']['embeddings']}", f"N used {report['n_used']:,} of {report['n_total']:,}"
             + (f" (subsample, seed {p.get('seed')})" if report.get("subsampled") else "")
             + f"; sigma = {format_value(p.get('sigma'))} ({p.get('sigma_rule')}); {p.get('dtype')} on {p.get('device')}"]
    lines.append(f"eigenvalues: {summ.get('n')} (|λ| > 0.5: {summ.get('above_0.5')}, > 0.1: {summ.get('above_0.1')}, "
                 f"> 0.01: {summ.get('above_0.01')}); rows sha256 {report['rows_sha256'][:16]}…")
    if cache.get("enabled"):
        where = cache.get("file") or f"{cache.get('dir')} (not written)"
        lines.append(f"cache: {'hit' if cache.get('hit') else 'miss'}, {where}")
    else:
        lines.append("cache: off")
    for key, label in (("rule_of_thumb", "rule of thumb"), ("knee", "knee")):
        c = auto.get(key) or {}
        if c.get("t") is None:
            reason = (c.get("detail") or {}).get("reason", "not applicable")
            lines.append(f"{label}: none ({reason})")
    from rich.console import Group
    from rich.text import Text

    return Group(table, Text("\n".join(lines)))


@app.command()
def spectrum(
    emb: Annotated[str, typer.Argument(help="Embeddings: file.npy, file.npz[:key], file.h5[:/dataset], .pt, .csv, or -.")],
    t: Annotated[str, typer.Option("--t", "-t", help="Diffusion times to report: 1,2,5,10, a range 1:50, or 1:50:5 "
                                   "(ranges include their end).")] = _DEFAULT_T,
    t_max: Annotated[int, typer.Option("--t-max", min=3, help="The automatic (knee) t is searched on 1..t-max (log-t axis).")] = _DEFAULT_T_MAX,
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
        from dsecli.cli._app import stdout_console
        from dsecli.report.writing import to_json

        src = open_array(emb)
        cache: bool | str = False if no_cache else (os.path.expanduser(cache_dir) if cache_dir else True)
        from dsecli.cli.core import spectrum_progress

        with spectrum_progress(src, quiet=quiet, max_n=max_n, device=device, dtype=dtype):
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
        if fmt_ == "json":
            import sys

            sys.stdout.write(to_json(report, indent=None) + "\n")
            sys.stdout.flush()
        elif fmt_ != "table":
            import sys

            from dsecli.report.rows import report_rows, rows_text

            sys.stdout.write(rows_text(report_rows(report), fmt_))
            sys.stdout.flush()
        else:
            stdout_console().print(spectrum_table(report), soft_wrap=True)

    run_command(body, traceback=traceback, quiet=quiet)
