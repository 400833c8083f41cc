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
import sys
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from dsecli.errors import DegenerateKernelWarning, InputError, check_positive, where_prefix

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np
    import torch

__all__ = [
    "pairwise_sq_dists",
    "centred_sq_dists",
    "principal_block",
    "gaussian_kernel",
    "gaussian_kernel_block",
    "gaussian_kernel_rows",
    "KernelFactors",
    "kernel_factors",
    "rows_per_block",
    "symmetric_normalize_",
    "diffusion_operator",
    "resolve_sigma",
    "median_rule_reads_all_rows",
    "SigmaChoice",
    "KernelRegime",
    "kernel_regime",
    "classify_median_affinity",
    "regime_message",
    "warn_if_uninformative",
    "regime_params",
    "FLAT_MEDIAN_AFFINITY",
    "ISOLATED_MEDIAN_AFFINITY",
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


def _half_inverse_square(sigma: float) -> float | None:
    """``1 / (2 sigma^2)`` where it is a normal double, else None (2 sigma^2 overflows from sigma
    about 1.3e154, the quotient is subnormal from about 6.7e153, and 2 sigma^2 underflows to 0
    below about 1e-162)."""
    twice_sq = 2.0 * sigma * sigma
    if not 0.0 < twice_sq < math.inf:
        return None
    scale = 1.0 / twice_sq
    return scale if scale >= sys.float_info.min else None


def _half_sq_ratio(d2: float, sigma: float) -> float:
    """The kernel's exponent ``d2 / (2 sigma^2)`` for any finite sigma > 0: ``d2 * (1 / (2 sigma^2))``
    while that factor is a normal double (the same bits as ever), else ``(d2 * (0.5 / sigma)) / sigma``,
    whose intermediate neither overflows nor, wherever the exponent is above the rounding of 1,
    underflows (a huge sigma gives an exponent of 0: the affinity is 1 to double precision)."""
    scale = _half_inverse_square(sigma)
    if scale is not None:
        return d2 * scale
    if d2 == 0.0:
        return 0.0
    if sigma < 1.0:  # 2 sigma^2 underflowed: only 1/sigma is left, the exponent is huge
        return d2 / sigma / (2.0 * sigma)
    return d2 * (0.5 / sigma) / sigma


def _affinity(d2: float, sigma: float) -> float:
    """``exp(-d2 / (2 sigma^2))`` of one squared distance (see :func:`_half_sq_ratio`)."""
    return math.exp(-_half_sq_ratio(d2, sigma))


def _sq_dist_at_affinity(a: float, sigma: float) -> float:
    """The squared distance whose affinity is ``a`` (0 < a < 1): ``-log(a) 2 sigma^2``, inf where that
    overflows (then every finite distance has an affinity above ``a``)."""
    scale = _half_inverse_square(sigma)
    if scale is not None:
        return -math.log(a) / scale
    return (-math.log(a) * 2.0 * sigma) * sigma


def _gaussian_of_sq_dists(d2: torch.Tensor, sigma: float) -> torch.Tensor:
    """In place ``exp(-d^2 / (2 sigma^2))``: the one place the Gaussian kernel is formed.

    One multiplication by ``-1 / (2 sigma^2)`` where that factor is a normal number of ``d2``'s dtype
    (every sigma :func:`resolve_sigma` accepts, up to about 6.7e153 in float64 and 6.5e18 in float32);
    for a larger sigma, ``d2 * (0.5 / sigma) / sigma``, which never overflows and underflows only where
    the exponent is below the dtype's rounding of 1 (the factor itself would be subnormal or 0 there,
    and ``2 sigma^2`` inf from 1.3e154: the kernel would lose bits, or be all ones where it is not). A
    sigma so small that the factor exceeds the dtype's largest number divides twice instead.
    """
    import torch

    info = torch.finfo(d2.dtype)
    twice_sq = 2.0 * sigma * sigma
    if 0.0 < twice_sq < math.inf:
        scale = 1.0 / twice_sq
        if info.tiny <= scale <= info.max:
            return d2.mul_(-scale).exp_()
        if scale > info.max:  # tiny sigma: d2 / sigma overflows to inf for d2 > 0, 0 stays 0
            return d2.div_(sigma).div_(-2.0 * sigma).exp_()
    elif sigma < 1.0:
        return d2.div_(sigma).div_(-2.0 * sigma).exp_()
    return d2.mul_(-0.5 / sigma).div_(sigma).exp_()


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


def centred_sq_dists(x: torch.Tensor) -> torch.Tensor:
    """The squared distances of the rows of ``x`` as every dense kernel of them is formed: ``x`` centred
    first (translation invariance, better rounding), then :func:`pairwise_sq_dists`. Shape (N, N)."""
    return pairwise_sq_dists(x - x.mean(dim=0, keepdim=True))


def principal_block(mat: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """``mat[idx][:, idx]`` of a square matrix as a new (m, m) tensor: one gather of the m^2 entries
    (two index_selects copy m x N first: 8x slower at N = 8,000)."""
    m, n = idx.shape[0], mat.shape[0]
    return mat.reshape(-1).take((idx[:, None] * n + idx[None, :]).reshape(-1)).reshape(m, m)


def gaussian_kernel(x: torch.Tensor, sigma: float, *, sq_dists: torch.Tensor | None = None) -> torch.Tensor:
    """Gaussian affinity ``G_ij = exp(-||x_i - x_j||^2 / (2 sigma^2))``, shape (N, N).

    The distances are :func:`centred_sq_dists` of ``x``, formed here and turned into G in place; or
    ``sq_dists``, those distances computed by the caller already (read, not changed: G is a new
    tensor), for instance the ones the median rule used (:func:`resolve_sigma`).
    """
    if sq_dists is not None:
        return _gaussian_of_sq_dists(sq_dists.clone(), sigma)
    return _gaussian_of_sq_dists(centred_sq_dists(x), sigma)


def gaussian_kernel_block(sq_dists: torch.Tensor, idx: torch.Tensor, sigma: float) -> torch.Tensor:
    """The Gaussian kernel of the rows ``idx`` (shape (m, m)) from the squared distances of all rows
    (:func:`centred_sq_dists`): their :func:`principal_block`, turned into the kernel in place."""
    return _gaussian_of_sq_dists(principal_block(sq_dists, idx), sigma)


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


@dataclass(frozen=True)
class KernelFactors:
    """The Gaussian kernel as one GEMM and one exponential: ``G = exp(left @ right^T)``.

    With s = 1 / sigma^2, ``left_i = [s x_i, -s |x_i|^2 / 2, 1]`` and
    ``right_j = [x_j, 1, -s |x_j|^2 / 2]`` (shapes (N, D + 2)), the product is
    ``s x_i.x_j - s |x_i|^2 / 2 - s |x_j|^2 / 2 = -||x_i - x_j||^2 / (2 sigma^2)``: the distance
    bookkeeping of :func:`gaussian_kernel_rows` folds into the GEMM, and a tile of kernel entries
    costs one GEMM of depth D + 2 and one in-place ``exp``. ``unit`` bounds the relative error of
    an entry evaluated in ``left.dtype`` (see :func:`kernel_factors`).
    """

    left: torch.Tensor
    right: torch.Tensor
    unit: float

    def tile(self, start: int, stop: int, c0: int, c1: int, *, buffer: torch.Tensor | None = None) -> torch.Tensor:
        """Kernel rows ``start:stop`` against columns ``c0:c1``, G_ii = 1 exactly; written into the
        front of ``buffer`` (a flat tensor of at least that many numbers) when given."""
        import torch

        rows, cols = stop - start, c1 - c0
        out = None if buffer is None else buffer[: rows * cols].view(rows, cols)
        blk = torch.matmul(self.left[start:stop], self.right[c0:c1].T, out=out)
        blk.exp_()
        lo, hi = max(start, c0), min(stop, c1)
        if lo < hi:
            idx = torch.arange(lo, hi, device=blk.device)
            blk[idx - start, idx - c0] = 1.0
        return blk


def kernel_factors(xc: torch.Tensor, sigma: float, *, dtype: torch.dtype) -> KernelFactors:
    """:class:`KernelFactors` of centred data ``xc`` (N, D) in ``dtype``.

    The exponent of each entry is a dot product of D + 2 terms whose magnitudes sum to at most
    s (|x_i| |x_j| + |x_i|^2 / 2 + |x_j|^2 / 2) <= 2 s M, M = max_i |x_i|^2; blocked GEMM
    summation errs by about sqrt(D + 2) units of ``dtype`` per unit of that sum (the probabilistic
    rounding bound of Higham & Mary 2019, "A new approach to probabilistic rounding error
    analysis"), and rounding the inputs adds 2 units. So each entry carries the relative error

    .. math::  u_G = \\epsilon \\, (1 + 2 (\\sqrt{D + 2} + 2) \\, s M)

    (epsilon the unit roundoff of ``dtype``, or of TF32 / bfloat16 where
    ``torch.set_float32_matmul_precision`` or ``torch.backends.cuda.matmul.allow_tf32`` lets
    float32 GEMMs use them; the 1 is the exponential's own rounding). Entries below
    the smallest normal number of ``dtype`` (1e-38 in float32) underflow instead: an absolute
    error that small is far below every other term. Measured in
    float32 on blobs, uniform and offset anisotropic data (600 and 3,000 rows, D = 8-1,024), at the median
    rule's sigma and a quarter of it: the largest relative entry error was 3 to 11 times below u_G.
    """
    import torch

    sigma = float(sigma)
    square = sigma * sigma
    ones = torch.ones((xc.shape[0], 1), dtype=dtype, device=xc.device)
    if square < math.inf and 1.0 / square >= torch.finfo(dtype).tiny:
        x = xc.to(dtype)
        s = 1.0 / (sigma**2)
        xn = (x * x).sum(dim=1)
        half = (-0.5 * s * xn)[:, None]
        left = torch.cat([x * s, half, ones], dim=1)
        right = torch.cat([x, ones, half], dim=1)
    else:
        # sigma so large that s is subnormal or 0 in dtype (sigma^2 overflows a double from 1.3e154): the rows
        # in units of sigma give the same exponents, -|x_i / sigma - x_j / sigma|^2 / 2, and nothing overflows
        x = (xc / sigma).to(dtype)
        s = 1.0
        xn = (x * x).sum(dim=1)
        half = (-0.5 * xn)[:, None]
        left = torch.cat([x, half, ones], dim=1)
        right = torch.cat([x, ones, half], dim=1)
    eps = float(torch.finfo(dtype).eps) / 2.0
    if dtype == torch.float32:
        # a float32 GEMM may run in TF32 (10-bit mantissa) or bfloat16 (7-bit) where the user allowed it
        precision = torch.get_float32_matmul_precision()
        if precision == "medium":
            eps = 2.0**-8
        elif precision == "high" or (x.device.type == "cuda" and torch.backends.cuda.matmul.allow_tf32):
            eps = 2.0**-11
    m = float(xn.max()) if xn.numel() else 0.0
    unit = eps * (1.0 + 2.0 * (math.sqrt(x.shape[1] + 2) + 2.0) * s * m)
    return KernelFactors(left, right, unit)


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


# The uninformative regime of a Gaussian kernel (docs/method.md#kernel-regime; the measurements are
# benchmarks/sigma_regimes.py). With m the median squared distance over the median rule's pairs,
# the median off-diagonal affinity at sigma is exp(-m / (2 sigma^2)) = exp(-(sigma_median / sigma)^2),
# so these two thresholds are also sigma / sigma_median > 3.08 and < 0.38.
FLAT_MEDIAN_AFFINITY = 0.9  # above: the kernel sees one blob (DSE -> 0)
ISOLATED_MEDIAN_AFFINITY = 1e-3  # below: every point is alone (the operator -> identity, DSE -> log N)
# affinity quantiles reported (fractions of the off-diagonal pairs below them)
AFFINITY_QUANTILES = (0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99)
# The check of a numeric sigma reads the affinities off this many seeded random pairs of the median
# rule's rows (uniform, with replacement); a population of at most this many pairs is used whole.
REGIME_SAMPLE_PAIRS = 16384
# Two order statistics of the sample bracket the population's median squared distance with at least
# this probability, whatever the distances' distribution (binomial bounds); where the bracket's two
# ends fall in different regimes, the population's median is selected exactly.
REGIME_CONFIDENCE = 1.0 - 1e-6
# where the first sample's bracket spans a threshold, a second of this many times as many pairs is read
# (its bracket is 4x narrower: a sigma within about 0.5 % of a threshold's is left to the exact selection)
REGIME_WIDE_FACTOR = 16
# the sampled pairs' difference vectors are formed this many numbers at a time (on a GPU: the second)
_PAIR_CHUNK_ELEMENTS = 1 << 16
_PAIR_CHUNK_ELEMENTS_DEVICE = 1 << 22


def _median_rule_rows(n: int, seed: int) -> np.ndarray | None:
    """The rows the median rule uses: None (all) up to :data:`MEDIAN_MAX_ROWS`, else the seeded
    subsample ``np.sort(np.random.default_rng(seed).choice(n, 4096, replace=False))``."""
    import numpy as np

    if n <= MEDIAN_MAX_ROWS:
        return None
    return np.sort(np.random.default_rng(seed).choice(n, MEDIAN_MAX_ROWS, replace=False))


def _pair_sq_dists(x: torch.Tensor, *, seed: int,
                   all_rows: Callable[[], torch.Tensor | None] | None = None) -> tuple[torch.Tensor, dict[str, Any]]:
    """The off-diagonal squared distances d_ij^2 (i < j) the median rule uses (in no particular order).

    All rows up to :data:`MEDIAN_MAX_ROWS`; above, a seeded subsample of that many rows
    (``np.random.default_rng(seed).choice(N, 4096, replace=False)``, sorted), named in the detail.
    ``all_rows``: where all rows are used, it gives :func:`centred_sq_dists` of ``x`` (or None: formed here).
    """
    import torch

    n = x.shape[0]
    rows = x
    detail: dict[str, Any] = {"rows": int(n), "exact": True}
    idx = _median_rule_rows(n, seed)
    if idx is not None:
        rows = x[torch.as_tensor(idx, device=x.device)]
        detail = {"rows": MEDIAN_MAX_ROWS, "exact": False, "seed": seed}
    if rows.shape[0] < 2:
        raise InputError("`sigma` median needs at least 2 rows")
    d2 = all_rows() if idx is None and all_rows is not None else None
    if d2 is None:
        d2 = centred_sq_dists(rows)
    iu = torch.triu_indices(d2.shape[0], d2.shape[0], offset=1, device=d2.device)
    vals = d2[iu[0], iu[1]]
    del d2
    # unsorted: the median rule needs one order statistic (a selection, O(m)); the exact regime sorts once
    return vals, detail


def _order_statistic(vals: torch.Tensor, index: int) -> float:
    """The value at zero-based ``index`` of ``vals`` sorted ascending."""
    import torch

    return float(torch.kthvalue(vals, int(index) + 1).values.item())


def _lower_median(vals: torch.Tensor) -> float:
    """The lower median (torch.median's convention for an even count)."""
    return _order_statistic(vals, (vals.numel() - 1) // 2)


def _median_rule(d2: torch.Tensor, x: torch.Tensor, *, seed: int, where: str | None = None) -> float:
    return _median_rule_from(_lower_median(d2), x, seed=seed, where=where)


def _median_rule_from(med: float, x: torch.Tensor, *, seed: int, where: str | None = None) -> float:
    """sigma = sqrt(med / 2) from the lower median ``med`` of the squared distances of the median rule's
    rows of ``x`` (:func:`_median_rule_rows`), checked; a median of 0 is told apart by its cause (equal rows,
    or distinct rows whose differences underflow)."""
    import torch

    dtype_name = str(x.dtype).replace("torch.", "")
    # equal rows get a squared distance of rounding size, not 0, from the Gram form: a median that small is
    # tested against the rows themselves (their true median is 0 when equal pairs reach it)
    if not med > _rounding_sq_dist(x, seed) or not med > 0:
        if _equal_pairs_reach_the_median(x, seed):
            raise InputError(
                f"{where_prefix(where)}`sigma` median: the median pairwise distance is 0 (at least half the "
                "pairs of rows are equal rows); give a numeric --sigma"
            )
    if not med > 0:
        scale = float(x.abs().max().item()) if x.numel() else 0.0
        raise InputError(
            f"{where_prefix(where)}`sigma` median: the median pairwise distance is 0 in {dtype_name}, although "
            f"fewer than half the pairs of rows are equal: the rows' differences underflow at this scale "
            f"(largest |value| {scale:.3g}); rescale the data (e.g. standardize the columns)"
        )
    value = math.sqrt(med / 2.0)
    if value < 2.0 * math.sqrt(0.5 / torch.finfo(x.dtype).max):
        raise InputError(
            f"{where_prefix(where)}`sigma` median: the median pairwise distance ({math.sqrt(med):.3g}) is too "
            f"small for {dtype_name} (1/(2 sigma^2) overflows); rescale the data (e.g. standardize the columns)"
        )
    return value


def _rounding_sq_dist(x: torch.Tensor, seed: int) -> float:
    """A bound on the squared distance that rounding gives two equal rows among the median rule's rows of ``x`` in
    the Gram form: 16 D eps times the largest squared norm of a centred row."""
    import torch

    idx = _median_rule_rows(int(x.shape[0]), seed)
    rows = x if idx is None else x[torch.as_tensor(idx, device=x.device)]
    centred = rows - rows.mean(dim=0)
    return float((centred * centred).sum(dim=1).max().item()) * 16 * x.shape[1] * torch.finfo(x.dtype).eps


def _equal_pairs_reach_the_median(x: torch.Tensor, seed: int) -> bool:
    """Whether the pairs of equal rows among the median rule's rows of ``x`` are enough to make the lower
    median of their squared distances 0 (at least (P - 1) // 2 + 1 of the P pairs)."""
    from dsecli.inputs.findings import distinct_row_counts

    idx = _median_rule_rows(int(x.shape[0]), seed)
    rows = (x if idx is None else x[idx]).detach().cpu().numpy()
    counts, _ = distinct_row_counts(rows)
    n = rows.shape[0]
    equal = int((counts * (counts - 1) // 2).sum())
    return equal >= (n * (n - 1) // 2 - 1) // 2 + 1


def _rule_name(sigma: str) -> str:
    """A bandwidth rule's name as :func:`resolve_sigma` reads it (case, spaces and ``_`` for ``-`` ignored)."""
    return sigma.strip().lower().replace("_", "-")


def median_rule_reads_all_rows(sigma: Any, n: int) -> bool:
    """Whether :func:`resolve_sigma` forms the squared distances of all ``n`` rows for ``sigma``: the
    median rule up to :data:`MEDIAN_MAX_ROWS` rows (above, it reads a subsample of rows)."""
    return isinstance(sigma, str) and _rule_name(sigma) == "median" and n <= MEDIAN_MAX_ROWS


def resolve_sigma(sigma: Any, x: torch.Tensor, *, seed: int = 0,
                  sq_dists: Callable[[], torch.Tensor | None] | None = None, where: str | None = None) -> SigmaChoice:
    """Turn ``sigma`` (a number, ``"median"`` or ``"sqrt-d"``) into a number for the data ``x``.

    - number: used as is (data units; must be finite and > 0);
    - ``"sqrt-d"``: sqrt(D), as in the paper's blob and ImageNet studies;
    - ``"median"``: sqrt(median_{i<j} d_ij^2 / 2), so that exp(-d^2/(2 sigma^2)) =
      exp(-d^2 / median d^2) and the median off-diagonal affinity is exp(-1) = 0.37 whatever the
      data's scale. Exact for N <= 4096 rows; above that the median is taken over a seeded
      subsample of 4096 rows (about 8.4 million pairs), reported in ``detail``.

    ``sq_dists``: asked for the :func:`centred_sq_dists` of ``x`` where the median rule reads all
    rows (:func:`median_rule_reads_all_rows`), so that a caller can keep them for the kernel; it may
    return None (the distances are then formed here, and dropped after). ``where``: the input's label, which
    starts the median rule's errors.
    """
    import torch

    if isinstance(sigma, str):
        spec = _rule_name(sigma)
        if spec in ("sqrt-d", "sqrtd", "sqrt(d)"):
            return SigmaChoice(math.sqrt(x.shape[1]), "sqrt-d", {"n_features": int(x.shape[1])})
        if spec == "median":
            vals, detail = _pair_sq_dists(x, seed=seed, all_rows=sq_dists)
            return SigmaChoice(_median_rule(vals, x, seed=seed, where=where), "median", detail)
        try:
            sigma = float(spec)
        except ValueError:
            batch = ("; median-first and median-pooled hold one sigma across the inputs of a batch (dse batch)"
                     if spec in ("median-first", "median-pooled") else "")
            raise InputError(f"`sigma` must be a number > 0, 'median' or 'sqrt-d'{batch}; got {sigma!r}") from None
    value = check_positive(sigma, "sigma")
    # 1 / (2 sigma^2) must be finite in the working dtype, else zero distances give 0 * inf = NaN
    smallest = 2.0 * math.sqrt(0.5 / torch.finfo(x.dtype).max)
    if value < smallest:
        raise InputError(
            f"`sigma` must be >= {smallest:.2g} in {str(x.dtype).replace('torch.', '')} (1/(2 sigma^2) overflows "
            f"below); got {sigma!r}"
        )
    return SigmaChoice(value, "given", {})


@dataclass(frozen=True)
class KernelRegime:
    """Where a bandwidth sits for the data: the median rule's sigma, affinity quantiles, the regime.

    ``kind`` is ``"flat"`` (median off-diagonal affinity > :data:`FLAT_MEDIAN_AFFINITY`), ``"isolated"``
    (< :data:`ISOLATED_MEDIAN_AFFINITY`) or None (informative); see :func:`classify_median_affinity`.
    """

    sigma: float
    median_rule_sigma: float | None
    ratio: float | None  # sigma / median_rule_sigma
    median_affinity: float
    affinity_quantiles: dict[str, float]
    fraction_above_0_99: float
    fraction_below_1e_6: float
    kind: str | None
    detail: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        """Plain dict of the fields (JSON-safe numbers)."""
        return {"sigma": self.sigma, "median_rule_sigma": self.median_rule_sigma, "ratio": self.ratio,
                "median_affinity": self.median_affinity, "affinity_quantiles": dict(self.affinity_quantiles),
                "fraction_above_0_99": self.fraction_above_0_99, "fraction_below_1e_6": self.fraction_below_1e_6,
                "regime": self.kind or "informative", "pairs": dict(self.detail)}


def classify_median_affinity(median_affinity: float) -> str | None:
    """The one regime rule: ``"flat"`` above 0.9, ``"isolated"`` below 1e-3, else None.

    Thresholds from benchmarks/sigma_regimes.py (docs/method.md#kernel-regime): past them DSE
    follows sigma and the data's units (towards 0, or towards log N), not the data's structure.
    """
    if median_affinity > FLAT_MEDIAN_AFFINITY:
        return "flat"
    if median_affinity < ISOLATED_MEDIAN_AFFINITY:
        return "isolated"
    return None


def kernel_regime(x: torch.Tensor, sigma: Any, *, seed: int = 0, exact: bool = False) -> KernelRegime:
    """The regime of the Gaussian kernel of the rows of ``x`` at ``sigma`` (a number or a rule).

    The population is the median rule's pairs (all pairs of up to 4096 rows, else of the seeded row
    subsample of :func:`resolve_sigma`), read from squared distances so that affinities near 1 or
    near 0 keep their precision: the affinity at the q-th quantile is exp(-d^2_(1-q) / (2 sigma^2)).

    Unless ``exact``, a population of more than :data:`REGIME_SAMPLE_PAIRS` pairs is read from that
    many seeded uniform random pairs (:func:`sample_pair_sq_dists`; O(pairs x D), no Gram product,
    no sort of the population). The regime is then decided as follows: two order statistics of the
    sample bracket the population's lower median with probability at least
    :data:`REGIME_CONFIDENCE` whatever the distances' distribution (:func:`median_bracket`); where
    both ends of the bracket give the same regime, that is the regime and the median is the
    sample's; where they differ (the median may sit on either side of a threshold), the population's
    median is selected exactly (:func:`_select_pair_median`: one Gram product of the rows, a count
    below the bracket and ``torch.kthvalue`` on the pairs inside it). The quantiles and fractions are
    then sample estimates, and ``detail`` says so: ``pairs`` (the population), ``sampled_pairs``,
    ``confidence``, ``median`` ("sample" or "selected") and ``median_affinity_interval``.
    ``sigma="median"`` takes the median rule's exact median (as :func:`resolve_sigma` does).

    With ``exact`` (or a small population) every number is computed on all the pairs, sorted once.

    Returns
    -------
    KernelRegime
        The numeric sigma, the median rule's sigma on the same rows and the ratio, the
        affinity quantiles, the fractions of affinities > 0.99 and < 1e-6, and the regime.
    """
    n = int(x.shape[0])
    rows = min(n, MEDIAN_MAX_ROWS)
    if rows < 2:
        raise InputError("`sigma` median needs at least 2 rows")
    population = rows * (rows - 1) // 2
    if exact or population <= REGIME_SAMPLE_PAIRS:
        return _regime_on(x, sigma, seed=seed)
    return _regime_sampled(x, sigma, seed=seed)


def _numeric_sigma(x: torch.Tensor, sigma: Any, *, seed: int) -> float | None:
    """The number ``sigma`` stands for (None for the median rule, which the caller computes)."""
    if isinstance(sigma, SigmaChoice):
        return sigma.value
    if isinstance(sigma, str) and sigma.strip().lower() == "median":
        return None
    return resolve_sigma(sigma, x, seed=seed).value


def median_bracket(m: int, p: float = 0.5, confidence: float = REGIME_CONFIDENCE) -> tuple[int | None, int | None]:
    """Zero-based indices ``(lo, hi)`` into a sorted sample of ``m`` draws (with replacement) from a
    population such that the population's value at the order ``p`` (the item with a fraction ``p`` of
    the population at or below it in rank) lies in ``[s[lo], s[hi]]`` with probability at least
    ``confidence``, whatever the values; None for an end that no order statistic gives.

    The number S of draws at or below that item in rank is Binomial(m, p), and ``s[j]`` (zero-based)
    is at or below it exactly when S > j: so ``lo`` is the largest j with P(S <= j) <= alpha / 2 and
    ``hi`` the smallest j with P(S > j) <= alpha / 2 (alpha = 1 - confidence). Cached per arguments.
    """
    return _median_bracket(int(m), float(p), float(confidence))


@lru_cache(maxsize=16)
def _median_bracket(m: int, p: float, confidence: float) -> tuple[int | None, int | None]:
    import numpy as np

    if not (m >= 1 and 0.0 < p < 1.0 and 0.0 < confidence < 1.0):
        raise ValueError(f"median_bracket needs m >= 1, 0 < p < 1 and 0 < confidence < 1; got {m}, {p}, {confidence}")
    tail = (1.0 - confidence) / 2.0
    j = np.arange(m, dtype=np.float64)
    # log pmf(k) = m log(1-p) + sum_{i<k} log((m-i)/(i+1)) + k log(p/(1-p)), k = 0..m
    log_pmf = np.empty(m + 1)
    log_pmf[0] = 0.0
    np.cumsum(np.log(m - j) - np.log(j + 1.0), out=log_pmf[1:])
    log_pmf += m * math.log1p(-p) + np.arange(m + 1) * (math.log(p) - math.log1p(-p))
    pmf = np.exp(log_pmf)
    at_most = np.cumsum(pmf)  # P(S <= k)
    above = np.cumsum(pmf[::-1])[::-1][1:]  # P(S > k) = P(S >= k + 1), k = 0..m-1
    low = np.flatnonzero(at_most[:m] <= tail)
    high = np.flatnonzero(above <= tail)
    return (int(low[-1]) if low.size else None), (int(high[0]) if high.size else None)


def sample_pair_sq_dists(x: torch.Tensor, m: int, *, seed: int, rows: np.ndarray | None = None) -> torch.Tensor:
    """Squared distances of ``m`` seeded uniform random pairs i != j of the rows of ``x`` (of ``x[rows]``
    when given), shape (m,), in the order drawn, on ``x``'s device.

    The pairs come from ``np.random.default_rng([seed, 1])`` (a stream apart from the median rule's
    row subsample, ``default_rng(seed)``): ``i`` uniform, ``j`` uniform among the others, so each
    unordered pair is equally likely. Each distance is the sum of squares of the difference of the
    two rows (no GEMM cancellation), formed a few thousand numbers at a time: O(m D) work. On the CPU
    the work is NumPy's, on one thread: torch would split each piece over its threads, and on a busy
    machine a piece then waits for a descheduled thread (measured on 2 shared cores: 1.5 ms median
    for NumPy, 34 ms median and 1.1 s at worst for torch with 2 threads).
    """
    import numpy as np
    import torch

    n = int(x.shape[0]) if rows is None else len(rows)
    if n < 2:
        raise InputError("`sigma` median needs at least 2 rows")
    rng = np.random.default_rng([seed, 1])
    first = rng.integers(0, n, m)
    second = rng.integers(0, n - 1, m)
    second += second >= first
    if rows is not None:
        first, second = rows[first], rows[second]
    d = int(x.shape[1])
    if x.device.type == "cpu":
        arr = x.detach().numpy()
        out = np.empty(m, dtype=arr.dtype)
        step = max(1, min(m, _PAIR_CHUNK_ELEMENTS // max(d, 1)))
        for start in range(0, m, step):
            stop = min(m, start + step)
            diff = arr[first[start:stop]]
            diff -= arr[second[start:stop]]
            np.einsum("ij,ij->i", diff, diff, out=out[start:stop])
        return torch.from_numpy(out)
    ia = torch.as_tensor(first, device=x.device)
    ib = torch.as_tensor(second, device=x.device)
    out_t = torch.empty(m, dtype=x.dtype, device=x.device)
    step = max(1, min(m, _PAIR_CHUNK_ELEMENTS_DEVICE // max(d, 1)))
    for start in range(0, m, step):
        stop = min(m, start + step)
        diff_t = x.index_select(0, ia[start:stop]).sub_(x.index_select(0, ib[start:stop]))
        torch.sum(diff_t.mul_(diff_t), dim=1, out=out_t[start:stop])
    return out_t


def _select_pair_median(x: torch.Tensor, rows: np.ndarray | None, lo: float, hi: float) -> float:
    """The exact lower median of the off-diagonal squared distances of ``x`` (of ``x[rows]``), the
    same pairs and numbers as :func:`_pair_sq_dists`, selected among those in ``[lo, hi]`` only.

    The distances are formed row block by row block as in :func:`pairwise_sq_dists` (the lower block
    triangle, the same GEMM calls), never as one N x N matrix: each block adds its pairs below ``lo``
    to a count and keeps those inside ``[lo, hi]``, and ``torch.kthvalue`` picks the median's rank
    among the kept ones. Should that rank fall outside them (the bracket missed, which
    :func:`median_bracket` bounds by 1 - :data:`REGIME_CONFIDENCE`), every pair is selected from.
    """
    import torch

    sub = x if rows is None else x[torch.as_tensor(rows, device=x.device)]
    n = int(sub.shape[0])
    k = (n * (n - 1) // 2 - 1) // 2  # the lower median's zero-based rank among the pairs
    xc = sub - sub.mean(dim=0, keepdim=True)
    xn = (xc * xc).sum(dim=1)
    step = max(1, min(rows_per_block(n), max(256, n // 8)))  # pairwise_sq_dists's blocks
    buf = torch.empty((step, n), dtype=xc.dtype, device=xc.device)
    upper = torch.ones((step, step), dtype=torch.bool, device=xc.device).triu_()  # j >= i inside a diagonal block
    below = 0
    kept: list[torch.Tensor] = []
    for start in range(0, n, step):
        stop = min(n, start + step)
        r = stop - start
        blk = _sq_dists_block(buf[:r, :stop], xc[start:stop], xn[start:stop], xc[:stop], xn[:stop])
        blk[:, start:stop].masked_fill_(upper[:r, :r], math.nan)  # only the pairs j < i, once each
        below += int((blk < lo).sum())
        kept.append(blk[(blk >= lo) & (blk <= hi)])
    inside = torch.cat(kept)
    if below <= k < below + inside.numel():
        return _order_statistic(inside, k - below)
    vals, _ = _pair_sq_dists(sub, seed=0)
    return _order_statistic(vals, k)


def _regime_sampled(x: torch.Tensor, sigma: Any, *, seed: int) -> KernelRegime:
    """:func:`kernel_regime` from :data:`REGIME_SAMPLE_PAIRS` seeded random pairs (see there)."""
    import numpy as np

    n = int(x.shape[0])
    rows = _median_rule_rows(n, seed)
    size = n if rows is None else len(rows)
    population = size * (size - 1) // 2
    m = REGIME_SAMPLE_PAIRS
    value = _numeric_sigma(x, sigma, seed=seed)
    detail: dict[str, Any] = {"rows": size, "exact": False, "seed": seed, "pairs": population, "sampled_pairs": m,
                              "confidence": REGIME_CONFIDENCE}
    if value is None:  # the median rule: its exact median, the rest from the sample
        vals, _ = _pair_sq_dists(x, seed=seed)
        median = _lower_median(vals)
        del vals
        value = _median_rule_from(median, x, seed=seed)
        detail["median"] = "exact"
    # 16,384 numbers: NumPy's sort on one thread (see sample_pair_sq_dists for why not torch's)
    vals = np.sort(sample_pair_sq_dists(x, m, seed=seed, rows=rows).cpu().numpy())
    # the population's lower median has rank (P - 1) // 2: a fraction ((P - 1) // 2 + 1) / P at or below it
    lo, hi = median_bracket(m, ((population - 1) // 2 + 1) / population)

    def at(index: int) -> float:
        return float(vals[min(m - 1, max(0, index))])

    if "median" not in detail:
        low = 0.0 if lo is None else at(lo)  # squared distances are >= 0
        high = math.inf if hi is None else at(hi)
        detail["median_affinity_interval"] = [_affinity(high, value), _affinity(low, value)]
        if classify_median_affinity(_affinity(low, value)) == classify_median_affinity(_affinity(high, value)):
            median = at((m - 1) // 2)
            detail["median"] = "sample"
        else:  # the bracket spans a threshold: a sample 16x larger (a 4x narrower bracket), then the population
            median = None
            wide = REGIME_SAMPLE_PAIRS * REGIME_WIDE_FACTOR
            if wide < population:
                more = np.sort(sample_pair_sq_dists(x, wide, seed=seed + 1, rows=rows).cpu().numpy())
                wlo, whi = median_bracket(wide, ((population - 1) // 2 + 1) / population)
                low = 0.0 if wlo is None else float(more[wlo])
                high = math.inf if whi is None else float(more[whi])
                if classify_median_affinity(_affinity(low, value)) == classify_median_affinity(_affinity(high, value)):
                    median = float(more[(wide - 1) // 2])
                    detail.update({"median": "wide sample", "wide_sampled_pairs": wide,
                                   "median_affinity_interval": [_affinity(high, value), _affinity(low, value)]})
            if median is None:
                median = _select_pair_median(x, rows, low, high)
                detail["median"] = "selected"
    try:
        med_sigma: float | None = _median_rule_from(median, x, seed=seed)
    except InputError:  # more than half the pairs at distance 0: no median rule, the kernel is flat anyway
        med_sigma = None
    quantiles = {f"q{round(q * 100):02d}": _affinity(at(int(round((1.0 - q) * (m - 1)))), value)
                 for q in AFFINITY_QUANTILES}
    median_affinity = _affinity(median, value)
    above = int(np.searchsorted(vals, _sq_dist_at_affinity(0.99, value), side="left")) / m
    below = 1.0 - int(np.searchsorted(vals, _sq_dist_at_affinity(1e-6, value), side="right")) / m
    return KernelRegime(
        sigma=value, median_rule_sigma=med_sigma, ratio=_ratio(value, med_sigma),
        median_affinity=median_affinity, affinity_quantiles=quantiles, fraction_above_0_99=above,
        fraction_below_1e_6=below, kind=classify_median_affinity(median_affinity), detail=detail,
    )


def _ratio(value: float, med_sigma: float | None) -> float | None:
    if med_sigma is None:
        return None
    ratio = value / med_sigma
    return ratio if math.isfinite(ratio) else None


def _regime_on(x: torch.Tensor, sigma: Any, *, seed: int) -> KernelRegime:
    """:func:`kernel_regime` on every pair of the median rule's rows (one sort)."""
    import torch

    vals, detail = _pair_sq_dists(x, seed=seed)
    vals = torch.sort(vals).values  # several order statistics: one sort beats one selection each
    m = vals.numel()
    detail["pairs"] = int(m)

    def at(index: int) -> float:
        return float(vals[min(m - 1, max(0, index))].item())

    lower_median = at((m - 1) // 2)
    try:
        med_sigma: float | None = _median_rule_from(lower_median, x, seed=seed)
    except InputError:  # more than half the pairs at distance 0: no median rule, the kernel is flat anyway
        med_sigma = None
    value = _numeric_sigma(x, sigma, seed=seed)
    if value is None:
        if med_sigma is None:
            _median_rule_from(lower_median, x, seed=seed)  # raises the median rule's own message
        value = float(med_sigma)  # type: ignore[arg-type]
    # the q-th quantile of the affinities is the (1 - q)-th of the distances
    quantiles = {f"q{round(q * 100):02d}": _affinity(at(int(round((1.0 - q) * (m - 1)))), value)
                 for q in AFFINITY_QUANTILES}
    median_affinity = _affinity(lower_median, value)
    # affinity > 0.99 <=> d^2 < -log(0.99) 2 sigma^2; affinity < 1e-6 <=> d^2 > -log(1e-6) 2 sigma^2
    above = float(torch.searchsorted(vals, _sq_dist_at_affinity(0.99, value), right=False).item()) / m
    below = 1.0 - float(torch.searchsorted(vals, _sq_dist_at_affinity(1e-6, value), right=True).item()) / m
    return KernelRegime(
        sigma=value, median_rule_sigma=med_sigma, ratio=_ratio(value, med_sigma),
        median_affinity=median_affinity, affinity_quantiles=quantiles, fraction_above_0_99=above,
        fraction_below_1e_6=below, kind=classify_median_affinity(median_affinity), detail=detail,
    )


def regime_message(reg: KernelRegime) -> str | None:
    """The warning text for a kernel in the uninformative regime (None when informative)."""
    if reg.kind is None:
        return None
    med = f"{reg.median_rule_sigma:.4g}" if reg.median_rule_sigma is not None else "n/a"
    ratio = f" ({reg.ratio:.3g} x the median rule)" if reg.ratio is not None else ""
    if reg.kind == "flat":
        what = (f"median off-diagonal affinity {reg.median_affinity:.3g} > {FLAT_MEDIAN_AFFINITY:g} "
                f"({reg.fraction_above_0_99:.1%} > 0.99): the kernel sees one blob and the value reflects "
                "the data's scale rather than its structure (DSE and DSMI tend to 0)")
    else:
        what = (f"median off-diagonal affinity {reg.median_affinity:.3g} < {ISOLATED_MEDIAN_AFFINITY:g} "
                f"({reg.fraction_below_1e_6:.1%} < 1e-6): every point is nearly alone and the value "
                "reflects the data's scale rather than its structure (DSE tends to log N, DSMI to 0)")
    sampled = reg.detail.get("sampled_pairs")
    if sampled is None:
        return (f"sigma={reg.sigma:.4g}{ratio} is uninformative for this data: {what}; the median rule would give "
                f"sigma={med} (--sigma median)")
    # the median (and the median rule's sigma) is the sample's unless it was selected among all pairs
    estimated = reg.detail.get("median") == "sample"
    source = (f"{'affinities' if estimated else 'fractions'} estimated from {sampled:,} random pairs of "
              f"{reg.detail['pairs']:,}, the regime with {reg.detail['confidence']:.4%} confidence")
    if estimated:
        ratio = ratio.replace(" (", " (about ", 1)
    return (f"sigma={reg.sigma:.4g}{ratio} is uninformative for this data: {what}; the median rule would give "
            f"sigma{' about ' if estimated else '='}{med} (--sigma median; {source})")


def warn_if_uninformative(x: torch.Tensor, choice: SigmaChoice, *, seed: int = 0) -> KernelRegime | None:
    """Emit a :class:`DegenerateKernelWarning` when ``choice`` puts the kernel of ``x`` in the uninformative
    regime (:func:`classify_median_affinity`); return the regime (None for the median rule, which sits at
    median affinity exp(-1) by construction and is not checked again)."""
    if choice.rule == "median":
        return None
    reg = kernel_regime(x, choice, seed=seed)
    msg = regime_message(reg)
    if msg is not None:
        warnings.warn(msg, DegenerateKernelWarning, stacklevel=3)
    return reg


def regime_params(reg: KernelRegime | None) -> dict[str, Any]:
    """The regime as result parameters: ``{"kernel_regime": {...}}`` or nothing for the median rule."""
    if reg is None:
        return {}
    return {"kernel_regime": {"regime": reg.kind or "informative", "median_rule_sigma": reg.median_rule_sigma,
                              "sigma_over_median_rule": reg.ratio, "median_affinity": reg.median_affinity}}
