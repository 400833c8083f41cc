"""kNN search (dsecli.estimators.neighbors), Kozachenko-Leonenko entropy and KSG/Ross mutual information.

Truths: brute-force numpy oracles for the neighbour statistics, closed-form Gaussian and uniform
entropies, Gaussian mutual information (METHOD.md section 5), and scikit-learn's KSG/Ross
implementations on like-for-like inputs.
"""

from __future__ import annotations

import math
import re
import warnings

import numpy as np
import pytest
from scipy.spatial.distance import cdist
from scipy.special import digamma

from dsecli import estimate_mutual_information, kozachenko_leonenko_entropy, ksg_mutual_information
from dsecli.errors import DataQualityWarning, InputError
from dsecli.estimators.neighbors import (
    TREE_MAX_DIM,
    choose_method,
    count_within,
    knn_distances,
    ksg_counts,
    ross_counts,
)


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(not _cuda(), reason="needs CUDA"))]
METHODS = ["brute", "tree"]


def _pairs(rhos: list[float], n: int, seed: int) -> tuple[np.ndarray, np.ndarray, float]:
    """x, y with independent coordinate pairs of correlations ``rhos``; I in bits."""
    rng = np.random.default_rng(seed)
    r = np.asarray(rhos)
    x = rng.normal(size=(n, r.size))
    y = r * x + np.sqrt(1 - r**2) * rng.normal(size=(n, r.size))
    return x, y, float(np.sum(-0.5 * np.log2(1 - r**2)))


def _oracle_dist(x: np.ndarray, metric: str) -> np.ndarray:
    d = cdist(x, x, "chebyshev" if metric == "max" else "euclidean")
    np.fill_diagonal(d, np.inf)
    return d


# ---------------------------------------------------------------- neighbours


@pytest.mark.parametrize("metric", ["euclidean", "max"])
@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("dim", [1, 4, 20])
def test_knn_distances_match_oracle(metric: str, method: str, dim: int) -> None:
    x = np.random.default_rng(dim).normal(size=(300, dim))
    got = knn_distances(x, 5, metric=metric, method=method, device="cpu", block_bytes=64 * 300 * 8)
    expected = np.sort(_oracle_dist(x, metric), axis=1)[:, :5]
    np.testing.assert_allclose(got.distances, expected, rtol=1e-12, atol=1e-14)
    assert got.method == method


@pytest.mark.parametrize("device", DEVICES)
def test_brute_force_on_device_and_float32(device: str) -> None:
    x = np.random.default_rng(0).normal(size=(500, 8))
    ref = knn_distances(x, 3, metric="max", method="tree").distances
    got = knn_distances(x, 3, metric="max", method="brute", device=device, dtype="float32")
    np.testing.assert_allclose(got.distances, ref, rtol=1e-6)
    assert got.detail["dtype"] == "float32"
    assert got.detail["device"].startswith(device)


def test_duplicates_are_neighbours_at_distance_zero_but_self_is_excluded() -> None:
    x = np.array([[0.0, 0.0], [0.0, 0.0], [1.0, 0.0], [3.0, 0.0]])
    for method in METHODS:
        d = knn_distances(x, 2, method=method, device="cpu").distances
        np.testing.assert_allclose(d[:, 0], [0.0, 0.0, 1.0, 2.0])
        np.testing.assert_allclose(d[:, 1], [1.0, 1.0, 1.0, 3.0])


@pytest.mark.parametrize("metric", ["euclidean", "max"])
@pytest.mark.parametrize("method", METHODS)
def test_count_within_is_strict_and_matches_oracle(metric: str, method: str) -> None:
    x = np.random.default_rng(1).normal(size=(250, 3))
    d = _oracle_dist(x, metric)
    # radii equal to neighbour distances: the boundary point must not be counted
    r = knn_distances(x, 4, metric=metric, method="tree").distances[:, 3]
    got, used = count_within(x, r, metric=metric, method=method, device="cpu")
    np.testing.assert_array_equal(got, (d < r[:, None]).sum(axis=1))
    assert used == method
    np.testing.assert_array_equal(got, 3)  # exactly the 3 points strictly inside the 4th distance
    zero, _ = count_within(x, np.zeros(250), metric=metric, method=method, device="cpu")
    np.testing.assert_array_equal(zero, 0)


@pytest.mark.parametrize("metric", ["euclidean", "max"])
def test_ksg_counts_match_oracle(metric: str) -> None:
    rng = np.random.default_rng(2)
    x, y = rng.normal(size=(200, 2)), rng.normal(size=(200, 3))
    dx, dy = _oracle_dist(x, metric), _oracle_dist(y, metric)
    eps = np.sort(np.maximum(dx, dy), axis=1)[:, 2]
    methods = METHODS if metric == "max" else ["brute"]
    for method in methods:
        got = ksg_counts(x, y, 3, metric=metric, method=method, device="cpu", block_bytes=4 * 8 * 200 * 17)
        np.testing.assert_allclose(got.radius, eps, rtol=1e-12)
        np.testing.assert_array_equal(got.counts["nx"], (dx < eps[:, None]).sum(1))
        np.testing.assert_array_equal(got.counts["ny"], (dy < eps[:, None]).sum(1))


