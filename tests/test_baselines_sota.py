"""KSG per-variable norms and standardisation, weighted Kozachenko-Leonenko, InfoNCE: closed forms,
independent oracles (SciPy distances, scikit-learn, Gamma-function constraints written here)."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest
from scipy.spatial.distance import cdist
from scipy.special import digamma

from dsecli import estimate_entropy, estimate_mutual_information
from dsecli.errors import DataQualityWarning, InputError
from dsecli.estimators.kl_weighted import bsy_weights, weighted_kl_entropy
from dsecli.estimators.ksg import KSG_DEFAULTS, ksg_mutual_information
from dsecli.estimators.mine import infonce_mutual_information
from dsecli.estimators.neighbors import ksg_counts

SCIPY = {"euclidean": "euclidean", "max": "chebyshev", "manhattan": "cityblock"}


def _dense(d: int, n: int, seed: int) -> tuple[np.ndarray, np.ndarray, float]:
    """bmi's dense task: every pair of the 2d coordinates correlated 0.5; I in nats (closed form)."""
    cov = 0.5 * np.eye(2 * d) + 0.5
    z = np.random.default_rng(seed).multivariate_normal(np.zeros(2 * d), cov, size=n)
    ld = np.linalg.slogdet
    return z[:, :d], z[:, d:], 0.5 * (2 * ld(cov[:d, :d])[1] - ld(cov)[1])


# ------------------------------------------------------------------ KSG norms


@pytest.mark.parametrize(("mx", "my"), [("euclidean", "max"), ("manhattan", "euclidean"), ("max", "manhattan"),
                                        ("euclidean", "euclidean"), ("manhattan", "manhattan")])
def test_ksg_counts_with_per_variable_norms_match_scipy(mx: str, my: str) -> None:
    rng = np.random.default_rng(5)
    x, y = rng.normal(size=(180, 3)), rng.normal(size=(180, 2))
    dx, dy = cdist(x, x, SCIPY[mx]), cdist(y, y, SCIPY[my])
    np.fill_diagonal(dx, np.inf)
    np.fill_diagonal(dy, np.inf)
    eps = np.sort(np.maximum(dx, dy), axis=1)[:, 4]
    got = ksg_counts(x, y, 5, metric=mx, metric_y=my, method="brute", device="cpu", block_bytes=4 * 8 * 180 * 13)
    np.testing.assert_allclose(got.radius, eps, rtol=1e-9)
    np.testing.assert_array_equal(got.counts["nx"], (dx < eps[:, None]).sum(1))
    np.testing.assert_array_equal(got.counts["ny"], (dy < eps[:, None]).sum(1))


def test_ksg_value_is_the_formula_on_the_oracle_counts() -> None:
    rng = np.random.default_rng(6)
    x, y = rng.normal(size=(300, 2)), rng.normal(size=(300, 3))
    y[:, 0] += x[:, 0]
    got = ksg_mutual_information(x, y, k=4, metric="euclidean", metric_y="manhattan", standardize=False, jitter=0,
                                 base=10, device="cpu")
    dx, dy = cdist(x, x), cdist(y, y, "cityblock")
    np.fill_diagonal(dx, np.inf)
    np.fill_diagonal(dy, np.inf)
    eps = np.sort(np.maximum(dx, dy), axis=1)[:, 3]
    nx, ny = (dx < eps[:, None]).sum(1), (dy < eps[:, None]).sum(1)
    nats = digamma(4) + digamma(300) - np.mean(digamma(nx + 1) + digamma(ny + 1))
    assert got.value == pytest.approx(nats / math.log(10), rel=1e-12)
    assert (got.params["metric"], got.params["metric_y"], got.params["standardize"]) == ("euclidean", "manhattan",
                                                                                        False)


@pytest.mark.parametrize(("d", "k", "tol"), [(2, 3, 0.03), (3, 5, 0.04), (5, 7, 0.06)])
@pytest.mark.parametrize("base", [math.e, 10.0])
def test_ksg_multidimensional_gaussians_against_closed_form(d: int, k: int, tol: float, base: float) -> None:
    # default settings (standardised Euclidean norms); seen errors 0.003-0.03 nats at N = 3000
    x, y, truth = _dense(d, 3000, seed=d)
    got = ksg_mutual_information(x, y, k=k, base=base, device="cpu")
    assert got.params["metric"] == "euclidean" and got.params["standardize"] is True
    assert got.value * math.log(base) == pytest.approx(truth, abs=tol)


def test_ksg_euclidean_beats_max_norm_in_higher_dimension() -> None:
    # the gap the per-variable norms close: dense 10 + 10 (truth 0.97 nats)
    x, y, truth = _dense(10, 2000, seed=40)
    eu = ksg_mutual_information(x, y, base=math.e, device="cpu").value
    mx = ksg_mutual_information(x, y, metric="max", base=math.e, device="cpu").value
    assert abs(eu - truth) < abs(mx - truth)
    assert mx < eu < truth  # both biased towards 0


