"""DSE/DSMI against closed forms (METHOD.md section 2 and 5) and invariances."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from dsecli import diffusion_spectral_entropy, diffusion_spectral_mutual_information, estimate_entropy
from dsecli.diffusion.kernels import resolve_sigma
from dsecli.errors import InputError
from dsecli.inputs.clustering import kmeans
from dsecli.inputs.reference import reference_classes
from dsecli.inputs.sampling import choose_rows


def _clusters(k: int, per: int, d: int = 5, spread: float = 1e-3, gap: float = 1e3, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(k, d)) * gap
    labels = np.repeat(np.arange(k), per)
    return centres[labels] + rng.normal(size=(k * per, d)) * spread, labels


def test_sigma_to_zero_gives_log2_n(device: str) -> None:
    x = np.random.default_rng(1).normal(size=(64, 4))
    got = diffusion_spectral_entropy(x, sigma=1e-4, device=device)
    assert got.value == pytest.approx(math.log2(64), abs=1e-9)
    assert got.warnings  # the degenerate kernel is reported


def test_sigma_to_infinity_gives_zero() -> None:
    x = np.random.default_rng(1).normal(size=(64, 4))
    assert diffusion_spectral_entropy(x, sigma=1e6, device="cpu").value == pytest.approx(0.0, abs=1e-6)


@pytest.mark.parametrize("k", [1, 2, 5, 10])
def test_k_separated_clusters_give_log2_k(k: int) -> None:
    x, _ = _clusters(k, 20)
    got = diffusion_spectral_entropy(x, sigma=1.0, t=50, device="cpu")
    assert got.value == pytest.approx(math.log2(k), abs=1e-6)


def test_bounds_and_base_conversion() -> None:
    x = np.random.default_rng(2).uniform(size=(200, 3))
    bits = diffusion_spectral_entropy(x, sigma=0.2, device="cpu")
    nats = diffusion_spectral_entropy(x, sigma=0.2, device="cpu", base=math.e)
    assert 0 <= bits.value <= math.log2(200)
    assert nats.units == "nats" and bits.units == "bits"
    assert nats.value == pytest.approx(bits.value * math.log(2), rel=1e-12)


def test_invariance_to_row_order_translation_rotation() -> None:
    rng = np.random.default_rng(3)
    x = rng.normal(size=(300, 6))
    ref = diffusion_spectral_entropy(x, sigma=1.5, t=2, device="cpu").value
    q, _ = np.linalg.qr(rng.normal(size=(6, 6)))
    for y in (x[rng.permutation(300)], x + 1e3, x @ q):
        assert diffusion_spectral_entropy(y, sigma=1.5, t=2, device="cpu").value == pytest.approx(ref, abs=1e-9)


def test_eigenvalues_against_numpy_oracle() -> None:
    x = np.random.default_rng(4).normal(size=(120, 3))
    sigma = 0.8
    d2 = ((x[:, None, :] - x[None, :, :]) ** 2).sum(-1)
    g = np.exp(-d2 / (2 * sigma**2))
    q = g.sum(1)
    p = g / q[:, None]  # the random-walk operator itself, not its symmetric conjugate
    lam = np.sort(np.linalg.eigvals(p).real)[::-1]
    got = diffusion_spectral_entropy(x, sigma=sigma, device="cpu", return_eigenvalues=True)
    np.testing.assert_allclose(got.eigenvalues, lam, atol=1e-10)
    assert got.eigenvalues[0] == pytest.approx(1.0, abs=1e-12)


def test_median_and_sqrt_d_rules_are_reported() -> None:
    import torch

    x = np.random.default_rng(5).normal(size=(100, 16))
    r = diffusion_spectral_entropy(x, sigma="sqrt-d", device="cpu")
    assert r.params["sigma"] == pytest.approx(4.0) and r.params["sigma_rule"] == "sqrt-d"
    m = diffusion_spectral_entropy(x, sigma="median", device="cpu")
    d2 = ((x[:, None, :] - x[None, :, :]) ** 2).sum(-1)[np.triu_indices(100, 1)]
    # lower median of the pair list, as torch.median returns
    expected = math.sqrt(np.sort(d2)[(d2.size - 1) // 2] / 2)
    assert m.params["sigma"] == pytest.approx(expected, rel=1e-9)
    assert resolve_sigma("median", torch.as_tensor(x)).rule == "median"


@pytest.mark.parametrize("bad", [0, -1.0, float("nan"), float("inf"), "wide"])
def test_bad_sigma_is_an_input_error(bad: object) -> None:
    with pytest.raises(InputError, match="`sigma`"):
        diffusion_spectral_entropy(np.zeros((5, 2)) + np.arange(5)[:, None], sigma=bad, device="cpu")


def test_t_must_be_positive_integer() -> None:
    with pytest.raises(InputError, match="`t` must be an integer >= 1; got 0"):
        diffusion_spectral_entropy(np.eye(4), t=0, device="cpu")


def test_subsampling_is_reported_and_seeded() -> None:
    x = np.random.default_rng(6).normal(size=(500, 3))
    a = diffusion_spectral_entropy(x, max_n=100, seed=7, device="cpu")
    b = diffusion_spectral_entropy(x, max_n=100, seed=7, device="cpu")
    c = diffusion_spectral_entropy(x, max_n=0, device="cpu")
    assert (a.n_used, a.n_total, a.subsampled) == (100, 500, True)
    assert a.value == b.value
    assert (c.n_used, c.subsampled) == (500, False)
    idx = choose_rows(500, 100, seed=7)
    assert idx is not None and np.all(np.diff(idx) > 0) and len(idx) == 100


def test_to_dict_is_strict_json() -> None:
    r = diffusion_spectral_entropy(np.random.default_rng(0).normal(size=(30, 2)), device="cpu", return_eigenvalues=True)
    d = r.to_dict()
    text = json.dumps(d, allow_nan=False)
    back = json.loads(text)
    assert back["value"] == pytest.approx(r.value) and len(back["eigenvalues"]) == 30
    assert back["n_used"] == 30 and back["params"]["device"] == "cpu"


def test_dsmi_labels_equal_clusters_gives_h_y() -> None:
    x, labels = _clusters(4, 30)
    got = diffusion_spectral_mutual_information(x, labels, sigma=1.0, t=50, device="cpu")
    assert got.value == pytest.approx(2.0, abs=1e-3)  # H(Y) = log2 4 for equal classes


def test_dsmi_independent_labels_near_zero() -> None:
    rng = np.random.default_rng(8)
    x = rng.normal(size=(600, 5))
    labels = rng.integers(0, 3, size=600)
    got = diffusion_spectral_mutual_information(x, labels, sigma=2.0, device="cpu")
    assert abs(got.value) < 0.05


def test_dsmi_continuous_and_vector_references() -> None:
    x, labels = _clusters(3, 40, spread=0.5, gap=20)
    scalar = labels + np.random.default_rng(9).normal(size=labels.size) * 0.01
    s = diffusion_spectral_mutual_information(x, scalar.astype(float), sigma=2.0, t=20, n_clusters=3, device="cpu")
    assert s.params["classes_from"] == "binned" and s.value == pytest.approx(math.log2(3), abs=0.05)
    v = diffusion_spectral_mutual_information(x, x, sigma=2.0, t=20, n_clusters=3, device="cpu")
    assert v.params["classes_from"] == "clustered" and v.value == pytest.approx(math.log2(3), abs=0.05)


def test_string_labels_map_to_classes() -> None:
    x, labels = _clusters(2, 25)
    names = np.array(["cat", "dog"])[labels]
    a = diffusion_spectral_mutual_information(x, names, sigma=1.0, t=30, device="cpu")
    b = diffusion_spectral_mutual_information(x, labels, sigma=1.0, t=30, device="cpu")
    assert a.value == pytest.approx(b.value, abs=1e-12)


def test_mismatched_rows_is_an_error() -> None:
    with pytest.raises(InputError, match="embeddings have 10 rows but the reference has 9"):
        diffusion_spectral_mutual_information(np.random.default_rng(0).normal(size=(10, 2)), np.zeros(9, int), device="cpu")


def test_kmeans_recovers_blobs() -> None:
    x, labels = _clusters(5, 30, spread=0.3, gap=10)
    got = kmeans(x, 5, seed=0)
    # same partition up to relabelling: a one-to-one contingency table
    table = np.zeros((5, 5), int)
    np.add.at(table, (labels, got), 1)
    assert sorted((table > 0).sum(1)) == [1] * 5 and sorted((table > 0).sum(0)) == [1] * 5


def test_reference_kind_rules() -> None:
    assert reference_classes(np.array([3, -1, 3, 7])).kind == "labels"
    assert reference_classes(np.array([0.1, 0.5, 0.9]), n_clusters=2).kind == "binned"
    c = reference_classes(np.array([1.0, 2.0, 1.0]), kind="discrete")
    assert c.kind == "labels" and len(c.names) == 2
    with pytest.raises(InputError, match="non-integral"):
        reference_classes(np.array([1.5, 2.0]), kind="discrete")


def test_methods_share_the_same_rows() -> None:
    x = np.random.default_rng(10).normal(size=(400, 3))
    res = estimate_entropy(x, methods="dse,ase-normalized", max_n=150, seed=3, sigma=1.0, device="cpu")
    assert [r.method for r in res] == ["dse", "ase-normalized"]
    assert res[0].value == pytest.approx(res[1].value, abs=1e-12)  # same operator, same rows
    assert all(r.n_used == 150 and r.n_total == 400 for r in res)


def test_float64_cpu_and_cuda_agree(device: str) -> None:
    x = np.random.default_rng(11).normal(size=(300, 8))
    labels = np.random.default_rng(12).integers(0, 4, 300)
    cpu = diffusion_spectral_entropy(x, sigma=3.0, t=2, device="cpu").value
    other = diffusion_spectral_entropy(x, sigma=3.0, t=2, device=device).value
    assert other == pytest.approx(cpu, abs=1e-9)
    mi_cpu = diffusion_spectral_mutual_information(x, labels, sigma=3.0, device="cpu").value
    mi_other = diffusion_spectral_mutual_information(x, labels, sigma=3.0, device=device).value
    assert mi_other == pytest.approx(mi_cpu, abs=1e-9)
