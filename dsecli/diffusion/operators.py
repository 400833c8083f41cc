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
    "DenseDiffusionOperator",
    "KernelRowsOperator",
    "build_operator",
    "DENSE_BLOCK_ELEMENTS",
    "ROWS_BLOCK_ELEMENTS",
]

OPERATOR_KINDS = ("dense", "rows")

# Kernel rows computed at once, in numbers: the dense builder's (rows x N) block in the working
# precision stays near 64 MiB in float64; the matrix-free operator, which recomputes blocks at
# every product, takes blocks four times larger (fewer, larger GEMMs). The memory model of
# :mod:`dsecli.diffusion.plan` counts these same blocks.
DENSE_BLOCK_ELEMENTS = BLOCK_ELEMENTS
ROWS_BLOCK_ELEMENTS = 4 * BLOCK_ELEMENTS


class _Operator:
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


class DenseDiffusionOperator(_Operator):
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


class KernelRowsOperator(_Operator):
    """Matrix-free A: kernel rows recomputed in blocks at every product.

    Construction makes one pass over the kernel for the degrees q. Memory: the centred data,
    N-vectors, and one (rows x N) block (about ``block_elements`` numbers in the working dtype).
    ``||A||_F^2`` is accumulated during the first product, at no extra pass.
    """

    kind = "rows"

    def __init__(self, xt: torch.Tensor, sigma: float, *, block_elements: int = ROWS_BLOCK_ELEMENTS) -> None:
        import torch

        self.n, self.device, self.storage = xt.shape[0], xt.device, xt.dtype
        self.sigma = float(sigma)
        self.xc = xt - xt.mean(dim=0, keepdim=True)
        self.xn = (self.xc * self.xc).sum(dim=1)
        self.step = rows_per_block(self.n, block_elements)
        q = torch.empty(self.n, dtype=torch.float64, device=xt.device)
        for s in range(0, self.n, self.step):
            e = min(self.n, s + self.step)
            q[s:e] = gaussian_kernel_rows(self.xc, self.xn, s, e, self.sigma).sum(dim=1, dtype=torch.float64)
        self._set_degrees(q)
        self.frobenius_sq = None

    def _product(self, v: torch.Tensor) -> torch.Tensor:
        # O(N^2 (D + b)) flops: every block of kernel rows is recomputed
        import torch

        r = self.inv_sqrt_q
        w = (v * r[:, None]).to(self.storage)
        out = torch.empty_like(v)
        r_s = r.to(self.storage)
        frob = 0.0
        want_frob = self.frobenius_sq is None
        for s in range(0, self.n, self.step):
            e = min(self.n, s + self.step)
            blk = gaussian_kernel_rows(self.xc, self.xn, s, e, self.sigma)
            out[s:e] = (blk @ w).double()
            if want_frob:
                frob += _normalised_sq_norm_(blk, r_s, s, e)
            del blk
        if want_frob:
            self.frobenius_sq = frob
        return out.mul_(r[:, None])

    @property
    def nbytes(self) -> int:
        return self.xc.numel() * self.xc.element_size()


def build_operator(xt: torch.Tensor, sigma: float, *, kind: str, storage: torch.dtype | None = None) -> _Operator:
    """The diffusion operator of the rows of ``xt`` as ``kind`` ("dense" or "rows")."""
    check_choice(kind, "operator", OPERATOR_KINDS)
    if kind == "dense":
        return DenseDiffusionOperator(xt, sigma, storage=storage)
    return KernelRowsOperator(xt, sigma)


def describe(op: _Operator) -> dict[str, object]:
    """Operator facts for ``result.extra``."""
    return {
        "operator": op.kind,
        "operator_storage": dtype_name(op.storage),
        "operator_bytes": int(getattr(op, "nbytes", 0)),
        "operator_products": int(op.passes),
        "operator_columns": int(op.columns),
    }
