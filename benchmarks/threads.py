"""eigvalsh time against N for 1 and 2 torch threads, under both OpenMP wait policies.

The measurement behind ``dsecli.diffusion.spectrum.SINGLE_THREAD_EIG_ROWS``: with sleeping
waits (``OMP_WAIT_POLICY=PASSIVE``, which dsecli sets so that a busy machine does not make the
eigensolver 10-100x slower) a second thread costs more than it gives on small matrices. Each
policy runs in its own subprocess (OpenMP reads the variable once, at start). Best of 3.

Usage::

    python benchmarks/threads.py
"""

from __future__ import annotations

import os
import subprocess
import sys

_CHILD = r"""
import time, torch
torch.manual_seed(0)
for n in (200, 400, 700, 1000, 1500, 2000, 3000):
    a = torch.randn(n, n, dtype=torch.float64)
    a = a @ a.T / n
    row = []
    for threads in (1, 2):
        torch.set_num_threads(threads)
        torch.linalg.eigvalsh(a)
        reps = max(1, int(2e8 / n**3))
        best = float("inf")
        for _ in range(3):
            t = time.perf_counter()
            for _ in range(reps):
                torch.linalg.eigvalsh(a)
            best = min(best, (time.perf_counter() - t) / reps)
        row.append(best)
    print(f"{n:6d} | {row[0] * 1e3:9.1f} {row[1] * 1e3:9.1f} | {row[1] / row[0]:6.2f}", flush=True)
"""


def main() -> None:
    print(f"load average at start: {os.getloadavg()[0]:.1f}")
    for policy in ("PASSIVE", "ACTIVE"):
        print(f"\nOMP_WAIT_POLICY={policy}: eigvalsh float64, ms")
        print(f"{'N':>6} | {'1 thread':>9} {'2 threads':>9} | {'2 / 1':>6}")
        subprocess.run([sys.executable, "-c", _CHILD], env={**os.environ, "OMP_WAIT_POLICY": policy}, check=True)
    print(f"\nload average at end: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
