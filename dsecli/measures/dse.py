"""Diffusion spectral entropy and mutual information, and the published spectral variants.

Reference: D. Liao, C. Liu, B. W. Christensen, A. Tong, G. Huguet, G. Wolf, M. Nickel,
I. Adelstein, S. Krishnaswamy, "Assessing Neural Network Representations During Training
Using Noise-Resilient Diffusion Spectral Entropy", ICML 2023 TAG-ML workshop / IEEE CISS
2024, arXiv:2312.04823. Formulas and conventions: docs/method.md (#kernel to #dsmi, #ase, #matrix-entry, #golden).
"""

from __future__ import annotations

import math
import time
from typing import TYPE_CHECKING, Any

import numpy as np

from dsecli.device import (
    Timer,
    available_memory_bytes,
    dtype_name,
    resolve_dtype,
    to_tensor,
)
from dsecli.diffusion.eigen import general_eigenvalue_moduli, symmetric_eigenvalues, symmetric_eigenvalues_many
from dsecli.diffusion.kernels import (
    SigmaChoice,
    gaussian_kernel,
    pairwise_sq_dists,
    regime_params,
    resolve_sigma,
    symmetric_normalize_,
    warn_if_uninformative,
)
from dsecli.diffusion.plan import check_dense_memory
from dsecli.diffusion.spectral import entropy_of_probabilities, spectral_entropy
from dsecli.errors import (
    CollectWarnings,
    ComputationError,
    InputError,
    MemoryLimitError,
    check_choice,
    check_neighbors,
    check_positive,
    check_positive_int,
)
from dsecli.inputs.checks import check_working_range
from dsecli.inputs.prepare import Prepared, prepare_pair, prepare_rows
from dsecli.inputs.reference import REF_KINDS, reference_classes
from dsecli.inputs.sampling import DEFAULT_MAX_N
from dsecli.measures.conditional import size_matched_mutual_information
from dsecli.results import EntropyResult, MIResult, log_n_ceiling, reference_ceiling, units_for_base

if TYPE_CHECKING:  # pragma: no cover
    import torch

__all__ = [
    "ASE_KERNELS",
    "SOLVERS",
    "diffusion_spectral_entropy",
    "diffusion_spectral_mutual_information",
    "adjacency_spectral_entropy",
    "matrix_entry_entropy",
]

ASE_KERNELS = ("gaussian", "normalized", "knn")
SOLVERS = ("exact", "approx", "auto")


def _setup(x: Any, *, max_n: Any, seed: Any, sampler: str, device: Any, dtype: Any, base: Any, min_rows: int = 2,
           flatten: bool = False, drop_nonfinite: bool = False, dense_copies: int | None = 2,
           y: Any = None, with_reference: bool = False) -> tuple[Prepared, torch.Tensor, float]:
    """The public edge of every function here: check the shared parameters, prepare the rows once
    (a :class:`~dsecli.inputs.prepare.Prepared` ``x`` is trusted), resolve device and dtype, and
    put the rows on the device."""
    base = check_positive(base, "base")
    if base == 1:
        raise InputError("`base` must be > 0 and != 1; got 1")
    seed = check_positive_int(seed, "seed", minimum=0)
    if max_n is not None:
        check_positive_int(max_n, "max_n", minimum=0)
    selection = {"max_n": max_n, "seed": seed, "sampler": sampler, "min_rows": min_rows, "flatten": flatten,
                 "drop_nonfinite": drop_nonfinite, "device": device, "dtype": dtype}
    rows = prepare_pair(x, y, **selection) if with_reference else prepare_rows(x, **selection)
    dev = rows.device
    dt = rows.working_dtype("float64")
    check_working_range(rows.data, dt, where=rows.source)
    if dense_copies:  # None: the caller checks its own memory plan (DSE's solvers)
        check_dense_memory(rows.n_used, device=dev, dtype=dt, copies=dense_copies,
                           memory_bytes=available_memory_bytes(dev))
    xt = to_tensor(rows.data, device=dev, dtype=dt)
    return rows, xt, base


