"""Distances, Gaussian kernel, bandwidth rules and the symmetric diffusion operator.

docs/method.md#kernel and #operator. With rows x_i of X (N x D):

.. math::

    d_{ij}^2 = \\lVert x_i - x_j \\rVert^2, \\quad
    G_{ij} = \\exp(-d_{ij}^2 / (2\\sigma^2)), \\quad
    q_i = \\sum_j G_{ij}, \\quad
    A = Q^{-1/2} G Q^{-1/2}.

A has the eigenvalues of the random-walk operator P = Q^{-1} G (Coifman & Lafon 2006). The
published implementation multiplies G by 1/(sigma sqrt(2 pi)); the factor cancels in every
measure, so it is left out here. Everything is computed in place in one N x N buffer, in row
blocks so that the GEMM temporaries stay small: peak memory is one N x N array plus O(block N).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from dsecli.errors import DegenerateKernelWarning, InputError, check_positive

if TYPE_CHECKING:  # pragma: no cover
    import torch

__all__ = [
    "pairwise_sq_dists",
    "gaussian_kernel",
    "gaussian_kernel_rows",
    "rows_per_block",
    "symmetric_normalize_",
    "diffusion_operator",
    "resolve_sigma",
    "SigmaChoice",
    "kernel_degeneracy",
]

# Row blocks of this many elements (block x N) keep GEMM temporaries near 64 MiB in float64.
BLOCK_ELEMENTS = 8 * 1024 * 1024
# Beyond this many rows the median heuristic is computed on a seeded subsample of rows.
MEDIAN_MAX_ROWS = 4096


def rows_per_block(n: int, elements: int = BLOCK_ELEMENTS) -> int:
    """Rows of an (rows x n) block of about ``elements`` numbers: at least 1, at most n."""
    return max(1, min(n, elements // max(n, 1)))


def _sq_dists_block(out: torch.Tensor, a: torch.Tensor, an: torch.Tensor, b: torch.Tensor,
                    bn: torch.Tensor) -> torch.Tensor:
    """``out = max(0, |a_i|^2 + |b_j|^2 - 2 a_i.b_j)`` for rows a (r, D), b (m, D) with squared norms an, bn."""
    import torch

    torch.matmul(a, b.T, out=out)
    return out.mul_(-2.0).add_(an[:, None]).add_(bn[None, :]).clamp_(min=0.0)


def _gaussian_of_sq_dists(d2: torch.Tensor, sigma: float) -> torch.Tensor:
    """In place ``exp(-d^2 / (2 sigma^2))``: the one place the Gaussian kernel is formed."""
    return d2.mul_(-1.0 / (2.0 * sigma * sigma)).exp_()


def pairwise_sq_dists(x: torch.Tensor, y: torch.Tensor | None = None, *, out: torch.Tensor | None = None) -> torch.Tensor:
    """Squared Euclidean distances by GEMM, ``||x||^2 + ||y||^2 - 2 x y^T``, clamped at 0.

    Parameters
    ----------
    x : Tensor, shape (n, D)
    y : Tensor, shape (m, D), optional
        Defaults to ``x``; then the diagonal is set to exactly 0.
    out : Tensor, shape (n, m), optional
        Buffer to fill (avoids a second N x N allocation).

    Returns
    -------
    Tensor, shape (n, m), same dtype and device as ``x``.

    Notes
    -----
    Callers should centre the data first (translation does not change distances): the GEMM
    form loses ``eps * ||x||^2`` of absolute precision, which centring keeps small.
    """
    import torch

    same = y is None
    if y is None:
        y = x
    n, m = x.shape[0], y.shape[0]
    if out is None:
        out = torch.empty((n, m), dtype=x.dtype, device=x.device)
    xn = (x * x).sum(dim=1)
    yn = xn if same else (y * y).sum(dim=1)
    step = rows_per_block(m)
    if same:
        # Symmetric: GEMM only the lower block triangle (rows start:stop against columns :stop),
        # then mirror it; smaller row blocks get closer to half the flops (N = 4000, D = 512:
        # 0.10 s instead of 0.17 s), the mirror copy costs ~1% of that.
        step = max(1, min(step, max(256, n // 8)))
        for start in range(0, n, step):
            stop = min(n, start + step)
            _sq_dists_block(out[start:stop, :stop], x[start:stop], xn[start:stop], x[:stop], xn[:stop])
        for start in range(0, n, step):
            stop = min(n, start + step)
            out[start:stop, stop:].copy_(out[stop:, start:stop].T)
            diag = out[start:stop, start:stop]  # exactly symmetric inside the diagonal block too
            diag.copy_(torch.tril(diag) + torch.tril(diag, -1).T)
        out.fill_diagonal_(0.0)
        return out
    for start in range(0, n, step):
        stop = min(n, start + step)
        _sq_dists_block(out[start:stop], x[start:stop], xn[start:stop], y, yn)
    return out


def gaussian_kernel(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Gaussian affinity ``G_ij = exp(-||x_i - x_j||^2 / (2 sigma^2))``, shape (N, N), in place.

    ``x`` is centred before the distances (translation invariance, better rounding).
    """
    xc = x - x.mean(dim=0, keepdim=True)
    return _gaussian_of_sq_dists(pairwise_sq_dists(xc), sigma)


