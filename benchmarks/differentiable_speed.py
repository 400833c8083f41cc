"""Forward and backward time of the differentiable DSE and DSMI losses (dsecli.differentiable) on the CPU.

For a minibatch of B rows (D = 64 features, Gaussian), float32 and float64:

- ``fwd no-grad``: the loss under ``torch.no_grad()`` (eigenvalues only, as a monitor would compute it);
- ``fwd``: the loss of a tensor that requires grad (torch then computes the eigenvectors too, which
  the backward pass needs: the O(B^3) part grows);
- ``bwd``: ``loss.backward()`` after that forward (V diag(g) V^T and the kernel's chain rule, O(B^3) and O(B^2 D));
- ``bwd/fwd``: the ratio of the two.

DSMI uses 10 equal classes and R = 5 draws: 10 batched eigendecompositions of 6 matrices of B/10 rows
on top of the B x B kernel. Each figure is the median of ``--repeats`` runs after one warm-up, in ms,
on torch's default thread count. The machine, its load, the thread count and the OpenMP wait policy
are printed with the table. Run it as a training script runs (no ``OMP_WAIT_POLICY``), and again
with ``OMP_WAIT_POLICY=PASSIVE`` to see what the wait policy costs: DSMI's many small batched
eigendecompositions each wake torch's OpenMP threads, which passive threads pay for.

Usage::

    python benchmarks/differentiable_speed.py [--sizes 256 1024 2048] [--repeats 3] [--dsmi] [--sigma-grad smoothed]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time


def _median_ms(fn, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return 1e3 * statistics.median(times)


def measure(loss, b: int, dtype, repeats: int) -> tuple[float, float, float]:
    """(forward without grad, forward with grad, backward) in ms for one batch of ``b`` rows."""
    import torch

    gen = torch.Generator().manual_seed(b)
    z0 = torch.randn(b, 64, generator=gen, dtype=torch.float64).to(dtype)

    def fwd_nograd() -> None:
        with torch.no_grad():
            loss(z0)

    f_ng = _median_ms(fwd_nograd, repeats)
    fwd, bwd = [], []
    for i in range(repeats + 1):
        z = z0.clone().requires_grad_(True)
        start = time.perf_counter()
        value = loss(z)
        mid = time.perf_counter()
        value.backward()
        end = time.perf_counter()
        if i:  # the first is a warm-up
            fwd.append(mid - start)
            bwd.append(end - mid)
    return f_ng, 1e3 * statistics.median(fwd), 1e3 * statistics.median(bwd)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 1024, 2048])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--dsmi", action="store_true", help="also time DSMI (10 classes, R = 5)")
    parser.add_argument("--sigma-grad", default="detached", help="sigma_grad of the losses (detached, scale, smoothed)")
    args = parser.parse_args()

    # importing dsecli leaves OMP_WAIT_POLICY as it is (only the dse program sets PASSIVE for itself): a training
    # loop runs with the caller's setting, printed below
    from dsecli.differentiable import dse_loss, dsmi_loss  # isort: skip

    import numpy as np
    import torch

    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads, OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', '')}, "
          f"load average {os.getloadavg()[0]:.2f} at start")
    sg = args.sigma_grad
    print(f"sigma='median', sigma_grad={sg!r}")
    losses = [("DSE", lambda z: dse_loss(z, sigma_grad=sg))]
    if args.dsmi:
        losses.append(("DSMI", lambda z: dsmi_loss(z, np.arange(z.shape[0]) % 10, sigma_grad=sg)))
    print(f"{'loss':5s} {'B':>5s} {'dtype':8s} {'fwd no-grad ms':>15s} {'fwd ms':>9s} {'bwd ms':>9s} {'bwd/fwd':>8s}")
    for name, loss in losses:
        for b in args.sizes:
            for dtype in (torch.float32, torch.float64):
                f_ng, f, bw = measure(loss, b, dtype, args.repeats)
                print(f"{name:5s} {b:5d} {str(dtype).replace('torch.', ''):8s} {f_ng:15.1f} {f:9.1f} {bw:9.1f} "
                      f"{bw / f:8.2f}", flush=True)
    print(f"load average {os.getloadavg()[0]:.2f} at the end")


if __name__ == "__main__":
    main()