def _common_params(rows: Prepared, xt: torch.Tensor, *, max_n: Any, seed: int, sampler: str) -> dict[str, Any]:
    return {
        "max_n": max_n,
        "seed": seed,
        "sampler": sampler,
        "device": str(xt.device),
        "dtype": dtype_name(xt.dtype),
        "n_features": int(xt.shape[1]),
    }


def _sigma_params(choice: SigmaChoice) -> dict[str, Any]:
    out: dict[str, Any] = {"sigma": choice.value, "sigma_rule": choice.rule}
    if choice.detail:
        out["sigma_detail"] = choice.detail
    return out


_Collect = CollectWarnings


def _sorted_desc(lam: torch.Tensor) -> np.ndarray:
    return np.sort(lam.detach().double().cpu().numpy())[::-1].copy()


def diffusion_spectral_entropy(
    x: Any,
    *,
    sigma: float | str = "median",
    t: int = 1,
    max_n: int | None = DEFAULT_MAX_N,
    seed: int = 0,
    sampler: str = "numpy",
    device: Any = None,
    dtype: Any = None,
    base: float = 2.0,
    solver: str = "exact",
    tol_bits: float = 0.01,
    max_seconds: float | None = None,
    return_eigenvalues: bool = False,
    flatten: bool = False,
    drop_nonfinite: bool = False,
) -> EntropyResult:
    """Diffusion spectral entropy of the rows of ``x``.

    .. math::

        \\mathrm{DSE}(X, t) = -\\sum_i \\alpha_i \\log \\alpha_i, \\qquad
        \\alpha_i = |\\lambda_i|^t / \\sum_j |\\lambda_j|^t

    with lambda the eigenvalues of the diffusion operator P = Q^-1 G of the Gaussian kernel
    G_ij = exp(-||x_i - x_j||^2 / (2 sigma^2)) (computed from the symmetric conjugate
    Q^-1/2 G Q^-1/2 by ``eigvalsh``). 0 <= DSE <= log N.

    Parameters
    ----------
    x : array-like, shape (N, D), a tensor, a lazy file source (:func:`dsecli.inputs.readers.open_array`), or
        a :class:`~dsecli.inputs.prepare.Prepared` (used as it is: validated once by
        :func:`~dsecli.inputs.prepare.prepare_rows`; ``max_n``, ``sampler``, ``flatten`` and
        ``drop_nonfinite`` then do not apply)
    sigma : float or {"median", "sqrt-d"}
        Kernel bandwidth: "median" (default; the median rule of
        :func:`dsecli.diffusion.kernels.resolve_sigma`, scale-invariant) or a number in data units
        (the paper's setting is 10). A number that puts the kernel in the uninformative regime
        (docs/method.md#kernel-regime) raises a :class:`~dsecli.errors.DegenerateKernelWarning`
        naming the median rule's sigma; ``params["kernel_regime"]`` records the check.
    t : int >= 1
        Diffusion time.
    max_n : int or None
        At most this many rows, drawn without replacement with ``seed`` (published default
        10,000); None or 0 uses all rows.
    seed : int
        Seed of the local generator for subsampling.
    sampler : {"numpy", "published"}
        "published" reproduces the published package's row draws (CPython ``random``).
    device : {"auto", "cpu", "cuda", "cuda:N"} or None
        None: "auto", or the device a Prepared ``x`` was prepared for.
    dtype : {"float64", "float32"} or None
        Working precision of kernel and eigensolver; float32 is faster but small eigenvalues
        lose accuracy (docs/method.md#precision). None: float64, or a Prepared ``x``'s dtype.
    base : float
        Logarithm base: 2 gives bits, e nats.
    solver : {"exact", "approx", "auto"}
        "exact": all N eigenvalues (``torch.linalg.eigvalsh``), peak memory 2 N^2 numbers.
        "approx": the spectral sums of docs/method.md#approx from the exact top eigenpairs plus
        stochastic Lanczos quadrature of the rest (:mod:`dsecli.diffusion.slq`), with its own error
        estimate in ``extra["error_estimate"]`` (result units; also ``error_estimate_bits``);
        the operator is held in memory when it fits (float32 storage if float64 does not),
        else its kernel rows are recomputed in blocks (memory O(N D)).
        "auto": exact up to 10,000 rows on CPU (20,000 on CUDA) when it fits, else approx;
        ``params["solver"]`` says which ran. See :func:`dsecli.diffusion.plan.plan_entropy`.
    tol_bits : float
        Error target of the approximate solver in bits: probes (or Lanczos steps) are added
        until its error estimate (3 standard errors plus quadrature and deflation bounds) is
        below it, or 512 probes / 60 steps. Unused by the exact solver.
    max_seconds : float, optional
        Stop before computing, with the plan in the message, when the plan's expected time
        exceeds this (:class:`~dsecli.errors.ComputationError`).
    return_eigenvalues : bool
        Keep the N eigenvalues (descending, float64) in the result.

    Returns
    -------
    EntropyResult
        ``value`` in ``units``; ``params`` records the numeric sigma and everything else used.

    Examples
    --------
    Far-apart identical points: the operator is the identity and DSE = log2 N.

    >>> import numpy as np
    >>> round(diffusion_spectral_entropy(np.arange(8.0)[:, None] * 100, sigma=1.0, device="cpu").value, 6)
    3.0
    """
    t = check_positive_int(t, "t")
    check_choice(solver, "solver", SOLVERS)
    if solver != "exact":
        tol_bits = check_positive(tol_bits, "tol_bits")
    if max_seconds is not None:
        max_seconds = check_positive(max_seconds, "max_seconds")
    start = time.perf_counter()
    rows, xt, base = _setup(x, max_n=max_n, seed=seed, sampler=sampler, device=device, dtype=dtype, base=base,
                            flatten=flatten, drop_nonfinite=drop_nonfinite, dense_copies=None)
    lam = None
    with _Collect(rows.warnings) as notes:
        plan = _checked_plan(rows.n_used, xt, solver=solver, t=t, return_eigenvalues=return_eigenvalues,
                             max_seconds=max_seconds)
        choice = resolve_sigma(sigma, xt, seed=seed)
        regime = warn_if_uninformative(xt, choice, seed=seed)
        if plan["solver"] == "exact":
            with Timer(xt.device) as tk:
                a = symmetric_normalize_(gaussian_kernel(xt, choice.value))
            with Timer(xt.device) as te:
                lam = symmetric_eigenvalues(a)
            del a
            value = spectral_entropy(lam, t=t, base=base)
            extra: dict[str, Any] = {"timings_s": {"kernel": tk.elapsed_s, "eigenvalues": te.elapsed_s}}
        else:
            value, extra = _approximate_dse(xt, choice.value, plan=plan, t=t, base=base, seed=seed, tol_bits=tol_bits)
    params = {**_sigma_params(choice), **regime_params(regime), "t": t, "solver": plan["solver"],
              **_common_params(rows, xt, max_n=max_n, seed=seed, sampler=sampler)}
    if solver != plan["solver"]:
        params["solver_requested"] = solver
    if plan["solver"] == "approx":
        params["tol_bits"] = tol_bits
    if max_seconds is not None:
        params["max_seconds"] = max_seconds
    extra["plan"] = plan
    extra.update(log_n_ceiling(value, rows.n_used, base))
    return EntropyResult(
        method="dse",
        value=value,
        units=units_for_base(base),
        base=base,
        n_used=rows.n_used,
        n_total=rows.n_total,
        params=params,
        elapsed_s=time.perf_counter() - start,
        warnings=tuple(notes),
        eigenvalues=_sorted_desc(lam) if return_eigenvalues and lam is not None else None,
        extra=extra,
    )


