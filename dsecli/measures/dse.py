"""Diffusion spectral entropy and mutual information.

Reference: D. Liao, C. Liu, B. W. Christensen, A. Tong, G. Huguet, G. Wolf, M. Nickel,
I. Adelstein, S. Krishnaswamy, "Assessing Neural Network Representations During Training
Using Noise-Resilient Diffusion Spectral Entropy", ICML 2023 TAG-ML workshop / IEEE CISS
2024, arXiv:2312.04823. Formulas and conventions: docs/method.md (#kernel to #dsmi, #ase, #matrix-entry, #golden).

Each public function here is a kernel behind the edge of :func:`dsecli.edge.public_method`:
the edge checks the row selection, prepares the rows and collects warnings; the kernel takes
the prepared rows (:class:`~dsecli.inputs.prepare.Prepared`) and its own options.
"""

from __future__ import annotations

import math
import warnings
from typing import TYPE_CHECKING, Any

import numpy as np

from dsecli.device import Timer, dtype_name, resolve_dtype
from dsecli.diffusion.eigen import diffusion_eigenvalues, symmetric_eigenvalues_many
from dsecli.diffusion.kernels import (
    SigmaChoice,
    centred_sq_dists,
    gaussian_kernel,
    gaussian_kernel_block,
    kernel_regime,
    regime_message,
    regime_params,
    resolve_sigma,
    symmetric_normalize_,
)
from dsecli.diffusion.plan import SOLVERS, keeps_distances, require_entropy_plan, require_mi_plan
from dsecli.diffusion.spectral import spectral_entropy
from dsecli.edge import Call, Measured, public_method
from dsecli.errors import DegenerateKernelWarning, DseWarning, check_choice, check_positive, check_positive_int
from dsecli.inputs.prepare import Prepared
from dsecli.inputs.reference import REF_KINDS
from dsecli.measures.conditional import size_matched_mutual_information
from dsecli.results import log_n_ceiling, reference_ceiling

if TYPE_CHECKING:  # pragma: no cover
    import torch

__all__ = [
    "diffusion_spectral_entropy",
    "diffusion_spectral_mutual_information",
    "sigma_for",
    "kept_sq_dists",
    "placement",
    "sorted_descending",
]

def _sq_dists_key(xt: torch.Tensor) -> tuple[str, str, str]:
    return ("sq_dists", str(xt.dtype), str(xt.device))


def kept_sq_dists(rows: Prepared, xt: torch.Tensor) -> torch.Tensor | None:
    """The squared distances of the rows ``xt`` (:func:`~dsecli.diffusion.kernels.centred_sq_dists`) where
    this call keeps the ones the median rule formed (:func:`~dsecli.diffusion.plan.keeps_distances`), else None.
    Read, never changed: every dense kernel of the call is made from them instead of from the rows again."""
    return rows.kept(_sq_dists_key(xt))


def _keep_sq_dists(rows: Prepared, xt: torch.Tensor, sigma: Any) -> torch.Tensor | None:
    """The squared distances for the median rule: made and kept for the call where
    :func:`~dsecli.diffusion.plan.keeps_distances` says so, else None (the rule forms and drops its own)."""
    n, d = (int(v) for v in xt.shape)
    if not keeps_distances(n, d, sigma=sigma, device=xt.device, dtype=xt.dtype):
        return None
    return rows.once(_sq_dists_key(xt), lambda: centred_sq_dists(xt), for_call=True)


def sigma_for(rows: Prepared, call: Call, xt: torch.Tensor, sigma: Any) -> tuple[SigmaChoice, dict[str, Any]]:
    """``sigma`` (a number, a rule, or a :class:`~dsecli.diffusion.kernels.SigmaChoice` made elsewhere) resolved
    for ``rows``, and its parameters (the kernel's regime for a number): decided once per call and shared by every method of the call; a bandwidth in the
    uninformative regime warns for each method that uses it. The median rule's squared distances of all rows are
    kept for the rest of the call where they fit (:func:`kept_sq_dists`)."""
    key = ("sigma", str(sigma), call.seed, str(xt.dtype), str(xt.device))
    # a SigmaChoice is a value decided elsewhere with its rule (one sigma for every input of a batch)
    choice = sigma if isinstance(sigma, SigmaChoice) else rows.once(key, lambda: resolve_sigma(
        sigma, xt, seed=call.seed, sq_dists=lambda: _keep_sq_dists(rows, xt, sigma), where=rows.source))
    regime = None
    if choice.rule != "median":
        # computed once; the warning is raised again for each method that uses this bandwidth
        regime = rows.once(key + ("regime",), lambda: kernel_regime(xt, choice, seed=call.seed))
        message = regime_message(regime)
        if message is not None:
            warnings.warn(message, DegenerateKernelWarning, stacklevel=3)
    params: dict[str, Any] = {"sigma": choice.value, "sigma_rule": choice.rule}
    if choice.detail:
        params["sigma_detail"] = choice.detail
    return choice, {**params, **regime_params(regime)}


