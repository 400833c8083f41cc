"""Result rows as series, and the σ policy each was computed under: what ``dse plot`` draws, ``dse correlate``
joins and ``dse batch`` checks, without drawing anything (matplotlib lives in :mod:`dsecli.report.plots`).

Series. Batch results (``dse batch`` JSON Lines: one object per line with ``file``, ``dataset``,
``method``, ``quantity``, ``value``, ``units``, ``params``, optional ``index``, ``checkpoint``,
``series``, ``reference``) become one series per method, name pattern and settings: the row's
``series`` (else the file name and dataset path with the checkpoint number replaced by ``*``), the
reference, the σ policy (:func:`sigma_policy`) and t, bins, k. ``/true/epoch_003/embeddings`` belongs
to series ``/true/epoch_*/embeddings`` at x = 3. Rows with a ``run_id`` (a training monitor's) are kept
apart by it: each run is its own series. Paths without a checkpoint number use the row's
``checkpoint`` or ``index`` field, else their order in the file.

σ policy. A value computed with the median rule on each input uses a σ of its own per input (the
data's scale); a σ held fixed (given, or the median rule once for a whole batch) measures every input
at one scale. The two can give trends of opposite direction over the same checkpoints (the bundled
digits run: DSE falls under the median rule and rises under σ = 10), and values under different σ
are not comparable. :func:`sigma_policy_warnings` finds both cases in a set of series:

- the same trajectory (same quantity, method, name pattern and other settings, at least
  :data:`~dsecli.correlation.MIN_TREND_POINTS` shared checkpoints) under two or more σ policies whose
  trend directions (:func:`dsecli.correlation.trend_direction`, over the shared checkpoints) differ;
- rows compared across inputs (same quantity, method and other settings) under two or more σ
  policies, when no one policy covers every input (a full grid of inputs x policies is a comparison
  of σ, not a mix).
"""

from __future__ import annotations

import math
import os
import re
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from dsecli.correlation import MIN_TREND_POINTS, trend_direction
from dsecli.errors import ComparabilityWarning, InputError
from dsecli.inputs.specs import checkpoint_of
from dsecli.results import ERROR_KEYS, is_finite_number, row_ceiling

__all__ = ["Series", "batch_series", "row_band", "row_ceiling", "rows_of_methods", "sigma_policy", "other_settings",
           "sigma_trend_conflicts", "sigma_policy_mixes", "sigma_policy_warnings", "warn_sigma_policies"]


@dataclass
class Series:
    """Points (x, value) of one method on one name pattern under one set of settings.

    ``settings`` tells series of one method apart in labels: ``other`` (reference, t, bins, k) and the
    ``sigma_policy`` (:func:`sigma_policy`; None for methods without σ). ``rows`` are the result rows
    of the points, in the order of ``x``.
    """

    quantity: str
    method: str
    pattern: str
    settings: str
    units: str
    x: list[float] = field(default_factory=list)
    y: list[float] = field(default_factory=list)
    x_kind: str = "order"
    label: str = ""
    variant: str = ""  # the settings, when this method was run with several
    low: list[float] = field(default_factory=list)  # error band per point (nan: none)
    high: list[float] = field(default_factory=list)
    ceilings: list[float | None] = field(default_factory=list)  # the value's ceiling per point, when rows carry one
    sigma_policy: str | None = None
    other: str = ""
    rows: list[dict[str, Any]] = field(default_factory=list)


def row_band(row: dict[str, Any]) -> tuple[float, float] | None:
    """The uncertainty band of a result row, or None.

    A bootstrap interval ``extra["bootstrap"]["low"/"high"]`` when present, else value ± the
    first of the error keys the table shows (:data:`dsecli.results.ERROR_KEYS`: the approximate
    solver's bound, MINE's or DSMI's spread).

    Returns
    -------
    tuple of float or None
        (low, high).
    """
    extra = row.get("extra")
    if not isinstance(extra, dict):
        return None
    boot = extra.get("bootstrap")
    if isinstance(boot, dict) and is_finite_number(boot.get("low")) and is_finite_number(boot.get("high")):
        return float(boot["low"]), float(boot["high"])
    value = row.get("value")
    for key in ERROR_KEYS:
        err = extra.get(key)
        if is_finite_number(err) and err >= 0 and is_finite_number(value):
            return float(value) - float(err), float(value) + float(err)
    return None


