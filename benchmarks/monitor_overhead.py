"""Overhead of :class:`dsecli.TrainingMonitor` per call, next to the cost of one training epoch.

scikit-learn's digits (1,797 x 64), an MLP 64 -> 128 -> 64 -> 10 trained with SGD (batch 64);
after each epoch the monitor measures layers fc1 and fc2 with DSE, DSMI(Z;Y) with the labels
and DSMI(Z;X) with a 10-cluster k-means of the inputs (6 values per call) on a fixed subsample of
``--max-n`` rows. Printed per setting: seconds of one training epoch, of the first call (it also
clusters the inputs), and the median of the other calls; nothing written but the results file
in a temporary folder.

Measured on a 2-core machine shared with other jobs (load average 5-6), one torch thread:

======  ========  ==========  ===============
max_n   epoch s   1st call s  call s (median)
======  ========  ==========  ===============
250     0.03      0.34        0.16-0.18
500     0.03      0.32-0.42   0.31-0.32
1000    0.03      1.9-2.9     1.2-1.6
======  ========  ==========  ===============

With 2 threads on the same busy machine the calls took 10x longer (threads waiting for cores
held by other jobs): on a shared machine, give torch one thread per free core.

Usage::

    python benchmarks/monitor_overhead.py [--epochs 5] [--max-n 250,500,1000] [--device cpu] [--threads 1]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path


def main() -> None:
    import torch
    from sklearn.datasets import load_digits

    import dsecli

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--max-n", default="250,500,1000")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    d = load_digits()
    x = torch.tensor(d.data / 16.0, dtype=torch.float32)
    y = torch.tensor(d.target)

    class MLP(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc1 = torch.nn.Linear(64, 128)
            self.fc2 = torch.nn.Linear(128, 64)
            self.out = torch.nn.Linear(64, 10)

        def forward(self, v: torch.Tensor) -> torch.Tensor:
            return self.out(torch.relu(self.fc2(torch.relu(self.fc1(v)))))

    print(f"digits {tuple(x.shape)}, layers fc1 (128) and fc2 (64), methods dse + dsmi (labels, inputs), "
          f"device {args.device}, {args.threads} threads")
    print(f"{'max_n':>6} {'epoch s':>8} {'1st call s':>10} {'call s (median)':>16} {'values/call':>11}")
    for max_n in [int(v) for v in args.max_n.split(",")]:
        g = torch.Generator().manual_seed(0)
        model = MLP()
        with torch.no_grad():
            for p in model.parameters():
                p.copy_(torch.randn(p.shape, generator=g) * 0.1)
        opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
        with tempfile.TemporaryDirectory() as tmp:
            monitor = dsecli.TrainingMonitor(model, layers=["fc1", "fc2"], eval_data=x, labels=y,
                                             methods=("dse", "dsmi"), output=Path(tmp) / "run.jsonl",
                                             max_n=max_n, sigma="median", device=args.device)
            epoch_s, call_s, n_values = [], [], 0
            for epoch in range(args.epochs):
                t0 = time.perf_counter()
                model.train()
                for idx in torch.randperm(x.shape[0], generator=g).split(64):
                    opt.zero_grad()
                    torch.nn.functional.cross_entropy(model(x[idx]), y[idx]).backward()
                    opt.step()
                epoch_s.append(time.perf_counter() - t0)
                t0 = time.perf_counter()
                n_values = len(monitor.step(epoch))
                call_s.append(time.perf_counter() - t0)
        rest = statistics.median(call_s[1:]) if len(call_s) > 1 else float("nan")
        print(f"{max_n:>6} {statistics.median(epoch_s):>8.3f} {call_s[0]:>10.2f} {rest:>16.2f} {n_values:>11}")


if __name__ == "__main__":
    main()