def placement(xt: torch.Tensor) -> dict[str, Any]:
    return {"device": str(xt.device), "dtype": dtype_name(xt.dtype), "n_features": int(xt.shape[1])}


def sorted_descending(lam: torch.Tensor) -> np.ndarray:
    return np.sort(lam.detach().double().cpu().numpy())[::-1].copy()


def _check_solver(solver: str, tol_bits: Any, max_seconds: Any) -> tuple[float, float | None]:
    check_choice(solver, "solver", SOLVERS)
    if solver != "exact":
        tol_bits = check_positive(tol_bits, "tol_bits")
    if max_seconds is not None:
        max_seconds = check_positive(max_seconds, "max_seconds")
    return tol_bits, max_seconds


def _solver_params(ran: str, solver: str, tol_bits: float, max_seconds: float | None) -> dict[str, Any]:
    out: dict[str, Any] = {"solver": ran}
    if ran != solver:
        out["solver_requested"] = solver
    if "approx" in ran:
        out["tol_bits"] = tol_bits
    if max_seconds is not None:
        out["max_seconds"] = max_seconds
    return out


@public_method("dse")
def diffusion_spectral_entropy(
    rows: Prepared,
    call: Call,
    *,
    sigma: float | str = "median",
    t: int = 1,
    solver: str = "exact",
    tol_bits: float = 0.01,
    max_seconds: float | None = None,
    return_eigenvalues: bool = False,
) -> Measured:
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
    tol_bits, max_seconds = _check_solver(solver, tol_bits, max_seconds)
    xt = rows.tensor()
    plan = require_entropy_plan(rows.n_used, xt, solver=solver, t=t, return_eigenvalues=return_eigenvalues,
                                max_seconds=max_seconds)
    choice, sigma_params = sigma_for(rows, call, xt, sigma)
    lam = None
    if plan["solver"] == "exact":
        lam, timings = diffusion_eigenvalues(xt, choice.value, sq_dists=kept_sq_dists(rows, xt))
        value = spectral_entropy(lam, t=t, base=call.base)
        extra: dict[str, Any] = {"timings_s": timings}
    else:
        value, extra = _approximate_dse(xt, choice.value, plan=plan, t=t, base=call.base, seed=call.seed,
                                        tol_bits=tol_bits)
    extra["plan"] = plan
    extra.update(log_n_ceiling(value, rows.n_used, call.base))
    params = {**sigma_params, "t": t, **_solver_params(plan["solver"], solver, tol_bits, max_seconds),
              **placement(xt)}
    return Measured(value, params, extra,
                    eigenvalues=sorted_descending(lam) if return_eigenvalues and lam is not None else None)


def _approximate_dse(xt: torch.Tensor, sigma: float, *, plan: dict[str, Any], t: int, base: float, seed: int,
                     tol_bits: float, warn_unmet: bool = True) -> tuple[float, dict[str, Any]]:
    """DSE by :func:`dsecli.diffusion.slq.approximate_spectral_entropy` on the operator the plan chose; a
    DseWarning when the target ``tol_bits`` was not met (``warn_unmet``; DSMI warns on its combined bound)."""
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
    if warn_unmet and (not report.get("converged", True) or report["error_estimate_bits"] > tol_bits):
        _warn_unmet(tol_bits, f"its error estimate is {report['error_estimate_bits']:.3g} bits after "
                              f"{report.get('probes')} probes")
    for key in ("stderr_nats", "quadrature_error_nats", "deflation_error_nats"):
        report[key.replace("_nats", "_bits")] = report.pop(key) / math.log(2.0)
    report.update(describe(op))
    report["timings_s"] = {"kernel": tk.elapsed_s, "spectral_sums": ts.elapsed_s, **report["timings_s"]}
    return nats / math.log(base), report


def _warn_unmet(tol_bits: float, estimate: str) -> None:
    """The warning of an approximate value whose error bound is above the ``tol_bits`` asked for."""
    warnings.warn(f"the approximate solver did not reach tol_bits = {tol_bits:g}: {estimate}; the value may be "
                  "off by that much (solver exact, or a larger tol_bits)", DseWarning, stacklevel=3)