def _checked_plan(n: int, xt: torch.Tensor, *, solver: str, t: int, return_eigenvalues: bool,
                  max_seconds: float | None) -> dict[str, Any]:
    """The solver plan for N rows of ``xt``; raises when it does not fit or exceeds ``max_seconds``."""
    from dsecli.diffusion.plan import format_plan, plan_entropy

    # the rows are already on the device: count them as available again
    plan = plan_entropy(n, int(xt.shape[1]), solver=solver, device=xt.device, dtype=xt.dtype, t=t,
                        return_eigenvalues=return_eigenvalues,
                        memory_bytes=available_memory_bytes(xt.device) + xt.numel() * xt.element_size())
    if not plan["fits"]:
        hint = "--solver approx, " if plan["solver"] == "exact" else ""
        raise MemoryLimitError(
            f"N = {n} does not fit: {format_plan(plan)}; use --max-n to subsample, {hint}--dtype float32, "
            "or another device"
        )
    if max_seconds is not None and plan["expected_seconds"] > max_seconds:
        raise ComputationError(
            f"N = {n}: {format_plan(plan)}, more than `max_seconds` = {max_seconds:g}; use --max-n to subsample, "
            "another solver or device, or a larger limit"
        )
    return plan


def _approximate_dse(xt: torch.Tensor, sigma: float, *, plan: dict[str, Any], t: int, base: float, seed: int,
                     tol_bits: float) -> tuple[float, dict[str, Any]]:
    """DSE by :func:`dsecli.diffusion.slq.approximate_spectral_entropy` on the operator the plan chose."""
    import math

    from dsecli.diffusion.operators import build_operator, describe
    from dsecli.diffusion.slq import ApproxSettings, approximate_spectral_entropy

    with Timer(xt.device) as tk:
        op = build_operator(xt, sigma, kind=plan["operator"], storage=resolve_dtype(plan["storage_dtype"]))
    with Timer(xt.device) as ts:
        nats, report = approximate_spectral_entropy(op, t=t, seed=seed, settings=ApproxSettings(tol_bits=tol_bits))
    err = report.pop("error_estimate_nats")
    report["error_estimate"] = err / math.log(base)
    # the random part of the bound (z x standard error) alone: independent runs add it in quadrature
    report["noise_estimate"] = report["stderr_multiplier"] * report["stderr_nats"] / math.log(base)
    report["error_estimate_bits"] = err / math.log(2.0)
    for key in ("stderr_nats", "quadrature_error_nats", "deflation_error_nats"):
        report[key.replace("_nats", "_bits")] = report.pop(key) / math.log(2.0)
    report.update(describe(op))
    report["timings_s"] = {"kernel": tk.elapsed_s, "spectral_sums": ts.elapsed_s, **report["timings_s"]}
    return nats / math.log(base), report


