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
  threads.

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

_CHILD = r"""
import sys, time, torch
from concurrent.futures import ThreadPoolExecutor
sizes = [int(v) for v in sys.argv[1].split(",")]
torch.manual_seed(0)
pool = ThreadPoolExecutor(2, initializer=torch.set_num_threads, initargs=(1,))

def best(fn, reps):
    fn()
    out = float("inf")
    for _ in range(3):
        t = time.perf_counter()
        for _ in range(reps):
            fn()
        out = min(out, (time.perf_counter() - t) / reps)
    return out

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
        finally:
            if spinner is not None:
                spinner.kill()
                spinner.wait()
    print(f"\nload average at end: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