@pytest.mark.parametrize("metric", ["euclidean", "max"])
@pytest.mark.parametrize("method", METHODS)
def test_ross_counts_match_oracle(metric: str, method: str) -> None:
    rng = np.random.default_rng(3)
    x = rng.normal(size=(240, 2))
    codes = np.repeat([0, 1, 2], [3, 100, 137])  # class 0 has fewer than k + 1 members
    d = _oracle_dist(x, metric)
    k_i = np.minimum(4, np.bincount(codes)[codes] - 1)
    same = np.where(codes[:, None] == codes[None, :], d, np.inf)
    radius = np.sort(same, axis=1)[np.arange(240), k_i - 1]
    got = ross_counts(x, codes, 4, metric=metric, method=method, device="cpu")
    np.testing.assert_allclose(got.radius, radius, rtol=1e-12)
    np.testing.assert_array_equal(got.counts["k"], k_i)
    np.testing.assert_array_equal(got.counts["m"], (d < radius[:, None]).sum(1) + 1)


def test_auto_method_rule() -> None:
    assert choose_method("auto", dim=TREE_MAX_DIM, device="cpu", metric="max") == "tree"
    assert choose_method("auto", dim=TREE_MAX_DIM + 1, device="cpu", metric="max") == "brute"
    assert choose_method("auto", dim=2, device="cpu", metric="euclidean", tree_ok=False) == "brute"
    with pytest.raises(InputError, match="tree"):
        choose_method("tree", dim=2, device="cpu", metric="euclidean", tree_ok=False)


def test_k_must_leave_a_neighbour() -> None:
    with pytest.raises(InputError, match=re.escape("`k` must be <= N - 1 = 4; got 5")):
        knn_distances(np.zeros((5, 1)) + np.arange(5)[:, None], 5)


# ---------------------------------------------------------------- Kozachenko-Leonenko


@pytest.mark.parametrize("dim", list(range(1, 11)))
def test_kl_entropy_of_gaussians(dim: int) -> None:
    # N = 2000, k = 3: seen errors over 5 seeds up to 0.07 bits (D = 1) and 0.44 bits (D = 10);
    # tolerance 0.2 bits + 3 % of |H|
    rng = np.random.default_rng(100 + dim)
    a = rng.normal(size=(dim, dim))
    cov = a @ a.T / dim + 0.5 * np.eye(dim)
    x = rng.multivariate_normal(np.zeros(dim), cov, size=2000)
    true = 0.5 * math.log2((2 * math.pi * math.e) ** dim * np.linalg.det(cov))
    got = kozachenko_leonenko_entropy(x, device="cpu")
    assert abs(got.value - true) <= 0.2 + 0.03 * abs(true), (got.value, true)


@pytest.mark.parametrize(("dim", "tol"), [(1, 0.05), (2, 0.1), (3, 0.25)])
@pytest.mark.parametrize("metric", ["euclidean", "max"])
def test_kl_entropy_of_uniform_box(dim: int, tol: float, metric: str) -> None:
    # the boundary of the support biases kNN estimates upwards, growing with D (seen: 0.17 bits at D = 3)
    rng = np.random.default_rng(dim)
    sides = rng.uniform(0.5, 3.0, dim)
    x = rng.uniform(size=(4000, dim)) * sides
    got = kozachenko_leonenko_entropy(x, metric=metric, device="cpu")
    assert abs(got.value - np.log2(sides).sum()) <= tol


def test_kl_formula_and_scaling() -> None:
    rng = np.random.default_rng(7)
    x = rng.normal(size=(400, 3))
    r = np.sort(_oracle_dist(x, "euclidean"), axis=1)[:, 2]
    log_v = 1.5 * math.log(math.pi) - math.lgamma(2.5)
    expected = (digamma(400) - digamma(3) + log_v + 3 * np.mean(np.log(r))) / math.log(2)
    got = kozachenko_leonenko_entropy(x, neighbor_method="brute", device="cpu")
    np.testing.assert_allclose(got.value, expected, rtol=1e-12)
    scaled = kozachenko_leonenko_entropy(4.0 * x, neighbor_method="tree")
    np.testing.assert_allclose(scaled.value, got.value + 3 * 2.0, rtol=1e-12)  # + D log2 4