def _plan_class_sizes(n: int, xt: torch.Tensor, counts: Any, *, solver: str, t: int, repetitions: int,
                      max_seconds: float | None) -> tuple[dict[int, dict[str, Any]], bool]:
    """DSMI's plan (:func:`dsecli.diffusion.plan.plan_mutual_information`): one DSE plan per class size, and
    whether the N x N kernel is shared. Raises like :func:`diffusion_spectral_entropy` when a
    size does not fit, or when the expected total exceeds ``max_seconds``.
    """
    from dsecli.diffusion.plan import format_plan, plan_mutual_information

    # the rows are already on the device: count them as available again
    plan = plan_mutual_information(counts, int(xt.shape[1]), solver=solver, repetitions=repetitions,
                                   device=xt.device, dtype=xt.dtype, t=t,
                                   memory_bytes=available_memory_bytes(xt.device) + xt.numel() * xt.element_size())
    sizes = {int(m): p for m, p in plan["sizes"].items()}
    for m, p in sorted(sizes.items(), reverse=True):
        if not p["fits"]:
            hint = "--solver approx, " if p["solver"] == "exact" else ""
            raise MemoryLimitError(
                f"N = {n}: DSMI takes DSEs of classes of up to {max(sizes)} rows and N = {m} does not fit: "
                f"{format_plan(p)}; use --max-n to subsample, {hint}--dtype float32, or another device"
            )
    if max_seconds is not None and plan["expected_seconds"] > max_seconds:
        raise ComputationError(
            f"N = {n}: about {plan['expected_seconds']:.0f} s expected for {plan['dse_count']} DSEs (largest class of "
            f"{max(sizes)} rows: {format_plan(sizes[max(sizes)])}), more than `max_seconds` = {max_seconds:g}; "
            "use --max-n to subsample, --solver approx or auto, or a larger limit"
        )
    return sizes, plan["shared_kernel"]


def _knn_adjacency(xt: torch.Tensor, k: int) -> torch.Tensor:
    """A_ij = 1 if d_ij <= r_i, r_i the k-th smallest distance of row i counting the point itself."""
    import torch

    xc = xt - xt.mean(dim=0, keepdim=True)
    d2 = pairwise_sq_dists(xc)
    kth = torch.kthvalue(d2, k, dim=1, keepdim=True).values
    return (d2 <= kth).to(xt.dtype)