def rows_of_methods(rows: Iterable[dict[str, Any]], methods: Sequence[str] | None) -> list[dict[str, Any]]:
    """The rows whose ``method`` is one of ``methods`` (case-blind); every row when ``methods`` is None or empty."""
    rows = list(rows)
    if not methods:
        return rows
    wanted = {m.strip().lower() for m in methods}
    return [r for r in rows if str(r.get("method", "")).lower() in wanted]


def sigma_policy(params: Any) -> str | None:
    """The σ policy of a result row's ``params``, in words; None for a method without σ.

    By ``params["sigma_rule"]`` (:func:`dsecli.diffusion.kernels.resolve_sigma`, and ``dse batch``'s
    fixed rules, :func:`dsecli.batch.run.fixed_sigma`):

    ==================  =====================================================================
    ``median``          ``"median per input"`` (the median rule on each input's own rows)
    ``median-first``    ``"median of first input (σ = 0.7902)"``: one σ for every input of a batch
    ``median-pooled``   ``"median pooled over 10 inputs (σ = 0.7902)"``: one σ for every input
    ``given``           ``"fixed σ = 10"``
    ``sqrt-d``          ``"sqrt-d per input"`` (σ = √D)
    (none recorded)     ``"σ = 10 (rule not recorded)"`` (rows of an older dsecli)
    ==================  =====================================================================

    Returns
    -------
    str or None
        The policy; rows with the same policy were computed at comparable σ (the same σ, or the same
        rule applied to each input).
    """
    if not isinstance(params, dict) or (params.get("sigma") is None and params.get("sigma_rule") is None):
        return None
    rule, sigma = params.get("sigma_rule"), params.get("sigma")
    detail = params.get("sigma_detail") if isinstance(params.get("sigma_detail"), dict) else {}
    if rule == "median":
        return "median per input"
    if rule == "sqrt-d":
        return "sqrt-d per input"
    if rule == "given":
        return f"fixed σ = {sigma:g}" if is_finite_number(sigma) else f"fixed σ = {sigma}"
    value = f"σ = {sigma:.4g}" if is_finite_number(sigma) else f"σ = {sigma}"
    if rule == "median-first":
        return f"median of first input ({value})"
    if rule == "median-pooled":
        inputs = detail.get("inputs")
        over = f" over {inputs} inputs" if isinstance(inputs, int) and not isinstance(inputs, bool) else ""
        return f"median pooled{over} ({value})"
    if rule is None:
        return f"{value} (rule not recorded)"
    return f"{rule} ({value})"


def other_settings(row: dict[str, Any]) -> str:
    """The settings besides σ that keep series of one method apart: the reference (file name), t, bins, k.

    Returns
    -------
    str
        E.g. ``"ref=labels.npy, t=1"``; ``""`` when there are none.
    """
    p = row.get("params") or {}
    parts = []
    ref = row.get("reference")
    if isinstance(ref, str) and ref:
        parts.append(f"ref={os.path.basename(ref)}")
    for key in ("t", "bins", "k"):
        if key in p and p[key] is not None:
            parts.append(f"{key}={p[key]}")
    return ", ".join(parts)


def _settings(policy: str | None, other: str) -> str:
    return ", ".join(p for p in (policy, other) if p)


