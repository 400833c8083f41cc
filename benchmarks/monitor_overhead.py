"""Overhead of :class:`dsecli.TrainingMonitor` per step, next to the cost of one training epoch.

A small CNN on scikit-learn's digits (1,797 images of 8 x 8, no download): conv 1->16 (3x3) ->
conv 16->32 (3x3) -> fc 2048->64 -> fc 64->10, ReLU, trained with Adam (batch 64). After each
epoch the monitor measures layers ``conv2`` (2,048 features) and ``fc1`` (64 features) with DSE
and DSMI with the labels (4 values per step; ``--cluster-inputs`` adds DSMI with a k-means
clustering of the inputs) on a fixed subsample of ``--max-n`` (1,000) evaluation rows.

Each setting runs in a fresh subprocess, twice: torch imported before dsecli, and dsecli
imported before torch (the import order must not change the thread pools or the timings).
Printed per run: the median epoch time, the first step (it also reads and subsamples the
evaluation set), the median of the other steps, and the ratio step/epoch; with the load average
of the machine before and after, since on a shared machine the timings move with it.

Measured on a 2-core machine shared with other jobs (load average 4-5 before and after), one
torch thread, 6 epochs (median of steps 2-6; one dse.estimate call per layer). "before" is the
step of the code before the median rule's distances were shared, run in the same session
(alternating with this one, the same load):

======  ============  ========  ==========  ==========  ==========  ==========
max_n   import order  epoch s   1st step s  step s      step/epoch  before s
======  ============  ========  ==========  ==========  ==========  ==========
1000    torch first   0.18      0.65        0.52        2.8         0.80
1000    dsecli first  0.19      0.70        0.56        3.0         0.84
500     torch first   0.20      0.40        0.19        1.0         0.35
500     dsecli first  0.18      0.33        0.17        1.0         0.40
======  ============  ========  ==========  ==========  ==========  ==========

The import order changes nothing beyond the machine's noise. A step takes 0.64-0.66 of its time
before at 1,000 rows and 0.44-0.54 at 500, under this load. At a quieter moment (load average
1.4-2; 11 steps of the same monitor, this code and the one before alternating) a step at 1,000
rows is 0.33-0.45 s (medians 0.38 and 0.45 s, against 0.81 and 0.83 s before). On the idle
machine (load average 0.4-0.6, both import orders, after the results file became incremental):
0.297 and 0.299 s per step (fastest 0.291 s) against 0.085 s per epoch, at the 0.3 s aimed at;
with ``--cluster-inputs`` (6 values: DSMI with the clustered inputs too) 0.454 and 0.457 s. Profiled (cProfile, one step at 1,000 rows, load 1.4; 0.36 s in all): the
eigendecompositions 0.15 s (the two 1,000 x 1,000 of DSE 0.115 s, DSMI's 2 x 60 of about 100 x 100
0.034 s), conv2's 1,000 x 1,000 squared distances 0.06 s (one GEMM of depth 2,048, formed once
per step: the median rule's, kept for DSE's kernel and cut into DSMI's class and draw kernels;
before, the same GEMM ran three times, twice for the median rule and the kernel and once more,
in pieces, for the 60 class and draw kernels), the median selections 0.02 s, the SHA-256 of
the activations in the rows 0.02 s, the forward pass 0.01-0.02 s, fc1's DSMI kernels (64
features: computed per subset, as cheap as cutting them out) 0.01-0.02 s, and the rest
(row checks, plans, rows, the results file) about 0.04 s. The eigendecompositions are the floor
of an exact DSE; ``max_n`` is the knob (N^3 for them, N^2 D for the distances).

The results file is read whole only at the first step. Later steps read only what was appended
since the monitor's own last write (``batch.store.FileMark``), and the rows of a step are written
with one fsync. With a file of 3,000 rows (500 epochs of 6 values, 8.9 MB), reading the file
whole takes 429 ms, and reading from the mark takes 0.19 ms. So a step no longer grows with the
length of the run.

Usage::

    python benchmarks/monitor_overhead.py [--epochs 6] [--max-n 1000] [--threads 1] [--cluster-inputs]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def child(order: str, args: argparse.Namespace) -> dict[str, object]:
    if order == "torch-first":
        import torch

        import dsecli
    else:
        import dsecli  # noqa: I001 (dsecli first, on purpose)
        import torch
    from sklearn.datasets import load_digits

    torch.set_num_threads(args.threads)
    d = load_digits()
    x = torch.tensor(d.images / 16.0, dtype=torch.float32)[:, None]  # (1797, 1, 8, 8)
    y = torch.tensor(d.target)

    class CNN(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv1 = torch.nn.Conv2d(1, 16, 3, padding=1)
            self.conv2 = torch.nn.Conv2d(16, 32, 3, padding=1)
            self.fc1 = torch.nn.Linear(32 * 8 * 8, 64)
            self.out = torch.nn.Linear(64, 10)

        def forward(self, v: torch.Tensor) -> torch.Tensor:
            h = torch.relu(self.conv2(torch.relu(self.conv1(v))))
            return self.out(torch.relu(self.fc1(h.flatten(1))))

    torch.manual_seed(0)
    model = CNN()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    g = torch.Generator().manual_seed(0)
    epoch_s, step_s = [], []
    with tempfile.TemporaryDirectory() as tmp:
        monitor = dsecli.TrainingMonitor(model, layers=["conv2", "fc1"], eval_data=x, labels=y,
                                         methods=("dse", "dsmi"), output=Path(tmp) / "run.jsonl",
                                         max_n=args.max_n, sigma="median", cluster_inputs=args.cluster_inputs,
                                         device="cpu")
        values = 0
        for epoch in range(args.epochs):
            t0 = time.perf_counter()
            model.train()
            for idx in torch.randperm(x.shape[0], generator=g).split(64):
                opt.zero_grad()
                torch.nn.functional.cross_entropy(model(x[idx]), y[idx]).backward()
                opt.step()
            epoch_s.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            values = len(monitor.step(epoch))
            step_s.append(time.perf_counter() - t0)
    later = statistics.median(step_s[1:]) if len(step_s) > 1 else float("nan")
    return {"order": order, "epoch_s": statistics.median(epoch_s), "first_step_s": step_s[0],
            "step_s": later, "step_min_s": min(step_s[1:] or step_s), "values_per_step": values,
            "threads": torch.get_num_threads()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=6)
    ap.add_argument("--max-n", type=int, default=1000)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--cluster-inputs", action="store_true")
    ap.add_argument("--child", choices=["torch-first", "dsecli-first"])
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args)))
        return
    print(f"load average before: {' '.join(f'{v:.2f}' for v in os.getloadavg())}, {os.cpu_count()} cores")
    print(f"CNN on digits, layers conv2 (2048) and fc1 (64), dse + dsmi, max_n {args.max_n}, "
          f"{args.threads} torch threads, {args.epochs} epochs")
    print(f"{'import order':>13} {'epoch s':>8} {'1st step s':>10} {'step s (median)':>16} {'min':>6} "
          f"{'step/epoch':>10} {'values':>6}")
    base = [sys.executable, __file__, "--epochs", str(args.epochs), "--max-n", str(args.max_n),
            "--threads", str(args.threads)] + (["--cluster-inputs"] if args.cluster_inputs else [])
    for order in ("torch-first", "dsecli-first"):
        out = subprocess.run(base + ["--child", order], capture_output=True, text=True, check=True).stdout
        r = json.loads(out.strip().splitlines()[-1])
        print(f"{order:>13} {r['epoch_s']:>8.3f} {r['first_step_s']:>10.2f} {r['step_s']:>16.3f} "
              f"{r['step_min_s']:>6.3f} {r['step_s'] / r['epoch_s']:>10.2f} {r['values_per_step']:>6}")
    print(f"load average after: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")


if __name__ == "__main__":
    main()