def adjacency_spectral_entropy(
    x: Any,
    *,
    kernel: str = "gaussian",
    sigma: float | str = "median",
    k: int = 10,
    t: int = 1,
    max_n: int | None = DEFAULT_MAX_N,
    seed: int = 0,
    sampler: str = "numpy",
    device: Any = None,
    dtype: Any = None,
    base: float = 2.0,
    return_eigenvalues: bool = False,
    flatten: bool = False,
    drop_nonfinite: bool = False,
) -> EntropyResult:
    """Spectral entropy of an adjacency matrix (the published variants; docs/method.md#ase).

    ``kernel="gaussian"``: eigenvalues of G; ``"normalized"``: of Q^-1/2 G Q^-1/2 (equal to
    DSE); ``"knn"``: of the binary kNN adjacency A_ij = [d_ij <= r_i], r_i the k-th smallest
    distance of row i including the point itself. The kNN matrix is not symmetric: a general
    eigensolver is used and |lambda| is the complex modulus. Then alpha = |lambda|^t / sum,
    H = -sum alpha log alpha.

    Returns
    -------
    EntropyResult
        ``method`` "ase-<kernel>", ``value`` in ``units``; ``params`` records the kernel, the
        numeric sigma (or k) and everything else used.
    """
    check_choice(kernel, "kernel", ASE_KERNELS)
    t = check_positive_int(t, "t")
    start = time.perf_counter()
    rows, xt, base = _setup(x, max_n=max_n, seed=seed, sampler=sampler, device=device, dtype=dtype, base=base,
                            flatten=flatten, drop_nonfinite=drop_nonfinite)
    extra_params: dict[str, Any] = {}
    with _Collect(rows.warnings) as notes:
        if kernel == "knn":
            k = check_neighbors(k, rows.n_used, method="the kNN adjacency", self_included=True, where=rows.source)
            lam = general_eigenvalue_moduli(_knn_adjacency(xt, k))
            extra_params["k"] = k
        else:
            choice = resolve_sigma(sigma, xt, seed=seed)
            extra_params.update(regime_params(warn_if_uninformative(xt, choice, seed=seed)))
            g = gaussian_kernel(xt, choice.value)
            if kernel == "normalized":
                symmetric_normalize_(g)
            lam = symmetric_eigenvalues(g)
            del g
            extra_params = {**_sigma_params(choice), **extra_params}
        value = spectral_entropy(lam, t=t, base=base)
    params = {"kernel": kernel, **extra_params, "t": t, **_common_params(rows, xt, max_n=max_n, seed=seed, sampler=sampler)}
    return EntropyResult(
        method=f"ase-{kernel}", value=value, units=units_for_base(base), base=base, n_used=rows.n_used,
        n_total=rows.n_total, params=params, elapsed_s=time.perf_counter() - start, warnings=tuple(notes),
        eigenvalues=_sorted_desc(lam) if return_eigenvalues else None,
        extra=log_n_ceiling(value, rows.n_used, base),
    )


def matrix_entry_entropy(
    x: Any,
    *,
    sigma: float | str = "median",
    max_n: int | None = DEFAULT_MAX_N,
    seed: int = 0,
    sampler: str = "numpy",
    device: Any = None,
    dtype: Any = None,
    base: float = 2.0,
    flatten: bool = False,
    drop_nonfinite: bool = False,
) -> EntropyResult:
    """Entropy of the entries of the row-normalised diffusion matrix (docs/method.md#matrix-entry).

    P'_ij = K_ij / sum_l K_il with K = Q^-1/2 G Q^-1/2; p_ij = |P'_ij| / N over all N^2
    entries; H = -sum (p + eps) log (p + eps). At most log N^2 = 2 log N.

    Returns
    -------
    EntropyResult
        ``method`` "matrix-entry", ``value`` in ``units``; ``params`` records the numeric sigma.
    """
    start = time.perf_counter()
    rows, xt, base = _setup(x, max_n=max_n, seed=seed, sampler=sampler, device=device, dtype=dtype, base=base,
                            flatten=flatten, drop_nonfinite=drop_nonfinite)
    with _Collect(rows.warnings) as notes:
        choice = resolve_sigma(sigma, xt, seed=seed)
        regime = warn_if_uninformative(xt, choice, seed=seed)
        g = gaussian_kernel(xt, choice.value)
        k = symmetric_normalize_(g)
        k.abs_()
        k.div_(k.sum(dim=1, keepdim=True))
        k.div_(k.sum())
        value = entropy_of_probabilities(k.double().cpu().numpy().ravel(), base=base)
        del k, g
    params = {**_sigma_params(choice), **regime_params(regime),
              **_common_params(rows, xt, max_n=max_n, seed=seed, sampler=sampler)}
    return EntropyResult(
        method="matrix-entry", value=value, units=units_for_base(base), base=base, n_used=rows.n_used,
        n_total=rows.n_total, params=params, elapsed_s=time.perf_counter() - start, warnings=tuple(notes),
        extra=log_n_ceiling(value, rows.n_used, base, power=2),
    )