def test_ksg_standardisation_makes_the_estimate_scale_free() -> None:
    x, y, _ = _dense(3, 800, seed=41)
    scale_x, scale_y = np.array([1e-3, 1.0, 50.0]), np.array([7.0, 1e4, 0.2])
    a = ksg_mutual_information(x, y, device="cpu")
    b = ksg_mutual_information(x * scale_x + 3.0, y * scale_y - 1.0, device="cpu")
    assert b.value == pytest.approx(a.value, abs=1e-9)
    raw = ksg_mutual_information(x * scale_x, y * scale_y, standardize=False, device="cpu")
    assert abs(raw.value - a.value) > 0.05  # without it one coordinate dominates every distance


@pytest.mark.parametrize("k", [2, 5])
def test_ksg_matches_sklearn_in_one_dimension_at_other_k(k: int) -> None:
    from sklearn.feature_selection import mutual_info_regression

    rng = np.random.default_rng(42)
    x = rng.normal(size=(1200, 1))
    y = 0.7 * x[:, 0] + 0.7 * rng.normal(size=1200)
    x, y = x / x.std(), y / y.std()  # sklearn scales (no centring); 1-D: every norm is |.|
    theirs = mutual_info_regression(x, y, n_neighbors=k, random_state=0)[0]
    for metric in ("euclidean", "max", "manhattan"):
        ours = ksg_mutual_information(x, y, k=k, metric=metric, standardize=False, base=math.e, device="cpu").value
        assert ours == pytest.approx(theirs, rel=0.01)


def test_ksg_labels_keep_ross_defaults() -> None:
    rng = np.random.default_rng(43)
    labels = rng.integers(0, 3, 600)
    x = rng.normal(size=(600, 2)) + labels[:, None]
    got = ksg_mutual_information(x, labels, device="cpu")
    assert got.params["estimator"] == "ross"
    assert (got.params["metric"], got.params["standardize"]) == (KSG_DEFAULTS["labels"]["metric"], False)
    same = ksg_mutual_information(x, labels, metric="max", standardize=False, device="cpu")
    assert got.value == same.value


def test_ksg_norm_arguments_are_checked() -> None:
    x, y, _ = _dense(2, 50, seed=44)
    with pytest.raises(InputError, match=re.escape("`metric_y` must be one of euclidean, max, manhattan; got 'l3'")):
        ksg_mutual_information(x, y, metric_y="l3")
    with pytest.raises(InputError, match=re.escape("`standardize` must be true or false; got 'yes'")):
        ksg_mutual_information(x, y, standardize="yes")


# ------------------------------------------------------------------ weighted Kozachenko-Leonenko


