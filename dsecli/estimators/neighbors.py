"""Exact nearest-neighbour distances and radius counts for the kNN estimators.

Two exact paths, same answers:

- ``"brute"``: blocked brute force in torch (CPU or CUDA). Rows are processed in blocks of
  ``b`` rows against all N, so memory is O(b N) whatever N is; ``b`` is chosen from a byte
  budget. Euclidean distances come from the GEMM identity ||a||^2 + ||b||^2 - 2 a.b on
  centred data; the k-th neighbour distance reported by :func:`knn_distances` is then
  recomputed from the coordinate differences, so it is exact to rounding. Max-norm distances
  (``torch.cdist(p=inf)``) are exact: |a - b| and max round nothing away.
- ``"tree"``: :class:`scipy.spatial.cKDTree` in float64, all cores (``workers=-1``). Trees win in
  low dimension and lose to brute force above ~15 dimensions at N = 5,000-20,000 on CPU
  (measured: ``benchmarks/speed_knn.py --crossover``), hence ``"auto"``: tree on CPU for dimension <= ``TREE_MAX_DIM``,
  brute force otherwise and always on CUDA.

"Strictly within r" (the KSG and Ross counts) is exact on the brute path because counts and
radii come from the same distance matrix (:func:`ksg_counts`, :func:`ross_counts` fuse the two
steps). On the tree path the radius is lowered to the next float below r (max-norm; as
scikit-learn does) or by a relative 2^-50 (Euclidean, whose tree distances and ball queries
round differently), so the point that defines the radius is never counted.

Every function excludes the point itself; duplicates of it are ordinary neighbours at
distance 0.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from dsecli.device import as_device, available_memory_bytes, dtype_name, resolve_dtype, to_tensor
from dsecli.errors import InputError, check_choice, check_positive_int

if TYPE_CHECKING:  # pragma: no cover
    import torch

__all__ = [
    "METRICS",
    "NEIGHBOR_METHODS",
    "TREE_MAX_DIM",
    "Neighbors",
    "Counts",
    "choose_method",
    "knn_distances",
    "count_within",
    "ksg_counts",
    "ross_counts",
]

METRICS = ("euclidean", "max", "manhattan")
NEIGHBOR_METHODS = ("auto", "brute", "tree")
# Crossover measured with benchmarks/speed_knn.py --crossover (N = 5,000 and 20,000, k = 3, 2 busy CPU
# cores): cKDTree is faster up to 14 dimensions for both norms, even at 16-18, brute force above.
TREE_MAX_DIM = 15
# Upper bound on the bytes of the block x N temporaries of the brute path.
DEFAULT_BLOCK_BYTES = 256 * 2**20
_EUCLID_SHRINK = 1.0 - 2.0**-50


@dataclass(frozen=True)
class Neighbors:
    """k nearest neighbours of every row (self excluded).

    distances : (N, k) float64, ascending ; method : "brute" or "tree" ; detail : what ran
    (device, dtype, block rows).
    """

    distances: np.ndarray
    method: str
    detail: dict[str, Any]


@dataclass(frozen=True)
class Counts:
    """Radii and per-point neighbour counts of :func:`ksg_counts` / :func:`ross_counts`.

    radius : (N,) float64 ; counts : name -> (N,) int64 ; method, detail as :class:`Neighbors`.
    """

    radius: np.ndarray
    counts: dict[str, np.ndarray]
    method: str
    detail: dict[str, Any]


def choose_method(method: str, *, dim: int, device: Any, metric: str, tree_ok: bool = True) -> str:
    """Resolve ``"auto"``: tree on CPU for ``dim <= TREE_MAX_DIM`` (when allowed), brute otherwise."""
    check_choice(method, "method", NEIGHBOR_METHODS)
    check_choice(metric, "metric", METRICS)
    dev = as_device(device)
    if method == "tree" and not tree_ok:
        raise InputError(f"`method` 'tree' is not available with metric {metric!r} here; use brute or auto")
    if method != "auto":
        return method
    return "tree" if tree_ok and dev.type == "cpu" and dim <= TREE_MAX_DIM else "brute"


def _block_rows(n: int, per_row_bytes: int, budget: int | None, dev: torch.device) -> int:
    if budget is None:
        budget = min(DEFAULT_BLOCK_BYTES, max(available_memory_bytes(dev) // 4, 2**20))
    return int(max(1, min(n, budget // max(per_row_bytes, 1))))


def _prepare(x: Any, device: Any, dtype: Any, *, centre: bool) -> torch.Tensor:
    dev = as_device(device)
    xt = to_tensor(np.asarray(x) if not hasattr(x, "detach") else x, device=dev, dtype=resolve_dtype(dtype))
    if xt.ndim == 1:
        xt = xt[:, None]
    # distances are translation invariant; centring keeps the GEMM form accurate, but only adds
    # rounding to distances taken from coordinate differences
    return xt - xt.mean(dim=0, keepdim=True) if centre else xt


def _block_dist(a: torch.Tensor, b: torch.Tensor, metric: str, *, direct: bool = False) -> torch.Tensor:
    """Distances of rows of ``a`` to rows of ``b``: squared (GEMM) for Euclidean, plain for max and manhattan.

    ``direct``: Euclidean distances (not squared) from coordinate differences, slower but
    accurate for close pairs.
    """
    import torch

    if metric == "max":
        return torch.cdist(a, b, p=float("inf"))
    if metric == "manhattan":
        return torch.cdist(a, b, p=1.0)
    if direct:
        return torch.cdist(a, b, p=2.0, compute_mode="donot_use_mm_for_euclid_dist")
    from dsecli.diffusion.kernels import pairwise_sq_dists

    return pairwise_sq_dists(a, b)


def _mask_self(d: torch.Tensor, start: int) -> None:
    import torch

    rows = torch.arange(d.shape[0], device=d.device)
    d[rows, rows + start] = float("inf")


def _as_float64(x: Any) -> np.ndarray:
    arr = x.detach().cpu().numpy() if hasattr(x, "detach") else np.asarray(x)
    arr = np.asarray(arr, dtype=np.float64)
    return arr[:, None] if arr.ndim == 1 else np.ascontiguousarray(arr)


def _p(metric: str) -> float:
    return {"max": np.inf, "manhattan": 1.0}.get(metric, 2.0)


def _tree_detail() -> dict[str, Any]:
    return {"device": "cpu", "dtype": "float64", "backend": "scipy.spatial.cKDTree"}


def _brute_detail(xt: torch.Tensor, block: int) -> dict[str, Any]:
    return {"device": str(xt.device), "dtype": dtype_name(xt.dtype), "block_rows": block, "backend": "torch"}


def knn_distances(
    x: Any,
    k: int,
    *,
    metric: str = "euclidean",
    method: str = "auto",
    device: Any = "auto",
    dtype: Any = "float64",
    block_bytes: int | None = None,
) -> Neighbors:
    """Distances from every row of ``x`` to its ``k`` nearest other rows.

    Parameters
    ----------
    x : array-like or Tensor, shape (N, D)
    k : int, 1 <= k <= N - 1
    metric : {"euclidean", "max"}
    method : {"auto", "brute", "tree"}
    device, dtype : where and in what precision the brute path runs (the tree path is CPU float64)
    block_bytes : int, optional
        Budget for the brute path's block x N temporaries (default: min(256 MiB, free / 4)).

    Returns
    -------
    Neighbors
        ``distances`` shape (N, k), ascending, float64.
    """
    check_choice(metric, "metric", METRICS)
    n = int(x.shape[0])
    dim = int(np.prod(x.shape[1:])) if len(x.shape) > 1 else 1
    k = check_positive_int(k, "k")
    if k > n - 1:
        raise InputError(f"`k` must be <= N - 1 = {n - 1}; got {k}")
    how = choose_method(method, dim=dim, device=device, metric=metric)
    if how == "tree":
        from scipy.spatial import cKDTree

        xa = _as_float64(x)
        dist, _ = cKDTree(xa).query(xa, k=k + 1, p=_p(metric), workers=-1)
        # column 0 is the point itself (or an identical duplicate: the same distance 0)
        return Neighbors(np.asarray(dist, dtype=np.float64).reshape(n, k + 1)[:, 1:].copy(), "tree", _tree_detail())
    import torch

    xr = _prepare(x, device, dtype, centre=False)
    xt = _prepare(xr, device, dtype, centre=metric == "euclidean")
    item = xt.element_size()
    block = _block_rows(n, item * (2 * n + (k + 1) * dim), block_bytes, xt.device)
    out = torch.empty((n, k), dtype=torch.float64, device=xt.device)
    for s in range(0, n, block):
        e = min(n, s + block)
        d = _block_dist(xt[s:e], xt, metric)
        _mask_self(d, s)
        vals, idx = torch.topk(d, k, dim=1, largest=False, sorted=True)
        if metric == "euclidean":
            # exact distances of the chosen neighbours from the coordinate differences
            diff = xr[s:e, None, :] - xr[idx]
            vals = diff.square_().sum(dim=2).sqrt_()
            vals = vals.sort(dim=1).values
        out[s:e] = vals.double()
        del d
    return Neighbors(out.cpu().numpy(), "brute", _brute_detail(xt, block))


def count_within(
    x: Any,
    radius: Any,
    *,
    metric: str = "max",
    method: str = "auto",
    device: Any = "auto",
    dtype: Any = "float64",
    block_bytes: int | None = None,
) -> tuple[np.ndarray, str]:
    """Number of other rows strictly closer than ``radius[i]`` to row i.

    Parameters
    ----------
    x : array-like, shape (N, D)
    radius : array-like, shape (N,)
        Non-negative radii; a radius of 0 counts nothing.

    Returns
    -------
    counts : ndarray (N,) int64
    method : str
        "brute" or "tree".

    Notes
    -----
    Max-norm: d < r exactly. Euclidean: d < r (1 - 2^-50) on both paths, with d from coordinate
    differences (not the GEMM identity), so a point lying on the sphere of a radius measured
    elsewhere (e.g. by :func:`knn_distances`) is not counted through rounding. The KSG/Ross
    estimators use :func:`ksg_counts` / :func:`ross_counts`, which take radius and counts from
    one distance matrix.
    """
    check_choice(metric, "metric", METRICS)
    n = int(x.shape[0])
    dim = int(np.prod(x.shape[1:])) if len(x.shape) > 1 else 1
    r = np.asarray(radius, dtype=np.float64).reshape(-1)
    if r.shape[0] != n:
        raise InputError(f"`radius` must have one entry per row ({n}); got {r.shape[0]}")
    how = choose_method(method, dim=dim, device=device, metric=metric)
    if how == "tree":
        return _tree_counts(_as_float64(x), r, metric), "tree"
    import torch

    xt = _prepare(x, device, dtype, centre=False)
    rt = torch.as_tensor(r if metric == "max" else r * _EUCLID_SHRINK, device=xt.device, dtype=xt.dtype)
    block = _block_rows(n, xt.element_size() * 2 * n, block_bytes, xt.device)
    out = np.empty(n, dtype=np.int64)
    for s in range(0, n, block):
        e = min(n, s + block)
        d = _block_dist(xt[s:e], xt, metric, direct=True)
        _mask_self(d, s)
        out[s:e] = (d < rt[s:e, None]).sum(dim=1).cpu().numpy()
    return out, "brute"


def _tree_counts(xa: np.ndarray, r: np.ndarray, metric: str, tree: Any = None) -> np.ndarray:
    from scipy.spatial import cKDTree

    tree = cKDTree(xa) if tree is None else tree
    shrunk = np.nextafter(r, 0.0) if metric == "max" else r * _EUCLID_SHRINK
    shrunk = np.maximum(shrunk, 0.0)
    counts = np.asarray(tree.query_ball_point(xa, shrunk, p=_p(metric), return_length=True, workers=-1), dtype=np.int64)
    counts -= 1  # the point itself (distance 0 <= any radius)
    counts[r <= 0] = 0
    return counts


def ksg_counts(
    x: Any,
    y: Any,
    k: int,
    *,
    metric: str = "max",
    metric_y: str | None = None,
    method: str = "auto",
    device: Any = "auto",
    dtype: Any = "float64",
    block_bytes: int | None = None,
) -> Counts:
    """KSG neighbour statistics (Kraskov et al. 2004, estimator 1).

    In the joint space with the norm ``max(||x_i - x_j||_X, ||y_i - y_j||_Y)`` (``||.||_X`` is
    ``metric``, ``||.||_Y`` is ``metric_y``, default the same: each variable keeps its own norm,
    as in the KSG paper), ``radius[i]`` = distance to the k-th nearest other point;
    ``counts["nx"][i]`` / ``counts["ny"][i]`` = number of other points with marginal distance
    strictly below ``radius[i]``.

    Shapes: x (N, Dx), y (N, Dy). The tree path needs both norms "max" (the joint norm is then
    the max-norm of the concatenated coordinates); any other pair runs by brute force, where the
    radius and the counts come from the same two distance matrices, so "strictly below" is exact.
    """
    check_choice(metric, "metric", METRICS)
    metric_y = metric if metric_y is None else metric_y
    check_choice(metric_y, "metric_y", METRICS)
    n = int(x.shape[0])
    k = check_positive_int(k, "k")
    if k > n - 1:
        raise InputError(f"`k` must be <= N - 1 = {n - 1}; got {k}")
    dx_, dy_ = (int(np.prod(a.shape[1:])) if len(a.shape) > 1 else 1 for a in (x, y))
    # on a 1-D variable every norm is |.|, so it may use the max-norm (and the tree)
    eff_x, eff_y = ("max" if dim == 1 else m for dim, m in ((dx_, metric), (dy_, metric_y)))
    both_max = eff_x == eff_y == "max"
    how = choose_method(method, dim=dx_ + dy_, device=device, metric=metric, tree_ok=both_max)
    if how == "tree":
        from scipy.spatial import cKDTree

        xa, ya = _as_float64(x), _as_float64(y)
        xy = np.hstack([xa, ya])
        dist, _ = cKDTree(xy).query(xy, k=k + 1, p=np.inf, workers=-1)
        eps = np.asarray(dist, dtype=np.float64).reshape(n, k + 1)[:, k].copy()
        return Counts(eps, {"nx": _tree_counts(xa, eps, "max"), "ny": _tree_counts(ya, eps, "max")}, "tree",
                      _tree_detail())
    import torch

    # both Euclidean: compare squared distances (monotone, saves two square roots per pair);
    # mixed norms must be compared as distances
    squared = eff_x == eff_y == "euclidean"
    xt = _prepare(x, device, dtype, centre=eff_x == "euclidean")
    yt = _prepare(y, device, dtype, centre=eff_y == "euclidean")
    block = _block_rows(n, xt.element_size() * 4 * n, block_bytes, xt.device)
    eps = torch.empty(n, dtype=torch.float64, device=xt.device)
    nx = np.empty(n, dtype=np.int64)
    ny = np.empty(n, dtype=np.int64)
    # block x N work buffers, allocated once: on CPU a fresh 10^7-entry tensor per block costs more
    # (page faults) than the arithmetic written into it
    bufs = [torch.empty((block, n), dtype=xt.dtype, device=xt.device) for _ in range(3)]
    less = torch.empty((block, n), dtype=torch.bool, device=xt.device)
    norms = {id(t): (t * t).sum(dim=1) for t, m in ((xt, eff_x), (yt, eff_y)) if m == "euclidean"}
    for s in range(0, n, block):
        e = min(n, s + block)
        dx, dy, joint = (b[: e - s] for b in bufs)
        dx = _marginal_into(xt, s, e, eff_x, squared, dx, norms.get(id(xt)))
        dy = _marginal_into(yt, s, e, eff_y, squared, dy, norms.get(id(yt)))
        _mask_self(dx, s)
        _mask_self(dy, s)
        torch.maximum(dx, dy, out=joint)
        kth = torch.topk(joint, k, dim=1, largest=False, sorted=True).values[:, k - 1 : k].contiguous()
        nx[s:e] = _count_less(dx, kth, less[: e - s])
        ny[s:e] = _count_less(dy, kth, less[: e - s])
        eps[s:e] = (kth[:, 0].sqrt() if squared else kth[:, 0]).double()
    return Counts(eps.cpu().numpy(), {"nx": nx, "ny": ny}, "brute", _brute_detail(xt, block))


def _marginal_into(t: torch.Tensor, s: int, e: int, metric: str, squared: bool, out: torch.Tensor,
                   norms: torch.Tensor | None) -> torch.Tensor:
    """Distances of rows s:e of ``t`` to all rows, written into ``out`` where the norm allows it."""
    import torch

    if metric != "euclidean":
        return _block_dist(t[s:e], t, metric)
    assert norms is not None
    # ||a||^2 + ||b||^2 - 2 a.b on centred data (the GEMM identity of pairwise_sq_dists), clamped at 0
    torch.addmm(norms[None, :], t[s:e], t.T, beta=1.0, alpha=-2.0, out=out)
    out.add_(norms[s:e, None]).clamp_(min=0.0)
    return out if squared else out.sqrt_()


def _count_less(d: torch.Tensor, kth: torch.Tensor, buf: torch.Tensor) -> np.ndarray:
    """Per row, the number of entries of ``d`` strictly below ``kth`` (shape (b, 1))."""
    if d.device.type == "cpu":
        # NumPy's count_nonzero is 5-10x faster than torch's sum over a bool tensor on CPU
        mask = buf.numpy()
        np.less(d.numpy(), kth.numpy(), out=mask)
        return np.count_nonzero(mask, axis=1)
    return (d < kth).sum(dim=1).cpu().numpy()


def ross_counts(
    x: Any,
    codes: np.ndarray,
    k: int,
    *,
    metric: str = "max",
    method: str = "auto",
    device: Any = "auto",
    dtype: Any = "float64",
    block_bytes: int | None = None,
) -> Counts:
    """Neighbour statistics of Ross's continuous-discrete estimator (Ross 2014).

    For row i of class c = ``codes[i]`` (every class must hold >= 2 rows): ``counts["k"][i]``
    = min(k, n_c - 1); ``radius[i]`` = distance to that many-th nearest other row of the same
    class; ``counts["m"][i]`` = 1 + number of other rows (any class) strictly closer than
    ``radius[i]``, i.e. Ross's m_i (the neighbours within the radius, boundary point included).
    """
    check_choice(metric, "metric", METRICS)
    codes = np.asarray(codes, dtype=np.int64)
    n = int(x.shape[0])
    k = check_positive_int(k, "k")
    class_n = np.bincount(codes)
    if np.any(class_n[codes] < 2):
        raise InputError("every class must hold at least 2 rows for the continuous-discrete estimator")
    k_i = np.minimum(k, class_n[codes] - 1)
    dim = int(np.prod(x.shape[1:])) if len(x.shape) > 1 else 1
    how = choose_method(method, dim=dim, device=device, metric=metric)
    if how == "tree":
        from scipy.spatial import cKDTree

        xa = _as_float64(x)
        radius = np.empty(n, dtype=np.float64)
        for c in np.flatnonzero(class_n):
            members = np.flatnonzero(codes == c)
            kc = int(k_i[members[0]])
            xc = xa[members]
            dist, _ = cKDTree(xc).query(xc, k=kc + 1, p=_p(metric), workers=-1)
            radius[members] = np.asarray(dist).reshape(members.size, kc + 1)[:, kc]
        m = _tree_counts(xa, radius, metric) + 1
        return Counts(radius, {"k": k_i, "m": m}, "tree", _tree_detail())
    import torch

    xt = _prepare(x, device, dtype, centre=metric == "euclidean")
    ct = torch.as_tensor(codes, device=xt.device)
    kt = torch.as_tensor(k_i - 1, device=xt.device)
    kmax = int(k_i.max())
    block = _block_rows(n, xt.element_size() * 3 * n, block_bytes, xt.device)
    radius = torch.empty(n, dtype=torch.float64, device=xt.device)
    m = torch.empty(n, dtype=torch.int64, device=xt.device)
    for s in range(0, n, block):
        e = min(n, s + block)
        d = _block_dist(xt[s:e], xt, metric)
        _mask_self(d, s)
        same = d.masked_fill(ct[s:e, None] != ct[None, :], float("inf"))
        kth = torch.topk(same, kmax, dim=1, largest=False, sorted=True).values.gather(1, kt[s:e, None])
        del same
        m[s:e] = (d < kth).sum(dim=1) + 1
        radius[s:e] = (kth[:, 0].sqrt() if metric == "euclidean" else kth[:, 0]).double()
    return Counts(radius.cpu().numpy(), {"k": k_i, "m": m.cpu().numpy()}, "brute", _brute_detail(xt, block))
