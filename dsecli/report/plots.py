"""Figures (PNG, PDF or SVG by extension): a diffusion spectrum, DSE versus t, and batch results versus checkpoint.

matplotlib is an optional dependency (``pip install 'dsecli[plot]'``), imported only inside
the plotting functions. Figures are drawn with matplotlib's object-oriented API on an Agg
canvas (``matplotlib.figure.Figure`` + ``backend_agg.FigureCanvasAgg``): no display is needed,
and the global pyplot backend and state of a host program (a notebook) are left alone.
Every figure is rendered in memory and written by the output policy (:func:`dsecli.report.writing.write_atomic`:
atomically, never over an input, directly to a device or FIFO).

Batch results (``dse batch`` JSON Lines) are drawn one line per series, as
:func:`dsecli.batch.series.batch_series` groups them: the method, the name pattern (``/true/epoch_003/embeddings``
is series ``/true/epoch_*/embeddings`` at x = 3), the reference, the σ policy and t, bins, k. Series whose
trend direction depends on the σ policy, and comparisons across inputs that mix σ policies, are
warned about (:func:`dsecli.batch.series.warn_sigma_policies`).
"""

from __future__ import annotations

import io
import math
import os
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from dsecli.batch.series import Series, batch_series, row_ceiling, rows_of_methods, warn_sigma_policies
from dsecli.errors import CollectWarnings, DseError, ExitStatus, InputError, check_choice

__all__ = [
    "PlotDependencyError",
    "require_matplotlib",
    "PLOT_FORMATS",
    "plot_format",
    "check_plot_path",
    "plot_spectrum",
    "plot_dse_versus_t",
    "plot_batch_results",
    "batch_figure",
]


class PlotDependencyError(DseError):
    """matplotlib is not installed."""

    exit_status = ExitStatus.USAGE_OR_INPUT