@pytest.mark.parametrize(("k", "d"), [(10, 4), (12, 8), (40, 12), (60, 16)])
def test_bsy_weights_satisfy_the_gamma_constraints_with_minimum_norm(k: int, d: int) -> None:
    w = bsy_weights(k, d)
    assert w.shape == (k,)
    assert w.sum() == pytest.approx(1.0, abs=1e-8)
    rows = [[math.exp(math.lgamma(j + 2 * ell / d) - math.lgamma(j)) for j in range(1, k + 1)]
            for ell in range(1, d // 4 + 1)]
    for r in rows:
        assert abs(np.dot(w, r)) < 1e-6 * max(r) * max(1.0, np.abs(w).sum())
    # minimum norm: w lies in the row space of the constraints
    g = np.vstack([np.ones(k)] + [np.asarray(r) for r in rows])
    coef, *_ = np.linalg.lstsq(g.T, w, rcond=None)
    np.testing.assert_allclose(g.T @ coef, w, atol=1e-8 * np.abs(w).max())


def test_bsy_weights_below_four_dimensions_select_the_kth_estimator() -> None:
    np.testing.assert_array_equal(bsy_weights(5, 3), [0, 0, 0, 0, 1])
    with pytest.raises(InputError, match=re.escape("`k` must be > floor(D/4) = 2 for the weighted estimator at "
                                                   "D = 8; got 2")):
        bsy_weights(2, 8)


def test_weighted_kl_is_the_weighted_formula_on_oracle_distances() -> None:
    x = np.random.default_rng(7).normal(size=(400, 6))
    got = weighted_kl_entropy(x, k=8, base=math.e, device="cpu")
    dist = np.sort(cdist(x, x), axis=1)[:, 1:9]
    j = np.arange(1, 9)
    log_v = 3 * math.log(math.pi) - math.lgamma(4.0)
    per = math.log(399) - digamma(j) + log_v + 6 * np.log(dist).mean(axis=0)
    assert got.value == pytest.approx(float(bsy_weights(8, 6) @ per), rel=1e-10)
    np.testing.assert_allclose(got.extra["per_k_nats"], per, rtol=1e-10)


@pytest.mark.parametrize("base", [2.0, math.e, 10.0])
def test_weighted_kl_on_gaussians_against_closed_form(base: float) -> None:
    # D = 8 (2 constraints): seen -0.05 nats at N = 3000, the plain estimator +0.07
    d = 8
    idx = np.arange(d)
    cov = 0.5 ** np.abs(idx[:, None] - idx[None, :])
    x = np.random.default_rng(8).multivariate_normal(np.zeros(d), cov, size=3000)
    truth = 0.5 * (d * math.log(2 * math.pi * math.e) + np.linalg.slogdet(cov)[1])
    got = estimate_entropy(x, methods="knn-weighted", base=base, device="cpu")[0]
    assert got.method == "knn-weighted" and got.params["n_constraints"] == 2
    assert got.value * math.log(base) == pytest.approx(truth, abs=0.15)


def test_weighted_kl_warns_when_the_weights_are_large() -> None:
    x = np.random.default_rng(9).normal(size=(300, 20))
    with pytest.warns(DataQualityWarning, match="have norm"):
        got = weighted_kl_entropy(x, k=10, device="cpu")
    assert got.extra["weights_norm"] > 10


# ------------------------------------------------------------------ InfoNCE


FAST_NCE = {"epochs": 30, "batch_size": 200, "hidden_units": 32, "embed_dim": 16, "device": "cpu"}


@pytest.mark.parametrize("base", [math.e, 10.0])
def test_infonce_multidimensional_gaussian(base: float) -> None:
    # 3 + 3 dimensions, 0.67 nats; seen 0.63-0.66 at N = 2000 in ~1 s
    rng = np.random.default_rng(10)
    x = rng.normal(size=(2000, 3))
    y = 0.6 * x + 0.8 * rng.normal(size=(2000, 3))
    truth = -1.5 * math.log(1 - 0.36)
    got = infonce_mutual_information(x, y, base=base, **FAST_NCE)
    assert got.method == "infonce"
    assert got.value * math.log(base) == pytest.approx(truth, abs=0.12)
    assert got.extra["ceiling"] == pytest.approx(math.log(400) / math.log(base))  # 400 held-out rows, one group


def test_infonce_cannot_exceed_log_k() -> None:
    # y = x + tiny noise: I is ~9 nats per coordinate, far above log K
    rng = np.random.default_rng(11)
    x = rng.normal(size=(1000, 2))
    y = x + 1e-4 * rng.normal(size=(1000, 2))
    with pytest.warns(DataQualityWarning, match="within log 2 of its ceiling"):
        got = infonce_mutual_information(x, y, base=math.e, eval_batch=10, **FAST_NCE)
    assert got.extra["ceiling_nats"] == pytest.approx(math.log(10))
    assert got.value <= got.extra["ceiling_nats"] + 1e-6
    assert got.extra["train_ceiling_nats"] == pytest.approx(math.log(200))


def test_infonce_through_the_dispatcher_and_its_checks() -> None:
    rng = np.random.default_rng(12)
    x = rng.normal(size=(400, 2))
    res = estimate_mutual_information(x, x[:, 0] + rng.normal(size=400), methods="infonce,mine", epochs=3,
                                      device="cpu")
    assert [r.method for r in res] == ["infonce", "mine"]
    assert res[0].params["objective"] == "infonce" and res[1].params["objective"] == "donsker-varadhan"
    with pytest.raises(InputError, match=re.escape("`eval_batch` must be an integer >= 2; got 1")):
        infonce_mutual_information(x, x, eval_batch=1)


def test_ksg_one_dimensional_variables_use_the_tree_whatever_the_norm() -> None:
    # on a 1-D variable every norm is |.|: same counts as the max-norm tree, and as brute force
    rng = np.random.default_rng(45)
    x = rng.normal(size=(700, 1))
    y = x + rng.normal(size=(700, 1))
    auto = ksg_mutual_information(x, y, metric="manhattan", device="cpu")
    brute = ksg_mutual_information(x, y, metric="manhattan", neighbor_method="brute", device="cpu")
    assert auto.params["neighbor_method"] == "tree"
    assert auto.value == brute.value


def test_ksg_counts_blocked_brute_force_on_uneven_blocks() -> None:
    # 7-row blocks over 100 rows: the last block is short and reuses the work buffers
    rng = np.random.default_rng(46)
    x, y = rng.normal(size=(100, 4)), rng.normal(size=(100, 3))
    whole = ksg_counts(x, y, 3, metric="euclidean", method="brute", device="cpu")
    small = ksg_counts(x, y, 3, metric="euclidean", method="brute", device="cpu", block_bytes=7 * 32 * 100)
    assert small.detail["block_rows"] == 7
    np.testing.assert_array_equal(small.counts["nx"], whole.counts["nx"])
    np.testing.assert_array_equal(small.counts["ny"], whole.counts["ny"])
    np.testing.assert_allclose(small.radius, whole.radius, rtol=1e-12)