@public_method("dsmi", quantity="mi")
def diffusion_spectral_mutual_information(
    rows: Prepared,
    call: Call,
    *,
    sigma: float | str = "median",
    t: int = 1,
    ref_kind: str = "auto",
    n_clusters: int = 10,
    repetitions: int = 5,
    solver: str = "exact",
    tol_bits: float = 0.01,
    max_seconds: float | None = None,
) -> Measured:
    """Diffusion spectral mutual information I_D(X; Y) (docs/method.md#dsmi).

    .. math::

        I_D = \\sum_y \\frac{n_y}{N}\\Big[\\frac{1}{R}\\sum_r \\mathrm{DSE}(X^*_r) - \\mathrm{DSE}(X_{Y=y})\\Big]

    ``x`` as for :func:`diffusion_spectral_entropy`; ``y`` (N rows, or None when ``x`` is a
    :class:`~dsecli.inputs.prepare.Prepared` holding its reference) is the reference.
    X* are uniform size-n_y subsets of all rows (R = ``repetitions`` draws per class), which
    cancels DSE's dependence on sample size. Y may be labels, scalars (binned into
    ``n_clusters`` equal-width bins) or vectors (k-means into ``n_clusters`` groups); see
    :func:`dsecli.inputs.reference.reference_classes`. Every class and subset uses the restriction
    of the Gaussian kernel on all rows (G_ij depends only on the pair), then its own normalisation
    and eigenvalues: cut out of the squared distances of all rows where the plan finds that cheaper
    (:func:`dsecli.diffusion.plan.plan_mutual_information`; the median rule's distances are kept
    for the call where they fit), else computed from the set's own rows.

    Every DSE here is taken at a class size n_y, so ``solver`` is planned per size (as in
    :func:`diffusion_spectral_entropy`): "exact" everywhere, "approx" everywhere, or "auto"
    (exact up to 10,000 rows on CPU). When the N x N distances do not fit in memory, or some
    size needs the approximate solver, each subset's kernel is computed from its own rows
    instead of being cut out of them (same values up to rounding). The
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
    tol_bits, max_seconds = _check_solver(solver, tol_bits, max_seconds)
    import torch

    xt = rows.tensor()
    base, seed = call.base, call.seed
    approx_runs = 0
    classes = rows.reference_reading(ref_kind=ref_kind, seed=seed).classes(n_clusters)
    plans, shared = require_mi_plan(rows.n_used, xt, classes.counts, solver=solver, t=t, repetitions=repetitions,
                                    max_seconds=max_seconds, sigma=sigma)
    choice, sigma_params = sigma_for(rows, call, xt, sigma)
    if shared:  # every exact set's kernel is cut out of the distances of all rows (the call's, where it keeps them)
        d2 = kept_sq_dists(rows, xt)
        if d2 is None:
            d2 = centred_sq_dists(xt)

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
                                             seed=seed + approx_runs, tol_bits=tol_bits / 2, warn_unmet=False)
            approx_runs += 1
            noise = report["noise_estimate"]
            out[i] = (value, report["error_estimate"] - noise, noise)

        def operator_of(j: int) -> torch.Tensor:
            ti = torch.as_tensor(sets[exact[j]], device=xt.device)
            if not shared:
                return symmetric_normalize_(gaussian_kernel(xt.index_select(0, ti), choice.value))
            return symmetric_normalize_(gaussian_kernel_block(d2, ti, choice.value))

        for i, lam in zip(exact, symmetric_eigenvalues_many(operator_of, len(exact),
                                                             sizes=[len(sets[j]) for j in exact])):
            out[i] = (spectral_entropy(lam, t=t, base=base), 0.0, 0.0)
        return out

    value, details = size_matched_mutual_information(
        entropies, classes, repetitions=repetitions, seed=seed, sampler=call.sampler,
        with_errors=any(p["solver"] == "approx" for p in plans.values()),
    )
    details.update(reference_ceiling(value, classes.counts, base,
                                     what="labels" if classes.kind == "labels" else f"classes ({classes.kind})"))
    details["solvers"] = {str(n): p["solver"] for n, p in sorted(plans.items())}
    details["shared_kernel"] = shared
    if "error_estimate" in details:
        details["error_estimate_bits"] = details["error_estimate"] * math.log(base) / math.log(2.0)
        details["approx_runs"] = approx_runs
        if details["error_estimate_bits"] > tol_bits:  # the MI's bound, from every run's at tol_bits / 2
            _warn_unmet(tol_bits, f"the MI's error bound is {details['error_estimate_bits']:.3g} bits over "
                                  f"{approx_runs} approximate DSE runs")
    # as for DSE: the solver that ran (both when class sizes differ), and what was asked if not that
    ran = "+".join(sorted({p["solver"] for p in plans.values()}, key=SOLVERS.index) or ["exact"])
    params = {
        **sigma_params, "t": t, "ref_kind": ref_kind, "classes_from": classes.kind, "n_classes": len(classes.names),
        "n_clusters": n_clusters, "repetitions": repetitions,
        "reference_reading": rows.reference_reading(ref_kind=ref_kind, seed=seed).params(),
        **_solver_params(ran, solver, tol_bits, max_seconds), **placement(xt),
    }
    if classes.detail:
        params["reference_detail"] = classes.detail
    return Measured(value, params, details)
