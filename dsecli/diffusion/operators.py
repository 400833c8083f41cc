"""The symmetric diffusion operator A = Q^-1/2 G Q^-1/2 as something that multiplies blocks of vectors.

docs/method.md#operator. The approximate solver (:mod:`dsecli.diffusion.slq`) only needs products ``A @ V``
for blocks V of shape (N, b), the exact traces ``tr A`` and ``||A||_F^2``, and the exact top
eigenvector; two operators provide them:

- :class:`DenseDiffusionOperator` holds A in memory (N^2 numbers). Kernel rows are computed in
  blocks in the working precision (float64 by default) and may be *stored* in float32 to halve
  the memory (relative rounding 6e-8 per entry, far below the solver's error); products are
  returned in float64.
- :class:`KernelRowsOperator` stores only the centred data (N x D) and the degrees; every product
  recomputes the kernel rows block by block
  (:func:`~dsecli.diffusion.kernels.gaussian_kernel_rows`: distance GEMM + exp), so memory is O(N (D + b))
  plus one block of rows, whatever N. Each product costs about 2 N^2 (D + b) flops.

Both give the same operator up to rounding: the approximation lies only in the trace estimation.
Identities used (G_ii = 1 for the Gaussian kernel):

.. math::

    \\operatorname{tr} A = \\sum_i 1/q_i, \\qquad
    A\\,q^{1/2} = q^{1/2} \\; (\\text{top eigenpair } \\lambda_1 = 1), \\qquad
    \\lVert A \\rVert_F^2 = \\sum_{ij} G_{ij}^2 / (q_i q_j).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from dsecli.device import dtype_name
from dsecli.diffusion.kernels import BLOCK_ELEMENTS, gaussian_kernel_rows, rows_per_block
from dsecli.errors import check_choice

if TYPE_CHECKING:  # pragma: no cover
    import torch

__all__ = [
    "OPERATOR_KINDS",
    "DiffusionOperator",
    "DenseDiffusionOperator",
    "KernelRowsOperator",
    "build_operator",
    "DENSE_BLOCK_ELEMENTS",
    "ROWS_BLOCK_ELEMENTS",
    "ROWS_FLOAT32_MAX_UNIT",
    "rows_tile_rows",
    "ROWS_TILE_COLUMNS",
    "describe",
]

OPERATOR_KINDS = ("dense", "rows")

# Kernel rows computed at once, in numbers: the dense builder's (rows x N) block in the working
# precision stays near 64 MiB in float64; the matrix-free operator, which recomputes blocks at
# every product, takes blocks four times larger (fewer, larger GEMMs). The memory model of
# :mod:`dsecli.diffusion.plan` counts these same blocks.
DENSE_BLOCK_ELEMENTS = BLOCK_ELEMENTS
ROWS_BLOCK_ELEMENTS = 4 * BLOCK_ELEMENTS
# Columns of one tile of the matrix-free operator (with up to 512 rows: 16 MiB in float32)
ROWS_TILE_COLUMNS = 8192
# The matrix-free operator evaluates kernel entries in float32 while their relative error bound
# (:func:`~dsecli.diffusion.kernels.kernel_factors`) stays below this; past it (a bandwidth far
# below the data's norms: s M > ~100) it evaluates in float64.
ROWS_FLOAT32_MAX_UNIT = 1e-4


class DiffusionOperator:
    kind = "?"
    n: int
    device: torch.device
    inv_sqrt_q: torch.Tensor  # float64, shape (N,)
    trace: float
    frobenius_sq: float | None
    passes: int = 0  # number of products (A @ V) computed so far
    columns: int = 0  # total columns of V over those products

    def top_eigenvector(self) -> torch.Tensor:
        """q^1/2 / ||q^1/2||: A's eigenvector for the eigenvalue 1 (float64, shape (N,))."""
        v = self.inv_sqrt_q.reciprocal()
        return v / v.norm()

    def _set_degrees(self, q: torch.Tensor) -> None:
        # from the degrees q (float64): q^-1/2 for the products, tr A = sum 1/q (G_ii = 1)
        self.inv_sqrt_q = q.rsqrt()
        self.trace = float(q.reciprocal().sum())
        self.passes = 0

    def matmat(self, v: torch.Tensor) -> torch.Tensor:
        """``A @ v`` for v of shape (N, b); float64 in and out. Counts the products and columns."""
        self.passes += 1
        self.columns += v.shape[1]
        return self._product(v)

    def _product(self, v: torch.Tensor) -> torch.Tensor:  # pragma: no cover - interface
        raise NotImplementedError


