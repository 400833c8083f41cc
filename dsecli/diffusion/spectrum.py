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
from typing import TYPE_CHECKING

import numpy as np

from dsecli.errors import ComputationError, check_positive_int

if TYPE_CHECKING:  # pragma: no cover
    import torch

__all__ = ["EPS", "idle_cores", "symmetric_eigenvalues", "symmetric_eigenvalues_many", "general_eigenvalue_moduli", "entropy_of_probabilities", "spectral_entropy"]

EPS = 2.0**-52
# Below this many rows a CPU eigvalsh runs on one thread when OpenMP threads sleep while waiting
# (OMP_WAIT_POLICY=PASSIVE, which dsecli sets): the wake-ups cost more than the second core gives.
# Measured on 2 cores (benchmarks/threads.py): 2 threads / 1 thread = 11x at N = 200, 3.6x at 400,
# 1.6x at 1,000, 0.71x at 1,500; with spinning threads (ACTIVE) 2 threads win from N = 400 on.
SINGLE_THREAD_EIG_ROWS = 1200
# Up to this many rows, independent CPU eigenproblems (DSMI's class and subset kernels) run
# concurrently, one thread each, instead of one after another on every thread: measured on 2 cores
# (benchmarks/threads.py), 2 concurrent single-thread eigvalsh take 0.50-0.55 of the time of the
# best sequential setting from N = 200 to 1,200, under either OpenMP wait policy.
CONCURRENT_EIG_MAX_ROWS = 4096


def symmetric_eigenvalues(a: torch.Tensor) -> torch.Tensor:
    """All eigenvalues of a symmetric matrix, ascending (``torch.linalg.eigvalsh``, no eigenvectors).

    Only the lower triangle is read. Raises :class:`ComputationError` if LAPACK fails.
    """

    from dsecli.device import cpu_threads

    with cpu_threads(_eig_threads(a)):
        return _solve(a)


def symmetric_eigenvalues_many(build: Callable[[int], torch.Tensor], count: int) -> list[torch.Tensor]:
    """Eigenvalues (ascending) of ``count`` symmetric matrices, the i-th made by ``build(i)``.

    Each matrix is built when it is solved, so only as many exist at once as are solved at once.
    Small CPU problems (at most :data:`CONCURRENT_EIG_MAX_ROWS` rows, judged by the first) are
    solved concurrently, each on one thread, by as many workers as torch has threads and the
    machine has idle cores (:func:`idle_cores`: on a busy machine two workers would share one
    core and lose to one); otherwise one after another by :func:`symmetric_eigenvalues`. The
    values do not depend on which.
    """
    import torch

    from dsecli.device import cpu_threads

    if count <= 0:
        return []
    first: list[torch.Tensor | None] = [build(0)]
    workers = min(count, torch.get_num_threads(), int(idle_cores()))
    a0 = first[0]
    if workers < 2 or a0.device.type != "cpu" or a0.shape[-1] > CONCURRENT_EIG_MAX_ROWS:
        return [symmetric_eigenvalues(a0)] + [symmetric_eigenvalues(build(i)) for i in range(1, count)]

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


def _eig_threads(a: torch.Tensor) -> int | None:
    """1 for a small CPU eigenproblem under sleeping OpenMP waits (:data:`SINGLE_THREAD_EIG_ROWS`), else None."""
    import torch

    if a.device.type != "cpu" or a.shape[-1] >= SINGLE_THREAD_EIG_ROWS or torch.get_num_threads() < 2:
        return None
    return 1 if os.environ.get("OMP_WAIT_POLICY", "").strip().upper() == "PASSIVE" else None


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
