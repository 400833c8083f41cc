"""Thread settings against problem size: eigvalsh and GEMM, 1 or 2 threads, idle or busy, and the rule of dsecli.

The measurements behind ``NUMPY_EIG_MAX_ROWS``, the one size in :func:`dsecli.diffusion.eigen.eig_schedule`:

- torch's ``eigvalsh`` (MKL) on 1 or 2 threads, and two problems at once on one thread each ("2 x 1",
  time per problem), under OpenMP's default waits and with ``OMP_WAIT_POLICY=PASSIVE`` (which a user
  may set on a busy machine; dsecli sets nothing); GEMM (the kernel tiles of the matrix-free
  operator: (N x 258) x (258 x N), float32) on 1 or 2 threads;
- the same eigenproblems with NumPy's LAPACK (OpenBLAS, its threads set by threadpoolctl; "2 x 1" as
  :func:`dsecli.diffusion.eigen.symmetric_eigenvalues_many` does it: enough matrices per call that
  NumPy releases the GIL), against torch's best setting (the "torch / numpy" column);
- dsecli's own eigensolvers as the rule schedules them: one problem alone
  (:func:`~dsecli.diffusion.eigen.symmetric_eigenvalues`) and a batch of four of one size
  (:func:`~dsecli.diffusion.eigen.symmetric_eigenvalues_many`, time per problem), with the rule's choice.

The threshold is where NumPy on one thread per problem stops beating torch on all threads, alone
and in batches, on an idle machine. Each policy and load runs in its own subprocess (OpenMP reads
the variable once, at start); "busy" is a second process spinning on one core. Figures are the
best of 3, in ms; the last column of each torch and NumPy table is the best setting's name.

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


_CHILD_DSECLI = _BEST + r"""
import sys, numpy as np, torch
from dsecli.diffusion.eigen import eig_schedule, symmetric_eigenvalues, symmetric_eigenvalues_many
sizes = [int(v) for v in sys.argv[1].split(",")]
rng = np.random.default_rng(0)

print(f"{'N':>6} | {'rule alone':>16} {'ms':>9} | {'rule, batch of 4':>16} {'ms each':>9}")
for n in sizes:
    a = rng.standard_normal((n, n))
    a = torch.as_tensor(a @ a.T / n)
    reps = max(1, int(2e8 / n**3))
    alone = best(lambda: symmetric_eigenvalues(a), reps)
    batch = best(lambda: symmetric_eigenvalues_many(lambda i: a, 4, sizes=[n] * 4), reps) / 4
    r1, r4 = (eig_schedule(n, k, dtype=a.dtype, device=a.device) for k in (1, 4))
    name = lambda r: f"{r[0]} {r[1]}x{r[2]}"
    print(f"{n:6d} | {name(r1):>16} {alone * 1e3:9.2f} | {name(r4):>16} {batch * 1e3:9.2f}", flush=True)
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
            for policy in ("", "PASSIVE"):
                env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
                env.update({"OMP_WAIT_POLICY": policy} if policy else {})
                print(f"\n{'busy (one core taken by another process)' if busy else 'idle'}, "
                      f"OMP_WAIT_POLICY={policy or '(unset)'}: ms "
                      "(eigvalsh float64; 2 x 1 = per problem, two problems at once on one thread each)")
                subprocess.run([sys.executable, "-c", _CHILD, sizes], env=env, check=True)
            env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
            print(f"\n{'busy' if busy else 'idle'}, NumPy's LAPACK: ms "
                  "(2 x 1 = per problem, two calls at once on one BLAS thread each)")
            subprocess.run([sys.executable, "-c", _CHILD_NUMPY, sizes], env=env, check=True)
            print(f"\n{'busy' if busy else 'idle'}, dsecli's eigensolvers as eig_schedule has them "
                  "(library workers x threads): ms")
            subprocess.run([sys.executable, "-c", _CHILD_DSECLI, sizes], env=env, check=True)
        finally:
            if spinner is not None:
                spinner.kill()
                spinner.wait()
    print(f"\nload average at end: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
