"""Thread settings against problem size: eigvalsh and GEMM, 1 or 2 threads, both OpenMP wait policies, idle or busy.

The measurements behind the thread rules of ``dsecli.diffusion.spectrum``:

- ``SINGLE_THREAD_EIG_ROWS*``: with sleeping waits (``OMP_WAIT_POLICY=PASSIVE``, which dsecli sets
  so that a busy machine does not make the eigensolver 10-100x slower) a second thread costs more
  than it gives on small matrices;
- ``CONCURRENT_EIG_MAX_ROWS``: independent eigenproblems of one size (DSMI's class and subset
  kernels) solved two at a time, one thread each ("2 x 1" column, time per problem), against
  one after another on 1 or 2 threads; and whether that holds on a busy machine (a second
  process spinning on one core: ``busy``, which :func:`dsecli.diffusion.spectrum.idle_cores`
  detects); :func:`dsecli.diffusion.spectrum.eig_threads` encodes the result (tests/test_eig_threads.py
  checks it against these figures);
- GEMM (the kernel tiles of the matrix-free operator: (N x 258) x (258 x N), float32) on 1 or 2
  threads;
- the same eigenproblems with NumPy's LAPACK (its BLAS threads set by threadpoolctl; "2 x 1" as
  :func:`dsecli.diffusion.spectrum.symmetric_eigenvalues_many` does it: enough matrices per call
  that NumPy releases the GIL), against torch's best setting under sleeping waits: which LAPACK
  is faster depends on the size (the "torch / numpy" column), the reason a batch measures both.

Each policy and load runs in its own subprocess (OpenMP reads the variable once, at start).
Figures are the best of 3, in ms; the last column of each table is the best setting's name.

Usage::

    python benchmarks/threads.py [--quick]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys

_BEST = r"""
import time

def best(fn, reps):
    fn()
    out = float("inf")
    for _ in range(3):
        t = time.perf_counter()
        for _ in range(reps):
            fn()
        out = min(out, (time.perf_counter() - t) / reps)
    return out
"""

_CHILD = _BEST + r"""
import sys, time, torch
from concurrent.futures import ThreadPoolExecutor
sizes = [int(v) for v in sys.argv[1].split(",")]
torch.manual_seed(0)
pool = ThreadPoolExecutor(2, initializer=torch.set_num_threads, initargs=(1,))

print(f"{'N':>6} | {'eig 1 thr':>9} {'2 thr':>9} {'2 x 1':>9} {'best':>6} | {'GEMM 1 thr':>10} {'2 thr':>9} {'best':>6}")
for n in sizes:
    a = torch.randn(n, n, dtype=torch.float64)
    a = a @ a.T / n
    reps = max(1, int(2e8 / n**3))
    row = {}
    for threads in (1, 2):
        torch.set_num_threads(threads)
        row[f"{threads} thr"] = best(lambda: torch.linalg.eigvalsh(a), reps)
    torch.set_num_threads(1)
    pair = [a, a.clone()]
    row["2 x 1"] = best(lambda: list(pool.map(torch.linalg.eigvalsh, pair)), reps) / 2
    torch.set_num_threads(2)
    x = torch.randn(n, 258)
    g = {}
    for threads in (1, 2):
        torch.set_num_threads(threads)
        g[f"{threads} thr"] = best(lambda: x @ x.T, max(1, int(4e9 / (n * n * 258))))
    torch.set_num_threads(2)
    be, bg = min(row, key=row.get), min(g, key=g.get)
    print(f"{n:6d} | {row['1 thr'] * 1e3:9.2f} {row['2 thr'] * 1e3:9.2f} {row['2 x 1'] * 1e3:9.2f} {be:>6} | "
          f"{g['1 thr'] * 1e3:10.2f} {g['2 thr'] * 1e3:9.2f} {bg:>6}", flush=True)
"""


_CHILD_NUMPY = _BEST + r"""
import sys, time, numpy as np, torch
from concurrent.futures import ThreadPoolExecutor
from threadpoolctl import ThreadpoolController
ctl = ThreadpoolController()
sizes = [int(v) for v in sys.argv[1].split(",")]
rng = np.random.default_rng(0)
pool = ThreadPoolExecutor(2)
tpool = ThreadPoolExecutor(2, initializer=torch.set_num_threads, initargs=(1,))

print(f"{'N':>6} | {'np 1 thr':>9} {'2 thr':>9} {'2 x 1':>9} {'best':>6} | {'torch best':>10} {'torch / numpy':>13}")
for n in sizes:
    a = rng.standard_normal((n, n))
    a = a @ a.T / n
    reps = max(1, int(2e8 / n**3))
    chunk = 500 // n + 1  # matrices per call: NumPy releases the GIL when matrices x rows > 500
    stack = np.stack([a] * chunk)
    row = {}
    for threads in (1, 2):
        with ctl.limit(limits=threads, user_api="blas"):
            row[f"{threads} thr"] = best(lambda: np.linalg.eigvalsh(a), reps)
    with ctl.limit(limits=1, user_api="blas"):
        row["2 x 1"] = best(lambda: list(pool.map(np.linalg.eigvalsh, [stack, stack.copy()])), reps) / (2 * chunk)
    t = torch.as_tensor(a)
    tb = {}
    for threads in (1, 2):
        torch.set_num_threads(threads)
        tb[threads] = best(lambda: torch.linalg.eigvalsh(t), reps)
    torch.set_num_threads(2)
    tb[0] = best(lambda: list(tpool.map(torch.linalg.eigvalsh, [t, t.clone()])), reps) / 2
    b, tbest = min(row, key=row.get), min(tb.values())
    print(f"{n:6d} | {row['1 thr'] * 1e3:9.2f} {row['2 thr'] * 1e3:9.2f} {row['2 x 1'] * 1e3:9.2f} {b:>6} | "
          f"{tbest * 1e3:10.2f} {tbest / min(row.values()):13.2f}", flush=True)
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer sizes")
    args = ap.parse_args()
    sizes = "200,400,1000,2000" if args.quick else "100,200,400,700,1000,1500,2000,3000,4000"
    print(f"load average at start: {os.getloadavg()[0]:.1f}, {os.cpu_count()} CPUs")
    for busy in (False, True):
        spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"]) if busy else None
        try:
            for policy in ("PASSIVE", "ACTIVE"):
                print(f"\n{'busy (one core taken by another process)' if busy else 'idle'}, OMP_WAIT_POLICY={policy}: ms "
                      "(eigvalsh float64; 2 x 1 = per problem, two problems at once on one thread each)")
                subprocess.run([sys.executable, "-c", _CHILD, sizes], env={**os.environ, "OMP_WAIT_POLICY": policy},
                               check=True)
            print(f"\n{'busy' if busy else 'idle'}, NumPy's LAPACK (OMP_WAIT_POLICY=PASSIVE for torch): ms "
                  "(2 x 1 = per problem, two calls at once on one BLAS thread each)")
            subprocess.run([sys.executable, "-c", _CHILD_NUMPY, sizes], env={**os.environ, "OMP_WAIT_POLICY": "PASSIVE"},
                           check=True)
        finally:
            if spinner is not None:
                spinner.kill()
                spinner.wait()
    print(f"\nload average at end: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
