"""Rendering reports for people: the rich tables of every command (rich is imported only in :mod:`dsecli.report`).

A *report* is the JSON-safe dict a command prints with ``--json``: for ``entropy`` and ``mi`` the
one built by :func:`make_report` (the command, the inputs, the rows used, and one entry per
method, each a result's ``to_dict()``); for the other commands their library result's
``to_dict()``. Each renderer takes that dict and returns something a rich console prints.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from dsecli.results import ERROR_KEYS, json_safe
from dsecli.version import __version__

__all__ = ["make_report", "format_value", "format_params", "format_uncertainty", "format_ceiling",
           "report_table", "arrays_table", "findings_table", "info_view", "validation_table", "spectrum_table",
           "batch_table", "series_table", "correlation_table"]

# parameters shown in the table's "parameters" column; everything else stays in the JSON
_SHOWN = ("sigma", "sigma_rule", "t", "bins", "k", "metric", "kernel", "solver", "n_classes", "classes_from",
          "repetitions", "device", "dtype", "neighbor_search", "epochs_run", "hidden_units")


def make_report(command: str, results: Sequence[Any], *, inputs: dict[str, Any], include_eigenvalues: bool = False) -> dict[str, Any]:
    """The JSON-safe report of one ``dse`` command: inputs, rows used and one entry per method."""
    first = results[0] if results else None
    return json_safe({
        "dsecli_version": __version__,
        "command": command,
        "inputs": inputs,
        "n_used": first.n_used if first else None,
        "n_total": first.n_total if first else None,
        "subsampled": first.subsampled if first else None,
        "results": [r.to_dict(include_eigenvalues=include_eigenvalues) for r in results],
    })


def format_value(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.6g}" if abs(value) >= 1e-4 or value == 0 else f"{value:.3e}"


def format_params(params: dict[str, Any]) -> str:
    out = []
    for key in _SHOWN:
        if key in params and params[key] is not None:
            v = params[key]
            if key == "sigma_rule" and v == "given":
                continue
            out.append(f"{key}={format_value(v) if isinstance(v, float) else v}")
    return " ".join(out)


def format_uncertainty(extra: Any) -> str:
    """``extra``'s bootstrap interval and permutation p-value in one short cell ("" when neither is there).

    E.g. ``"95% [1.62, 1.71]; p=0.0099 (P=100)"``.
    """
    if not isinstance(extra, dict):
        return ""
    out = []
    b = extra.get("bootstrap")
    if isinstance(b, dict) and b.get("low") is not None:
        out.append(f"{b['confidence'] * 100:g}% [{format_value(b['low'])}, {format_value(b['high'])}]")
    p = extra.get("permutation")
    if isinstance(p, dict) and p.get("p_value") is not None:
        out.append(f"p={p['p_value']:.2g} (P={p['P']})")
    return "; ".join(out)


def format_ceiling(extra: dict[str, Any]) -> str:
    """The ceiling cell: ``"10.97 (36%)"``, ``"3.322 (99%) saturated"``, ``"units-dependent"`` or ``""``."""
    if extra.get("depends_on_units"):
        return "units-dependent"
    ceiling = extra.get("ceiling")
    if ceiling is None:
        return ""
    frac = extra.get("fraction_of_ceiling")
    cell = format_value(ceiling) + (f" ({frac:.0%})" if frac is not None else "")
    return cell + " saturated" if extra.get("saturated") else cell


def report_table(report: dict[str, Any]) -> Any:
    """A rich Table: one row per method with value, units, parameters and seconds."""
    from rich.table import Table

    title = {"entropy": "Entropy", "mi": "Mutual information"}.get(report["command"], report["command"])
    src = " ; ".join(f"{k}: {v}" for k, v in report["inputs"].items() if v is not None)
    table = Table(title=f"{title} — {src}" if src else title, title_justify="left")
    table.add_column("method", style="bold")
    table.add_column("value", justify="right")
    table.add_column("units")
    table.add_column("ceiling (%)", justify="right")
    table.add_column("± error", justify="right")
    intervals = [format_uncertainty(r.get("extra")) for r in report["results"]]
    if any(intervals):
        table.add_column("interval / p", justify="right")
    table.add_column("parameters", overflow="fold")
    table.add_column("seconds", justify="right")
    for r, interval in zip(report["results"], intervals):
        extra = r.get("extra") or {}
        # the estimator's own uncertainty: the approximate solver's error bound, MINE's spread
        err = next((extra[k] for k in ERROR_KEYS if isinstance(extra, dict) and extra.get(k) is not None), None)
        table.add_row(
            r["method"], format_value(r["value"]), r["units"], format_ceiling(extra if isinstance(extra, dict) else {}),
            "" if err is None else format_value(err),
            *([interval] if any(intervals) else []),
            format_params(r.get("params") or {}), f"{r['elapsed_s']:.3g}" if r.get("elapsed_s") is not None else "",
        )
    n_used, n_total = report.get("n_used"), report.get("n_total")
    if n_used is not None:
        note = f"N used {n_used:,} of {n_total:,} total"
        if report.get("subsampled"):
            params = report["results"][0].get("params") or {}
            max_n = params.get("max_n")
            if max_n and n_total > max_n:
                note += f" (uniform subsample without replacement, seed {params.get('seed')}; --max-n 0 uses all rows)"
            else:
                note += " (rows with NaN/Inf dropped)"
        table.caption = note
        table.caption_justify = "left"
    return table


def arrays_table(path: str, arrays: list[dict[str, Any]]) -> Any:
    """A rich Table listing the arrays/datasets of a file (``dse info``)."""
    from rich.table import Table

    table = Table(title=path, title_justify="left")
    table.add_column("key / dataset")
    table.add_column("shape", justify="right")
    table.add_column("dtype")
    for a in arrays:
        table.add_row(str(a["key"]) if a["key"] is not None else "(array)", " x ".join(map(str, a["shape"])) or "scalar",
                      a["dtype"])
    return table


# ------------------------------------------------------------------------------------------ dse check

_LEVEL_STYLE = {"error": "bold red", "warning": "yellow", "note": "dim"}


def findings_table(report: dict[str, Any]) -> Any:
    """A rich Table of one check report (``SanityReport.to_dict()``, ``dse check``)."""
    from rich.table import Table
    from rich.text import Text

    shape = " x ".join(map(str, report["shape"]))
    title = Text(f"Check — {report['source'] or 'array'} ({shape}, {report['dtype']})")
    table = Table(title=title, title_justify="left")
    table.add_column("level")
    table.add_column("check")
    table.add_column("finding", overflow="fold")
    for f in report["findings"]:
        table.add_row(Text(f["level"], style=_LEVEL_STYLE.get(f["level"], "")), f["code"], Text(f["message"]))
    if not report["findings"]:
        table.add_row("ok", "-", "nothing to report")
    stats = report.get("stats") or {}
    rows = f"{report['n_used']:,} of {report['n_total']:,} rows checked" if report.get("subsampled") else (
        f"{report['n_used']:,} rows checked")
    parts = [rows]
    if "duplicate_rows" in stats:
        parts.append(f"{stats['distinct_rows']:,} distinct")
    if stats.get("binned_cells") is not None:
        parts.append(f"{stats['binned_cells']:,} cells at {stats['binned_bins']} bins")
    sigma_median = (stats.get("kernel") or {}).get("sigma_median")
    if sigma_median:
        parts.append(f"median-rule sigma {sigma_median:.4g}")
    table.caption = Text("; ".join(parts) + ("" if report["ok"] else " — see the warnings above"))
    table.caption_justify = "left"
    return table


def info_view(report: dict[str, Any]) -> Any:
    """``dse info``: the arrays of a file, then (``--check``) each array's check report or why it was skipped."""
    from rich.console import Group
    from rich.text import Text

    parts: list[Any] = [arrays_table(report["file"], report["arrays"])]
    for c in report.get("checks", []):
        if "report" in c:
            parts.append(findings_table(c["report"]))
        else:
            parts.append(Text(f"{c['key']}: skipped ({c['skipped']})"))
    return Group(*parts)


