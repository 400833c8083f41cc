"""What the kernel-regime check costs against the measurement it guards.

For DSE (N = 2,000 and 4,000) and DSMI (N = 4,000, 10 classes), each at a sigma inside the
informative band (the median rule's value, given as a number so that it is checked), a flat one
(10 x the median rule) and an isolated one (0.2 x): the whole call
(``dsecli.diffusion_spectral_entropy`` / ``diffusion_spectral_mutual_information``, ``device="cpu"``,
all rows) against the check alone (``warn_if_uninformative`` on the same rows, the call the measures
make). Then, for the record, a sigma on the flat threshold itself (3.08 x the median rule), where the
sample's bracket spans the threshold and the median is selected exactly: the one case that forms
pairwise distances.

Data: 10 Gaussian clusters (centres N(0, 1.5^2 I), unit noise), D = 64, seed 0 (as benchmarks/speed.py).
Times are the best of ``--repeats`` runs (the check: of 5 at least), in one process.

Usage: python benchmarks/check_cost.py [--sizes 2000 4000] [--dsmi-n 4000] [--repeats 2]
"""

from __future__ import annotations

import argparse
import math
import time
import warnings
from collections.abc import Callable
from functools import partial
from typing import Any

import numpy as np


def make_data(n: int, d: int = 64, seed: int = 0, classes: int = 10) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    centers = rng.normal(0.0, 1.5, (classes, d))
    labels = rng.integers(0, classes, n)
    return centers[labels] + rng.normal(0.0, 1.0, (n, d)), labels


def best(fn: Callable[[], Any], repeats: int) -> tuple[float, Any]:
    out, times = None, []
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - start)
    return min(times), out


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[2000, 4000], help="DSE row counts")
    parser.add_argument("--dsmi-n", type=int, default=4000, help="DSMI row count (0: skip)")
    parser.add_argument("--repeats", type=int, default=2, help="runs of each measurement (best kept)")
    parser.add_argument("--no-threshold", action="store_true", help="skip the on-threshold rows")
    args = parser.parse_args(argv)

    import torch

    from dsecli import diffusion_spectral_entropy, diffusion_spectral_mutual_information
    from dsecli.diffusion.kernels import SigmaChoice, resolve_sigma, warn_if_uninformative

    warnings.simplefilter("ignore")  # the flat and isolated cases warn, by design
    x0, y0 = make_data(300)
    diffusion_spectral_entropy(x0, sigma=5.0, device="cpu", max_n=0)  # libraries and kernels loaded
    diffusion_spectral_mutual_information(x0, y0, sigma=5.0, device="cpu", max_n=0)

    cases: list[tuple[str, int]] = [("DSE", n) for n in args.sizes]
    if args.dsmi_n:
        cases.append(("DSMI", args.dsmi_n))
    factors = [("informative", 1.0), ("flat", 10.0), ("isolated", 0.2)]
    if not args.no_threshold:
        factors.append(("on flat threshold", 1.0 / math.sqrt(-math.log(0.9))))
    rows: list[dict[str, Any]] = []
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; check = warn_if_uninformative alone")
    head = (f"{'case':<30} {'sigma':>8} {'regime':>11} {'median':>8} {'measure s':>10} {'check s':>9} "
            f"{'ratio':>7}")
    print(head)
    print("-" * len(head))
    for kind, n in cases:
        x, y = make_data(n)
        xt = torch.from_numpy(x)
        med = resolve_sigma("median", xt).value
        for label, factor in factors:
            sigma = med * factor
            choice = SigmaChoice(sigma, "given", {})
            check_s, reg = best(partial(warn_if_uninformative, xt, choice, seed=0), max(5, args.repeats))
            if kind == "DSE":
                call = partial(diffusion_spectral_entropy, x, sigma=sigma, device="cpu", max_n=0)
            else:
                call = partial(diffusion_spectral_mutual_information, x, y, sigma=sigma, device="cpu", max_n=0)
            measure_s, res = best(call, args.repeats)
            regime = res.params["kernel_regime"]["regime"]
            assert regime == (reg.kind or "informative")
            row = {"case": f"{kind} N={n} {label}", "sigma": sigma, "regime": regime,
                   "median": reg.detail.get("median", "exact"), "measure_s": measure_s, "check_s": check_s,
                   "ratio": check_s / measure_s}
            rows.append(row)
            print(f"{row['case']:<30} {sigma:>8.3g} {regime:>11} {row['median']:>8} {measure_s:>10.3f} "
                  f"{check_s:>9.4f} {row['ratio']:>6.1%}", flush=True)
    return rows


if __name__ == "__main__":
    main()