def test_kl_drops_duplicates_and_reports_them() -> None:
    x = np.random.default_rng(8).normal(size=(300, 2))
    with_dups = np.vstack([x, x[:25]])
    with pytest.warns(DataQualityWarning, match="25 of 325 rows are exact duplicates"):
        got = kozachenko_leonenko_entropy(with_dups, device="cpu")
    assert got.extra["n_duplicates"] == 25
    assert got.params["duplicates"] == "drop"
    assert any("exact duplicates" in w for w in got.warnings)
    np.testing.assert_allclose(got.value, kozachenko_leonenko_entropy(x, device="cpu").value, rtol=1e-12)


def test_kl_params_record_the_search() -> None:
    x = np.random.default_rng(9).normal(size=(300, 16))
    got = kozachenko_leonenko_entropy(x, k=5, metric="max", device="cpu")
    assert got.params["neighbor_method"] == "brute"  # 16 > TREE_MAX_DIM
    for key in ("k", "metric", "neighbor_method_requested", "device", "dtype", "seed", "max_n", "sampler"):
        assert key in got.params
    assert got.params["k"] == 5


# ---------------------------------------------------------------- KSG / Ross


@pytest.mark.parametrize(
    ("rhos", "rel"),
    [([0.9], 0.08), ([0.5], 0.2), ([0.6, 0.6, 0.6], 0.2)],
)
def test_ksg_on_correlated_gaussians(rhos: list[float], rel: float) -> None:
    # seen over 4 seeds at N = 2000: [0.9] within 5 %, [0.5] within 23 % of 0.21 bits, 3 pairs 13 % low
    x, y, true = _pairs(rhos, 2000, seed=11)
    got = ksg_mutual_information(x, y, device="cpu")
    assert got.value == pytest.approx(true, rel=rel, abs=0.03)


def test_ksg_bias_towards_zero_in_higher_dimension() -> None:
    x, y, true = _pairs([0.3, 0.5, 0.7, 0.9], 2000, seed=12)
    got = ksg_mutual_information(x, y, device="cpu").value
    assert 0.6 * true < got < true  # the known downward bias (about 0.8 * truth here)


@pytest.mark.parametrize("dim", [1, 3])
def test_ksg_independence_is_near_zero_and_not_clipped(dim: int) -> None:
    rng = np.random.default_rng(13)
    values = [ksg_mutual_information(rng.normal(size=(1500, dim)), rng.normal(size=(1500, dim)), device="cpu",
                                     seed=s).value for s in range(3)]
    assert max(abs(v) for v in values) < 0.04
    assert min(values) < 0  # reported as computed


def test_ksg_is_symmetric() -> None:
    x, y, _ = _pairs([0.7, 0.4], 1000, seed=14)
    a = ksg_mutual_information(x, y, device="cpu").value
    b = ksg_mutual_information(y, x, device="cpu").value
    np.testing.assert_allclose(a, b, rtol=1e-9)


def test_ksg_brute_and_tree_agree() -> None:
    x, y, _ = _pairs([0.8, 0.2], 800, seed=15)
    a = ksg_mutual_information(x, y, metric="max", neighbor_method="tree", device="cpu")
    b = ksg_mutual_information(x, y, metric="max", neighbor_method="brute", device="cpu")
    assert a.value == b.value
    assert (a.params["neighbor_method"], b.params["neighbor_method"]) == ("tree", "brute")


@pytest.mark.parametrize("device", DEVICES)
def test_ksg_float32_close_to_float64(device: str) -> None:
    x, y, _ = _pairs([0.8], 1000, seed=16)
    a = ksg_mutual_information(x, y, device=device, neighbor_method="brute")
    b = ksg_mutual_information(x, y, device=device, neighbor_method="brute", dtype="float32")
    assert b.params["dtype"] == "float32" and b.params["jitter"] == 1e-6
    assert abs(a.value - b.value) < 0.01


def test_ksg_euclidean_marginals() -> None:
    x, y, true = _pairs([0.8, 0.8], 2000, seed=17)
    got = ksg_mutual_information(x, y, metric="euclidean", device="cpu")
    assert got.params["neighbor_method"] == "brute"
    assert got.value == pytest.approx(true, rel=0.15)


def _standardized(a: np.ndarray) -> np.ndarray:
    return a / a.std(axis=0)  # what scikit-learn does to continuous inputs (scale, no centring)


def test_ksg_agrees_with_sklearn_regression() -> None:
    # like for like: KSG depends on the relative scale of x and y under the max-norm, so both get
    # sklearn's standardisation; sklearn's 1e-10 noise and our 1e-10 relative jitter only break ties,
    # and the data (continuous, positive MI) have none and are far from sklearn's clip at 0
    from sklearn.feature_selection import mutual_info_regression

    for rho, seed in [(0.3, 0), (0.6, 1), (0.9, 2)]:
        x, y, _ = _pairs([rho], 1500, seed=20 + seed)
        x, y = _standardized(x), _standardized(y)[:, 0]
        ours = ksg_mutual_information(x, y, k=3, base=math.e, device="cpu").value
        theirs = mutual_info_regression(x, y, n_neighbors=3, random_state=seed)[0]
        assert theirs > 0.02
        assert ours == pytest.approx(theirs, rel=0.01)