# --------------------------------------------------------------------------------------- dse validate


def validation_table(report: dict[str, Any]) -> Any:
    """A rich Table of ``dse validate``: one row per case with expected, got, tolerance and the verdict."""
    from rich import box
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    fmt = format_value
    opts = report["options"]
    title = (f"dse validate ({report['mode']}) — device {opts['device']}, dtype {opts['dtype']}, "
             f"solver {opts['solver']}")
    # a light box keeps the seven-column table inside 80 columns without wrapping numbers
    table = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD)
    table.add_column("case", style="bold", no_wrap=True)
    table.add_column("expected", justify="right", no_wrap=True)
    table.add_column("got", justify="right", no_wrap=True)
    table.add_column("tolerance", justify="right", no_wrap=True)
    table.add_column("pass", no_wrap=True)
    table.add_column("s", justify="right", no_wrap=True)
    for c in report["cases"]:
        expected = f">= {fmt(c['expected'])}" if c["comparison"] == "at_least" else fmt(c["expected"])
        tolerance = "" if c["comparison"] == "at_least" else f"± {c['tolerance']:.2g}"
        table.add_row(c["name"], expected, fmt(c["got"]), tolerance,
                      "PASS" if c["passed"] else "FAIL", f"{c['elapsed_s']:.2f}")
    summary = f"{report['n_passed']} of {report['n_cases']} cases passed in {report['elapsed_s']:.1f} s"
    if report["skipped_methods"]:
        summary += f"; not run (estimator not registered): {', '.join(report['skipped_methods'])}"
    table.caption = summary
    table.caption_justify = "left"
    notes = []
    for c in report["cases"]:
        if not c["passed"]:
            why = c["error"] or (f"deviation {fmt(c['deviation'])} exceeds ± {fmt(c['tolerance'])} ({c['tolerance_note']})"
                                 if c["comparison"] == "approx" else f"{fmt(c['got'])} is below {fmt(c['expected'])}")
            notes.append(Text(f"FAIL {c['name']}: {why}"))
    return Group(table, *notes) if notes else table


