"""Spectral representation metrics: known answers (log N, log D, log r) and a NumPy oracle written here."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest

from dsecli import estimate_entropy
from dsecli.errors import InputError
from dsecli.measures.representation import covariance_von_neumann_entropy, rankme_entropy, renyi_gram_entropy


def _renyi_oracle(x: np.ndarray, sigma: float, alpha: float) -> float:
    d2 = ((x[:, None, :] - x[None, :, :]) ** 2).sum(-1)
    lam = np.linalg.eigvalsh(np.exp(-d2 / (2 * sigma**2)) / x.shape[0])
    lam = lam[lam > 1e-15]
    return float(-(lam * np.log(lam)).sum()) if alpha == 1 else float(np.log((lam**alpha).sum()) / (1 - alpha))


@pytest.mark.parametrize("alpha", [1.0, 2.0, 0.5])
def test_renyi_gram_matches_numpy_oracle(alpha: float) -> None:
    x = np.random.default_rng(0).normal(size=(120, 4))
    got = renyi_gram_entropy(x, alpha=alpha, sigma=1.3, base=math.e, device="cpu")
    assert got.value == pytest.approx(_renyi_oracle(x, 1.3, alpha), rel=1e-10)
    assert got.params["alpha"] == alpha and got.params["sigma"] == 1.3


def test_renyi_gram_known_answers() -> None:
    # far-apart rows: K = I, log N; r tight clusters: K block-constant, log r
    far = 100.0 * np.eye(64)
    got = renyi_gram_entropy(far, sigma=1.0, device="cpu")
    assert got.value == pytest.approx(math.log2(64), abs=1e-9)
    assert got.extra["ceiling_n"] == pytest.approx(math.log2(64))
    clusters = np.repeat(100.0 * np.eye(5), 12, axis=0) + 1e-6 * np.random.default_rng(1).normal(size=(60, 5))
    got = renyi_gram_entropy(clusters, sigma=1.0, base=10, alpha=2.0, device="cpu")
    assert got.value == pytest.approx(math.log10(5), abs=1e-6)
    assert got.extra["effective_rank"] == pytest.approx(5, rel=1e-5)


def test_vne_cov_known_answers_and_oracle() -> None:
    rng = np.random.default_rng(2)
    q, _ = np.linalg.qr(rng.normal(size=(8, 8)))
    iso = rng.normal(size=(200_000, 8)) @ q  # isotropic: log D up to sampling error
    got = covariance_von_neumann_entropy(iso, max_n=None, base=math.e, device="cpu")
    assert got.value == pytest.approx(math.log(8), abs=1e-3)
    assert got.extra["ceiling_d"] == pytest.approx(math.log(8))
    # rank 3 with equal variances in 3 rotated directions: exactly log 3 in the population; build
    # the sample so its covariance is exactly that (orthonormal, centred score columns)
    s, _ = np.linalg.qr(rng.normal(size=(300, 3)) - 0.0)
    s -= s.mean(axis=0)
    s, _ = np.linalg.qr(s)
    low = s @ q[:3] * 5.0
    got = covariance_von_neumann_entropy(low, base=2, device="cpu")
    assert got.value == pytest.approx(math.log2(3), abs=1e-9)
    x = rng.normal(size=(50, 6)) * np.arange(1, 7)
    c = np.cov(x.T, bias=True)
    lam = np.linalg.eigvalsh(c / np.trace(c))
    assert covariance_von_neumann_entropy(x, base=math.e, device="cpu").value == pytest.approx(
        float(-(lam * np.log(lam)).sum()), rel=1e-10)


def test_rankme_known_answers_and_oracle() -> None:
    got = rankme_entropy(np.eye(16), eps=0.0, base=math.e, device="cpu")
    assert got.value == pytest.approx(math.log(16), abs=1e-12)
    rng = np.random.default_rng(3)
    u, _ = np.linalg.qr(rng.normal(size=(40, 4)))
    v, _ = np.linalg.qr(rng.normal(size=(10, 4)))
    low = 3.0 * u @ v.T  # rank 4, equal singular values
    got = rankme_entropy(low, eps=0.0, base=2, device="cpu")
    assert got.value == pytest.approx(2.0, abs=1e-9)
    assert got.extra["effective_rank"] == pytest.approx(4.0, rel=1e-9)
    assert got.extra["ceiling_rank"] == pytest.approx(math.log2(10))
    x = rng.normal(size=(30, 7))
    s = np.linalg.svd(x, compute_uv=False)
    p = s / s.sum() + 1e-7
    assert rankme_entropy(x, base=math.e, device="cpu").value == pytest.approx(float(-(p * np.log(p)).sum()),
                                                                               rel=1e-10)


def test_metrics_run_on_the_same_rows_as_dse() -> None:
    x = np.random.default_rng(4).normal(size=(3000, 5))
    res = estimate_entropy(x, methods="dse,renyi-gram,vne-cov,rankme", max_n=500, seed=3, device="cpu")
    assert [r.method for r in res] == ["dse", "renyi-gram", "vne-cov", "rankme"]
    assert {r.n_used for r in res} == {500}


def test_bad_alpha_and_eps() -> None:
    x = np.random.default_rng(5).normal(size=(20, 2))
    with pytest.raises(InputError, match=re.escape("`alpha` must be a number > 0 (1: von Neumann, inf: "
                                                   "min-entropy); got -1")):
        renyi_gram_entropy(x, alpha=-1)
    with pytest.raises(InputError, match=re.escape("`eps` must be >= 0; got -0.1")):
        rankme_entropy(x, eps=-0.1)


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


@pytest.mark.skipif(not _cuda(), reason="needs CUDA")
@pytest.mark.parametrize("method", ["renyi-gram", "vne-cov", "rankme"])
def test_metrics_on_cuda_match_cpu(method: str) -> None:
    x = np.random.default_rng(6).normal(size=(300, 12))
    cpu = estimate_entropy(x, methods=method, sigma=3.0, device="cpu")[0]
    gpu = estimate_entropy(x, methods=method, sigma=3.0, device="cuda")[0]
    assert gpu.params["device"].startswith("cuda")
    assert gpu.value == pytest.approx(cpu.value, rel=1e-9)


@pytest.mark.parametrize("name", ["vne-cov", "rankme", "renyi-gram"])
def test_preparation_warnings_are_in_the_result(name: str) -> None:
    import warnings as _w

    from dsecli import ENTROPY_METHODS

    x = np.random.default_rng(3).normal(size=(60, 4))
    x[:, 2] = 1.5  # a constant column
    x[10] = x[11]  # a duplicate row
    with _w.catch_warnings(record=True) as shown:
        _w.simplefilter("always")
        res = ENTROPY_METHODS[name](x, device="cpu")
    texts = [str(w.message) for w in shown]
    assert any("constant" in t for t in res.warnings) and any("duplicate" in t for t in res.warnings)
    assert set(res.warnings) <= set(texts)  # everything listed was also shown
