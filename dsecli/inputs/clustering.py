"""k-means for vector references (DSMI with a continuous vector Y).

The published code clusters vector references by spectral clustering on a nearest-neighbour
graph, which needs an N x N eigendecomposition of its own. dsecli uses k-means (Lloyd's
algorithm with k-means++ seeding, best of ``n_init`` runs by inertia): it minimises the
within-cluster variance, runs in O(N k D) per iteration, is deterministic for a seed, and on
separated clusters recovers the same partition (tests check this on Gaussian blobs).

Reference: Arthur & Vassilvitskii, "k-means++: the advantages of careful seeding", SODA 2007.
"""

from __future__ import annotations

import numpy as np

from dsecli.errors import InputError, where_prefix

__all__ = ["kmeans"]


def kmeans(y: np.ndarray, n_clusters: int, *, seed: int = 0, n_init: int = 10, max_iter: int = 300,
           where: str | None = None) -> np.ndarray:
    """Cluster rows of ``y`` (N, D') into ``n_clusters`` groups; labels 0..k-1, shape (N,).

    Uses a local ``numpy.random.Generator`` seeded with ``seed``; NumPy only (references are
    small next to the N x N work of DSE). ``where``: the reference's label, which starts the errors.
    """
    y = np.asarray(y, dtype=np.float64)
    n = y.shape[0]
    distinct = np.unique(y, axis=0).shape[0]
    if n_clusters > distinct:
        raise InputError(
            f"{where_prefix(where)}`n_clusters` = {n_clusters} exceeds the {distinct} distinct reference vectors; "
            "lower --n-clusters"
        )
    rng = np.random.default_rng(seed)
    yy = (y * y).sum(1)
    best_labels, best_inertia = None, np.inf
    for _ in range(n_init):
        centers = _kmeanspp(y, yy, n_clusters, rng)
        labels = np.full(n, -1)
        for _it in range(max_iter):
            d2 = yy[:, None] - 2.0 * y @ centers.T + (centers * centers).sum(1)[None, :]
            new = d2.argmin(1)
            if np.array_equal(new, labels):
                break
            labels = new
            for c in range(n_clusters):
                members = labels == c
                if members.any():
                    centers[c] = y[members].mean(0)
                else:  # an emptied cluster takes the point farthest from its centre
                    far = d2[np.arange(n), labels].argmax()
                    centers[c] = y[far]
                    labels[far] = c
        inertia = float(((y - centers[labels]) ** 2).sum())
        if inertia < best_inertia:
            best_inertia, best_labels = inertia, labels.copy()
    assert best_labels is not None
    # relabel by first appearance so the labelling does not depend on the run that won
    _, first = np.unique(best_labels, return_index=True)
    order = np.argsort(np.argsort(first))
    mapping = dict(zip(np.unique(best_labels), order))
    return np.array([mapping[v] for v in best_labels], dtype=np.int64)


def _kmeanspp(y: np.ndarray, yy: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    n = y.shape[0]
    centers = np.empty((k, y.shape[1]))
    centers[0] = y[rng.integers(n)]
    closest = np.maximum(yy - 2.0 * y @ centers[0] + (centers[0] ** 2).sum(), 0.0)
    for c in range(1, k):
        total = closest.sum()
        idx = rng.integers(n) if total <= 0 else rng.choice(n, p=closest / total)
        centers[c] = y[idx]
        d = np.maximum(yy - 2.0 * y @ centers[c] + (centers[c] ** 2).sum(), 0.0)
        np.minimum(closest, d, out=closest)
    return centers
