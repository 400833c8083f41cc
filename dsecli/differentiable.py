"""Diffusion spectral entropy (DSE) and mutual information (DSMI) as differentiable torch losses.

The measurement API (:func:`dsecli.diffusion_spectral_entropy`,
:func:`dsecli.diffusion_spectral_mutual_information`) returns Python floats; the functions here
compute the same numbers as torch scalars whose gradient flows back to the embeddings, for use
inside a training loop (docs/differentiable.md):

.. code-block:: python

    from dsecli.differentiable import dse_loss, dsmi_loss, DSELoss, DSMILoss

    loss = ce + lam * dse_loss(z)              # z: (B, D) embeddings of a minibatch
    loss = ce - lam * dsmi_loss(z, labels)     # labels: (B,) integers
    loss = ce + lam * dse_loss(z, sigma_grad="smoothed")   # the median rule's sigma in the gradient too

Formulas (docs/method.md#kernel, #operator, #dse, #dsmi), for the B rows z_i of a batch:

- d_ij^2 = ||z_i - z_j||^2 from the centred Gram form, clamped at 0, symmetrised, d_ii^2 = 0;
- G_ij = exp(-d_ij^2 / (2 sigma^2)), q_i = sum_j G_ij, A = Q^-1/2 G Q^-1/2 (eigenvalues of P = Q^-1 G);
- alpha_i = |lambda_i|^t / sum_j |lambda_j|^t over the eigenvalues lambda of A;
- DSE = -sum_i (alpha_i + eps) log(alpha_i + eps) / log(base), eps = 2^-52, as published;
- DSMI = sum_y (n_y / B) [ mean_{r=1..R} DSE(Z*_{y,r}) - DSE(Z_{Y=y}) ].

Gradients. Every step is differentiable where it is evaluated: no square root of a distance is
taken (so duplicate rows, d = 0, have the finite gradient 2 (z_i - z_j) = 0 of d^2); the clamp at 0
passes the gradient at exactly 0; the degrees are >= 1; ``torch.linalg.eigvalsh``'s backward,
V diag(dL/dlambda) V^T, needs no gaps between eigenvalues, and for a symmetric function of the
spectrum such as DSE it does not depend on the basis chosen inside a repeated eigenvalue's
eigenspace. The powers are taken of the modulus relative to the largest one, m_i = |lambda_i| /
max |lambda| in [0, 1], so m^t can neither overflow nor underflow into a NaN (its derivative
t m^(t-1) is finite, 0 at m = 0 for t >= 2), and torch's |.| has derivative 0 at exactly 0. The
logarithm is of alpha + eps >= 2^-52, never of 0, so -(log(alpha + eps) + 1) is finite (at most
about 37 in magnitude). A is positive semi-definite, so eigenvalues below 0 are rounding (about
1e-16) and so is their gradient's share.

The median rule's sigma (the default) is a plain number in the gradient unless ``sigma_grad`` says
otherwise: ``"scale"`` or ``"smoothed"`` give it a gradient path that makes the loss's gradient
agree with its scale-invariant value (docs/differentiable.md measures the difference).

This module is torch's by nature (its losses are ``torch.nn.Module`` s), so it imports torch at
load; ``import dsecli`` does not import it.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch  # noqa: TID253 - the module defines nn.Modules; nothing imports it but its users

from dsecli.errors import InputError, check_positive, check_positive_int

__all__ = ["EPS", "SIGMA_GRADS", "DSELoss", "DSMILoss", "dse_loss", "dsmi_loss", "diffusion_kernel", "resolve_batch_sigma"]

EPS = 2.0**-52  # added to every alpha_i before the logarithm, as the published code does
SIGMA_GRADS = ("detached", "scale", "smoothed")  # what the median rule's sigma passes to the gradient


# --------------------------------------------------------------------------- checks


def _check_rows(z: Any) -> torch.Tensor:
    if not isinstance(z, torch.Tensor):
        raise InputError(f"`z` must be a torch.Tensor of shape (B, D); got {type(z).__name__}")
    if z.dim() != 2:
        raise InputError(f"`z` must have shape (B, D) (rows are samples); got shape {tuple(z.shape)}")
    if z.dtype not in (torch.float32, torch.float64):
        raise InputError(f"`z` must be float32 or float64 (eigvalsh needs one of them); got {z.dtype}")
    if z.shape[0] < 2:
        raise InputError(f"`z` needs at least 2 rows; got {z.shape[0]}")
    return z


def _check_base(base: Any) -> float:
    base = check_positive(base, "base")
    if base == 1:
        raise InputError("`base` must be > 0 and != 1; got 1")
    return base


def _check_sigma(sigma: Any) -> float | str:
    if isinstance(sigma, str):
        spec = sigma.strip().lower().replace("_", "-")
        if spec in ("sqrt-d", "sqrtd", "sqrt(d)"):
            return "sqrt-d"
        if spec == "median":
            return "median"
        raise InputError(f"`sigma` must be a number > 0, 'median' or 'sqrt-d'; got {sigma!r}")
    if isinstance(sigma, torch.Tensor) and sigma.requires_grad:
        raise InputError("`sigma` must be a number (a tensor that requires grad would be silently detached)")
    return check_positive(sigma, "sigma")


def _check_sigma_grad(sigma_grad: Any, sigma: float | str) -> str:
    if sigma_grad not in SIGMA_GRADS:
        raise InputError(f"`sigma_grad` must be one of {', '.join(SIGMA_GRADS)}; got {sigma_grad!r}")
    if sigma_grad != "detached" and sigma != "median":
        raise InputError(f"`sigma_grad` {sigma_grad!r} applies to sigma='median' only; got sigma={sigma!r}")
    return str(sigma_grad)


def _check_labels(labels: Any, n: int) -> np.ndarray:
    if isinstance(labels, torch.Tensor):
        labels = labels.detach().cpu().numpy()
    y = np.asarray(labels)
    if y.ndim != 1 or y.shape[0] != n:
        raise InputError(f"`labels` must have shape ({n},), one integer per row of `z`; got shape {y.shape}")
    if y.dtype.kind not in "iub":
        raise InputError(f"`labels` must be integers (class labels); got dtype {y.dtype}")
    return y


# --------------------------------------------------------------------------- kernel


def _sq_dists(z: torch.Tensor) -> torch.Tensor:
    """d_ij^2 = |z_i|^2 + |z_j|^2 - 2 z_i.z_j on the centred rows, symmetrised, clamped at 0, d_ii^2 = 0.

    No square root is taken: the gradient is 2 (z_i - z_j) per pair, finite (0) for duplicate rows.
    ``clamp`` passes the gradient at exactly 0; pairs that rounding pushes below 0 get gradient 0,
    which is what 2 (z_i - z_j) is there up to rounding. Memory: a few (B, B) arrays, never (B, B, D).
    """
    zc = z - z.mean(dim=0, keepdim=True)
    sq = (zc * zc).sum(dim=1)
    d2 = (zc @ zc.T).mul(-2.0).add(sq[:, None]).add(sq[None, :])
    d2 = (0.5 * (d2 + d2.T)).clamp(min=0.0)
    eye = torch.eye(z.shape[0], dtype=torch.bool, device=z.device)
    return d2.masked_fill(eye, 0.0)


def _pairs(d2: torch.Tensor) -> torch.Tensor:
    """The B(B-1)/2 entries d_ij^2, i < j (with d2's graph)."""
    n = d2.shape[0]
    iu = torch.triu_indices(n, n, offset=1, device=d2.device)
    return d2[iu[0], iu[1]]


def _order_statistic(vals: torch.Tensor, index: int) -> float:
    """The value at zero-based ``index`` of ``vals`` sorted ascending."""
    return float(torch.kthvalue(vals, index + 1).values.item())


def _median_sq(d2: torch.Tensor) -> float:
    """lower_median_{i<j} d_ij^2, from values detached from the graph."""
    with torch.no_grad():
        vals = _pairs(d2.detach())
        # the lower of the two middle values for an even count (torch.median's convention)
        med = _order_statistic(vals, (vals.numel() - 1) // 2)
    if not med > 0:
        raise InputError("`sigma` median: the median pairwise distance of the batch is 0 (more than half the "
                         "pairs are duplicates); give a numeric sigma")
    return med


def _sigma_tensor(d2: torch.Tensor, med: float, sigma_grad: str) -> torch.Tensor:
    """The median rule's sigma as a tensor whose value is sqrt(med / 2) and whose gradient is chosen.

    - ``"scale"``: sigma = sqrt(med / 2) * rms / rms.detach(), rms^2 = mean_{i<j} d_ij^2: sigma follows
      the overall scale of the rows (every pair contributes), so the loss is invariant to scaling z
      in its gradient too;
    - ``"smoothed"``: sigma = sqrt(m / 2), m = med + sum_k w_k (v_k - v_k.detach()) / sum_k w_k over the
      pairs' v_k = d_k^2, with Gaussian weights w_k = exp(-(v_k - med)^2 / (2 h^2)) (detached) and
      Silverman's bandwidth h = 0.9 (IQR / 1.349) M^(-1/5) over the M pairs (:func:`_bandwidth`): the implicit derivative of
      the median of a kernel-smoothed distribution of the v_k, spread over the pairs near the median
      (all pairs tied with the median when the IQR is 0).
    """
    if sigma_grad == "scale":
        n = d2.shape[0]
        rms2 = d2.sum() / (n * (n - 1))  # the diagonal is 0
        return math.sqrt(med / 2.0) * (rms2 / rms2.detach()).sqrt()
    v = _pairs(d2)
    with torch.no_grad():
        vd = v.detach()
        h = _bandwidth(vd)
        w = torch.exp(-0.5 * ((vd - med) / h) ** 2) if h > 0 else (vd == med).to(vd.dtype)
    return ((med + (w * (v - vd)).sum() / w.sum()) / 2.0).sqrt()


BANDWIDTH_SAMPLE = 65_536  # the smoothed median's bandwidth reads at most about this many pairs


def _bandwidth(v: torch.Tensor) -> float:
    """Silverman's bandwidth 0.9 (IQR / 1.349) M^(-1/5) of the M values ``v``.

    The quartiles are those of every k-th value, k = max(1, M // 65,536) (a fixed, deterministic
    subsample: the bandwidth needs no more precision, and two more selections over all B^2 / 2
    pairs would cost as much as the median itself).
    """
    m = v.numel()
    sample = v[:: max(1, m // BANDWIDTH_SAMPLE)]
    k = sample.numel()
    iqr = _order_statistic(sample, (3 * (k - 1)) // 4) - _order_statistic(sample, (k - 1) // 4)
    return 0.9 * iqr / 1.349 * m**-0.2


def resolve_batch_sigma(sigma: Any, z: torch.Tensor, d2: torch.Tensor | None = None) -> float:
    """The numeric bandwidth for the batch ``z``: a number as given, ``"median"`` or ``"sqrt-d"``.

    ``"median"`` is sqrt(lower_median_{i<j} d_ij^2 / 2) over all B(B-1)/2 pairs of the batch, computed
    without gradient (a plain float). ``d2`` (the batch's squared distances) saves recomputing them.

    Returns
    -------
    float
        sigma > 0, small enough that 1/(2 sigma^2) is finite in ``z``'s dtype (else :class:`InputError`).
    """
    return _resolve(sigma, z, _sq_dists(z.detach()) if d2 is None else d2)[0]


def _resolve(sigma: Any, z: torch.Tensor, d2: torch.Tensor) -> tuple[float, float | None]:
    """(sigma, the median of the d_ij^2 for the median rule, else None)."""
    spec = _check_sigma(sigma)
    med = None
    if spec == "median":
        med = _median_sq(d2)
        value = math.sqrt(med / 2.0)
    elif spec == "sqrt-d":
        value = math.sqrt(z.shape[1])
    else:
        value = float(spec)
    smallest = 2.0 * math.sqrt(0.5 / torch.finfo(z.dtype).max)
    if value < smallest:
        raise InputError(f"`sigma` must be >= {smallest:.2g} in {str(z.dtype).replace('torch.', '')} "
                         f"(1/(2 sigma^2) overflows below); got {value!r}")
    return value, med


def diffusion_kernel(z: torch.Tensor, sigma: Any = "median", *,
                     sigma_grad: str = "detached") -> tuple[torch.Tensor, float]:
    """The Gaussian affinity G_ij = exp(-||z_i - z_j||^2 / (2 sigma^2)) of the rows of ``z``, differentiably.

    Parameters
    ----------
    z : Tensor, shape (B, D), float32 or float64, any device
    sigma : float or {"median", "sqrt-d"}
        The median rule's sigma is computed without gradient by default (see :func:`dse_loss`).
    sigma_grad : {"detached", "scale", "smoothed"}
        What the median rule's sigma passes to the gradient (see :func:`dse_loss`).

    Returns
    -------
    (Tensor, float)
        G, shape (B, B), dtype and device of ``z``, carrying the graph; and the numeric sigma used.
    """
    z = _check_rows(z)
    sigma_grad = _check_sigma_grad(sigma_grad, _check_sigma(sigma))
    d2 = _sq_dists(z)
    s, med = _resolve(sigma, z, d2)
    if sigma_grad == "detached":
        return torch.exp(d2 * (-1.0 / (2.0 * s * s))), s
    st = _sigma_tensor(d2, med, sigma_grad)  # value s, with a path for the gradient
    return torch.exp(d2 * (-1.0 / (2.0 * st * st))), s


def _normalise(g: torch.Tensor) -> torch.Tensor:
    """A = Q^-1/2 G Q^-1/2 for a (..., n, n) batch of kernels (degrees >= G_ii = 1, never 0)."""
    r = g.sum(dim=-1).rsqrt()
    return g * r[..., :, None] * r[..., None, :]


def _spectral_entropy(lam: torch.Tensor, t: int, base: float) -> torch.Tensor:
    """-sum (alpha + eps) log_base(alpha + eps), alpha = |lambda|^t / sum |lambda|^t, over the last axis.

    In float64 whatever the eigenvalues' dtype (as the measurement API does; B numbers, no cost).
    The power is of m = |lambda| / max|lambda| in [0, 1] (the scale cancels in alpha, so the
    maximum is taken without gradient): no overflow for large t, small m^t simply become 0.
    """
    mod = lam.to(torch.float64).abs()
    top = mod.detach().amax(dim=-1, keepdim=True)
    w = (mod / top) ** t
    p = w / w.sum(dim=-1, keepdim=True) + EPS
    return -(p * p.log()).sum(dim=-1) / math.log(base)


def _dse_of_kernels(g: torch.Tensor, t: int, base: float) -> torch.Tensor:
    return _spectral_entropy(torch.linalg.eigvalsh(_normalise(g)), t, base)


# --------------------------------------------------------------------------- losses


def dse_loss(z: torch.Tensor, *, sigma: float | str = "median", t: int = 1, base: float = 2.0,
             sigma_grad: str = "detached") -> torch.Tensor:
    """Diffusion spectral entropy of the rows of ``z`` as a differentiable torch scalar (bits by default).

    .. math::

        \\mathrm{DSE}(Z, t) = -\\sum_i (\\alpha_i + \\epsilon) \\log(\\alpha_i + \\epsilon), \\quad
        \\alpha_i = \\frac{|\\lambda_i|^t}{\\sum_j |\\lambda_j|^t}, \\quad \\epsilon = 2^{-52}

    with lambda the eigenvalues of A = Q^-1/2 G Q^-1/2, G_ij = exp(-||z_i - z_j||^2 / (2 sigma^2)),
    q_i = sum_j G_ij (docs/method.md#dse). The value equals
    ``dsecli.diffusion_spectral_entropy(z, sigma=..., t=t, max_n=None, base=base).value`` (to rounding).

    Parameters
    ----------
    z : Tensor, shape (B, D)
        A minibatch of embeddings, float32 or float64, on any device; the result follows its
        dtype and device. B >= 2.
    sigma : float or {"median", "sqrt-d"}
        Kernel bandwidth in the units of ``z``. ``"median"`` (default) is
        sqrt(lower_median_{i<j} d_ij^2 / 2) over the batch's pairs, computed **detached**: the
        median is a non-smooth order statistic, and its gradient would act on the one or two
        pairs that happen to sit at the median (pushing single distances, changing which pair
        is the median from step to step). Detached, the loss is a function of the geometry at a
        fixed scale per step: its gradient is that of DSE at sigma = the batch's median rule
        value, held fixed. The value is scale-invariant but that gradient is not: at a
        fixed sigma, shrinking all rows lowers DSE and spreading them raises it, so an optimiser
        working on raw embeddings mostly changes their scale (docs/differentiable.md measures it).
    t : int >= 1
        Diffusion time (powers of the eigenvalues).
    base : float
        Logarithm base: 2 gives bits, ``math.e`` nats.
    sigma_grad : {"detached", "scale", "smoothed"}
        With ``sigma="median"``, what sigma passes to the gradient (the value is the same):
        ``"detached"`` (default) nothing; ``"scale"`` the overall scale, sigma * rms / rms.detach()
        with rms^2 the mean d_ij^2 over all pairs, so the gradient is scale-invariant as the value
        is; ``"smoothed"`` the implicit derivative of the median of a kernel-smoothed
        distribution of the d_ij^2 (Gaussian weights on the pairs near the median, Silverman's
        bandwidth), the closest of the three to the median rule's own derivative. Neither pushes a
        single pair.

    Returns
    -------
    Tensor
        0-dim, dtype and device of ``z``, with the graph back to ``z`` through the kernel, the
        normalisation and the eigenvalues. Cost: one (B, B) kernel and one symmetric
        eigendecomposition, O(B^2 D + B^3); the backward pass keeps the eigenvectors.

    Notes
    -----
    A minibatch value is the DSE of B rows, not of the population: it lies in [0, log_base B]
    (B far-apart rows give log B, B identical rows 0), so values at different batch sizes do not
    compare, and the ceiling log B is what a regulariser that raises DSE pushes towards.
    """
    z = _check_rows(z)
    t = check_positive_int(t, "t")
    base = _check_base(base)
    g, _ = diffusion_kernel(z, sigma, sigma_grad=sigma_grad)
    return _dse_of_kernels(g, t, base).to(z.dtype)


def _draws(n: int, size: int, repetitions: int, seed: int, stream: int) -> list[np.ndarray]:
    """``repetitions`` sorted draws of ``size`` of ``n`` rows without replacement, from a local generator.

    ``numpy.random.default_rng([seed, stream])``, one ``choice(n, size, replace=False)`` per repetition:
    the draws of the measurement API's default sampler (dsecli.inputs.sampling.subset_draws, "numpy").
    """
    rng = np.random.default_rng([seed, stream])
    return [np.sort(rng.choice(n, size=size, replace=False)) for _ in range(repetitions)]


def dsmi_loss(
    z: torch.Tensor,
    labels: Any,
    *,
    sigma: float | str = "median",
    t: int = 1,
    repetitions: int = 5,
    seed: int = 0,
    base: float = 2.0,
    sigma_grad: str = "detached",
) -> torch.Tensor:
    """Diffusion spectral mutual information between the rows of ``z`` and integer labels, as a torch scalar.

    .. math::

        I_D = \\sum_y \\frac{n_y}{B}\\Big[\\frac{1}{R}\\sum_{r=1}^{R} \\mathrm{DSE}(Z^*_{y,r})
              - \\mathrm{DSE}(Z_{Y=y})\\Big]

    (docs/method.md#size-matched). Z_{Y=y} are the n_y rows with label y; each Z*_{y,r} is n_y rows
    drawn uniformly without replacement from all B rows, so both terms are entropies of the same
    number of rows. sigma is resolved once on all B rows (the median rule detached, as in
    :func:`dse_loss`); each set uses the restriction of the batch's kernel G to its rows, with its
    own degrees, normalisation and eigenvalues. A class of one row has DSE 0 and contributes 0
    (no draws are made for it).

    Draws: classes are visited in ascending label order; class number c (0-based position in
    that order) draws with its own local generator ``numpy.random.default_rng([seed, c])``, R
    successive ``choice(B, n_y, replace=False)``. These are the draws of
    :func:`dsecli.diffusion_spectral_mutual_information` with its default sampler, so the value
    equals its ``.value`` (to rounding) for the same ``seed`` and ``repetitions``. Global random
    state (torch, numpy, ``random``) is neither used nor changed. The draws depend only on
    (seed, c, B, n_y), not on the data: the same ``seed`` gives the same positions every step
    (pass e.g. ``seed=step`` for fresh draws).

    Parameters
    ----------
    z : Tensor, shape (B, D)
        Embeddings, float32 or float64, on any device; the result follows its dtype and device.
    labels : Tensor or array, shape (B,)
        Integer (or boolean) class labels; read on the CPU, never differentiated.
    sigma, t, base, sigma_grad
        As for :func:`dse_loss`.
    repetitions : int >= 1
        R, the draws per class.
    seed : int >= 0
        Seed of the draws.

    Returns
    -------
    Tensor
        0-dim, dtype and device of ``z``, with the graph back to ``z``. It may be slightly
        negative (estimation noise). Cost: the (B, B) kernel once, then per class one batched
        eigendecomposition of R + 1 matrices of n_y rows.

    Notes
    -----
    A minibatch value measures the batch: it is at most about H(Y) of the batch's labels
    (-sum_y (n_y/B) log(n_y/B), reached when each class's rows collapse to a point and classes
    are far apart), and each DSE in it is capped by log n_y.
    """
    z = _check_rows(z)
    t = check_positive_int(t, "t")
    repetitions = check_positive_int(repetitions, "repetitions")
    seed = check_positive_int(seed, "seed", minimum=0)
    base = _check_base(base)
    n = z.shape[0]
    y = _check_labels(labels, n)
    _, codes = np.unique(y, return_inverse=True)
    codes = codes.reshape(-1)
    counts = np.bincount(codes)
    g, _ = diffusion_kernel(z, sigma, sigma_grad=sigma_grad)
    total = torch.zeros((), dtype=torch.float64, device=z.device)
    for c, n_c in enumerate(counts.tolist()):
        if n_c < 2:
            continue
        sets = np.stack([np.flatnonzero(codes == c), *_draws(n, n_c, repetitions, seed, c)])
        idx = torch.as_tensor(sets, dtype=torch.long, device=z.device)  # (R + 1, n_c)
        h = _dse_of_kernels(g[idx[:, :, None], idx[:, None, :]], t, base)  # class first, then the R draws
        total = total + (n_c / n) * (h[1:].mean() - h[0])
    return total.to(z.dtype)


class DSELoss(torch.nn.Module):
    """:func:`dse_loss` as a module: ``DSELoss(sigma="median", t=1, base=2.0)(z)`` -> 0-dim tensor.

    Parameters are checked when the module is made; ``forward(z)`` takes a (B, D) float tensor and
    returns the DSE of its rows (docs/differentiable.md). No parameters, no buffers, no state.
    """

    def __init__(self, *, sigma: float | str = "median", t: int = 1, base: float = 2.0,
                 sigma_grad: str = "detached") -> None:
        super().__init__()
        self.sigma = _check_sigma(sigma)
        self.t = check_positive_int(t, "t")
        self.base = _check_base(base)
        self.sigma_grad = _check_sigma_grad(sigma_grad, self.sigma)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """DSE of the rows of ``z``.

        Returns
        -------
        Tensor
            0-dim, dtype and device of ``z``.
        """
        return dse_loss(z, sigma=self.sigma, t=self.t, base=self.base, sigma_grad=self.sigma_grad)

    def extra_repr(self) -> str:
        return f"sigma={self.sigma!r}, t={self.t}, base={self.base}, sigma_grad={self.sigma_grad!r}"


class DSMILoss(torch.nn.Module):
    """:func:`dsmi_loss` as a module: ``DSMILoss(sigma="median", t=1, repetitions=5, seed=0)(z, labels)``.

    ``forward(z, labels)`` returns the DSMI of the rows of ``z`` with their integer labels. The draws
    come from ``seed`` on every call (set ``module.seed`` to change them); no parameters, no buffers.
    """

    def __init__(self, *, sigma: float | str = "median", t: int = 1, repetitions: int = 5, seed: int = 0,
                 base: float = 2.0, sigma_grad: str = "detached") -> None:
        super().__init__()
        self.sigma = _check_sigma(sigma)
        self.t = check_positive_int(t, "t")
        self.repetitions = check_positive_int(repetitions, "repetitions")
        self.seed = check_positive_int(seed, "seed", minimum=0)
        self.base = _check_base(base)
        self.sigma_grad = _check_sigma_grad(sigma_grad, self.sigma)

    def forward(self, z: torch.Tensor, labels: Any) -> torch.Tensor:
        """DSMI of the rows of ``z`` with ``labels``.

        Returns
        -------
        Tensor
            0-dim, dtype and device of ``z``.
        """
        return dsmi_loss(z, labels, sigma=self.sigma, t=self.t, repetitions=self.repetitions, seed=self.seed,
                         base=self.base, sigma_grad=self.sigma_grad)

    def extra_repr(self) -> str:
        return (f"sigma={self.sigma!r}, t={self.t}, repetitions={self.repetitions}, seed={self.seed}, "
                f"base={self.base}, sigma_grad={self.sigma_grad!r}")
