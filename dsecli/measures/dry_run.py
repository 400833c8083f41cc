"""Dry runs: the plan of a DSE or DSMI call from the input's shape (and, for DSMI, its reference),
without computing, for ``--dry-run`` (the same planning functions the computation enforces,
:mod:`dsecli.diffusion.plan`)."""

from __future__ import annotations

from typing import Any

from dsecli.diffusion.plan import plan_entropy, plan_mutual_information
from dsecli.errors import InputError, check_positive_int

__all__ = ["dry_run_entropy", "dry_run_mutual_information", "with_resampling"]


def _rows_and_features(x: Any, *, name: str) -> tuple[int, int]:
    """N and D (the product of the trailing dimensions) from ``x.shape``, without reading data."""
    import math

    import numpy as np

    from dsecli.errors import where_prefix

    shape = tuple(int(s) for s in (x.shape if hasattr(x, "shape") else np.shape(x)))
    n, d = (shape[0] if shape else 0), (int(math.prod(shape[1:])) if len(shape) > 1 else 1)
    w = where_prefix(getattr(x, "label", None))
    if name == "embeddings" and n < 2:
        raise InputError(f"{w}`{name}` must have at least 2 rows; got N = {n} (shape {shape})")
    if d < 1:
        raise InputError(f"{w}`{name}` must have at least 1 feature (column); got D = 0 (shape {shape})")
    return n, d


def _rows_used(n_total: int, max_n: Any) -> int:
    if max_n is None:
        return n_total
    max_n = check_positive_int(max_n, "max_n", minimum=0)
    return n_total if max_n == 0 else min(n_total, max_n)


def dry_run_entropy(
    x: Any,
    *,
    max_n: int | None = 10_000,
    solver: str = "exact",
    device: Any = "auto",
    dtype: Any = "float64",
    t: int = 1,
    return_eigenvalues: bool = False,
    bootstrap: int = 0,
    calibrate: bool = True,
) -> dict[str, Any]:
    """The plan :func:`dsecli.diffusion_spectral_entropy` would follow on ``x``, from its shape alone.

    Behind ``dse entropy --dry-run``: nothing is read but the shape (a lazy source from
    :func:`dsecli.open_array` reads no rows), nothing is computed.

    Parameters
    ----------
    x : array-like, tensor or lazy file source
        Anything with a ``shape`` (N, ...); trailing dimensions count as flattened features.
    max_n : int or None
        Rows that would be used: ``min(N, max_n)``; None or 0 means all N.
    solver, device, dtype, t, return_eigenvalues :
        As for :func:`plan_entropy`.
    bootstrap : int
        Bootstrap resamples asked for (``--bootstrap``): each is one more DSE on
        :func:`dsecli.measures.resampling.bootstrap_rows` rows (half of them, without replacement).
    calibrate : bool
        Calibrate the time model on this machine first when no calibration is stored (a probe of
        about half a second, cached: :func:`dsecli.diffusion.calibration.calibrate`); False uses
        the stored calibration or the default rates.

    Returns
    -------
    dict
        :func:`plan_entropy`'s plan for the rows that would be used, plus ``input`` (the
        source's label, or None) and ``n_total`` (N before subsampling). With ``bootstrap``,
        ``resampling`` (see :func:`with_resampling`) and ``expected_seconds`` counting every
        evaluation.
    """
    n_total, n_features = _rows_and_features(x, name="embeddings")
    n_used = _rows_used(n_total, max_n)
    plan = plan_entropy(n_used, n_features, solver=solver, device=device, dtype=dtype, t=t,
                        return_eigenvalues=return_eigenvalues, calibration=True if calibrate else None)
    out = {"input": getattr(x, "label", None), "n_total": n_total, **plan}

    def resample_seconds(m: int) -> float:
        return float(plan_entropy(m, n_features, solver=solver, device=device, dtype=dtype, t=t)["expected_seconds"])

    return with_resampling(out, "dse", bootstrap=bootstrap, permutations=0, resample_seconds=resample_seconds)