def _matplotlib() -> tuple[Any, Any]:
    """(Figure class, FigureCanvasAgg class), or a one-line error when matplotlib is missing."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        raise PlotDependencyError(
            "plotting needs matplotlib, which is not installed; install it with: pip install 'dsecli[plot]'"
        ) from None
    return Figure, FigureCanvasAgg


def require_matplotlib() -> None:
    """Raise :class:`PlotDependencyError` now if matplotlib is missing (before a long computation)."""
    _matplotlib()


def _new_figure(width: float, height: float) -> Any:
    figure_cls, canvas_cls = _matplotlib()
    fig = figure_cls(figsize=(width, height), dpi=110, layout="constrained")
    canvas_cls(fig)
    return fig


# file formats by extension; a device or FIFO (any name) gets PNG
PLOT_FORMATS = {".png": "png", ".pdf": "pdf", ".svg": "svg"}


def plot_format(path: str | os.PathLike[str]) -> str:
    """``"png"``, ``"pdf"`` or ``"svg"`` by the extension of ``path`` (PNG for any other name).

    Returns
    -------
    str
        The matplotlib format name.
    """
    return PLOT_FORMATS.get(os.path.splitext(os.fspath(path))[1].lower(), "png")


def check_plot_path(path: str | os.PathLike[str], *, name: str = "plot", inputs: Sequence[str | None] = ()) -> str:
    """Validate a figure output before drawing: the output policy (:func:`dsecli.report.writing.output_target`),
    and a ``.png``, ``.pdf`` or ``.svg`` name for a file (a device or FIFO takes any name and gets PNG).

    Returns
    -------
    str
        The path.
    """
    from dsecli.report.writing import output_target

    target = output_target(path, name=name, inputs=inputs)
    if not target.direct and os.path.splitext(target.path)[1].lower() not in PLOT_FORMATS:
        raise InputError(f"{target.path}: plots are written as PNG, PDF or SVG; give a file name ending in "
                         ".png, .pdf or .svg")
    return target.path


# no creation date in PDF/SVG files: the same results give the same bytes
_METADATA = {"png": {"Software": "dsecli"}, "pdf": {"Creator": "dsecli", "Producer": None, "CreationDate": None},
             "svg": {"Creator": "dsecli", "Date": None}}


def _save(fig: Any, path: str | os.PathLike[str], *, inputs: Sequence[str | None] = ()) -> str:
    from dsecli.report.writing import write_atomic

    path = check_plot_path(path, inputs=inputs)
    fmt = plot_format(path)
    buf = io.BytesIO()
    from matplotlib import rc_context

    # fonts embedded as TrueType (PDF) and text kept as text (SVG): editable, and what journals accept
    with rc_context({"pdf.fonttype": 42, "svg.fonttype": "none"}):
        fig.savefig(buf, format=fmt, metadata=_METADATA[fmt])
    write_atomic(path, buf.getvalue(), name="plot", inputs=inputs)
    return path


# --------------------------------------------------------------------------------- spectrum and DSE(t)

_RULE_STYLE = {"knee": ("tab:red", "--"), "rule_of_thumb": ("tab:green", ":")}
_RULE_LABEL = {"knee": "knee", "rule_of_thumb": "rule of thumb"}


def _scan_dict(scan: Any) -> dict[str, Any]:
    return scan if isinstance(scan, dict) else scan.to_dict(include_eigenvalues=True, include_curve=True)


def _title(report: dict[str, Any], label: str | None) -> str:
    p = report.get("params") or {}
    parts = [label] if label else []
    n = f"N = {report['n_used']:,}" + (f" of {report['n_total']:,}" if report.get("subsampled") else "")
    parts.append(n)
    if p.get("sigma") is not None:
        rule = p.get("sigma_rule")
        parts.append(f"σ = {p['sigma']:.4g}" + (f" ({rule})" if rule and rule != "given" else ""))
    return ", ".join(parts)


def _draw_spectrum(ax: Any, report: dict[str, Any]) -> None:
    lam = np.asarray(report["eigenvalues"], dtype=np.float64)
    mod = np.sort(np.abs(lam))[::-1]
    rank = np.arange(1, mod.size + 1)
    positive = mod > 0
    ax.plot(rank[positive], mod[positive], color="tab:blue", lw=1.8, label=r"$|\lambda_i|$ (t = 1)")
    auto = report.get("auto_t") or {}
    floor = 1e-12
    for key, (color, style) in _RULE_STYLE.items():
        t = (auto.get(key) or {}).get("t")
        if t and t > 1:
            with np.errstate(divide="ignore", under="ignore"):
                powered = np.exp(t * np.log(np.where(positive, mod, 1.0)))
            keep = positive & (powered > floor)
            ax.plot(rank[keep], powered[keep], color=color, ls=style, lw=1.5,
                    label=rf"$|\lambda_i|^t$, t = {t} ({_RULE_LABEL[key]})")
    ax.axhline(0.01, color="0.4", lw=0.8, ls="-.", label="0.01")
    ax.set_yscale("log")
    ax.set_ylim(bottom=max(floor, float(mod[positive].min()) * 0.5) if positive.any() else floor, top=1.5)
    ax.set_xlabel(r"eigenvalue rank $i$ (by decreasing $|\lambda|$)")
    ax.set_ylabel(r"$|\lambda_i|$ of the diffusion operator (dimensionless)")
    ax.set_title("Diffusion spectrum")
    ax.grid(True, which="major", alpha=0.35)
    ax.legend(fontsize=8, loc="upper right")


def _draw_dse_t(ax: Any, report: dict[str, Any]) -> None:
    curve = report.get("curve") or {}
    ts = np.asarray(curve.get("t") or [d["t"] for d in report["dse"]], dtype=np.float64)
    h = np.asarray(curve.get("value") or [d["value"] for d in report["dse"]], dtype=np.float64)
    units = report.get("units", "bits")
    ax.plot(ts, h, color="tab:blue", lw=1.8, label="DSE(t)")
    shown = report.get("dse") or []
    if shown:
        ax.plot([d["t"] for d in shown], [d["value"] for d in shown], "o", color="tab:blue", ms=4,
                label="requested t")
    for key, (color, style) in _RULE_STYLE.items():
        choice = (report.get("auto_t") or {}).get(key) or {}
        if choice.get("t") is not None:
            ax.axvline(choice["t"], color=color, ls=style, lw=1.5,
                       label=f"{_RULE_LABEL[key]}: t = {choice['t']}, DSE = {choice['value']:.3f} {units}")
    n = report.get("n_used")
    if n and report.get("base") == 2:
        ax.axhline(math.log2(n), color="0.6", lw=0.8, ls="-.", label=f"log2 N = {math.log2(n):.2f}")
    ax.set_xscale("log")
    ax.set_xlabel("diffusion time t (steps, log scale)")
    ax.set_ylabel(f"DSE ({units})")
    ax.set_title("DSE versus diffusion time")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8, loc="best")


def plot_spectrum(scan: Any, path: str | os.PathLike[str], *, label: str | None = None,
                  inputs: Sequence[str | None] = ()) -> str:
    """Two panels: the sorted |eigenvalues| on a log scale (with |λ|^t at the automatic t) and DSE(t).

    ``scan`` is a :class:`dsecli.measures.spectrum_scan.SpectrumScan` or its ``to_dict()``; ``inputs``
    are files ``path`` must not be. Returns the path written.
    """
    report = _scan_dict(scan)
    fig = _new_figure(12.0, 4.6)
    ax1, ax2 = fig.subplots(1, 2)
    _draw_spectrum(ax1, report)
    _draw_dse_t(ax2, report)
    fig.suptitle(_title(report, label))
    return _save(fig, path, inputs=inputs)


def plot_dse_versus_t(scan: Any, path: str | os.PathLike[str], *, label: str | None = None,
                      inputs: Sequence[str | None] = ()) -> str:
    """DSE(t) with the automatic t marked; ``inputs`` are files ``path`` must not be. Returns the path written."""
    report = _scan_dict(scan)
    fig = _new_figure(6.4, 4.6)
    ax = fig.subplots()
    _draw_dse_t(ax, report)
    ax.set_title(f"DSE versus diffusion time — {_title(report, label)}", fontsize=10)
    return _save(fig, path, inputs=inputs)


# ------------------------------------------------------------------------------------------ batch results


def _geometric(xs: Sequence[float]) -> bool:
    """True when the positive checkpoints span > 30x and consecutive ones grow by >= 1.5x (median)."""
    pos = np.unique(np.asarray([x for x in xs if x > 0], dtype=np.float64))
    if pos.size < 4 or np.any(np.asarray(xs) < 0) or pos[-1] / pos[0] < 30:
        return False
    return bool(np.median(pos[1:] / pos[:-1]) >= 1.5)


_QUANTITY_TITLE = {"entropy": "Entropy", "mutual_information": "Mutual information"}


def _shared_ceiling(members: Sequence[Series]) -> float | None:
    """The ceiling every point of a panel shares (to 1e-9 relative), or None."""
    values = [c for s in members for c in s.ceilings]
    if not values or any(c is None for c in values):
        return None
    first = float(values[0])  # type: ignore[arg-type]
    return first if all(math.isclose(c, first, rel_tol=1e-9, abs_tol=1e-12) for c in values) else None  # type: ignore[arg-type]


def _checkpoint_ticks(xs: Sequence[float]) -> list[float]:
    """Ticks of a log checkpoint axis: every checkpoint when there are at most 12, else 0 (if present) and
    powers of 2 (up to 1024) or of 10 covering the range."""
    pos = sorted({float(x) for x in xs})
    if len(pos) <= 12:
        return pos
    top = max(pos)
    base = 2.0 if top <= 1024 else 10.0
    ticks = [0.0] if min(pos) <= 0 else []
    k = 0
    while base**k <= top * 1.0001:
        if base**k >= min(p for p in pos if p > 0) / base:
            ticks.append(base**k)
        k += 1
    return ticks


# at most this many legend entries go inside a panel; more go below it, in columns
LEGEND_INSIDE = 4


def ceiling_label(ceiling: float, rows: Sequence[dict[str, Any]]) -> str:
    """The legend of a drawn ceiling, by its rule as ``dse spectrum`` words it: ``"log2 N = 9.97"`` (bits;
    ``ln N`` in nats), ``"2 log2 N = ..."`` for a joint ceiling, else ``"ceiling 3.32 (<rule>)"``.

    Returns
    -------
    str
        The label.
    """
    rules = {r["extra"].get("ceiling_rule") for r in rows if isinstance(r.get("extra"), dict)
             and row_ceiling(r) is not None}
    units = {r.get("units") for r in rows}
    log = {"bits": "log2", "nats": "ln"}.get(units.pop() if len(units) == 1 else "", "log")
    if rules == {"log N_used"}:
        return f"{log} N = {ceiling:.2f}"
    if rules == {"log N_used^2 = 2 log N_used"}:
        return f"2 {log} N = {ceiling:.2f}"
    return f"ceiling {ceiling:.2f}" + (f" ({rules.pop()})" if len(rules) == 1 else "")


def batch_figure(
    rows: Iterable[dict[str, Any]],
    *,
    title: str | None = None,
    methods: Sequence[str] | None = None,
    xscale: str = "auto",
) -> tuple[Any, list[Series]]:
    """The figure of :func:`plot_batch_results` (a matplotlib ``Figure``, not saved) and its series.

    One panel per quantity, one line per series. A series keeps its colour in every panel (one
    colour per dataset pattern; one marker and line style per method, a line style per setting
    where a method ran with several). Where rows carry an uncertainty (:func:`dsecli.batch.series.row_band`) the band
    is shaded in the series' colour; when every point of a panel has the same ceiling
    (:func:`dsecli.results.row_ceiling`), it is drawn as a dotted grey line (gid ``"ceiling"``) labelled by its
    rule (:func:`ceiling_label`). A legend of more than :data:`LEGEND_INSIDE` entries goes below
    its panel, in columns.

    Returns
    -------
    tuple
        (figure, series).
    """
    series = batch_series(rows_of_methods(rows, methods))
    if not series:
        raise InputError("no result rows with a finite value to plot"
                         + (f" for methods {', '.join(methods)}" if methods else ""))
    warn_sigma_policies(series)
    check_choice(xscale, "xscale", ("auto", "linear", "log"))
    quantities = list(dict.fromkeys(s.quantity for s in series))
    fig = _new_figure(7.0 * len(quantities) if len(quantities) > 1 else 8.0, 4.8)
    axes = np.atleast_1d(fig.subplots(1, len(quantities)))
    # colour by series name (the dataset pattern), the same in every panel; marker and line style by method,
    # line style by settings where one method ran with several
    colours = {k: f"C{i % 10}" for i, k in enumerate(dict.fromkeys(s.pattern for s in series))}
    method_ids = {m: i for i, m in enumerate(dict.fromkeys(s.method for s in series))}
    variant_ids = {v: i for i, v in enumerate(dict.fromkeys(s.variant for s in series if s.variant))}
    markers, styles = "osD^v<>ph*", ["-", "--", "-.", ":"]
    all_x = [x for s in series for x in s.x]
    log_x = xscale == "log" or (xscale == "auto" and _geometric(all_x))
    for ax, quantity in zip(axes, quantities):
        members = [s for s in series if s.quantity == quantity]
        for s in members:
            i = method_ids[s.method]
            colour = colours[s.pattern]
            style = styles[(variant_ids[s.variant] if s.variant else i) % len(styles)]
            ax.plot(s.x, s.y, marker=markers[i % len(markers)], ls=style, ms=4, lw=1.6,
                    color=colour, label=s.label)
            low, high = np.asarray(s.low, dtype=np.float64), np.asarray(s.high, dtype=np.float64)
            if np.isfinite(low).any():
                ax.fill_between(s.x, low, high, color=colour, alpha=0.2, lw=0, gid=f"band:{s.label}")
        ceiling = _shared_ceiling(members)
        if ceiling is not None:
            line = ax.axhline(ceiling, color="0.35", ls=":", lw=1.2,
                              label=ceiling_label(ceiling, [r for r in rows if r.get("quantity") == quantity]))
            line.set_gid("ceiling")
        units = sorted({s.units for s in members if s.units}) or ["value"]
        kinds = {s.x_kind for s in members}
        kind = kinds.pop() if len(kinds) == 1 else "checkpoint"
        if log_x:
            from matplotlib.ticker import NullLocator

            ax.set_xscale("symlog", linthresh=1.0)
            ticks = _checkpoint_ticks(all_x)
            ax.set_xticks(ticks, [f"{t:g}" for t in ticks])
            ax.xaxis.set_minor_locator(NullLocator())
            kind += " (log scale above 1)"
        ax.set_xlabel(kind)
        ax.set_ylabel(f"{_QUANTITY_TITLE.get(quantity, quantity).lower()} ({', '.join(units)})")
        ax.set_title(_QUANTITY_TITLE.get(quantity, quantity))
        ax.grid(True, alpha=0.35)
        entries = len(ax.get_legend_handles_labels()[1])
        if entries <= LEGEND_INSIDE:
            ax.legend(fontsize=8, loc="best")
        else:  # below the panel, in columns: many entries inside would cover the data
            ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.14), ncols=min(3, entries),
                      frameon=False)
    if title:
        fig.suptitle(title)
    return fig, series


def plot_batch_results(
    rows: Iterable[dict[str, Any]] | str | os.PathLike[str],
    path: str | os.PathLike[str],
    *,
    title: str | None = None,
    methods: Sequence[str] | None = None,
    xscale: str = "auto",
) -> dict[str, Any]:
    """One panel per quantity (entropy, mutual information), one line per series, value versus checkpoint.

    ``rows``: result dicts or a JSON Lines file. ``methods`` keeps only those methods.
    ``xscale``: "linear", "log" (symmetric log, linear below 1 so that epoch 0 shows; ticks at
    the checkpoints, or at powers of 2 or 10 when there are many) or "auto" (log when the
    checkpoints grow geometrically, e.g. 0, 1, 2, 4, ..., 256). The file format follows the
    extension of ``path`` (.png, .pdf, .svg); bands and ceilings as :func:`batch_figure`.
    Returns a summary: the path written and the series drawn (label, points, band, colour).
    """
    source = None
    if isinstance(rows, (str, os.PathLike)):
        from dsecli.batch.read import read_result_rows

        source = os.fspath(rows)
        rows = read_result_rows(source)
    try:
        with CollectWarnings() as notes:  # the σ-policy warnings go in the summary too
            fig, series = batch_figure(rows, title=title or (os.path.basename(source) if source else None),
                                       methods=methods, xscale=xscale)
    except InputError as exc:
        if source and str(exc).startswith("no result rows"):
            raise InputError(str(exc).replace("to plot", f"to plot in {source}", 1)) from None
        raise
    written = _save(fig, path, inputs=(source,))
    return {"plot": written, "series": [{"label": s.label, "quantity": s.quantity, "method": s.method,
                                         "pattern": s.pattern, "sigma_policy": s.sigma_policy, "points": len(s.x),
                                         "band": bool(np.isfinite(np.asarray(s.low, dtype=np.float64)).any())}
                                        for s in series],
            "warnings": list(notes)}
