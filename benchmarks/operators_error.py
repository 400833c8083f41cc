"""Which operator for large N: DSE error against exact of the candidate large-N operators.

For the approximate solver, the operator that keeps memory bounded must not change the answer.
This script measures, at N where the exact solver still runs (default 3,000), the DSE error
(bits) against exact eigenvalues of:

- **nys300 / nys1000**: a Nystrom approximation G ~ C W^+ C^T with m uniformly drawn landmark rows,
  normalised with its own degrees (rank m: only m eigenvalues survive);
- **knn30 / knn100**: the kernel truncated to each row's k largest affinities, symmetrised by max;
- **approx dense64 / dense32 / rows**: dsecli's approximate solver on the exact operator held in
  float64, stored in float32, or recomputed from kernel rows (matrix-free); its own error
  estimate in brackets.

Four data kinds (10 Gaussian blobs, uniform cube, a curved 3-d sheet with noise, standard
normal; D = 64) at sigma = median heuristic and 10, t = 1 and 2. Prints a table; asserts nothing.

Usage::

    python benchmarks/operators_error.py [--n 3000]
"""

from __future__ import annotations

import argparse
import math

import numpy as np


def make(kind: str, n: int, d: int = 64, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if kind == "blobs":
        c = rng.normal(0, 4, (10, d))
        return c[rng.integers(0, 10, n)] + rng.normal(0, 1, (n, d))
    if kind == "uniform":
        return rng.uniform(0, 1, (n, d))
    if kind == "manifold":
        z = rng.uniform(0, 1, (n, 3))
        q = np.linalg.qr(rng.normal(0, 1, (d, 4)))[0]
        return np.c_[np.sin(6 * z[:, 0]), np.cos(6 * z[:, 0]), z[:, 1:]] @ q.T * 3 + rng.normal(0, 0.05, (n, d))
    return rng.normal(0, 1, (n, d))


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=3000)
    args = ap.parse_args(argv)
    import torch

    from dsecli.diffusion.kernels import gaussian_kernel, resolve_sigma, symmetric_normalize_
    from dsecli.diffusion.operators import DenseDiffusionOperator, KernelRowsOperator
    from dsecli.diffusion.slq import approximate_spectral_entropy
    from dsecli.diffusion.spectral import spectral_entropy

    n = args.n
    cols = ["nys300", "nys1000", "knn30", "knn100", "dense64", "dense32", "rows"]
    print(f"DSE error against exact (bits), N = {n}, D = 64; approx columns: error [own error estimate]")
    print(f"{'data':9s} {'sigma':6s} {'t':>2s} {'exact':>7s} | " + " ".join(f"{c:>19s}" for c in cols))
    worst = dict.fromkeys(cols, 0.0)
    inside: dict[str, int] = {}  # approx columns: cases within the solver's own estimate
    for kind in ("blobs", "uniform", "manifold", "normal"):
        x = torch.as_tensor(make(kind, n))
        for sig in ("median", 10.0):
            s = resolve_sigma(sig, x).value
            g = gaussian_kernel(x, s)
            lam = torch.linalg.eigvalsh(symmetric_normalize_(g.clone()))
            spectra = {}
            rng = np.random.default_rng(0)
            for m in (300, 1000):
                idx = torch.as_tensor(rng.choice(n, m, replace=False))
                c = g[:, idx]
                ew, ev = torch.linalg.eigh(c[idx])
                keep = ew > 1e-10 * ew.max()
                f = c @ ev[:, keep] / ew[keep].sqrt()  # G ~ F F^T
                f = f / (f @ f.sum(0)).clamp(min=1e-300).sqrt()[:, None]
                spectra[f"nys{m}"] = torch.linalg.eigvalsh(f.T @ f)
            for k in (30, 100):
                thr = torch.topk(g, k, dim=1).values[:, -1:]
                gs = torch.where(g >= thr, g, torch.zeros_like(g))
                spectra[f"knn{k}"] = torch.linalg.eigvalsh(symmetric_normalize_(torch.maximum(gs, gs.T)))
            ops = {"dense64": DenseDiffusionOperator(x, s), "dense32": DenseDiffusionOperator(x, s, storage=torch.float32),
                   "rows": KernelRowsOperator(x, s)}
            for t in (1, 2):
                ex = spectral_entropy(lam, t=t)
                cells = []
                for c in cols:
                    if c in spectra:
                        err = spectral_entropy(spectra[c], t=t) - ex
                        cells.append(f"{err:+19.3f}")
                    else:
                        nats, rep = approximate_spectral_entropy(ops[c], t=t, seed=0)
                        err = nats / math.log(2) - ex
                        est = rep["error_estimate_nats"] / math.log(2)
                        inside[c] = inside.get(c, 0) + (abs(err) <= est)
                        cells.append(f"{err:+9.5f} [{est:.5f}]")
                    worst[c] = max(worst[c], abs(err))
                print(f"{kind:9s} {sig!s:6s} {t:>2d} {ex:7.3f} | " + " ".join(cells), flush=True)
    print("largest |error|: " + ", ".join(f"{c} {v:.3g}" for c, v in worst.items()))
    cases = 4 * 2 * 2  # data kinds x bandwidths x t
    print("within own estimate: " + ", ".join(f"{c} {k}/{cases}" for c, k in inside.items()))


if __name__ == "__main__":
    main()
