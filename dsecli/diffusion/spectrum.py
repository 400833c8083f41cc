"""Spectra and the Shannon entropy of a normalised spectrum.

docs/method.md#dse (and #golden). With eigenvalues lambda_i and integer
diffusion time t:

.. math::

    \\alpha_i = |\\lambda_i|^t / \\sum_j |\\lambda_j|^t, \\qquad
    H = -\\sum_i (\\alpha_i + \\epsilon) \\log_b (\\alpha_i + \\epsilon)

with eps = 2**-52 added to every probability before the logarithm, as the published code
does (its effect is below 1e-9 bits for N <= 1e5); no renormalisation after adding eps.
"""

from __future__ import annotations

import contextlib
import functools
import math
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

import numpy as np

from dsecli.errors import ComputationError, check_positive_int

if TYPE_CHECKING:  # pragma: no cover
    import torch

__all__ = ["EPS", "eig_threads", "idle_cores", "symmetric_eigenvalues", "symmetric_eigenvalues_many", "general_eigenvalue_moduli", "entropy_of_probabilities", "spectral_entropy"]

EPS = 2.0**-52
# The thread rules of CPU eigvalsh (float64), from benchmarks/threads.py on 2 cores: eigvalsh on
# 1 or 2 threads, or two problems at once on one thread each ("2 x 1"), under each OpenMP wait
# policy, on an idle machine and with one core taken by another process. With the rules below no
# size from 200 to 4,000 rows is more than 10 % slower than its best setting in any of the four
# conditions (2 x 1 wins for batches everywhere under PASSIVE; under spinning waits two threads
# win from 2,000 rows when idle, one thread below 1,500 when busy).
SINGLE_THREAD_EIG_ROWS = 1200  # sleeping waits, idle: a second thread pays from here
SINGLE_THREAD_EIG_ROWS_SPINNING = 2000  # spinning (ACTIVE or default) waits, idle
SINGLE_THREAD_EIG_ROWS_BUSY = 3000  # another process holds a core, spinning waits
SINGLE_THREAD_EIG_ROWS_BUSY_PASSIVE = 5000  # busy, sleeping waits: one thread won at every size measured
CONCURRENT_EIG_ROWS_SPINNING = 2000  # spinning waits, idle: batches of larger problems go one by one on 2 threads
CONCURRENT_EIG_MIN_ROWS_BUSY_SPINNING = 1500  # spinning waits, busy: smaller problems go one by one on 1 thread
# Up to this many rows a batch may be solved concurrently (memory: one matrix per worker).
CONCURRENT_EIG_MAX_ROWS = 4096
# NumPy's LAPACK (OpenBLAS threads, no OpenMP waits): two problems at once win everywhere when idle;
# on a busy machine one after another on one thread wins below this size (200 rows: 1.16 ms vs 1.37).
NUMPY_SEQUENTIAL_EIG_ROWS_BUSY = 300
# Float64 CPU batches below this many rows go to NumPy's LAPACK (faster here up to 2,000 rows, slower
# from 3,000: benchmarks/threads.py, the "torch / numpy" column).
NUMPY_EIG_MAX_ROWS = 2500
# NumPy releases the GIL in eigvalsh when (matrices x rows) of one call exceeds 500.
NUMPY_GIL_FREE_ROWS = 500


def symmetric_eigenvalues(a: torch.Tensor) -> torch.Tensor:
    """All eigenvalues of a symmetric matrix, ascending (``torch.linalg.eigvalsh``, no eigenvectors).

    Only the lower triangle is read; on the CPU, the thread count follows :func:`eig_threads`.
    Raises :class:`ComputationError` if LAPACK fails.
    """
    from dsecli.device import cpu_threads

    _, threads = eig_threads(a.shape[-1], 1, device=a.device)
    with cpu_threads(threads):
        return _solve(a)


def eig_threads(n: int, count: int, *, device: Any = "cpu", library: str = "torch") -> tuple[int, int | None]:
    """How to solve ``count`` eigenproblems of ``n`` rows: (workers at once, threads per worker).

    ``threads`` None keeps torch's setting. From the measurements behind the constants above,
    with the effective OpenMP wait policy (:func:`dsecli.device.openmp_wait_policy`) and the
    machine's load (:func:`idle_cores`: busy when fewer cores are idle than torch has threads).
    ``library="numpy"`` (NumPy's LAPACK solving a batch, threads of its BLAS): always one thread
    per problem, so that the values never depend on the machine's load (LAPACK's rounding depends
    on its thread count); two at once, except small problems on a busy machine.

    Returns
    -------
    (int, int or None)
        ``workers`` >= 1 (more than 1: concurrent, one thread each) and ``threads``.
    """
    import torch

    from dsecli.device import openmp_wait_policy

    total = torch.get_num_threads()
    if getattr(device, "type", str(device)) != "cpu" or total < 2:
        return 1, None
    busy = idle_cores() < total
    if library == "numpy":
        if count < 2 or (busy and n < NUMPY_SEQUENTIAL_EIG_ROWS_BUSY):
            return 1, 1
        return min(count, total), 1
    spinning = openmp_wait_policy() != "PASSIVE"
    if count >= 2 and n <= CONCURRENT_EIG_MAX_ROWS:
        concurrent = (not spinning or (n >= CONCURRENT_EIG_MIN_ROWS_BUSY_SPINNING if busy
                                       else n < CONCURRENT_EIG_ROWS_SPINNING))
        if concurrent:
            return min(count, total), 1
    if busy:
        limit = SINGLE_THREAD_EIG_ROWS_BUSY if spinning else SINGLE_THREAD_EIG_ROWS_BUSY_PASSIVE
    else:
        limit = SINGLE_THREAD_EIG_ROWS_SPINNING if spinning else SINGLE_THREAD_EIG_ROWS
    return 1, (1 if n < limit else None)


