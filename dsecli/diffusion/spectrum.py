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

import math
import os
from collections.abc import Callable
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


def symmetric_eigenvalues(a: torch.Tensor) -> torch.Tensor:
    """All eigenvalues of a symmetric matrix, ascending (``torch.linalg.eigvalsh``, no eigenvectors).

    Only the lower triangle is read; on the CPU, the thread count follows :func:`eig_threads`.
    Raises :class:`ComputationError` if LAPACK fails.
    """
    from dsecli.device import cpu_threads

    _, threads = eig_threads(a.shape[-1], 1, device=a.device)
    with cpu_threads(threads):
        return _solve(a)


def eig_threads(n: int, count: int, *, device: Any = "cpu") -> tuple[int, int | None]:
    """How to solve ``count`` eigenproblems of ``n`` rows: (workers at once, threads per worker).

    ``threads`` None keeps torch's setting. From the measurements behind the constants above,
    with the effective OpenMP wait policy (:func:`dsecli.device.openmp_wait_policy`) and the
    machine's load (:func:`idle_cores`: busy when fewer cores are idle than torch has threads).

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
    spinning = openmp_wait_policy() != "PASSIVE"
    busy = idle_cores() < total
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


def symmetric_eigenvalues_many(build: Callable[[int], torch.Tensor], count: int) -> list[torch.Tensor]:
    """Eigenvalues (ascending) of ``count`` symmetric matrices, the i-th made by ``build(i)``.

    Each matrix is built when it is solved, so only as many exist at once as are solved at once.
    :func:`eig_threads` decides (from the first matrix's size) whether they are solved several at
    once, each on one thread, or one after another. The values do not depend on which.
    """
    import torch

    from dsecli.device import cpu_threads

    if count <= 0:
        return []
    first: list[torch.Tensor | None] = [build(0)]
    a0 = first[0]
    workers, threads = eig_threads(a0.shape[-1], count, device=a0.device)
    if workers < 2:
        with cpu_threads(threads):
            return [_solve(a0)] + [_solve(build(i)) for i in range(1, count)]

    def solve(i: int) -> torch.Tensor:
        a = first.pop() if i == 0 else build(i)
        return _solve(a)

    from concurrent.futures import ThreadPoolExecutor

    with cpu_threads(1), ThreadPoolExecutor(workers, initializer=torch.set_num_threads, initargs=(1,)) as pool:
        return list(pool.map(solve, range(count)))


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
