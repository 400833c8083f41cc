"""Estimators off their default path: k != 3 and base e / 10, against NumPy oracles written here
(the published formulas on SciPy distances) or closed forms."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.spatial.distance import cdist
from scipy.special import digamma

from dsecli import estimate_entropy, estimate_mutual_information, mine_mutual_information
from dsecli.estimators.kl import kozachenko_leonenko_entropy

EPS = 2.0**-52  # the spectral estimators' p + eps convention (METHOD.md section 1)
BASES = [math.e, 10.0]


def _entropy_of(p: np.ndarray, base: float) -> float:
    q = p + EPS
    return float(-(q * np.log(q)).sum() / math.log(base))


def _spectral(lam: np.ndarray, t: int, base: float) -> float:
    w = np.abs(lam) ** t
    return _entropy_of(w / w.sum(), base)


def _gauss(x: np.ndarray, sigma: float) -> np.ndarray:
    return np.exp(-cdist(x, x, "sqeuclidean") / (2 * sigma**2))


@pytest.fixture(scope="module")
def data() -> np.ndarray:
    return np.random.default_rng(0).normal(size=(150, 4))


@pytest.mark.parametrize("base", BASES)
@pytest.mark.parametrize("t", [1, 3])
def test_dse_and_ase_variants_match_numpy(data: np.ndarray, base: float, t: int) -> None:
    g = _gauss(data, 2.0)
    q = g.sum(axis=1)
    sym = g / np.sqrt(np.outer(q, q))
    want = {"dse": _spectral(np.linalg.eigvalsh(sym), t, base),
            "ase-gaussian": _spectral(np.linalg.eigvalsh(g), t, base),
            "ase-normalized": _spectral(np.linalg.eigvalsh(sym), t, base)}
    got = estimate_entropy(data, methods=list(want), sigma=2.0, t=t, base=base, max_n=None, device="cpu")
    for r in got:
        assert r.value == pytest.approx(want[r.method], rel=1e-9), r.method
        assert r.base == base


@pytest.mark.parametrize("k", [4, 7])
@pytest.mark.parametrize("base", BASES)
def test_ase_knn_at_other_k_matches_numpy(data: np.ndarray, k: int, base: float) -> None:
    d = cdist(data, data)
    r = np.sort(d, axis=1)[:, k - 1 : k]  # k-th smallest, the point itself counted
    a = (d <= r).astype(float)
    want = _spectral(np.linalg.eigvals(a), 1, base)
    got = estimate_entropy(data, methods="ase-knn", k=k, base=base, max_n=None, device="cpu")[0]
    assert got.params["k"] == k
    # A is not symmetric and has repeated (defective) eigenvalues, which two general eigensolvers
    # agree on only to ~sqrt(eps) ||A|| ~ 1e-7 (seen 8e-8 relative in the entropy)
    assert got.value == pytest.approx(want, rel=1e-6)


@pytest.mark.parametrize("base", BASES)
def test_matrix_entry_matches_numpy(data: np.ndarray, base: float) -> None:
    g = _gauss(data, 1.5)
    q = g.sum(axis=1)
    k = np.abs(g / np.sqrt(np.outer(q, q)))
    p = k / k.sum(axis=1, keepdims=True)
    p /= p.sum()
    got = estimate_entropy(data, methods="matrix-entry", sigma=1.5, base=base, max_n=None, device="cpu")[0]
    assert got.value == pytest.approx(_entropy_of(p.ravel(), base), rel=1e-10)


@pytest.mark.parametrize(("k", "base"), [(2, math.e), (5, 10.0)])
def test_dsmi_cluster_labels_give_log_k(k: int, base: float) -> None:
    # labels = far-apart tight clusters at large t: every class has DSE 0, every size-matched draw
    # holds all clusters (DSE log k): DSMI = log_base k
    rng = np.random.default_rng(1)
    sizes = [40 + 3 * i for i in range(k)]
    x = np.concatenate([100.0 * np.eye(k)[i] + 0.05 * rng.normal(size=(s, k)) for i, s in enumerate(sizes)])
    y = np.repeat(np.arange(k), sizes)
    got = estimate_mutual_information(x, y, methods="dsmi", sigma=1.0, t=50, base=base, max_n=None,
                                      device="cpu")[0]
    assert got.value == pytest.approx(math.log(k) / math.log(base), abs=1e-6)


@pytest.mark.parametrize(("k", "base", "metric"), [(1, math.e, "euclidean"), (5, 10.0, "max"),
                                                   (8, math.e, "manhattan")])
def test_kl_at_other_k_and_bases_matches_the_formula(data: np.ndarray, k: int, base: float, metric: str) -> None:
    n, d = data.shape
    dist = np.sort(cdist(data, data, {"euclidean": "euclidean", "max": "chebyshev", "manhattan": "cityblock"}[metric]),
                   axis=1)[:, k]
    log_v = {"euclidean": 0.5 * d * math.log(math.pi) - math.lgamma(0.5 * d + 1), "max": d * math.log(2),
             "manhattan": d * math.log(2) - math.lgamma(d + 1)}[metric]
    nats = digamma(n) - digamma(k) + log_v + d * np.mean(np.log(dist))
    got = kozachenko_leonenko_entropy(data, k=k, metric=metric, base=base, device="cpu", max_n=None)
    assert got.value == pytest.approx(nats / math.log(base), rel=1e-10)


@pytest.mark.parametrize(("k", "base"), [(1, 10.0), (6, math.e)])
def test_kl_on_a_gaussian_at_other_k_and_bases(k: int, base: float) -> None:
    cov = np.diag([1.0, 4.0, 0.25])
    x = np.random.default_rng(2).multivariate_normal(np.zeros(3), cov, size=4000)
    truth = 0.5 * (3 * math.log(2 * math.pi * math.e) + math.log(np.linalg.det(cov)))
    got = kozachenko_leonenko_entropy(x, k=k, base=base, device="cpu", max_n=None)
    assert got.value * math.log(base) == pytest.approx(truth, abs=0.06)


def test_mine_multidimensional_gaussian_in_nats() -> None:
    # X, Y in R^3, three pairs correlated 0.6: I = -1.5 log(0.64) = 0.669 nats; seen 0.62 in ~1 s
    rng = np.random.default_rng(3)
    x = rng.normal(size=(2000, 3))
    y = 0.6 * x + 0.8 * rng.normal(size=(2000, 3))
    got = mine_mutual_information(x, y, epochs=30, batch_size=200, hidden_units=32, base=math.e, device="cpu")
    assert got.value == pytest.approx(-1.5 * math.log(0.64), abs=0.15)