def symmetric_eigenvalues_many(build: Callable[[int], torch.Tensor], count: int, *,
                               sizes: Sequence[int] | None = None) -> list[torch.Tensor]:
    """Eigenvalues (ascending) of ``count`` symmetric matrices, the i-th made by ``build(i)``.

    ``sizes`` (the rows of each matrix, if known beforehand) lets problems of one size be solved
    together, and each by the library its size calls for.

    Each matrix is built when it is solved, so only as many exist at once as are solved at once.
    :func:`eig_threads` decides (from the size) whether they are solved several at once, each on
    one thread, or one after another.

    Two LAPACKs are at hand on the CPU, torch's and NumPy's (both ``syevd`` on the lower
    triangle). Float64 problems of fewer than ``NUMPY_EIG_MAX_ROWS`` rows go to NumPy's, always
    on one thread per problem: on the machine of benchmarks/threads.py its OpenBLAS solves them
    1.3-2x faster than torch's MKL (400 rows: 3.1 ms against 5.0 per problem), while from 3,000
    rows MKL is 1.5-1.9x faster. The rule is a fixed size, not a measurement made at run time, so
    that two runs give the same values to the last bit (the libraries, and LAPACK on different
    thread counts, agree only to rounding).
    """
    if count <= 0:
        return []
    if sizes is not None:
        sizes = [int(v) for v in sizes]
        small = [i for i, m in enumerate(sizes) if m < NUMPY_EIG_MAX_ROWS]
        if 0 < len(small) < count:  # both libraries: each part its own batch, in place
            large = [i for i, m in enumerate(sizes) if m >= NUMPY_EIG_MAX_ROWS]
            out: list[torch.Tensor | None] = [None] * count
            for idx in (small, large):
                got = _eigenvalues_of_batch(lambda j, idx=idx: build(idx[j]), len(idx), [sizes[i] for i in idx])
                for i, lam in zip(idx, got):
                    out[i] = lam
            return out  # type: ignore[return-value]
    return _eigenvalues_of_batch(build, count, sizes)


def _eigenvalues_of_batch(build: Callable[[int], torch.Tensor], count: int,
                          sizes: list[int] | None) -> list[torch.Tensor]:
    """:func:`symmetric_eigenvalues_many` for problems all on one side of ``NUMPY_EIG_MAX_ROWS``."""
    import torch

    from dsecli.device import cpu_threads

    with cpu_threads(1):  # as the workers build theirs: a kernel's last bits depend on torch's threads
        first: list[torch.Tensor] = [build(0)]
    a0 = first[0]
    n = a0.shape[-1]
    numpy = a0.device.type == "cpu" and a0.dtype == torch.float64 and n < NUMPY_EIG_MAX_ROWS
    workers, threads = eig_threads(n, count, device=a0.device, library="numpy" if numpy else "torch")
    # (NumPy's rule always gives one thread: LAPACK's rounding depends on its thread count)

    def built(i: int) -> torch.Tensor:
        return first.pop() if i == 0 else build(i)

    def with_torch(i: int) -> list[torch.Tensor]:
        return [_solve(built(i))]

    def with_numpy(piece: range) -> list[torch.Tensor]:
        mats = [built(j).numpy() for j in piece]  # one size per piece
        return _solve_numpy(mats[0] if len(mats) == 1 else np.stack(mats))

    solve: Callable[[Any], list[torch.Tensor]]
    if numpy:  # stacked calls only where the sizes are known to be equal
        solve, items = with_numpy, _numpy_pieces(sizes, 0, count) if sizes else [range(i, i + 1) for i in range(count)]
    else:
        solve, items = with_torch, range(count)
    # NumPy's BLAS on one thread throughout; torch's as the rule says (one in workers; NumPy's
    # matrices are built on one thread too, as the workers build theirs: same bits either way)
    with cpu_threads(1 if numpy or workers > 1 else threads), _blas_threads(1):
        if workers > 1:
            with ThreadPoolExecutor(workers, initializer=torch.set_num_threads, initargs=(1,)) as pool:
                results = list(pool.map(solve, items))
        else:
            results = [solve(item) for item in items]
    return [lam for got in results for lam in got]


