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
    entropies: Callable[[list[np.ndarray]], list[tuple[float, float, float]]],
    classes: Classes,
    *,
    repetitions: int,
    seed: int,
    sampler: str,
    with_errors: bool = False,
) -> tuple[float, dict[str, Any]]:
    """Return ``(MI, details)``; ``entropies(index_sets)`` gives ``(H, bias bound, noise bound)`` of each set.

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
    estimates, each with a bound b on its systematic error and a bound s = z x standard error on its
    random error), ``details["error_estimate"]`` bounds the error of the MI:

    .. math::

        \\sum_k w_k b_k + \\Big( \\sum_k w_k^2 s_k^2 \\Big)^{1/2}

    over the distinct sets k measured, w_k the set's total weight in the MI (p_y / R for a draw,
    p_y for a class; summed where the published sampler reuses one draw for classes of equal
    size). The systematic parts add at worst linearly; the random parts come from independent
    runs (each its own probes), so their sum has standard error (sum w_k^2 se_k^2)^(1/2), and the
    same z bounds it. ``details["error_bias"]`` and ``details["error_noise"]`` are the two terms.
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
    mi = h_cond = h_marg = 0.0
    weight = np.zeros(len(sets))  # each set's weight in the MI (a shared draw counts for each class)
    per_class = []
    per_repetition = np.zeros(repetitions)
    for c, name, own, slots in layout:
        n_c = int(counts[c])
        p_c = n_c / n
        h_c = measured[own][0] if own is not None else 0.0
        if own is not None:
            weight[own] += p_c
        reps = [measured[i][0] for i in slots] if slots is not None else [0.0] * repetitions
        for i in slots or ():
            weight[i] += p_c / repetitions
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
        bias = np.array([m[1] for m in measured])
        noise = np.array([m[2] for m in measured])
        details["error_bias"] = float(weight @ bias)
        details["error_noise"] = float(np.sqrt(((weight * noise) ** 2).sum()))
        details["error_estimate"] = details["error_bias"] + details["error_noise"]
    return mi, details
