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
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from dsecli.errors import DegenerateKernelWarning, InputError, check_positive

if TYPE_CHECKING:  # pragma: no cover
    import torch

__all__ = [
    "pairwise_sq_dists",
    "gaussian_kernel",
    "gaussian_kernel_rows",
    "KernelFactors",
    "kernel_factors",
    "rows_per_block",
    "symmetric_normalize_",
    "diffusion_operator",
    "resolve_sigma",
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

    x = xc.to(dtype)
    s = 1.0 / (float(sigma) ** 2)
    xn = (x * x).sum(dim=1)
    ones = torch.ones((x.shape[0], 1), dtype=dtype, device=x.device)
    half = (-0.5 * s * xn)[:, None]
    left = torch.cat([x * s, half, ones], dim=1)
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
# a numeric sigma on more rows is first screened on a seeded subsample of this many rows; a median
# affinity there inside SCREEN_BAND (well inside the informative band (1e-3, 0.9)) is reported from
# the subsample, anything else is computed on the median rule's full pairs
REGIME_SCREEN_ROWS = 512
SCREEN_BAND = (1e-2, 0.8)


def _pair_sq_dists(x: torch.Tensor, *, seed: int) -> tuple[torch.Tensor, dict[str, Any]]:
    """The off-diagonal squared distances d_ij^2 (i < j) the median rule uses (in no particular order).

    All rows up to :data:`MEDIAN_MAX_ROWS`; above, a seeded subsample of that many rows
    (``np.random.default_rng(seed).choice(N, 4096, replace=False)``, sorted), named in the detail.
    """
    import numpy as np
    import torch

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
    # unsorted: the median rule needs one order statistic (a selection, O(m)); the regime sorts once
    return vals, detail


def _order_statistic(vals: torch.Tensor, index: int) -> float:
    """The value at zero-based ``index`` of ``vals`` sorted ascending."""
    import torch

    return float(torch.kthvalue(vals, int(index) + 1).values.item())


def _lower_median(vals: torch.Tensor) -> float:
    """The lower median (torch.median's convention for an even count)."""
    return _order_statistic(vals, (vals.numel() - 1) // 2)


def _median_rule(d2: torch.Tensor, dtype: torch.dtype) -> float:
    return _median_rule_from(_lower_median(d2), dtype)


def _median_rule_from(med: float, dtype: torch.dtype) -> float:
    """sigma = sqrt(med / 2) from the lower median of the squared distances, checked."""
    import torch

    if not med > 0:
        raise InputError(
            "`sigma` median: the median pairwise distance is 0 (more than half the rows "
            "are duplicates); give a numeric --sigma"
        )
    value = math.sqrt(med / 2.0)
    if value < 2.0 * math.sqrt(0.5 / torch.finfo(dtype).max):
        raise InputError(
            f"`sigma` median: the median pairwise distance ({math.sqrt(med):.3g}) is too small for "
            f"{str(dtype).replace('torch.', '')}; rescale the data or give a numeric --sigma"
        )
    return value


def resolve_sigma(sigma: Any, x: torch.Tensor, *, seed: int = 0) -> SigmaChoice:
    """Turn ``sigma`` (a number, ``"median"`` or ``"sqrt-d"``) into a number for the data ``x``.

    - number: used as is (data units; must be finite and > 0);
    - ``"sqrt-d"``: sqrt(D), as in the paper's blob and ImageNet studies;
    - ``"median"``: sqrt(median_{i<j} d_ij^2 / 2), so that exp(-d^2/(2 sigma^2)) =
      exp(-d^2 / median d^2) and the median off-diagonal affinity is exp(-1) = 0.37 whatever the
      data's scale. Exact for N <= 4096 rows; above that the median is taken over a seeded
      subsample of 4096 rows (about 8.4 million pairs), reported in ``detail``.
    """
    import torch

    if isinstance(sigma, str):
        spec = sigma.strip().lower().replace("_", "-")
        if spec in ("sqrt-d", "sqrtd", "sqrt(d)"):
            return SigmaChoice(math.sqrt(x.shape[1]), "sqrt-d", {"n_features": int(x.shape[1])})
        if spec == "median":
            vals, detail = _pair_sq_dists(x, seed=seed)
            return SigmaChoice(_median_rule(vals, x.dtype), "median", detail)
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

    Computed on the median rule's pairs (all pairs up to 4096 rows, else the seeded subsample of
    :func:`resolve_sigma`), from squared distances, so affinities near 1 or near 0 keep their
    precision: the affinity at the q-th quantile is exp(-d^2_(1-q) / (2 sigma^2)). Cost: one
    Gram product and one sort on at most 4096 rows.

    Unless ``exact``, a numeric sigma on more than :data:`REGIME_SCREEN_ROWS` rows is first
    screened on a seeded subsample of that many rows (about 130,000 pairs): a kernel whose median
    affinity there lies well inside the informative band (:data:`SCREEN_BAND`) is reported from
    that subsample (``detail["screened"]``), so an informative bandwidth costs almost nothing;
    anything near or past a threshold is computed on the full pairs, so every warning, and the
    median rule's sigma it names, come from the exact computation.

    Returns
    -------
    KernelRegime
        The numeric sigma, the median rule's sigma on the same rows and the ratio, the
        affinity quantiles, the fractions of affinities > 0.99 and < 1e-6, and the regime.
    """
    numeric = not (isinstance(sigma, str) and sigma.strip().lower() == "median")
    if not exact and numeric and x.shape[0] > REGIME_SCREEN_ROWS:
        import numpy as np
        import torch

        idx = np.sort(np.random.default_rng(seed).choice(x.shape[0], REGIME_SCREEN_ROWS, replace=False))
        screen = _regime_on(x[torch.as_tensor(idx, device=x.device)], sigma, seed=seed)
        if SCREEN_BAND[0] < screen.median_affinity < SCREEN_BAND[1]:
            return replace(screen, detail={**screen.detail, "screened": True, "seed": seed})
    return _regime_on(x, sigma, seed=seed)


def _regime_on(x: torch.Tensor, sigma: Any, *, seed: int) -> KernelRegime:
    import torch

    vals, detail = _pair_sq_dists(x, seed=seed)
    vals = torch.sort(vals).values  # several order statistics: one sort beats one selection each
    m = vals.numel()

    def at(index: int) -> float:
        return float(vals[min(m - 1, max(0, index))].item())

    lower_median = at((m - 1) // 2)
    try:
        med_sigma: float | None = _median_rule_from(lower_median, x.dtype)
    except InputError:  # more than half the pairs at distance 0: no median rule, the kernel is flat anyway
        med_sigma = None
    if isinstance(sigma, SigmaChoice):
        value = sigma.value
    elif not (isinstance(sigma, str) and sigma.strip().lower() == "median"):
        value = resolve_sigma(sigma, x, seed=seed).value
    else:
        if med_sigma is None:
            _median_rule_from(lower_median, x.dtype)  # raises the median rule's own message
        value = float(med_sigma)  # type: ignore[arg-type]
    scale = 1.0 / (2.0 * value * value)
    # the q-th quantile of the affinities is the (1 - q)-th of the distances
    quantiles = {f"q{round(q * 100):02d}": math.exp(-at(int(round((1.0 - q) * (m - 1)))) * scale)
                 for q in AFFINITY_QUANTILES}
    median_affinity = math.exp(-lower_median * scale)
    # affinity > 0.99 <=> d^2 < -log(0.99) / scale; affinity < 1e-6 <=> d^2 > -log(1e-6) / scale
    above = float(torch.searchsorted(vals, -math.log(0.99) / scale, right=False).item()) / m
    below = 1.0 - float(torch.searchsorted(vals, -math.log(1e-6) / scale, right=True).item()) / m
    return KernelRegime(
        sigma=value, median_rule_sigma=med_sigma, ratio=None if med_sigma is None else value / med_sigma,
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
                "the data's scale rather than its structure (DSE tends to 0)")
    else:
        what = (f"median off-diagonal affinity {reg.median_affinity:.3g} < {ISOLATED_MEDIAN_AFFINITY:g} "
                f"({reg.fraction_below_1e_6:.1%} < 1e-6): every point is nearly alone and the value "
                "reflects the data's scale rather than its structure (DSE tends to log N)")
    return (f"sigma={reg.sigma:.4g}{ratio} is uninformative for this data: {what}; the median rule would give "
            f"sigma={med} (--sigma median)")


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
