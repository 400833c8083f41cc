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
import time
from collections.abc import Callable, Iterator, Sequence
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
# ... and on an idle machine one after another on two threads wins from here (2,000 rows: 251 ms vs 336)
NUMPY_ALL_THREADS_EIG_ROWS = 1750
# Batches of at least this many problems measure which LAPACK (torch's or NumPy's) is faster.
LIBRARY_PROBE_MIN_COUNT = 4
# NumPy releases the GIL in eigvalsh when (matrices x rows) of one call exceeds 500.
NUMPY_GIL_FREE_ROWS = 500
# which library was faster, per half-octave of size, as measured in this process
_FASTER_LIBRARY: dict[int, str] = {}


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
    ``library="numpy"`` (NumPy's LAPACK solving a batch, threads of its BLAS): two at once on one
    thread each, except small problems on a busy machine (one after another on one thread) and
    large ones on an idle machine (one after another on every thread).

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
        if not busy and n >= NUMPY_ALL_THREADS_EIG_ROWS:
            return 1, total
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

    ``sizes`` (the rows of each matrix, if known beforehand) lets equal sizes be solved in one call.

    Each matrix is built when it is solved, so only as many exist at once as are solved at once.
    :func:`eig_threads` decides (from the first matrix's size) whether they are solved several at
    once, each on one thread, or one after another. The values do not depend on which.

    Two LAPACKs are at hand on the CPU, torch's and NumPy's, and which is faster depends on the
    machine and the size (on the 2-core AMD machine of benchmarks/threads.py NumPy's OpenBLAS
    solves 400 rows 1.8x faster than torch's MKL, 4,000 rows 1.7x slower). A batch of at least
    ``LIBRARY_PROBE_MIN_COUNT`` float64 problems measures them when its size has not been
    measured in this process: its first problem is solved by both at once, on one core each, and
    the faster keeps its eigenvalues and solves the rest; the choice is kept for the process, per
    half-octave of size, so a size is always solved by the same library after that. Both solve
    the same LAPACK problem (``syevd``, lower triangle): the eigenvalues agree to rounding.
    """
    import torch

    from dsecli.device import cpu_threads

    if count <= 0:
        return []
    first: list[torch.Tensor | None] = [build(0)]
    a0 = first[0]
    n = a0.shape[-1]
    sizes = [n] * count if sizes is None else [int(v) for v in sizes]
    workers, threads = eig_threads(n, count, device=a0.device)
    library = "torch"
    if (count >= LIBRARY_PROBE_MIN_COUNT and a0.device.type == "cpu" and a0.dtype == torch.float64
            and n <= CONCURRENT_EIG_MAX_ROWS and torch.get_num_threads() >= 2):
        library = _FASTER_LIBRARY.get(_size_bucket(n), "")
    if library == "torch" and workers < 2:
        with cpu_threads(threads):
            return [_solve(a0)] + [_solve(build(i)) for i in range(1, count)]

    def built(i: int) -> torch.Tensor:
        return first.pop() if i == 0 else build(i)

    def with_torch(i: int) -> list[torch.Tensor]:
        return _timed_torch(built(i))[0]

    def with_numpy(piece: range) -> list[torch.Tensor]:
        mats = [built(j).numpy() for j in piece]
        got: list[torch.Tensor] = []
        while mats:  # one call per run of equal sizes (a piece holds one unless sizes were not given)
            same = next((k for k, m in enumerate(mats) if m.shape != mats[0].shape), len(mats))
            got.extend(_timed_numpy(mats[0] if same == 1 else np.stack(mats[:same]))[0])
            del mats[:same]
        return got

    from concurrent.futures import ThreadPoolExecutor

    total = torch.get_num_threads()
    blas = 1
    if library == "numpy":
        workers, blas = eig_threads(n, count, device=a0.device, library="numpy")
    elif not library:
        workers = 2  # the measurement runs one problem on each library at once
    out: list[torch.Tensor] = []
    with cpu_threads(1), _blas_threads(1), ThreadPoolExecutor(workers, initializer=_start_worker) as pool:
        start = 0
        if not library:  # measure: problem 0 on each library at once, the faster's eigenvalues kept
            a = built(0)
            copies = NUMPY_GIL_FREE_ROWS // n + 1  # (NumPy holds the GIL on smaller calls)
            probe_torch = pool.submit(_timed_torch, a)
            probe_numpy = pool.submit(_timed_numpy, np.stack([a.numpy()] * copies) if copies > 1 else a.numpy())
            (got_torch, torch_s), (got_numpy, numpy_s) = probe_torch.result(), probe_numpy.result()
            library = "numpy" if numpy_s < torch_s else "torch"
            _FASTER_LIBRARY[_size_bucket(n)] = library
            out = [(got_numpy if library == "numpy" else got_torch)[0]]
            start = 1
            # the rest by the winner's own rule
            workers, blas = eig_threads(n, count - 1, device=a0.device, library=library)
        if library == "numpy":
            solve, items = with_numpy, _numpy_pieces(sizes, start, count)
        else:
            solve, items = with_torch, range(start, count)
        if workers > 1:
            results = pool.map(solve, items)
        else:  # one after another here, on the rule's threads (`blas`: NumPy's BLAS; else torch's)
            with _blas_threads(blas or total) if library == "numpy" else cpu_threads(blas or total):
                results = list(map(solve, items))
        for got in results:
            out.extend(got)
    return out


def _start_worker() -> None:
    """One torch thread per worker; both LAPACKs touched once, so that a probe does not time a
    thread's first call (which sets up its buffers: 2x the time of the next at 400 rows)."""
    import torch

    torch.set_num_threads(1)
    torch.linalg.eigvalsh(torch.eye(4, dtype=torch.float64))
    np.linalg.eigvalsh(np.eye(4))


def _timed_torch(a: torch.Tensor) -> tuple[list[torch.Tensor], float]:
    """Eigenvalues by torch, and the solver's seconds."""
    start = time.perf_counter()
    return [_solve(a)], time.perf_counter() - start


def _timed_numpy(stack: np.ndarray) -> tuple[list[torch.Tensor], float]:
    """Eigenvalues of each matrix of a stack (or of one matrix) by NumPy, and the seconds per matrix."""
    start = time.perf_counter()
    got = _solve_numpy(stack)
    return got, (time.perf_counter() - start) / len(got)


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


def _size_bucket(n: int) -> int:
    return round(2 * math.log2(max(n, 1)))


def _solve_numpy(stack: np.ndarray) -> list[torch.Tensor]:
    import torch

    try:
        lam = np.linalg.eigvalsh(stack)
    except np.linalg.LinAlgError as exc:
        raise ComputationError(f"eigenvalue solver failed: {exc}".splitlines()[0]) from exc
    return [torch.from_numpy(v) for v in lam.reshape(-1, stack.shape[-1])]


@contextlib.contextmanager
def _blas_threads(threads: int) -> Iterator[None]:
    """NumPy's BLAS on ``threads`` threads inside the block (two concurrent solves on two threads
    each take 2x longer than on one)."""
    controller = _blas_controller()
    if controller is None:
        yield
        return
    with controller.limit(limits=threads, user_api="blas"):
        yield


@functools.lru_cache(maxsize=1)
def _blas_controller() -> Any:
    try:
        from threadpoolctl import ThreadpoolController
    except ImportError:  # pragma: no cover - a dependency; without it NumPy keeps its own thread count
        return None
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
