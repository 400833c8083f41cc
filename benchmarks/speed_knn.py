"""Speed of the kNN machinery behind the "knn" entropy and "ksg" mutual information.

N = 10,000 rows, D = 256 (X), k = 3, measured in one run on the same data:

- kNN entropy search (Euclidean, k-th neighbour of every row, self excluded): dsecli
  ``knn_distances`` (auto / brute float64 / brute float32 / tree), scikit-learn
  ``NearestNeighbors(n_neighbors=k).fit(X).kneighbors()``, SciPy ``cKDTree.query``; plus the whole
  ``kozachenko_leonenko_entropy`` call.
- KSG neighbour statistics (max-norm joint k-th neighbour radius, strict counts in each marginal):
  dsecli ``ksg_counts`` (auto / brute), the scikit-learn pipeline of ``mutual_info_regression``
  applied to the whole vectors (``NearestNeighbors(metric="chebyshev")`` on [X, Y], then
  ``KDTree(metric="chebyshev").query_radius(count_only=True)`` in X and in Y), and the same with
  SciPy ``cKDTree``; plus the whole ``ksg_mutual_information`` call. Y is a ``--dy``-dimensional
  noisy projection of X (default 1).

Trees are hopeless in 256 dimensions (a cKDTree query of all 10,000 rows takes minutes), so tree
queries are timed on ``--tree-queries`` rows (default 1,000) against the full tree and scaled to
N (marked ``*``); ``--full-tree`` runs them all. dsecli's "tree" path is cKDTree itself, so its
figure is the cKDTree figure unless ``--full-tree``. Ratios are "seconds / dsecli auto" in each
section. Timings depend on load: the load average is printed.

Usage::

    python benchmarks/speed_knn.py [--n 10000] [--d 256] [--dy 1] [--device cpu] [--full-tree]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from dsecli.errors import DseWarning  # noqa: E402
from dsecli.estimators import kozachenko_leonenko_entropy, ksg_mutual_information  # noqa: E402
from dsecli.estimators.neighbors import knn_distances, ksg_counts  # noqa: E402


def _time(fn: Callable[[], Any]) -> tuple[Any, float]:
    t = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DseWarning)
        out = fn()
    return out, time.perf_counter() - t


def _tree_knn(x: np.ndarray, k: int, p: float, queries: int | None) -> tuple[np.ndarray, float, bool]:
    """cKDTree kNN distances (k-th, self excluded) of ``queries`` rows (all if None) and the seconds scaled to N."""
    from scipy.spatial import cKDTree

    n = x.shape[0]
    tree, t_build = _time(lambda: cKDTree(x))
    q = n if queries is None or queries >= n else queries
    (dist, _), t_query = _time(lambda: tree.query(x[:q], k=k + 1, p=p, workers=-1))
    return dist[:, k], t_build + t_query * n / q, q < n


def _tree_counts(tree: Any, a: np.ndarray, r: np.ndarray, q: int) -> tuple[np.ndarray, float]:
    n = a.shape[0]
    counts, t = _time(lambda: tree.query_ball_point(a[:q], np.nextafter(r[:q], 0), p=np.inf, return_length=True,
                                                    workers=-1))
    return np.asarray(counts) - 1, t * n / q


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run the benchmark, print the tables, return ``{"knn": {...}, "ksg": {...}}`` (seconds by approach)."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=10_000)
    ap.add_argument("--d", type=int, default=256)
    ap.add_argument("--dy", type=int, default=1)
    ap.add_argument("--k", type=int, default=3)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--tree-queries", type=int, default=1000)
    ap.add_argument("--full-tree", action="store_true")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--crossover", default="", help="also time tree vs brute at these D (e.g. 4,8,12,16,20) "
                    "to check TREE_MAX_DIM")
    args = ap.parse_args(argv)
    from scipy.spatial import cKDTree
    from sklearn.neighbors import KDTree, NearestNeighbors

    n, d, k = args.n, args.d, args.k
    queries = None if args.full_tree else args.tree_queries
    q = n if queries is None else min(queries, n)
    rng = np.random.default_rng(args.seed)
    x = rng.normal(size=(n, d))
    w = rng.normal(size=(d, args.dy)) / np.sqrt(d)
    y = x @ w + 0.5 * rng.normal(size=(n, args.dy))
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"kNN speed: N = {n}, D = {d}, Dy = {args.dy}, k = {k}, device {args.device}, {os.cpu_count()} CPUs, "
          f"load average {load:.1f}; * = tree queries timed on {q} rows and scaled to N")
    results: dict[str, Any] = {"knn": {}, "ksg": {}, "n": n, "d": d, "dy": args.dy, "k": k}
    # warm-up: torch import and first kernels would otherwise be charged to the first timing
    for dt in ("float64", "float32"):
        knn_distances(x[:64], 1, method="brute", device=args.device, dtype=dt)
        ksg_counts(x[:64], y[:64], 1, method="brute", device=args.device, dtype=dt)

    # ---- kNN entropy search (Euclidean)
    knn = results["knn"]
    ref, knn["dsecli auto"] = _time(lambda: knn_distances(x, k, method="auto", device=args.device))
    auto_method = ref.method
    _, knn["dsecli brute float64"] = _time(lambda: knn_distances(x, k, method="brute", device=args.device))
    _, knn["dsecli brute float32"] = _time(
        lambda: knn_distances(x, k, method="brute", device=args.device, dtype="float32"))
    (sk_d, _), knn["sklearn NearestNeighbors"] = _time(lambda: NearestNeighbors(n_neighbors=k).fit(x).kneighbors())
    tree_r, t_tree, scaled = _tree_knn(x, k, 2.0, queries)
    knn["scipy cKDTree" + ("*" if scaled else "")] = t_tree
    if args.full_tree:
        _, knn["dsecli tree"] = _time(lambda: knn_distances(x, k, method="tree"))
    _, knn["dsecli kozachenko_leonenko_entropy (whole call)"] = _time(
        lambda: kozachenko_leonenko_entropy(x, k=k, device=args.device, max_n=None))
    agree = max(float(np.abs(ref.distances[:, -1] - sk_d[:, -1]).max()),
                float(np.abs(ref.distances[:q, -1] - tree_r).max()))
    _print("kNN entropy search, Euclidean", knn, "dsecli auto", f"auto chose {auto_method}; "
           f"largest difference of k-th distances vs sklearn/cKDTree: {agree:.1e}")

    # ---- KSG statistics (max-norm)
    ks = results["ksg"]
    ref_c, ks["dsecli auto"] = _time(lambda: ksg_counts(x, y, k, method="auto", device=args.device))
    auto_method = ref_c.method
    if auto_method != "brute":
        _, ks["dsecli brute float64"] = _time(lambda: ksg_counts(x, y, k, method="brute", device=args.device))
    _, ks["dsecli brute float32"] = _time(
        lambda: ksg_counts(x, y, k, method="brute", device=args.device, dtype="float32"))

    def sklearn_pipeline() -> tuple[np.ndarray, np.ndarray, float]:
        xy = np.hstack([x, y])
        (dist, _), t_nn = _time(lambda: NearestNeighbors(n_neighbors=k, metric="chebyshev").fit(xy).kneighbors())
        eps = dist[:, -1]
        out, total = [], t_nn
        for a in (x, y):
            tree, t_b = _time(lambda a=a: KDTree(a, metric="chebyshev"))
            cnt, t_c = _time(lambda a=a, tree=tree: tree.query_radius(a[:q], np.nextafter(eps[:q], 0), count_only=True))
            out.append(np.asarray(cnt) - 1)
            total += t_b + t_c * n / q
        return out[0], out[1], total

    sk_nx, sk_ny, t_sk = sklearn_pipeline()
    ks["sklearn NN(chebyshev) + KDTree radius" + ("*" if q < n else "")] = t_sk

    def scipy_pipeline() -> tuple[np.ndarray, float]:
        xy = np.hstack([x, y])
        eps, t_joint, _ = _tree_knn(xy, k, np.inf, queries)
        total = t_joint
        nx = None
        for a in (x, y):
            tree, t_b = _time(lambda a=a: cKDTree(a))
            cnt, t_c = _tree_counts(tree, a, eps, q)
            total += t_b + t_c
            nx = cnt if nx is None else nx
        assert nx is not None
        return nx, total

    sc_nx, t_sc = scipy_pipeline()
    ks["scipy cKDTree joint + ball counts" + ("*" if q < n else "")] = t_sc
    if args.full_tree:
        _, ks["dsecli tree"] = _time(lambda: ksg_counts(x, y, k, method="tree"))
    _, ks["dsecli ksg_mutual_information (whole call)"] = _time(
        lambda: ksg_mutual_information(x, y, k=k, device=args.device, max_n=None))
    same = bool(np.array_equal(ref_c.counts["nx"][:q], sk_nx[:q]) and np.array_equal(ref_c.counts["ny"][:q], sk_ny[:q])
                and np.array_equal(ref_c.counts["nx"][:q], sc_nx[:q]))
    _print("KSG neighbour statistics, max-norm", ks, "dsecli auto",
           f"auto chose {auto_method}; counts identical to sklearn and cKDTree on the timed rows: {same}")
    if args.crossover:
        results["crossover"] = crossover([int(v) for v in args.crossover.split(",") if v], n, k, args.device, rng)
    return results


def crossover(dims: list[int], n: int, k: int, device: str, rng: np.random.Generator) -> dict[int, dict[str, float]]:
    """Seconds of the tree and brute paths of ``knn_distances`` by dimension (the basis of TREE_MAX_DIM)."""
    print(f"\ntree vs brute, knn_distances, N = {n}, k = {k} (all rows; seconds)")
    print(f"  {'D':>4} {'tree eucl':>10} {'brute eucl':>11} {'tree max':>9} {'brute max':>10}")
    out: dict[int, dict[str, float]] = {}
    for d in dims:
        z = rng.normal(size=(n, d))
        row = {}
        for metric in ("euclidean", "max"):
            for method in ("tree", "brute"):
                _, row[f"{method} {metric}"] = _time(lambda m=method, mt=metric, z=z: knn_distances(
                    z, k, metric=mt, method=m, device=device))
        out[d] = row
        print(f"  {d:>4} {row['tree euclidean']:>10.2f} {row['brute euclidean']:>11.2f} {row['tree max']:>9.2f} "
              f"{row['brute max']:>10.2f}", flush=True)
    return out


def _print(title: str, table: dict[str, float], base: str, note: str) -> None:
    print(f"\n{title}")
    width = max(len(key) for key in table)
    for key, secs in table.items():
        print(f"  {key:<{width}}  {secs:>8.2f} s  {secs / table[base]:>6.2f}x")
    print(f"  ({note})")


if __name__ == "__main__":
    main()