def batch_series(rows: Iterable[dict[str, Any]]) -> list[Series]:
    """Group result rows into series (see the module docstring); x sorted, rows without a value skipped.

    Returns
    -------
    list of Series
        In order of first appearance, each labelled (method, the name parts that differ between series,
        and the settings where one method ran with several).
    """
    from dsecli.batch.read import row_problem

    groups: dict[tuple[str, str, str, str], Series] = {}
    order: dict[tuple[str, str, str, str], int] = {}
    for i, row in enumerate(rows, start=1):
        why = row_problem(row)
        if why:
            raise InputError(f"result row {i} {why}")
        value = row.get("value")
        if not is_finite_number(value):
            continue
        dataset = str(row.get("dataset") or "")
        file = os.path.basename(str(row.get("file") or ""))
        d_pat, d_num, d_kind = checkpoint_of(dataset)
        f_pat, f_num, f_kind = checkpoint_of(file)
        number, kind = (d_num, d_kind) if d_num is not None else (f_num, f_kind)
        pattern = f"{f_pat}:{d_pat}" if dataset else f_pat
        if isinstance(row.get("series"), str) and row["series"]:
            pattern = row["series"]  # as dse batch named it
        if isinstance(row.get("run_id"), str) and row["run_id"]:
            pattern += f":run={row['run_id']}"  # a training monitor's run: each run its own series
        quantity = str(row.get("quantity") or "value")
        method = row["method"]
        policy, other = sigma_policy(row.get("params")), other_settings(row)
        settings = _settings(policy, other)
        key = (quantity, method, pattern, settings)
        s = groups.get(key)
        if s is None:
            s = groups[key] = Series(quantity, method, pattern, settings, str(row.get("units") or ""),
                                     sigma_policy=policy, other=other)
            order[key] = 0
        if number is None:
            for name in ("checkpoint", "index"):
                v = row.get(name)
                if isinstance(v, (int, float)) and not isinstance(v, bool):
                    number, kind = v, name
                    break
        if number is None:
            number, kind = order[key], "order"
        order[key] += 1
        s.x.append(float(number))
        s.y.append(float(value))
        band = row_band(row)
        s.low.append(band[0] if band else math.nan)
        s.high.append(band[1] if band else math.nan)
        s.ceilings.append(row_ceiling(row))
        s.rows.append(row)
        s.x_kind = kind or "order"
    series = list(groups.values())
    for s in series:
        idx = np.argsort(s.x, kind="stable")
        for name in ("x", "y", "low", "high", "ceilings", "rows"):
            values = getattr(s, name)
            setattr(s, name, [values[i] for i in idx])
    _label(series)
    return series


def _split(pattern: str) -> list[str]:
    return [p for p in re.split(r"[/:]", pattern) if p]


def _label(series: Sequence[Series]) -> None:
    """Label = method, the path parts that differ between series, and the settings of a method run
    with several (e.g. two σ policies or two references)."""
    parts = [_split(s.pattern) for s in series]
    common = set.intersection(*(set(p) for p in parts)) if parts else set()
    methods = {s.method for s in series}
    per_method: dict[str, set[str]] = {}
    for s in series:
        per_method.setdefault(s.method, set()).add(s.settings)
    for s, p in zip(series, parts):
        s.variant = s.settings if len(per_method[s.method]) > 1 else ""
        distinct = [c for c in p if c not in common and "*" not in c] or [c for c in p if c not in common]
        bits = [s.method] if len(methods) > 1 or not distinct else []
        bits += ["/".join(distinct)] if distinct else []
        if s.variant:
            bits.append(f"({s.variant})")
        s.label = " · ".join(b for b in bits if b) or s.method


# ------------------------------------------------------------------------------------------ σ policies