# --------------------------------------------------------------------------------------- dse spectrum


def spectrum_table(report: dict[str, Any]) -> Any:
    """``dse spectrum``: a rich Table of DSE at each requested t and at the automatic t, then the provenance lines."""
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

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
    return Group(table, Text("\n".join(lines)))


# ------------------------------------------------------------------------------------ dse batch, plot


def batch_table(summary: dict[str, Any], rows: list[dict[str, Any]]) -> Any:
    """``dse batch``: one line per input, one column per method (values with their units)."""
    from rich.table import Table

    methods = list(dict.fromkeys(r["method"] for r in rows))
    units = {m: next(r["units"] for r in rows if r["method"] == m) for m in methods}
    files = {r["file"] for r in rows}
    one_file = len(files) == 1 and all(r.get("dataset") for r in rows)
    table = Table(title=f"dse batch — {files.pop()}" if one_file else "dse batch", title_justify="left")
    table.add_column("#", justify="right")
    table.add_column("dataset" if one_file else "input", overflow="fold")
    for m in methods:
        table.add_column(f"{m} ({units[m]})", justify="right")
    by_input: dict[str, dict[str, str]] = {}
    order: dict[str, int] = {}
    for r in rows:
        name = r["dataset"] if one_file else r["input"]
        # the value, then its bootstrap interval / permutation p-value when the batch computed them
        shown = " ".join(s for s in (format_value(r["value"]), format_uncertainty(r.get("extra"))) if s)
        by_input.setdefault(name, {})[r["method"]] = shown
        order.setdefault(name, r.get("index", len(order)))
    for name in sorted(by_input, key=lambda n: order[n]):
        vals = by_input[name]
        table.add_row(str(order[name]), name, *(vals.get(m, "") for m in methods))
    replaced = (f", {summary['rows_replaced']} recomputed in place of stale or unusable stored rows"
                if summary.get("rows_replaced") else "")
    caption = (f"{summary['rows']} rows in {summary['output']} ({summary['rows_computed']} new, "
               f"{summary['rows_skipped']} already there{replaced}), {summary['elapsed_s']:.1f} s")
    if summary["failures"]:
        caption += f"; {len(summary['failures'])} input(s) failed"
    policies = _sigma_policies(rows)
    if policies:
        caption += f"; σ policy: {policies}"
    table.caption = caption
    table.caption_justify = "left"
    return table


