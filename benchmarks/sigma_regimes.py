"""Where a Gaussian bandwidth stops being informative: the measurements behind the kernel-regime thresholds.

For each data set and each sigma this prints the median-rule sigma (``--sigma median``), the ratio
sigma / median-rule sigma, off-diagonal affinity quantiles (1 %, 5 %, 50 %, 95 %, 99 % of pairs, on
the rows the median rule uses), the mean self-weight of the random walk (mean_i 1/q_i, the diagonal
of P = Q^-1 G: 1 means every point keeps its mass) and DSE with its fraction of log2 N. The
thresholds of :mod:`dsecli.diffusion.kernels` (``FLAT_MEDIAN_AFFINITY``, ``ISOLATED_MEDIAN_AFFINITY``)
were read off these tables (docs/method.md#kernel-regime).

Data sets (seeded, no download):

- ``unit-norm``: 2,000 rows in 10 classes, D = 256: class centre (unit vector) + N(0, 0.35^2/D I) noise,
  each row L2-normalised (what sentence and CLIP encoders store);
- ``digits``: scikit-learn's bundled 8x8 digits, raw pixels 0..16 (1797 x 64);
- ``blobs x s``: 10 Gaussian clusters (centres N(0, 1.5^2 I), unit noise), N = 1,000, D = 32, scaled
  by s = 0.1, 1, 10 (one structure, three units).

Figures are printed, never asserted. About 1-2 minutes on 2 cores.

Usage::

    python benchmarks/sigma_regimes.py
"""

from __future__ import annotations

import math

import numpy as np


def unit_norm(n: int = 2000, classes: int = 10, d: int = 256, noise: float = 0.35, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((classes, d))
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    x = centres[np.arange(n) % classes] + noise / math.sqrt(d) * rng.standard_normal((n, d))
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def blobs(n: int = 1000, classes: int = 10, d: int = 32, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = 1.5 * rng.standard_normal((classes, d))
    return centres[np.arange(n) % classes] + rng.standard_normal((n, d))


def digits() -> np.ndarray:
    from sklearn.datasets import load_digits

    return load_digits().data.astype(np.float64)


def table(name: str, x: np.ndarray, sigmas: list[float]) -> None:
    import torch

    from dsecli import diffusion_spectral_entropy
    from dsecli.diffusion.kernels import gaussian_kernel, kernel_regime

    xt = torch.as_tensor(x, dtype=torch.float64)
    n = x.shape[0]
    print(f"\n{name}: N = {n}, D = {x.shape[1]}, log2 N = {math.log2(n):.2f}")
    print(f"{'sigma':>9} {'ratio':>7} {'aff q01':>9} {'q05':>9} {'median':>9} {'q95':>9} {'q99':>9} "
          f"{'self-wt':>7} {'DSE':>6} {'/logN':>6}  regime")
    med = kernel_regime(xt, "median", exact=True).median_rule_sigma  # every pair: the table is exact
    for s in [med, *sigmas]:
        reg = kernel_regime(xt, s, exact=True)
        g = gaussian_kernel(xt, s)
        self_weight = float((1.0 / g.sum(dim=1)).mean())
        del g
        res = diffusion_spectral_entropy(x, sigma=s, device="cpu", max_n=0)
        q = reg.affinity_quantiles
        print(f"{s:9.4g} {reg.ratio:7.3g} {q['q01']:9.2e} {q['q05']:9.2e} {q['q50']:9.2e} {q['q95']:9.2e} "
              f"{q['q99']:9.2e} {self_weight:7.3f} {res.value:6.2f} {res.value / math.log2(n):6.1%}  "
              f"{reg.kind or ('median rule' if s == med else '-')}")


def main() -> None:
    import warnings

    from dsecli.errors import DseWarning

    warnings.simplefilter("ignore", DseWarning)  # the table shows the regime; the warnings would repeat it
    table("unit-norm (2,000 x 256, 10 classes)", unit_norm(), [0.1, 0.3, 1.0, 2.0, 3.0, 5.0, 10.0])
    table("digits raw pixels (1797 x 64)", digits(), [3.0, 10.0, 15.0, 30.0, 60.0, 100.0, 200.0])
    for s in (0.1, 1.0, 10.0):
        table(f"blobs x {s:g} (1,000 x 32, 10 clusters)", s * blobs(), [s * v for v in (0.5, 2.0, 5.0, 10.0, 20.0, 50.0)])


if __name__ == "__main__":
    main()