def gaussian_kernel_rows(xc: torch.Tensor, xn: torch.Tensor, start: int, stop: int, sigma: float) -> torch.Tensor:
    """Rows ``start:stop`` of the Gaussian kernel G of centred data ``xc``, shape (stop - start, N).

    ``xn`` holds the squared row norms of ``xc`` (computed once by the caller, which builds G
    block by block without an N x N distance matrix). Same distances and exponential as
    :func:`gaussian_kernel`, with the diagonal distance set to exactly 0, so G_ii = 1 exactly.
    """
    import torch

    blk = torch.empty((stop - start, xc.shape[0]), dtype=xc.dtype, device=xc.device)
    _sq_dists_block(blk, xc[start:stop], xn[start:stop], xc, xn)
    idx = torch.arange(stop - start, device=xc.device)
    blk[idx, idx + start] = 0.0
    return _gaussian_of_sq_dists(blk, sigma)


def symmetric_normalize_(g: torch.Tensor) -> torch.Tensor:
    """In place ``A = Q^-1/2 G Q^-1/2`` with ``q = G.sum(1)``: O(N^2), no diagonal matrix product.

    Returns ``g`` (now holding A). Rows with zero degree cannot occur for a Gaussian kernel
    (G_ii = 1), so no guard is needed.
    """
    r = g.sum(dim=1).rsqrt_()
    g.mul_(r[:, None]).mul_(r[None, :])
    return g