def test_ross_agrees_with_sklearn_classification() -> None:
    from sklearn.feature_selection import mutual_info_classif

    rng = np.random.default_rng(30)
    labels = rng.integers(0, 4, 1500)
    x = (rng.normal(size=1500) + 0.7 * labels)[:, None]
    x = _standardized(x)
    ours = ksg_mutual_information(x, labels, k=3, base=math.e, device="cpu")
    theirs = mutual_info_classif(x, labels, n_neighbors=3, random_state=0)[0]
    assert ours.params["estimator"] == "ross"
    assert ours.value == pytest.approx(theirs, rel=0.01)


def test_ross_on_separated_clusters_gives_label_entropy() -> None:
    rng = np.random.default_rng(31)
    sizes = [200, 300, 500]
    labels = np.repeat(np.arange(3), sizes)
    x = rng.normal(size=(1000, 5)) + 100.0 * labels[:, None]
    p = np.asarray(sizes) / 1000
    got = ksg_mutual_information(x, labels, device="cpu")
    assert got.value == pytest.approx(-(p * np.log2(p)).sum(), abs=0.01)


def test_ross_accepts_strings_and_leaves_out_singleton_classes() -> None:
    rng = np.random.default_rng(32)
    labels = np.array(["a"] * 150 + ["b"] * 149 + ["c"])
    x = rng.normal(size=(300, 2)) + (labels == "b")[:, None] * 2.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataQualityWarning)
        got = ksg_mutual_information(x, labels, device="cpu")
    assert got.extra["n_singleton_rows"] == 1
    assert got.extra["n_estimate_rows"] == 299
    assert got.value > 0.3


def test_ksg_reports_duplicates() -> None:
    x, y, _ = _pairs([0.5], 400, seed=33)
    x = np.round(x, 1)
    with pytest.warns(DataQualityWarning) as caught:
        got = ksg_mutual_information(x, y, device="cpu")
    assert got.extra["n_duplicates_x"] > 0
    # X's duplicates are reported once, by the rows' preparation, not again by KSG in other words
    texts = [str(w.message) for w in caught]
    assert len(texts) == len(set(texts)) and not any("duplicate rows in X" in t for t in texts)
    assert sum("repeat" in t for t in got.warnings) == 1


def test_ksg_through_dispatcher() -> None:
    x, y, _ = _pairs([0.8], 500, seed=34)
    (via,) = estimate_mutual_information(x, y[:, 0], methods="ksg", k=4)
    direct = ksg_mutual_information(x, y[:, 0], k=4)
    assert via.value == direct.value and via.params["k"] == 4


def test_ksg_bad_arguments() -> None:
    x, y, _ = _pairs([0.5], 50, seed=35)
    with pytest.raises(InputError, match=re.escape("`metric` must be one of euclidean, max, manhattan; got 'l1'")):
        ksg_mutual_information(x, y, metric="l1")
    with pytest.raises(InputError, match=re.escape("`jitter` must be >= 0; got -1.0")):
        ksg_mutual_information(x, y, jitter=-1.0)
    with pytest.raises(InputError, match=re.escape("`k` must be <= N - 1 = 49; got 50")):
        ksg_mutual_information(x, y, k=50)
    x2, y2, _ = _pairs([0.5, 0.5], 50, seed=35)
    with pytest.raises(InputError, match=re.escape("`method` 'tree' is not available with metric 'euclidean' here")):
        ksg_mutual_information(x2, y2, metric="euclidean", neighbor_method="tree")
    with pytest.raises(InputError, match=re.escape("`ref_kind` must be auto or discrete for a reference of strings")):
        ksg_mutual_information(x, np.array(["a", "b"] * 25), ref_kind="continuous")


def test_ksg_warns_about_integral_float_reference() -> None:
    x, _, _ = _pairs([0.5], 300, seed=36)
    y = np.arange(300) % 3 * 1.0
    with pytest.warns(DataQualityWarning, match="ref_kind='discrete'"):
        cont = ksg_mutual_information(x, y, device="cpu")
    labels = ksg_mutual_information(x, y, ref_kind="discrete", device="cpu")
    ints = ksg_mutual_information(x, y.astype(int), device="cpu")
    assert (cont.params["estimator"], labels.params["estimator"], ints.params["estimator"]) == ("ksg1", "ross", "ross")
    assert labels.value == ints.value
    assert (cont.params["reference_reading"]["reading"], labels.params["reference_reading"]["reading"]) == (
        "scalars", "integral")