def diffusion_spectral_mutual_information(
    x: Any,
    y: Any = None,
    *,
    sigma: float | str = "median",
    t: int = 1,
    ref_kind: str = "auto",
    n_clusters: int = 10,
    repetitions: int = 5,
    max_n: int | None = DEFAULT_MAX_N,
    seed: int = 0,
    sampler: str = "numpy",
    device: Any = None,
    dtype: Any = None,
    base: float = 2.0,
    solver: str = "exact",
    tol_bits: float = 0.01,
    max_seconds: float | None = None,
    flatten: bool = False,
    drop_nonfinite: bool = False,
) -> MIResult:
    """Diffusion spectral mutual information I_D(X; Y) (docs/method.md#dsmi).

    .. math::

        I_D = \\sum_y \\frac{n_y}{N}\\Big[\\frac{1}{R}\\sum_r \\mathrm{DSE}(X^*_r) - \\mathrm{DSE}(X_{Y=y})\\Big]

    ``x`` as for :func:`diffusion_spectral_entropy`; ``y`` (N rows, or None when ``x`` is a
    :class:`~dsecli.inputs.prepare.Prepared` holding its reference) is the reference.
    X* are uniform size-n_y subsets of all rows (R = ``repetitions`` draws per class), which
    cancels DSE's dependence on sample size. Y may be labels, scalars (binned into
    ``n_clusters`` equal-width bins) or vectors (k-means into ``n_clusters`` groups); see
    :func:`dsecli.inputs.reference.reference_classes`. The Gaussian kernel on all rows is computed
    once; every class and subset uses its restriction (G_ij depends only on the pair), then
    its own normalisation and eigenvalues.

    Every DSE here is taken at a class size n_y, so ``solver`` is planned per size (as in
    :func:`diffusion_spectral_entropy`): "exact" everywhere, "approx" everywhere, or "auto"
    (exact up to 10,000 rows on CPU). When the N x N kernel does not fit in memory, or some
    size needs the approximate solver, each subset's kernel is computed from its own rows
    instead of being cut out of the shared kernel (same values up to rounding). The
    approximate DSEs run at ``tol_bits / 2`` each, so the reported ``extra["error_estimate"]``
    (their systematic bounds added linearly, their independent random parts in quadrature:
    :func:`dsecli.measures.conditional.size_matched_mutual_information`) stays below
    ``tol_bits`` when they converge.

    Returns
    -------
    MIResult
        value (may be slightly negative: estimation noise, reported as computed) and, in
        ``extra``, ``h_conditional``, ``h_marginal_matched``, per-class terms and the solver
        used for each class size (``solvers``).
    """
    t = check_positive_int(t, "t")
    repetitions = check_positive_int(repetitions, "repetitions")
    check_choice(ref_kind, "ref_kind", REF_KINDS)
    check_choice(solver, "solver", SOLVERS)
    if solver != "exact":
        tol_bits = check_positive(tol_bits, "tol_bits")
    if max_seconds is not None:
        max_seconds = check_positive(max_seconds, "max_seconds")
    start = time.perf_counter()
    rows, xt, base = _setup(x, max_n=max_n, seed=seed, sampler=sampler, device=device, dtype=dtype, base=base,
                            flatten=flatten, drop_nonfinite=drop_nonfinite, dense_copies=None, y=y,
                            with_reference=True)
    import torch

    approx_runs = 0
    with _Collect(rows.warnings) as notes:
        classes = reference_classes(rows.reference, kind=ref_kind, n_clusters=n_clusters, seed=seed,
                                    where=rows.reference_source)
        plans, shared = _plan_class_sizes(rows.n_used, xt, classes.counts, solver=solver, t=t,
                                          repetitions=repetitions, max_seconds=max_seconds)
        choice = resolve_sigma(sigma, xt, seed=seed)
        regime = warn_if_uninformative(xt, choice, seed=seed)
        if shared:
            g = gaussian_kernel(xt, choice.value)

        def entropies(sets: list[np.ndarray]) -> list[tuple[float, float, float]]:
            nonlocal approx_runs
            out: list[tuple[float, float, float]] = [(0.0, 0.0, 0.0)] * len(sets)
            exact: list[int] = []
            for i, idx in enumerate(sets):
                plan = plans[len(idx)]
                if plan["solver"] != "approx":
                    exact.append(i)
                    continue
                # each run its own probes (seed + run number): their errors do not line up
                ti = torch.as_tensor(idx, device=xt.device)
                value, report = _approximate_dse(xt.index_select(0, ti), choice.value, plan=plan, t=t, base=base,
                                                 seed=seed + approx_runs, tol_bits=tol_bits / 2)
                approx_runs += 1
                noise = report["noise_estimate"]
                out[i] = (value, report["error_estimate"] - noise, noise)

            def operator_of(j: int) -> torch.Tensor:
                ti = torch.as_tensor(sets[exact[j]], device=xt.device)
                if not shared:
                    return symmetric_normalize_(gaussian_kernel(xt.index_select(0, ti), choice.value))
                # one gather of the n_y^2 entries (two index_selects copy n_y x N first: 8x slower at N = 8,000)
                m = ti.shape[0]
                return symmetric_normalize_(g.reshape(-1).take((ti[:, None] * g.shape[0] + ti[None, :]).reshape(-1))
                                            .reshape(m, m))

            for i, lam in zip(exact, symmetric_eigenvalues_many(operator_of, len(exact),
                                                                 sizes=[len(sets[j]) for j in exact])):
                out[i] = (spectral_entropy(lam, t=t, base=base), 0.0, 0.0)
            return out

        value, details = size_matched_mutual_information(
            entropies, classes, repetitions=repetitions, seed=seed, sampler=sampler,
            with_errors=any(p["solver"] == "approx" for p in plans.values()),
        )
    details.update(reference_ceiling(value, classes.counts, base,
                                     what="labels" if classes.kind == "labels" else f"classes ({classes.kind})"))
    details["solvers"] = {str(n): p["solver"] for n, p in sorted(plans.items())}
    details["shared_kernel"] = shared
    if "error_estimate" in details:
        details["error_estimate_bits"] = details["error_estimate"] * math.log(base) / math.log(2.0)
        details["approx_runs"] = approx_runs
    params = {
        **_sigma_params(choice), **regime_params(regime), "t": t, "ref_kind": ref_kind, "classes_from": classes.kind,
        "n_classes": len(classes.names), "n_clusters": n_clusters, "repetitions": repetitions,
        **_common_params(rows, xt, max_n=max_n, seed=seed, sampler=sampler),
    }
    # as for DSE: the solver that ran (both when class sizes differ), and what was asked if not that
    ran = sorted({p["solver"] for p in plans.values()}, key=SOLVERS.index) or ["exact"]
    params["solver"] = "+".join(ran)
    if params["solver"] != solver:
        params["solver_requested"] = solver
    if "approx" in ran:
        params["tol_bits"] = tol_bits
    if max_seconds is not None:
        params["max_seconds"] = max_seconds
    if classes.detail:
        params["reference_detail"] = classes.detail
    return MIResult(
        method="dsmi", value=value, units=units_for_base(base), base=base, n_used=rows.n_used,
        n_total=rows.n_total, params=params, elapsed_s=time.perf_counter() - start, warnings=tuple(notes),
        extra=details,
    )
