"""Spectral representation metrics beside DSE, on the same rows: "renyi-gram", "vne-cov", "rankme".

Each is the entropy of a probability vector made from a spectrum:

- ``renyi-gram``: eigenvalues of the trace-normalised Gaussian Gram matrix K / tr K (N x N);
  matrix-based Renyi alpha-entropy (Sanchez Giraldo, Rao & Principe 2015);
- ``vne-cov``: eigenvalues of the trace-normalised covariance C / tr C (D x D); von Neumann
  "matrix entropy" (Wei et al. 2024, Diff-eRank);
- ``rankme``: normalised singular values of the data matrix (N x D); effective rank
  (Roy & Vetterli 2007), RankMe (Garrido et al. 2023).

All run in torch on any device; values are in log base ``base`` (2: bits) and bounded by the log
of the spectrum's length (log N for the Gram matrix, log D for the covariance, log min(N, D) for the
singular values), reported in ``extra`` as DSE reports its ceilings.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from dsecli.device import dtype_name
from dsecli.edge import Call, Measured, public_method
from dsecli.errors import ComputationError, InputError, check_finite_number
from dsecli.inputs.prepare import Prepared
from dsecli.results import ceiling_fields

__all__ = ["renyi_gram_entropy", "covariance_von_neumann_entropy", "rankme_entropy", "spectral_entropy_nats"]


def spectral_entropy_nats(p: np.ndarray, alpha: float = 1.0) -> float:
    """Renyi alpha-entropy of a probability vector p (nats): log(sum p^alpha) / (1 - alpha); alpha = 1:
    Shannon, -sum p log p (0 log 0 = 0)."""
    p = p[p > 0]
    if alpha == 1.0:
        return float(-(p * np.log(p)).sum())
    if math.isinf(alpha):
        return float(-math.log(p.max()))
    return float(math.log(np.sum(p**alpha)) / (1.0 - alpha))


def _check_alpha(alpha: Any) -> float:
    if isinstance(alpha, str) and alpha.strip().lower() in ("inf", "infinity"):
        return math.inf
    a = float(alpha) if isinstance(alpha, (int, float)) and not isinstance(alpha, bool) else None
    if a is None or not (a > 0 and (math.isfinite(a) or a == math.inf)):
        raise InputError(f"`alpha` must be a number > 0 (1: von Neumann, inf: min-entropy); got {alpha!r}")
    return a


def _spectrum_probabilities(vals: Any, what: str) -> np.ndarray:
    v = np.asarray(vals.detach().double().cpu().numpy() if hasattr(vals, "detach") else vals, dtype=np.float64)
    v = np.clip(v, 0.0, None)  # rounding leaves tiny negative eigenvalues of a PSD matrix
    total = v.sum()
    if not total > 0:
        raise ComputationError(f"the {what} is zero: every row is the same point")
    return np.sort(v / total)[::-1]


def _result(p: np.ndarray, alpha: float, call: Call, params: dict[str, Any], ceiling_len: int, ceiling_name: str,
            return_eigenvalues: bool) -> Measured:
    h = spectral_entropy_nats(p, alpha)
    ceiling = math.log(ceiling_len)
    what = {"n": "N_used", "d": "D", "rank": "min(N_used, D)"}[ceiling_name]
    extra = {"value_nats": h, f"ceiling_{ceiling_name}": call.from_nats(ceiling), "ceiling_nats": ceiling,
             **ceiling_fields(call.from_nats(h), call.from_nats(ceiling), f"log {what} = log {ceiling_len}"),
             "effective_rank": math.exp(h), "n_positive": int(np.sum(p > 0))}
    return Measured(call.from_nats(h), params, extra, eigenvalues=p if return_eigenvalues else None)


@public_method("renyi-gram")
def renyi_gram_entropy(
    rows: Prepared,
    call: Call,
    *,
    alpha: float = 1.0,
    sigma: Any = "median",
    return_eigenvalues: bool = False,
) -> Measured:
    """Matrix-based Renyi alpha-entropy of the trace-normalised Gaussian Gram matrix ("renyi-gram").

    .. math::

        A = K / \\operatorname{tr} K, \\quad K_{ij} = e^{-\\|x_i - x_j\\|^2 / (2\\sigma^2)}, \\qquad
        S_\\alpha(A) = \\frac{1}{1 - \\alpha} \\log \\sum_{i=1}^N \\lambda_i(A)^\\alpha

    with the limit S_1 = -sum lambda_i log lambda_i (von Neumann) at alpha = 1. tr K = N. Values in
    log base ``base``; 0 <= S_alpha <= log N (all rows far apart at the kernel's scale), reported
    as ``extra["ceiling_n"]``; ``extra["effective_rank"]`` = e^(S in nats).

    Parameters
    ----------
    x : array-like, shape (N, D), a tensor, a lazy source or :class:`~dsecli.inputs.sampling.Rows`
    alpha : float > 0 or "inf"
        Renyi order (1: von Neumann; Skean et al. 2025 use 1 layer by layer).
    sigma : float, "median" or "sqrt-d"
        Kernel width, as for DSE (:func:`dsecli.diffusion.kernels.resolve_sigma`).
    max_n, seed, sampler, flatten, drop_nonfinite, device, dtype, base, return_eigenvalues
        As for :func:`dsecli.diffusion_spectral_entropy`.

    Returns
    -------
    EntropyResult
        ``eigenvalues`` (with ``return_eigenvalues``): the spectrum of A (descending, sums to 1).

    References
    ----------
    L. G. Sanchez Giraldo, M. Rao, J. C. Principe, "Measures of entropy from data using infinitely
    divisible kernels", IEEE Trans. Inf. Theory 61(1) (2015) 535-548, eq. (2)-(3). O. Skean et al.,
    "Layer by Layer: Uncovering Hidden Representations in Language Models", ICML 2025.
    """
    alpha = _check_alpha(alpha)
    xt = rows.tensor()
    import torch

    from dsecli.diffusion.kernels import gaussian_kernel
    from dsecli.measures.dse import sigma_for

    choice, sigma_params = sigma_for(rows, call, xt, sigma)
    g = gaussian_kernel(xt, choice.value)
    vals = torch.linalg.eigvalsh(g / g.diagonal().sum())
    p = _spectrum_probabilities(vals, "Gram matrix")
    params = {"alpha": alpha, **sigma_params, "kernel": "gaussian", "normalisation": "trace",
              "device": str(xt.device), "dtype": dtype_name(xt.dtype), "n_features": int(xt.shape[1])}
    return _result(p, alpha, call, params, int(xt.shape[0]), "n", return_eigenvalues)


@public_method("vne-cov")
def covariance_von_neumann_entropy(
    rows: Prepared,
    call: Call,
    *,
    return_eigenvalues: bool = False,
) -> Measured:
    """Von Neumann entropy of the trace-normalised covariance ("vne-cov").

    .. math::

        \\rho = C / \\operatorname{tr} C, \\quad C = \\frac{1}{N} (X - \\bar x)^\\top (X - \\bar x), \\qquad
        S(\\rho) = -\\sum_{k=1}^D \\lambda_k(\\rho) \\log \\lambda_k(\\rho)

    Values in log base ``base``; 0 (one direction of variance) <= S <= log D (isotropic),
    reported as ``extra["ceiling_d"]``; ``extra["effective_rank"]`` = e^(S in nats). Invariant to
    the data's scale and to rotations.

    Parameters
    ----------
    x : array-like, shape (N, D)
    max_n, seed, sampler, flatten, drop_nonfinite, device, dtype, base, return_eigenvalues
        As for :func:`dsecli.diffusion_spectral_entropy`.

    Returns
    -------
    EntropyResult
        ``eigenvalues`` (with ``return_eigenvalues``): the spectrum of rho (descending, sums to 1).

    References
    ----------
    L. Wei, Z. Tan, C. Li, J. Wang, W. Huang, "Diff-eRank: A Novel Rank-Based Metric for Evaluating
    Large Language Models", NeurIPS 2024 (matrix entropy of the normalised covariance).
    """
    xt = rows.tensor()
    import torch

    xc = xt - xt.mean(dim=0, keepdim=True)
    cov = xc.T @ xc / xt.shape[0]
    vals = torch.linalg.eigvalsh(cov / cov.diagonal().sum().clamp_min(torch.finfo(cov.dtype).tiny))
    p = _spectrum_probabilities(vals, "covariance")
    params = {"centred": True, "normalisation": "trace", "device": str(xt.device), "dtype": dtype_name(xt.dtype),
              "n_features": int(xt.shape[1])}
    return _result(p, 1.0, call, params, int(xt.shape[1]), "d", return_eigenvalues)


@public_method("rankme")
def rankme_entropy(
    rows: Prepared,
    call: Call,
    *,
    centre: bool = False,
    eps: float = 1e-7,
    return_eigenvalues: bool = False,
) -> Measured:
    """Entropy of the normalised singular values ("rankme"); the effective rank is base^value.

    .. math::

        p_k = \\frac{s_k}{\\sum_j s_j} + \\epsilon, \\qquad H = -\\sum_{k=1}^{\\min(N, D)} p_k \\log p_k,
        \\qquad \\operatorname{erank} = e^{H \\text{ (nats)}}

    s_k are the singular values of the (N, D) data matrix (not centred, as in RankMe, unless
    ``centre``). ``eps`` (RankMe's 1e-7) keeps log finite and is added to every p_k; 0 follows Roy
    & Vetterli exactly (0 log 0 = 0). Values in log base ``base``; 0 <= H <= log min(N, D)
    (``extra["ceiling_rank"]``), ``extra["effective_rank"]`` = exp(H nats) = base^value.

    Parameters
    ----------
    x : array-like, shape (N, D)
    centre : bool
        Subtract the column means first.
    eps : float >= 0
        Added to every p_k.
    max_n, seed, sampler, flatten, drop_nonfinite, device, dtype, base, return_eigenvalues
        As for :func:`dsecli.diffusion_spectral_entropy`.

    Returns
    -------
    EntropyResult
        ``eigenvalues`` (with ``return_eigenvalues``): the p_k (descending).

    References
    ----------
    O. Roy, M. Vetterli, "The effective rank: a measure of effective dimensionality", EUSIPCO 2007,
    eq. (1)-(3). Q. Garrido, R. Balestriero, L. Najman, Y. LeCun, "RankMe: Assessing the downstream
    performance of pretrained self-supervised representations by their rank", ICML 2023, eq. (1).
    """
    eps = check_finite_number(eps, "eps")
    if eps < 0:
        raise InputError(f"`eps` must be >= 0; got {eps!r}")
    xt = rows.tensor()
    import torch

    if centre:
        xt = xt - xt.mean(dim=0, keepdim=True)
    s = torch.linalg.svdvals(xt)
    p = _spectrum_probabilities(s, "data matrix") + eps
    params = {"centre": bool(centre), "eps": eps, "device": str(xt.device), "dtype": dtype_name(xt.dtype),
              "n_features": int(xt.shape[1])}
    return _result(p, 1.0, call, params, int(min(xt.shape)), "rank", return_eigenvalues)
