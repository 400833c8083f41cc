"""Error of ``--dry-run``'s expected time against the measured time of the exact solver.

For N = 2,000, 4,000, 6,000, 8,000 (D = 64, Gaussian rows, sigma = median, float64, CPU) the plan's
expected time is taken twice, calibrated (the machine's cached probe; :mod:`dsecli.diffusion.calibration`,
probed first if none is stored) and with the default rates, and compared with the wall time of
``diffusion_spectral_entropy(..., solver="exact")`` measured in the same run. The probe runs again
right before the timings (``refresh``) so that both see the same machine load.

Run: ``python benchmarks/dry_run_error.py [N ...]``. Prints a table; error = predicted / actual - 1.
"""

from __future__ import annotations

import sys
import time

import numpy as np

from dsecli import diffusion_spectral_entropy
from dsecli.diffusion.calibration import calibrate
from dsecli.diffusion.plan import plan_entropy

D = 64


def main(sizes: list[int]) -> None:
    cal = calibrate("cpu", refresh=True)
    rates = cal["rates"]
    print(f"calibration ({cal['created']}, probe {rates['probe_seconds']:.2f} s): gemm "
          f"{rates['gemm']['float64'] / 1e9:.1f} GFLOP/s, eigvalsh {rates['eig']['float64']:.3g} s/N^3, "
          f"kernel {rates['elem'] / 1e6:.0f} M entries/s")
    print(f"{'N':>6} {'actual s':>9} {'calibrated s':>13} {'error':>7} {'default s':>10} {'error':>7}")
    for n in sizes:
        x = np.random.default_rng(0).normal(size=(n, D))
        calibrated = plan_entropy(n, D, solver="exact", device="cpu", calibration=cal)["expected_seconds"]
        default = plan_entropy(n, D, solver="exact", device="cpu", calibration=False)["expected_seconds"]
        start = time.perf_counter()
        diffusion_spectral_entropy(x, sigma="median", solver="exact", device="cpu", dtype="float64", max_n=None)
        actual = time.perf_counter() - start
        print(f"{n:>6} {actual:>9.2f} {calibrated:>13.2f} {calibrated / actual - 1:>+7.0%} {default:>10.2f} "
              f"{default / actual - 1:>+7.0%}", flush=True)


if __name__ == "__main__":
    main([int(a) for a in sys.argv[1:]] or [2000, 4000, 6000, 8000])
