"""Rendering results for people (rich tables) and scripts (JSON); the only module importing rich.

A *report* is the JSON-safe dict built by :func:`make_report`: the command, the inputs, the rows
used, and one entry per method (each a result's ``to_dict()``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from dsecli.results import json_safe
from dsecli.version import __version__

__all__ = ["make_report", "format_value", "format_params", "format_uncertainty", "format_ceiling", "report_table",
           "arrays_table"]

# parameters shown in the table's "parameters" column; everything else stays in the JSON
_SHOWN = ("sigma", "sigma_rule", "t", "bins", "k", "metric", "kernel", "solver", "n_classes", "classes_from",
          "repetitions", "device", "dtype", "neighbor_search", "epochs_run", "hidden_units")


_ERROR_KEYS = ("error_estimate_bits", "error_estimate", "std", "spread", "repetition_stderr")


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
        err = next((extra[k] for k in _ERROR_KEYS if isinstance(extra, dict) and extra.get(k) is not None), None)
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
