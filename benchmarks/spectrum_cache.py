"""Cold versus cached ``spectrum_scan``: seconds for a first call (eigendecomposition) and a second
call with the same rows (cache hit), and the cost of DSE at many t from one spectrum.

Run: ``python benchmarks/spectrum_cache.py [N ...]`` (default N = 1000 2000 4000). Prints a table;
the ratio cold/hit is measured in the same run.
"""

from __future__ import annotations

import sys
import tempfile
import time

import numpy as np

from dsecli import diffusion_spectral_entropy
from dsecli.measures.spectrum_scan import dse_versus_t, spectrum_scan


def main(sizes: list[int]) -> None:
    print(f"{'N':>6} {'cold s':>8} {'hit s':>8} {'cold/hit':>9} {'eig s':>7} {'DSE(1..1000) s':>15} "
          f"{'1 DSE call s':>13}")
    for n in sizes:
        x = np.random.default_rng(0).normal(size=(n, 32))
        with tempfile.TemporaryDirectory() as cache:
            t0 = time.perf_counter()
            cold = spectrum_scan(x, t="1", sigma="median", device="cpu", cache=cache)
            t1 = time.perf_counter()
            hit = spectrum_scan(x, t="1", sigma="median", device="cpu", cache=cache)
            t2 = time.perf_counter()
        assert hit.spectrum.cache["hit"] and np.array_equal(hit.eigenvalues, cold.eigenvalues)
        t3 = time.perf_counter()
        dse_versus_t(cold.eigenvalues, np.arange(1, 1001))
        t4 = time.perf_counter()
        diffusion_spectral_entropy(x, sigma=cold.params["sigma"], t=7, device="cpu")
        t5 = time.perf_counter()
        print(f"{n:>6} {t1 - t0:>8.3f} {t2 - t1:>8.3f} {(t1 - t0) / (t2 - t1):>9.1f} "
              f"{cold.params['eigen_elapsed_s']:>7.3f} {t4 - t3:>15.3f} {t5 - t4:>13.3f}")


if __name__ == "__main__":
    main([int(a) for a in sys.argv[1:]] or [1000, 2000, 4000])
