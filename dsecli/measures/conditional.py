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
    entropy_of_rows: Callable[[np.ndarray], float],
    classes: Classes,
    *,
    repetitions: int,
    seed: int,
    sampler: str,
    error_of_last: Callable[[], float] | None = None,
) -> tuple[float, dict[str, Any]]:
    """Return ``(MI, details)``; ``entropy_of_rows(indices)`` gives H of those rows.

    ``details`` holds ``h_conditional`` (sum_y p_y H(X|Y=y)), ``h_marginal_matched``
    (sum_y p_y mean_r H(X*_r)) and one entry per class (count, h_given_class, h_subsample
    repetitions), in the units of ``entropy_of_rows``.

    The spread over repetitions: ``repetition_values`` holds
    I_r = sum_y p_y [H(X*_{r,y}) - H(X_{Y=y})] for r = 1..R (the r-th draw of every class), so
    MI = mean_r I_r exactly; ``repetition_std`` is their sample standard deviation (ddof = 1;
    0 when R = 1) and ``repetition_stderr`` = std / sqrt(R), the standard error of the reported
    mean due to the subset draws alone (the draws of different r are independent, so the I_r
    are too). Neither includes the sampling error of the rows themselves (see
    :mod:`dsecli.measures.resampling` for that). When the entropies are estimates with
    an error bound, ``error_of_last()`` returns the bound of the latest ``entropy_of_rows``
    call and ``details["error_estimate"]`` = sum_y p_y [mean_r e(X*_r) + e(X_{Y=y})] bounds
    the error of the MI (the errors add at worst linearly).
    """
    codes = classes.codes
    n = codes.shape[0]
    counts = classes.counts
    mi = 0.0
    h_cond = 0.0
    h_marg = 0.0
    per_class = []
    per_repetition = np.zeros(repetitions)
    error = 0.0
    cache: dict[int, tuple[list[float], list[float]]] = {}

    def measured(idx: np.ndarray) -> tuple[float, float]:
        h = entropy_of_rows(idx)
        return h, (error_of_last() if error_of_last is not None else 0.0)

    for c, name in enumerate(classes.names):
        n_c = int(counts[c])
        if n_c == 0:
            continue
        p_c = n_c / n
        members = np.flatnonzero(codes == c)
        h_c, e_c = (0.0, 0.0) if n_c == 1 else measured(members)
        if sampler == "published" and n_c in cache:
            # the published scheme reseeds per class: equal sizes give identical draws
            reps, rep_errors = cache[n_c]
        elif n_c == 1:
            reps, rep_errors = [0.0] * repetitions, [0.0] * repetitions
        else:
            draws = subset_draws(n, n_c, repetitions, seed=seed, sampler=sampler, stream=c)
            pairs = [measured(np.sort(d)) for d in draws]
            reps, rep_errors = [h for h, _ in pairs], [e for _, e in pairs]
        cache[n_c] = (reps, rep_errors)
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
    if error_of_last is not None:
        details["error_estimate"] = error
    return mi, details