def _normalised_sq_norm_(rows: torch.Tensor, r: torch.Tensor, start: int, stop: int) -> float:
    """Scale kernel rows ``start:stop`` in place to rows of A = diag(r) G diag(r); return their squared norm."""
    import torch

    rows.mul_(r[start:stop, None]).mul_(r[None, :])
    return float(torch.linalg.vector_norm(rows, dtype=torch.float64)) ** 2


class DenseDiffusionOperator(DiffusionOperator):
    """A held in memory (``storage`` dtype); built from kernel rows computed in the dtype of ``xt``.

    Peak memory: one N x N array in ``storage`` plus one block of rows in the working dtype.
    """

    kind = "dense"

    def __init__(self, xt: torch.Tensor, sigma: float, *, storage: torch.dtype | None = None) -> None:
        import torch

        n = xt.shape[0]
        storage = storage or xt.dtype
        self.n, self.device, self.storage = n, xt.device, storage
        xc = xt - xt.mean(dim=0, keepdim=True)
        xn = (xc * xc).sum(dim=1)
        a = torch.empty((n, n), dtype=storage, device=xt.device)
        q = torch.empty(n, dtype=torch.float64, device=xt.device)
        step = rows_per_block(n, DENSE_BLOCK_ELEMENTS)
        for s in range(0, n, step):
            e = min(n, s + step)
            blk = gaussian_kernel_rows(xc, xn, s, e, sigma)
            q[s:e] = blk.sum(dim=1, dtype=torch.float64)
            a[s:e].copy_(blk)
            del blk
        self._set_degrees(q)
        rs = self.inv_sqrt_q.to(storage)
        # normalise and sum squares in one pass (the rows are in cache)
        self.frobenius_sq = sum(_normalised_sq_norm_(a[s:e], rs, s, e)
                                for s, e in ((s, min(n, s + step)) for s in range(0, n, step)))
        self.a = a

    def _product(self, v: torch.Tensor) -> torch.Tensor:
        import torch

        if self.storage == torch.float64:
            return self.a @ v
        return (self.a @ v.to(self.storage)).double()

    @property
    def nbytes(self) -> int:
        return self.a.numel() * self.a.element_size()


