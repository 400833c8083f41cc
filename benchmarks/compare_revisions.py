"""Time the same small DSE / DSMI / baseline cases with two source trees of dsecli, alternating.

For checking that a change made nothing slower: each case runs in a fresh subprocess per tree
(``PYTHONPATH=<tree>``), the trees alternate within each repetition so that machine load hits
both alike, and the figure is the ratio of the best times (new / old; < 1 is faster).

Usage::

    python benchmarks/compare_revisions.py OLD_TREE NEW_TREE [--repeats 5]

where a tree is a checkout (``git worktree add /tmp/old <rev>``). Only the public functions
that both trees have are timed: ``diffusion_spectral_entropy``,
``diffusion_spectral_mutual_information``, ``estimate_entropy`` and
``estimate_mutual_information``, with every parameter explicit (sigma included, so a changed
default does not change the work).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

_CASE = r"""
import json, sys, time
import numpy as np
import dsecli
name, n, d = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
rng = np.random.default_rng(0)
centres = rng.normal(0.0, 1.5, (10, d))
labels = rng.integers(0, 10, n)
x = centres[labels] + rng.normal(0.0, 1.0, (n, d))
sigma = float(np.sqrt(d))
def run():
    if name == "dse":
        return dsecli.diffusion_spectral_entropy(x, sigma=sigma, t=1, device="cpu", solver="exact").value
    if name == "dsmi":
        return dsecli.diffusion_spectral_mutual_information(x, labels, sigma=sigma, t=1, device="cpu").value
    if name == "entropy-all":
        return [r.value for r in dsecli.estimate_entropy(x, methods="dse,cse,knn", sigma=sigma, device="cpu")]
    if name == "mi-ksg":
        return [r.value for r in dsecli.estimate_mutual_information(x, labels, methods="csmi,ksg", device="cpu")]
    raise SystemExit(name)
run()  # warm-up: imports, first-call allocations
t0 = time.perf_counter(); value = run(); dt = time.perf_counter() - t0
print(json.dumps({"seconds": dt, "value": value}))
"""

CASES = [("dse", 1000, 64), ("dse", 2000, 64), ("dse", 4000, 64), ("dsmi", 2000, 64), ("dsmi", 4000, 64),
         ("dsmi", 8000, 64), ("entropy-all", 1000, 32), ("mi-ksg", 1000, 32)]


def _time(tree: str, case: tuple[str, int, int]) -> dict:
    env = {**os.environ, "PYTHONPATH": os.path.abspath(tree)}
    out = subprocess.run([sys.executable, "-c", _CASE, *map(str, case)], env=env, capture_output=True, text=True,
                         check=True, cwd=os.path.abspath(tree))
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("old")
    ap.add_argument("new")
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    print(f"load average at start: {os.getloadavg()[0]:.1f}")
    print(f"{'case':<14} {'N':>6} {'D':>4} | {'old s':>7} {'new s':>7} {'new/old':>7} | same value")
    for case in CASES:
        best = {"old": float("inf"), "new": float("inf")}
        values = {}
        for _ in range(args.repeats):
            for which in ("old", "new"):
                r = _time(getattr(args, which), case)
                best[which] = min(best[which], r["seconds"])
                values[which] = r["value"]
        same = values["old"] == values["new"]
        print(f"{case[0]:<14} {case[1]:>6} {case[2]:>4} | {best['old']:7.3f} {best['new']:7.3f} "
              f"{best['new'] / best['old']:7.2f} | {same}")
    print(f"load average at end: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