def with_resampling(plan: dict[str, Any], method: str, *, bootstrap: int, permutations: int,
                    resample_seconds: Any) -> dict[str, Any]:
    """``plan`` with the extra evaluations of ``--bootstrap`` / ``--permutations`` counted in.

    ``resample_seconds(m)`` is the expected time of one evaluation on m rows; a permutation
    costs what the estimate costs (same rows, Y reordered).

    Returns
    -------
    dict
        ``plan`` itself when both are 0; else a copy with ``resampling`` = {``bootstrap``,
        ``bootstrap_scheme``, ``rows_per_resample``, ``permutations``, ``evaluations`` (1 + B + P),
        ``single_seconds`` (the estimate alone), ``bootstrap_seconds``, ``permutation_seconds``}
        and ``expected_seconds`` the total.
    """
    from dsecli.measures.resampling import bootstrap_rows, bootstrap_scheme, check_resampling

    # the counts the estimate would refuse, refused by its plan too
    bootstrap, permutations, _ = check_resampling(bootstrap, permutations, 0.95)
    if not (bootstrap or permutations):
        return plan
    scheme = bootstrap_scheme(method)
    m = bootstrap_rows(int(plan["n_rows"]), scheme)
    single = float(plan["expected_seconds"])
    boot = bootstrap * float(resample_seconds(m)) if bootstrap else 0.0
    perm = permutations * single
    resampling = {"bootstrap": bootstrap, "bootstrap_scheme": scheme, "rows_per_resample": m,
                  "permutations": permutations, "evaluations": 1 + bootstrap + permutations,
                  "single_seconds": single, "bootstrap_seconds": boot, "permutation_seconds": perm}
    return {**plan, "resampling": resampling, "expected_seconds": single + boot + perm}


def dry_run_mutual_information(
    x: Any,
    y: Any,
    *,
    max_n: int | None = 10_000,
    seed: int = 0,
    sampler: str = "numpy",
    ref_kind: str = "auto",
    n_clusters: int = 10,
    repetitions: int = 5,
    solver: str = "exact",
    device: Any = "auto",
    dtype: Any = "float64",
    t: int = 1,
    bootstrap: int = 0,
    permutations: int = 0,
    calibrate: bool = True,
    sigma: Any = "median",
) -> dict[str, Any]:
    """The plan :func:`dsecli.diffusion_spectral_mutual_information` would follow on ``x`` and ``y``.

    Behind ``dse mi --dry-run``. Only the shape of ``x`` is used; the reference ``y`` is read
    (the rows that would be used, with the same seeded subsample) because DSMI's cost depends
    on its class sizes. ``calibrate`` as for :func:`dry_run_entropy`; ``sigma`` as DSMI takes it
    (whether the median rule's distances are kept: :func:`dsecli.diffusion.plan.keeps_distances`).

    Returns
    -------
    dict
        :func:`plan_mutual_information`'s plan, plus ``input`` and ``reference`` (labels, or
        None), ``n_total``, ``classes_from`` (how classes were formed: labels, binned or
        clustered) and ``n_classes``. ``bootstrap`` / ``permutations`` as in
        :func:`dry_run_entropy` (a resample's classes are taken as the full classes scaled to its
        rows; a permutation keeps the class sizes): ``resampling`` and the total
        ``expected_seconds``.
    """
    import numpy as np

    from dsecli.inputs.arrays import check_same_rows
    from dsecli.inputs.reference import read_reference
    from dsecli.inputs.sampling import choose_rows

    n_total, n_features = _rows_and_features(x, name="embeddings")
    n_ref, _ = _rows_and_features(y, name="reference")
    x_label, y_label = getattr(x, "label", None), getattr(y, "label", None)
    check_same_rows(n_total, n_ref, where=y_label, embeddings=x_label)
    seed = check_positive_int(seed, "seed", minimum=0)
    _rows_used(n_total, max_n)  # validates max_n
    idx = choose_rows(n_total, max_n or None, seed=seed, sampler=sampler)
    if hasattr(y, "read"):
        yv = y.read(idx)
    else:
        yv = np.asarray(y) if idx is None else np.asarray(y)[idx]
    classes = read_reference(yv, ref_kind=ref_kind, seed=seed, where=y_label).classes(n_clusters)
    plan = plan_mutual_information(classes.counts, n_features, solver=solver, repetitions=repetitions,
                                   device=device, dtype=dtype or "float64", t=t, sigma=sigma,
                                   calibration=True if calibrate else None)
    out = {"input": x_label, "reference": y_label, "n_total": n_total, "classes_from": classes.kind,
           "n_classes": len(classes.names), **plan}

    def resample_seconds(m: int) -> float:
        counts = [int(c) * m // max(1, plan["n_rows"]) for c in classes.counts]
        return float(plan_mutual_information(counts, n_features, solver=solver, repetitions=repetitions,
                                             device=device, dtype=dtype or "float64", t=t,
                                             sigma=sigma)["expected_seconds"])

    return with_resampling(out, "dsmi", bootstrap=bootstrap, permutations=permutations,
                           resample_seconds=resample_seconds)