def _sigma_policies(rows: list[dict[str, Any]]) -> str:
    """The σ policies of ``rows`` (:func:`dsecli.batch.series.sigma_policy`), with the methods of each
    where they differ between methods: ``"median per input"``, ``"dse: fixed σ = 10; dsmi: median per input"``."""
    from dsecli.batch.series import sigma_policy

    by_method: dict[str, list[str]] = {}
    for r in rows:
        policy = sigma_policy(r.get("params"))
        if policy is not None and policy not in by_method.setdefault(r["method"], []):
            by_method[r["method"]].append(policy)
    distinct = list(dict.fromkeys(p for ps in by_method.values() for p in ps))
    if len(distinct) <= 1:
        return distinct[0] if distinct else ""
    return "; ".join(f"{m}: {', '.join(ps)}" for m, ps in by_method.items() if ps)


def series_table(summary: dict[str, Any]) -> Any:
    """``dse plot``: the series drawn (quantity, label, σ policy, number of points) under the figure's name."""
    from rich.table import Table

    table = Table(title=f"wrote {summary['plot']}", title_justify="left")
    table.add_column("quantity")
    table.add_column("series")
    policies = any(s.get("sigma_policy") for s in summary["series"])
    if policies:
        table.add_column("σ policy")
    table.add_column("points", justify="right")
    for s in summary["series"]:
        table.add_row(s["quantity"], s["label"], *([s.get("sigma_policy") or ""] if policies else []), str(s["points"]))
    return table


# ---------------------------------------------------------------------------------------- dse correlate


def correlation_table(report: dict[str, Any]) -> Any:
    """``dse correlate``: one line per series and outcome: pairs, Spearman's rho and Kendall's tau-b with their
    intervals and p-values (the report of :meth:`dsecli.batch.correlate.Correlations.to_dict`)."""
    from rich.table import Table

    level = f"{report['confidence'] * 100:g}%"
    boot = f"{level} percentile bootstrap, B = {report['bootstrap']}, seed {report['seed']}" if report["bootstrap"] \
        else "no intervals (bootstrap 0)"
    table = Table(title=f"dse correlate — {report['results']} with {report['outcomes']} on {report['on']!r} "
                        f"(matched by {report['matched_by']})", title_justify="left")
    table.add_column("series", overflow="fold")
    table.add_column("σ policy", overflow="fold")
    table.add_column("outcome")
    table.add_column("n", justify="right")
    table.add_column(f"Spearman ρ [{level}]", justify="right")
    table.add_column("p", justify="right")
    table.add_column(f"Kendall τ-b [{level}]", justify="right")
    table.add_column("p", justify="right")

    def cell(value: Any, ci: Any) -> str:
        if value is None:
            return ""
        interval = f" [{ci[0]:.2f}, {ci[1]:.2f}]" if ci and ci[0] is not None else ""
        return f"{value:.3f}{interval}"

    for r in report["rows"]:
        if r["spearman"] is None:
            table.add_row(r["series"], r["sigma_policy"] or "", r["outcome"], str(r["n"]), "", "", "", "")
            continue
        table.add_row(r["series"], r["sigma_policy"] or "", r["outcome"], str(r["n"]),
                      cell(r["spearman"], r["spearman_ci"]), f"{r['spearman_p']:.2g}",
                      cell(r["kendall"], r["kendall_ci"]), f"{r['kendall_p']:.2g}")
    notes = [boot]
    skipped = [r for r in report["rows"] if r["spearman"] is None]
    if skipped:
        notes.append(f"{len(skipped)} without a correlation (first: {skipped[0]['note']})")
    if report["unmatched_keys"]:
        notes.append(f"{len(report['unmatched_keys'])} keys matched no row")
    table.caption = "; ".join(notes)
    table.caption_justify = "left"
    return table