def _numpy_pieces(sizes: Sequence[int], start: int, stop: int) -> list[range]:
    """Problems ``start..stop-1`` cut into NumPy calls: runs of equal size, each run in pieces of
    nearly equal length holding more than ``NUMPY_GIL_FREE_ROWS`` rows in all where the run does."""
    pieces: list[range] = []
    i = start
    while i < stop:
        j = i
        while j < stop and sizes[j] == sizes[i]:
            j += 1
        k = max(1, min(j - i, (j - i) // (NUMPY_GIL_FREE_ROWS // max(sizes[i], 1) + 1)))
        bounds = np.linspace(i, j, k + 1).round().astype(int)
        pieces.extend(range(int(lo), int(hi)) for lo, hi in zip(bounds[:-1], bounds[1:]))
        i = j
    return pieces


def _solve_numpy(stack: np.ndarray) -> list[torch.Tensor]:
    import torch

    try:
        lam = np.linalg.eigvalsh(stack)
    except np.linalg.LinAlgError as exc:
        raise ComputationError(f"eigenvalue solver failed: {exc}".splitlines()[0]) from exc
    return [torch.from_numpy(v) for v in lam.reshape(-1, stack.shape[-1])]


def _blas_threads(threads: int) -> contextlib.AbstractContextManager[Any]:
    """NumPy's BLAS on ``threads`` threads inside the block, restored after (two concurrent
    solves on two threads each take 2x longer than on one)."""
    return _blas_controller().limit(limits=threads, user_api="blas")


@functools.lru_cache(maxsize=1)
def _blas_controller() -> Any:
    from threadpoolctl import ThreadpoolController

    return ThreadpoolController()


def idle_cores() -> float:
    """Cores this process may use that no other task is running on right now.

    The usable cores (``os.sched_getaffinity``) less the other runnable tasks of the machine:
    the running count of ``/proc/loadavg`` (an instant count, unlike the load averages, which a
    long computation of this very process would fill), less this thread. Where that file does
    not exist, every usable core counts as idle.

    Returns
    -------
    float
        At least 0.
    """
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # pragma: no cover - not Linux
        cores = os.cpu_count() or 1
    try:
        with open("/proc/loadavg", encoding="ascii") as fh:
            running = int(fh.read().split()[3].split("/")[0])
    except (OSError, ValueError, IndexError):  # pragma: no cover - not Linux
        return float(cores)
    return float(max(0, cores - max(0, running - 1)))


def _solve(a: torch.Tensor) -> torch.Tensor:
    import torch

    try:
        return torch.linalg.eigvalsh(a)
    except RuntimeError as exc:  # torch raises _LinAlgError (a RuntimeError) on non-convergence
        raise ComputationError(f"eigenvalue solver failed: {exc}".splitlines()[0]) from exc


def general_eigenvalue_moduli(a: torch.Tensor) -> torch.Tensor:
    """Moduli |lambda| of the (complex) eigenvalues of a general square matrix, unsorted."""
    import torch

    try:
        return torch.linalg.eigvals(a).abs()
    except RuntimeError as exc:
        raise ComputationError(f"eigenvalue solver failed: {exc}".splitlines()[0]) from exc


def entropy_of_probabilities(p: np.ndarray, *, base: float = 2.0, eps: float = EPS) -> float:
    """``-sum (p + eps) log_base (p + eps)`` in float64 (docs/method.md#dse)."""
    q = np.asarray(p, dtype=np.float64) + eps
    return float(-(q * np.log(q)).sum() / math.log(base))


def spectral_entropy(eigenvalues: np.ndarray | torch.Tensor, *, t: int = 1, base: float = 2.0) -> float:
    """Entropy of the spectrum powered to ``t``: alpha = |lambda|^t / sum |lambda|^t.

    Parameters
    ----------
    eigenvalues : array, shape (N,)
        Real (or moduli of complex) eigenvalues; computed in float64 here whatever their dtype.
    t : int >= 1
        Diffusion time.
    base : float
        Logarithm base (2 gives bits).

    Notes
    -----
    Powers are taken in log space relative to the largest modulus, so large t cannot overflow
    or underflow the normalisation (eigenvalues far below the largest simply become 0).
    """
    t = check_positive_int(t, "t")
    lam = eigenvalues.detach().double().cpu().numpy() if hasattr(eigenvalues, "detach") else np.asarray(eigenvalues)
    mod = np.abs(np.asarray(lam, dtype=np.float64))
    top = mod.max() if mod.size else 0.0
    if not top > 0 or not np.isfinite(top):
        raise ComputationError("spectrum is zero or not finite; cannot normalise it")
    with np.errstate(divide="ignore", under="ignore"):
        w = (mod / top) ** t
    p = w / w.sum()
    return entropy_of_probabilities(p, base=base)
