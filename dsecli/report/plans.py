"""``--dry-run`` plans as text: what ``dse entropy`` / ``dse mi`` would compute, from the plan dicts of
:func:`dsecli.dry_run_entropy` and :func:`dsecli.dry_run_mutual_information`."""

from __future__ import annotations

from typing import Any

__all__ = ["resampling_lines", "entropy_plan_text", "mi_plan_text"]

GIB = 2.0**30


def resampling_lines(plan: dict[str, Any]) -> list[str]:
    """The ``--bootstrap`` / ``--permutations`` part of a printed plan (nothing when neither was asked for)."""
    r = plan.get("resampling")
    if not r:
        return []
    parts = []
    if r["bootstrap"]:
        parts.append(f"{r['bootstrap']} bootstrap resamples of {r['rows_per_resample']:,} rows "
                     f"({'with' if r['bootstrap_scheme'] == 'replacement' else 'without'} replacement, "
                     f"~{r['bootstrap_seconds']:.3g} s)")
    if r["permutations"]:
        parts.append(f"{r['permutations']} permutations (~{r['permutation_seconds']:.3g} s)")
    return [f"  resampling {r['evaluations']} evaluations: the estimate (~{r['single_seconds']:.3g} s), "
            + ", ".join(parts)]


def entropy_plan_text(plan: dict[str, Any], label: str) -> str:
    """``dse entropy --dry-run``: the plan of DSE on the input ``label``, one line per part.

    Returns
    -------
    str
        The lines, without a final newline.
    """
    lines = [
        f"plan for dse on {label}: N used {plan['n_rows']:,} of {plan['n_total']:,}, D = {plan['n_features']:,}",
        f"  solver    {plan['solver']} ({plan['reason']})",
        f"  operator  {plan['operator']}, stored in {plan['storage_dtype']} on {plan['device']}",
        f"  memory    ~{plan['memory_bytes'] / GIB:.2f} GiB of {plan['memory_available'] / GIB:.1f} GiB available"
        + ("" if plan["fits"] else "  (does NOT fit)"),
        f"  time      ~{plan['expected_seconds']:.3g} s expected"
        + (f" (exact would take ~{plan['exact_seconds']:.3g} s)" if "exact_seconds" in plan else ""),
        *resampling_lines(plan),
        f"  model     {plan['calibration']['note']}",
        *([f"  data      not written yet: {plan['data_not_written']}"] if plan.get("data_not_written") else []),
        "nothing was computed (--dry-run)",
    ]
    return "\n".join(lines)


def mi_plan_text(plan: dict[str, Any], x_label: str, y_label: str) -> str:
    """``dse mi --dry-run``: DSMI's plan (the four largest class sizes, kernel, memory, time).

    Returns
    -------
    str
        The lines, without a final newline.
    """
    from dsecli.diffusion.plan import format_plan

    lines = [f"plan for dsmi on {x_label} with {y_label}: N used {plan['n_rows']:,} of {plan['n_total']:,}, "
             f"D = {plan['n_features']:,}, {plan['n_classes']} classes ({plan['classes_from']}), "
             f"{plan['dse_count']} DSEs"]
    by_size = sorted(plan["sizes"].items(), key=lambda kv: -int(kv[0]))
    for m, p in by_size[:4]:  # the largest sizes cost the most
        lines.append(f"  class size {int(m):,}: {format_plan(p)}" + ("" if p["fits"] else "  (does NOT fit)"))
    if len(by_size) > 4:
        lines.append(f"  ... {len(by_size) - 4} smaller class sizes, down to {int(by_size[-1][0]):,} rows")
    lines += [
        "  kernel    " + (("cut out of the median rule's N x N distances" if plan.get("kept_distances") else
                              "cut out of one N x N distance matrix shared by all subsets")
                             if plan["shared_kernel"] else "computed per subset"),
        f"  memory    ~{plan['memory_bytes'] / GIB:.2f} GiB of {plan['memory_available'] / GIB:.1f} GiB available",
        f"  time      ~{plan['expected_seconds']:.3g} s expected in all",
        *resampling_lines(plan),
        f"  model     {plan['calibration']['note']}",
        *([f"  data      not written yet: {plan['data_not_written']}"] if plan.get("data_not_written") else []),
        "nothing was computed (--dry-run)",
    ]
    return "\n".join(lines)