def rows_tile_rows(n: int, block_elements: int = ROWS_BLOCK_ELEMENTS) -> int:
    """Rows per tile of :class:`KernelRowsOperator`: about ``block_elements`` numbers per
    (rows x min(N, :data:`ROWS_TILE_COLUMNS`)) tile, within 256-512 rows (fewer make the GEMMs
    inefficient, more leave the cache)."""
    return min(n, max(256, min(512, block_elements // max(1, min(n, ROWS_TILE_COLUMNS)))))


class KernelRowsOperator(DiffusionOperator):
    """Matrix-free A: kernel rows recomputed in blocks at every product, one triangle of them.

    G is symmetric, so a pass forms only rows ``s:e`` against columns ``0:e`` for each block of
    rows (the lower block triangle, about half the kernel) and applies each tile both ways:
    ``out[s:e] += T @ w[:e]`` and ``out[:s] += T[:, :s]^T @ w[s:e]``. A tile is one GEMM and one
    ``exp`` (:class:`~dsecli.diffusion.kernels.KernelFactors`), evaluated in ``evaluation``
    precision (by default float32, twice the GEMM and exponential rate of float64, unless its
    error bound exceeds :data:`ROWS_FLOAT32_MAX_UNIT`; then float64) and summed across row blocks
    in float64. The operator is then the exactly symmetric A + E of the evaluated
    entries, every pass the same one; E's entries are at most ``unit`` times A's
    (:func:`~dsecli.diffusion.kernels.kernel_factors`), which the solver's error estimate counts.

    Construction makes one pass for the degrees q. Memory: the data's two (N, D + 2) factors,
    N-vectors, and one tile of about ``block_elements`` numbers. ``||A||_F^2`` is accumulated
    during the first product, at no extra pass.
    """

    kind = "rows"

    def __init__(self, xt: torch.Tensor, sigma: float, *, block_elements: int = ROWS_BLOCK_ELEMENTS,
                 evaluation: torch.dtype | None = None) -> None:
        import torch

        from dsecli.diffusion.kernels import kernel_factors

        self.n, self.device = xt.shape[0], xt.device
        self.storage = evaluation or torch.float32
        self.sigma = float(sigma)
        xc = xt - xt.mean(dim=0, keepdim=True)
        self.factors = kernel_factors(xc, self.sigma, dtype=self.storage)
        if evaluation is None and self.factors.unit > ROWS_FLOAT32_MAX_UNIT:
            self.storage = torch.float64
            self.factors = kernel_factors(xc, self.sigma, dtype=self.storage)
        del xc
        self.unit = self.factors.unit
        self.step = rows_tile_rows(self.n, block_elements)
        ones = torch.ones((self.n, 1), dtype=torch.float64, device=self.device)
        self._set_degrees(self._apply(ones)[:, 0])
        self.frobenius_sq = None

    def _apply(self, w64: torch.Tensor, r: torch.Tensor | None = None) -> torch.Tensor:
        """``G @ w64`` (float64 out) from one pass over the triangle; with ``r`` = q^-1/2, also
        accumulates ||A||_F^2 = sum_ij (r_i G_ij r_j)^2 into ``frobenius_sq``.

        Tiles of ``step`` rows x :data:`ROWS_TILE_COLUMNS` columns (16 MiB in float32) stay in
        cache between their GEMM, their exp and their two products; one buffer serves them all."""
        import torch

        n, step, width = self.n, self.step, ROWS_TILE_COLUMNS
        w = w64.to(self.storage)
        # the transposed halves go straight into one buffer (BLAS accumulate, no temporaries);
        # each row block's own sum is added to the float64 result once
        back = torch.zeros_like(w)
        out = torch.zeros_like(w64)
        mine = torch.empty((step, w.shape[1]), dtype=self.storage, device=self.device)
        buffer = torch.empty(step * min(width, n), dtype=self.storage, device=self.device)
        r_s = r.to(self.storage) if r is not None else None
        frob = 0.0
        for s in range(0, n, step):
            e = min(n, s + step)
            acc = mine[: e - s].zero_()
            for c0 in range(0, e, width):
                c1 = min(e, c0 + width)
                blk = self.factors.tile(s, e, c0, c1, buffer=buffer)
                acc.addmm_(blk, w[c0:c1])
                below = min(c1, s) - c0  # columns left of the diagonal block: applied both ways
                if below > 0:
                    back[c0:c0 + below].addmm_(blk[:, :below].T, w[s:e])
                if r_s is not None:
                    part = blk.mul_(r_s[s:e, None]).mul_(r_s[None, c0:c1])
                    off = float(torch.linalg.vector_norm(part[:, :below], dtype=torch.float64)) ** 2 if below > 0 else 0.0
                    rest = part[:, max(below, 0):]
                    frob += 2.0 * off + (float(torch.linalg.vector_norm(rest, dtype=torch.float64)) ** 2
                                         if rest.numel() else 0.0)
            out[s:e] += acc
        if r_s is not None:
            self.frobenius_sq = frob
        return out.add_(back)

    def _product(self, v: torch.Tensor) -> torch.Tensor:
        # about N^2 (D + 2) + 2 N^2 b flops and N^2 / 2 exponentials per product
        r = self.inv_sqrt_q
        out = self._apply(v * r[:, None], r if self.frobenius_sq is None else None)
        return out.mul_(r[:, None])

    @property
    def nbytes(self) -> int:
        f = self.factors
        return f.left.numel() * f.left.element_size() + f.right.numel() * f.right.element_size()


def build_operator(xt: torch.Tensor, sigma: float, *, kind: str, storage: torch.dtype | None = None) -> DiffusionOperator:
    """The diffusion operator of the rows of ``xt`` as ``kind`` ("dense" or "rows")."""
    check_choice(kind, "operator", OPERATOR_KINDS)
    if kind == "dense":
        return DenseDiffusionOperator(xt, sigma, storage=storage)
    return KernelRowsOperator(xt, sigma)


def describe(op: DiffusionOperator) -> dict[str, object]:
    """Operator facts for ``result.extra``."""
    return {
        "operator": op.kind,
        "operator_storage": dtype_name(op.storage),
        "operator_bytes": int(getattr(op, "nbytes", 0)),
        "operator_products": int(op.passes),
        "operator_columns": int(op.columns),
    }