def diffusion_operator(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """The symmetric diffusion operator A (docs/method.md#operator), shape (N, N)."""
    return symmetric_normalize_(gaussian_kernel(x, sigma))


@dataclass(frozen=True)
class SigmaChoice:
    """The numeric bandwidth used and how it was obtained."""

    value: float
    rule: str  # "given", "median" or "sqrt-d"
    detail: dict[str, Any]


def resolve_sigma(sigma: Any, x: torch.Tensor, *, seed: int = 0) -> SigmaChoice:
    """Turn ``sigma`` (a number, ``"median"`` or ``"sqrt-d"``) into a number for the data ``x``.

    - number: used as is (data units; must be finite and > 0);
    - ``"sqrt-d"``: sqrt(D), as in the paper's blob and ImageNet studies;
    - ``"median"``: sqrt(median_{i<j} d_ij^2 / 2), so that exp(-d^2/(2 sigma^2)) =
      exp(-d^2 / median d^2). Exact for N <= 4096 rows; above that the median is taken over
      a seeded subsample of 4096 rows (about 8.4 million pairs), reported in ``detail``.
    """
    import numpy as np
    import torch

    if isinstance(sigma, str):
        spec = sigma.strip().lower().replace("_", "-")
        if spec in ("sqrt-d", "sqrtd", "sqrt(d)"):
            return SigmaChoice(math.sqrt(x.shape[1]), "sqrt-d", {"n_features": int(x.shape[1])})
        if spec == "median":
            n = x.shape[0]
            rows = x
            detail: dict[str, Any] = {"rows": int(n), "exact": True}
            if n > MEDIAN_MAX_ROWS:
                rng = np.random.default_rng(seed)
                idx = np.sort(rng.choice(n, MEDIAN_MAX_ROWS, replace=False))
                rows = x[torch.as_tensor(idx, device=x.device)]
                detail = {"rows": MEDIAN_MAX_ROWS, "exact": False, "seed": seed}
            if rows.shape[0] < 2:
                raise InputError("`sigma` median needs at least 2 rows")
            xc = rows - rows.mean(dim=0, keepdim=True)
            d2 = pairwise_sq_dists(xc)
            iu = torch.triu_indices(d2.shape[0], d2.shape[0], offset=1, device=d2.device)
            vals = d2[iu[0], iu[1]]
            del d2
            med = float(torch.median(vals).item())  # lower median for an even count
            if not med > 0:
                raise InputError(
                    "`sigma` median: the median pairwise distance is 0 (more than half the rows "
                    "are duplicates); give a numeric --sigma"
                )
            value = math.sqrt(med / 2.0)
            if value < 2.0 * math.sqrt(0.5 / torch.finfo(x.dtype).max):
                raise InputError(
                    f"`sigma` median: the median pairwise distance ({math.sqrt(med):.3g}) is too small for "
                    f"{str(x.dtype).replace('torch.', '')}; rescale the data or give a numeric --sigma"
                )
            return SigmaChoice(value, "median", detail)
        try:
            sigma = float(spec)
        except ValueError:
            raise InputError(
                f"`sigma` must be a number > 0, 'median' or 'sqrt-d'; got {sigma!r}"
            ) from None
    value = check_positive(sigma, "sigma")
    # 1 / (2 sigma^2) must be finite in the working dtype, else zero distances give 0 * inf = NaN
    smallest = 2.0 * math.sqrt(0.5 / torch.finfo(x.dtype).max)
    if value < smallest:
        raise InputError(
            f"`sigma` must be >= {smallest:.2g} in {str(x.dtype).replace('torch.', '')} (1/(2 sigma^2) overflows "
            f"below); got {sigma!r}"
        )
    return SigmaChoice(value, "given", {})


def kernel_degeneracy(g: torch.Tensor) -> tuple[str | None, float]:
    """Classify the unnormalised kernel G: ``("ones" | "zeros" | None, fraction)``.

    "ones": more than 99% of off-diagonal affinities exceed 0.99 (sigma far above the
    distances: DSE goes to 0). "zeros": more than 99% are below 1e-6 (sigma far below the
    distances: the operator is nearly the identity and DSE goes to log2 N). Sampled on up to
    1,000 rows, so it costs O(1000 N).
    """
    n = g.shape[0]
    if n < 2:
        return None, 0.0
    rows = g[: min(n, 1000)]
    off = rows.numel() - rows.shape[0]
    ones = float(((rows > 0.99).sum() - rows.shape[0]).item()) / off
    zeros = float((rows < 1e-6).sum().item()) / off
    if ones > 0.99:
        return "ones", ones
    if zeros > 0.99:
        return "zeros", zeros
    return None, max(ones, zeros)


def warn_if_degenerate(g: torch.Tensor, sigma: float) -> str | None:
    """Emit a :class:`DegenerateKernelWarning` for a degenerate kernel; return its text."""
    kind, frac = kernel_degeneracy(g)
    if kind is None:
        return None
    if kind == "ones":
        msg = (
            f"sigma={sigma:g} is large for this data: {frac:.1%} of off-diagonal affinities are > 0.99, "
            "so DSE reflects the data's scale rather than its structure (it tends to 0); "
            "use --sigma median or a smaller --sigma"
        )
    else:
        msg = (
            f"sigma={sigma:g} is small for this data: {frac:.1%} of off-diagonal affinities are < 1e-6, "
            "so DSE reflects the data's scale rather than its structure (it tends to log2 N); "
            "use --sigma median or a larger --sigma"
        )
    warnings.warn(msg, DegenerateKernelWarning, stacklevel=3)
    return msg
