"""The size-matched conditional scheme shared by DSMI and CSMI (docs/method.md#size-matched).

.. math::

    I(X; Y) = \\sum_y \\frac{n_y}{N} \\Big[ \\frac{1}{R} \\sum_{r=1}^{R} H(X^*_r) - H(X_{Y=y}) \\Big]

X_{Y=y} are the n_y rows of class y and each X*_r is n_y rows drawn uniformly without
replacement from all N rows, so both entropies are measured at the same sample size and
the dependence of the entropy estimate on N cancels. A class of one row has entropy 0.
The value can be slightly negative (estimation noise) and is reported as computed.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from dsecli.inputs.reference import Classes
from dsecli.inputs.sampling import subset_draws

__all__ = ["size_matched_mutual_information"]


def size_matched_mutual_information(
    entropies: Callable[[list[np.ndarray]], list[tuple[float, float]]],
    classes: Classes,
    *,
    repetitions: int,
    seed: int,
    sampler: str,
    with_errors: bool = False,
) -> tuple[float, dict[str, Any]]:
    """Return ``(MI, details)``; ``entropies(index_sets)`` gives ``(H, error bound)`` of each set of rows.

    Every subset is drawn first and ``entropies`` is called once with all of them (class members
    and draws, class by class, in that order), so the caller can solve equal-size problems
    together. ``details`` holds ``h_conditional`` (sum_y p_y H(X|Y=y)), ``h_marginal_matched``
    (sum_y p_y mean_r H(X*_r)) and one entry per class (count, h_given_class, h_subsample
    repetitions), in the units of ``entropies``.

    The spread over repetitions: ``repetition_values`` holds
    I_r = sum_y p_y [H(X*_{r,y}) - H(X_{Y=y})] for r = 1..R (the r-th draw of every class), so
    MI = mean_r I_r exactly; ``repetition_std`` is their sample standard deviation (ddof = 1;
    0 when R = 1) and ``repetition_stderr`` = std / sqrt(R), the standard error of the reported
    mean due to the subset draws alone (the draws of different r are independent, so the I_r
    are too). Neither includes the sampling error of the rows themselves (see
    :mod:`dsecli.measures.resampling` for that). With ``with_errors`` (the entropies are
    estimates with an error bound), ``details["error_estimate"]`` =
    sum_y p_y [mean_r e(X*_r) + e(X_{Y=y})] bounds the error of the MI (the errors add at worst
    linearly).
    """
    codes = classes.codes
    n = codes.shape[0]
    counts = classes.counts
    # the index sets to measure, and where each class finds its entropies among them
    sets: list[np.ndarray] = []
    layout: list[tuple[int, str, int | None, list[int] | None]] = []  # (class, name, members' slot, draws' slots)
    drawn: dict[int, list[int]] = {}
    for c, name in enumerate(classes.names):
        n_c = int(counts[c])
        if n_c == 0:
            continue
        own = None
        if n_c > 1:
            own = len(sets)
            sets.append(np.flatnonzero(codes == c))
        if n_c == 1:
            slots = None
        elif sampler == "published" and n_c in drawn:
            # the published scheme reseeds per class: equal sizes give identical draws
            slots = drawn[n_c]
        else:
            draws = subset_draws(n, n_c, repetitions, seed=seed, sampler=sampler, stream=c)
            slots = list(range(len(sets), len(sets) + len(draws)))
            sets.extend(np.sort(d) for d in draws)
        if slots is not None:
            drawn[n_c] = slots
        layout.append((c, name, own, slots))
    measured = entropies(sets) if sets else []
    mi = h_cond = h_marg = error = 0.0
    per_class = []
    per_repetition = np.zeros(repetitions)
    for c, name, own, slots in layout:
        n_c = int(counts[c])
        p_c = n_c / n
        h_c, e_c = measured[own] if own is not None else (0.0, 0.0)
        reps = [measured[i][0] for i in slots] if slots is not None else [0.0] * repetitions
        rep_errors = [measured[i][1] for i in slots] if slots is not None else [0.0] * repetitions
        error += p_c * (float(np.mean(rep_errors)) + e_c)
        h_star = float(np.mean(reps))
        mi += p_c * (h_star - h_c)
        per_repetition += p_c * (np.asarray(reps, dtype=np.float64) - h_c)
        h_cond += p_c * h_c
        h_marg += p_c * h_star
        per_class.append(
            {"class": name, "count": n_c, "h_given_class": h_c, "h_subsample_mean": h_star, "h_subsample_reps": reps}
        )
    std = float(np.std(per_repetition, ddof=1)) if repetitions > 1 else 0.0
    details: dict[str, Any] = {
        "h_conditional": h_cond, "h_marginal_matched": h_marg, "classes": per_class,
        "repetition_values": per_repetition.tolist(), "repetition_std": std,
        "repetition_stderr": std / float(np.sqrt(repetitions)),
    }
    if with_errors:
        details["error_estimate"] = error
    return mi, details