def sigma_trend_conflicts(series: Sequence[Series]) -> list[str]:
    """One message per trajectory whose trend direction differs between σ policies (module docstring).

    The directions are :func:`dsecli.correlation.trend_direction` over the checkpoints every policy
    of the trajectory has (at least :data:`~dsecli.correlation.MIN_TREND_POINTS`); "no monotone trend"
    is a direction, so a curve that rises under one σ and is flat under another is named too.

    Returns
    -------
    list of str
        E.g. ``"dse of run.h5:/true/epoch_*/embeddings: the trend's direction depends on σ over its 10
        shared checkpoints: median per input: falls (5.00 → 3.05, ρ = -0.62); fixed σ = 10: rises (0.00 →
        9.03, ρ = 1.00); compare trends under one σ policy"``.
    """
    groups: dict[tuple[str, str, str, str], list[Series]] = {}
    for s in series:
        if s.sigma_policy is not None:
            groups.setdefault((s.quantity, s.method, s.pattern, s.other), []).append(s)
    messages = []
    for (_quantity, method, pattern, other), members in groups.items():
        if len({s.sigma_policy for s in members}) < 2:
            continue
        shared = set.intersection(*(set(s.x) for s in members))
        if len(shared) < MIN_TREND_POINTS:
            continue
        trends = []
        for s in members:
            pts = [(x, y) for x, y in zip(s.x, s.y) if x in shared]
            trends.append((s.sigma_policy, trend_direction([p[0] for p in pts], [p[1] for p in pts])))
        if len({t.direction for _, t in trends}) < 2:
            continue
        what = f"{method} of {pattern}" + (f" ({other})" if other else "")
        named = "; ".join(f"{policy}: {t.describe()}" for policy, t in trends)
        messages.append(f"{what}: the trend's direction depends on σ over its {len(shared)} shared "
                        f"{_points(members[0].x_kind)}: {named}; compare trends under one σ policy")
    return messages


def _points(kind: str) -> str:
    return {"order": "points", "index": "inputs"}.get(kind, f"{kind}s")


def sigma_policy_mixes(series: Sequence[Series]) -> list[str]:
    """One message per comparison across inputs that mixes σ policies (module docstring).

    The rows of one quantity, method and other settings (reference, t, bins, k) are compared across
    inputs (an input is a point of a series: its name pattern and checkpoint). When they hold two or
    more σ policies and no one policy covers every input, some inputs can only be compared at another σ.

    Returns
    -------
    list of str
        E.g. ``"the dse rows of 12 inputs mix σ policies (median per input: 8, fixed σ = 10: 4); values
        under different σ are not comparable"``.
    """
    groups: dict[tuple[str, str, str], dict[str, set[tuple[str, float]]]] = {}
    for s in series:
        if s.sigma_policy is not None:
            policies = groups.setdefault((s.quantity, s.method, s.other), {})
            policies.setdefault(s.sigma_policy, set()).update((s.pattern, x) for x in s.x)
    messages = []
    for (_quantity, method, other), policies in groups.items():
        if len(policies) < 2:
            continue
        inputs = set().union(*policies.values())
        if any(len(points) == len(inputs) for points in policies.values()):
            continue  # one policy covers every input: each can be compared under it
        counts = ", ".join(f"{p}: {len(points)}" for p, points in policies.items())
        what = f"the {method} rows" + (f" ({other})" if other else "")
        messages.append(f"{what} of {len(inputs)} inputs mix σ policies ({counts}); values under different σ "
                        "are not comparable")
    return messages


def sigma_policy_warnings(series: Sequence[Series]) -> list[str]:
    """The messages of :func:`sigma_trend_conflicts` and :func:`sigma_policy_mixes`, in that order.

    Returns
    -------
    list of str
    """
    return sigma_trend_conflicts(series) + sigma_policy_mixes(series)


def warn_sigma_policies(series: Sequence[Series]) -> list[str]:
    """Raise each message of :func:`sigma_policy_warnings` as a :class:`~dsecli.errors.ComparabilityWarning`
    (the ``dse`` command prints it as a ``warning:`` line) and return them.

    Returns
    -------
    list of str
    """
    messages = sigma_policy_warnings(series)
    for message in messages:
        warnings.warn(message, ComparabilityWarning, stacklevel=2)
    return messages
