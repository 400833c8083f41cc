"""Eigenvalues of the diffusion operators, and how the CPU's threads are spent on them.

The rule (:func:`eig_schedule`) depends on nothing but the problem (rows, dtype, device) and
torch's thread count as the caller set it (``torch.get_num_threads()``: ``dse --threads``,
:func:`dsecli.device.cpu_threads`); never on the machine's load, its OpenMP wait policy or its
CPU. LAPACK's last bits depend on how many threads it runs on, so a rule that looked at the load
would give one value on an idle machine and another on a busy one.

- float64 on the CPU, fewer than ``NUMPY_EIG_MAX_ROWS`` rows: NumPy's LAPACK on one BLAS thread
  per problem; a batch solves ``min(count, threads)`` problems at once in a thread pool (NumPy
  releases the GIL while it solves);
- everything else (larger, float32, CUDA): ``torch.linalg.eigvalsh`` on torch's threads, one
  problem after another.

A batch builds each matrix when it is solved, on one torch thread (a kernel's last bits depend on
torch's thread count), so only as many matrices exist at once as are solved at once. Thread
counts are changed inside a call and restored; no environment variable is touched.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

import numpy as np

from dsecli.device import cpu_threads
from dsecli.errors import ComputationError

if TYPE_CHECKING:  # pragma: no cover
    import torch

__all__ = ["NUMPY_EIG_MAX_ROWS", "eig_schedule", "symmetric_eigenvalues", "symmetric_eigenvalues_many",
           "general_eigenvalue_moduli", "diffusion_eigenvalues"]

# Float64 CPU problems below this many rows go to NumPy's LAPACK on one thread each, larger ones to
# torch's on all of torch's threads. benchmarks/threads.py on 2 idle AMD cores, torch under OpenMP's
# spinning waits (ms per problem): one problem alone, NumPy on 1 thread vs torch on 2: 56 vs 102 at
# 1,000 rows, 204 vs 219 at 1,500, 496 vs 274 at 2,000; a batch, NumPy two at once vs torch on 2
# threads one after another: 98 vs 219 at 1,500, 336 vs 274 at 2,000. Both cross between 1,500 and
# 2,000 rows; halfway, neither side of the threshold is more than about 1.3x slower than the other.
NUMPY_EIG_MAX_ROWS = 1750
# NumPy's own rule, not the machine's: eigvalsh releases the GIL only in calls whose
# (matrices x rows) exceed this, so a batch of small matrices is stacked into calls that do.
NUMPY_GIL_FREE_ROWS = 500


def eig_schedule(n: int, count: int, *, dtype: torch.dtype, device: Any) -> tuple[str, int, int]:
    """How ``count`` symmetric eigenproblems of ``n`` rows are solved: (library, workers, threads each).

    From the size, dtype and device and from ``torch.get_num_threads()`` alone (see the module's
    docstring), so that the same problem is solved the same way, to the last bit, on a busy and
    on an idle machine.

    Returns
    -------
    (str, int, int)
        ``"numpy"`` (one BLAS thread per problem, ``min(count, threads)`` at once) or ``"torch"``
        (torch's ``threads``, one problem after another).
    """
    import torch

    threads = torch.get_num_threads()
    if getattr(device, "type", str(device)) == "cpu" and dtype == torch.float64 and n < NUMPY_EIG_MAX_ROWS:
        return "numpy", max(1, min(count, threads)), 1
    return "torch", 1, threads


def symmetric_eigenvalues(a: torch.Tensor) -> torch.Tensor:
    """All eigenvalues of a symmetric matrix, ascending (no eigenvectors), by :func:`eig_schedule`.

    Only the lower triangle is read. Raises :class:`ComputationError` if LAPACK fails.
    """
    library, _, threads = eig_schedule(a.shape[-1], 1, dtype=a.dtype, device=a.device)
    if library == "numpy":
        with _blas_threads(threads):
            return _solve_numpy(a.detach().numpy())[0]
    with cpu_threads(threads):
        return _solve(a)


def symmetric_eigenvalues_many(build: Callable[[int], torch.Tensor], count: int, *,
                               sizes: Sequence[int] | None = None) -> list[torch.Tensor]:
    """Eigenvalues (ascending) of ``count`` symmetric matrices, the i-th made by ``build(i)``.

    All of one dtype and device. Each problem is solved by :func:`eig_schedule` for its own size;
    with ``sizes`` (the rows of each, known beforehand) NumPy's problems are solved several at
    once and those of equal size stacked into one call; without, one after another. Every matrix
    is built when it is solved, on one torch thread. The values do not depend on the batch: each
    problem gives the bits it gives alone in :func:`symmetric_eigenvalues` (given matrices built
    alike).
    """
    import torch

    if count <= 0:
        return []
    with cpu_threads(1):
        first = [build(0)]
    dtype, device = first[0].dtype, first[0].device

    def rule(m: int, k: int = 1) -> tuple[str, int, int]:  # called outside cpu_threads(1): the caller's threads
        return eig_schedule(m, k, dtype=dtype, device=device)

    def take(i: int) -> torch.Tensor:
        if i == 0:
            return first.pop()
        with cpu_threads(1):
            return build(i)

    if sizes is None:  # unknown beforehand: one after another, each as the rule says for its own size
        return [symmetric_eigenvalues(take(i)) for i in range(count)]
    sizes = [int(m) for m in sizes]
    numpy_part = [i for i in range(count) if rule(sizes[i])[0] == "numpy"]
    torch_part = [i for i in range(count) if rule(sizes[i])[0] != "numpy"]
    out: list[torch.Tensor | None] = [None] * count

    def solve_on_torch() -> None:
        for i in torch_part:
            a = take(i)
            with cpu_threads(rule(sizes[i])[2]):
                out[i] = _solve(a)

    torch_first = 0 in torch_part  # the matrix built first is solved first
    if torch_first:
        solve_on_torch()
    if numpy_part:
        calls = _numpy_calls(numpy_part, sizes)
        workers = min(len(calls), rule(sizes[numpy_part[0]], len(numpy_part))[1])

        def solve(call: list[int]) -> list[torch.Tensor]:
            mats = [take(i).detach().numpy() for i in call]
            return _solve_numpy(mats[0] if len(mats) == 1 else np.stack(mats))

        with cpu_threads(1), _blas_threads(1):  # one thread per problem (the rule's for NumPy)
            if workers > 1:
                with ThreadPoolExecutor(workers, initializer=torch.set_num_threads, initargs=(1,)) as pool:
                    solved = list(pool.map(solve, calls))
            else:
                solved = [solve(call) for call in calls]
        for call, lams in zip(calls, solved):
            for i, lam in zip(call, lams):
                out[i] = lam
    if not torch_first:
        solve_on_torch()
    return out  # type: ignore[return-value]


def _numpy_calls(part: list[int], sizes: list[int]) -> list[list[int]]:
    """Problems ``part`` cut into NumPy calls: runs of equal size, each cut into pieces of nearly equal
    length that hold more than ``NUMPY_GIL_FREE_ROWS`` rows in all wherever the run does."""
    calls: list[list[int]] = []
    for m, run in itertools.groupby(part, key=lambda i: sizes[i]):
        run_list = list(run)
        per_call = NUMPY_GIL_FREE_ROWS // max(m, 1) + 1
        calls.extend(piece.tolist() for piece in np.array_split(run_list, max(1, len(run_list) // per_call)))
    return calls


def _solve_numpy(stack: np.ndarray) -> list[torch.Tensor]:
    import torch

    try:
        lam = np.linalg.eigvalsh(stack)
    except np.linalg.LinAlgError as exc:
        raise ComputationError(f"eigenvalue solver failed: {exc}".splitlines()[0]) from exc
    return [torch.from_numpy(v) for v in lam.reshape(-1, stack.shape[-1])]


def _solve(a: torch.Tensor) -> torch.Tensor:
    import torch

    try:
        return torch.linalg.eigvalsh(a)
    except RuntimeError as exc:  # torch raises _LinAlgError (a RuntimeError) on non-convergence
        raise ComputationError(f"eigenvalue solver failed: {exc}".splitlines()[0]) from exc


def _blas_threads(threads: int) -> contextlib.AbstractContextManager[Any]:
    """NumPy's BLAS on ``threads`` threads inside the block, restored after."""
    return _blas_controller().limit(limits=threads, user_api="blas")


@functools.lru_cache(maxsize=1)
def _blas_controller() -> Any:
    from threadpoolctl import ThreadpoolController

    return ThreadpoolController()


def general_eigenvalue_moduli(a: torch.Tensor) -> torch.Tensor:
    """Moduli |lambda| of the (complex) eigenvalues of a general square matrix, unsorted, on torch's threads."""
    import torch

    try:
        return torch.linalg.eigvals(a).abs()
    except RuntimeError as exc:
        raise ComputationError(f"eigenvalue solver failed: {exc}".splitlines()[0]) from exc


def diffusion_eigenvalues(xt: torch.Tensor, sigma: float, *, normalized: bool = True,
                          sq_dists: torch.Tensor | None = None) -> tuple[torch.Tensor, dict[str, float]]:
    """All N eigenvalues (ascending) of the dense diffusion operator of the rows ``xt``: the one exact primitive
    under DSE, the normalised adjacency variant and the spectrum scan.

    A = Q^-1/2 G Q^-1/2 with G_ij = exp(-||x_i - x_j||^2 / (2 sigma^2)) and Q = diag(G 1)
    (docs/method.md#operator); ``normalized=False`` decomposes G itself (the published
    ``ase-gaussian``). Built in place in one N x N buffer, then ``eigvalsh`` (the thread rule of
    the rule of :func:`symmetric_eigenvalues`): peak memory about 2 N^2 numbers of ``xt``'s dtype.
    ``sq_dists``: the squared distances of the rows, formed by the caller already (read, not changed;
    :func:`dsecli.diffusion.kernels.gaussian_kernel`).

    Returns
    -------
    (torch.Tensor, dict)
        The eigenvalues, and the seconds of the kernel and of the eigensolver (``timings_s``).
    """
    from dsecli.device import Timer
    from dsecli.diffusion.kernels import gaussian_kernel, symmetric_normalize_

    with Timer(xt.device) as tk:
        a = gaussian_kernel(xt, sigma, sq_dists=sq_dists)
        if normalized:
            symmetric_normalize_(a)
    with Timer(xt.device) as te:
        lam = symmetric_eigenvalues(a)
    del a
    return lam, {"kernel": tk.elapsed_s, "eigenvalues": te.elapsed_s}
