"""Binned Shannon entropy (CSE) and mutual information (CSMI) against golden values and scipy."""

from __future__ import annotations

import json
import math
import re

import numpy as np
import pytest
from conftest import GOLDEN
from scipy.stats import entropy as scipy_entropy

from dsecli import binned_shannon_entropy, binned_shannon_mutual_information, estimate_entropy
from dsecli.errors import InputError
from dsecli.inputs.binning import bin_indices

needs_golden = pytest.mark.skipif(not GOLDEN.is_dir(), reason=f"golden reference values not found at {GOLDEN}")


def _records(quantity: str) -> list[tuple[str, dict]]:
    if not GOLDEN.is_dir():
        return []
    out = []
    for path in sorted(GOLDEN.glob("*_values.json")):
        data = json.loads(path.read_text())
        stem = path.name[: -len("_values.json")]
        out += [(stem, r) for r in data["records"] if r["quantity"] == quantity]
    return out


def _variant_input(stem: str, record: dict) -> np.ndarray:
    """The X a record was computed on, built from its ``variant`` description (golden README 3.4)."""
    x = np.load(GOLDEN / f"{stem}_X.npy")
    variant = record.get("variant", "")
    if not variant:
        return x
    if variant == "X with column 0 overwritten by the constant 0.5":
        x = x.copy()
        x[:, 0] = 0.5
        return x
    if variant == "first 3 columns X[:, :3]":
        return x[:, :3]
    raise AssertionError(f"unknown golden variant {variant!r}")


def _ids(records: list[tuple[str, dict]]) -> list[str]:
    return [f"{stem}:{r['id']}" for stem, r in records]


CSE = _records("cse")
CSMI = _records("csmi")


@needs_golden
@pytest.mark.parametrize(("stem", "record"), CSE, ids=_ids(CSE))
def test_cse_equals_golden(stem: str, record: dict) -> None:
    x = _variant_input(stem, record)
    got = binned_shannon_entropy(x, bins=record["num_bins_per_dim"], max_n=None)
    np.testing.assert_allclose(got.value, record["value"], rtol=0, atol=1e-12)
    assert got.units == "bits"
    assert got.params["bins"] == record["num_bins_per_dim"]


def test_golden_variants_are_covered() -> None:
    if not GOLDEN.is_dir():
        pytest.skip(f"golden reference values not found at {GOLDEN}")
    variants = {r.get("variant") for _, r in CSE + CSMI}
    assert "X with column 0 overwritten by the constant 0.5" in variants
    assert "first 3 columns X[:, :3]" in variants


def _labels(stem: str, record: dict) -> np.ndarray:
    assert record["reference"].startswith("labels")
    return np.load(GOLDEN / f"{stem}_labels.npy")


@needs_golden
@pytest.mark.parametrize(("stem", "record"), CSMI, ids=_ids(CSMI))
def test_csmi_published_sampler_equals_golden(stem: str, record: dict) -> None:
    x = _variant_input(stem, record)
    got = binned_shannon_mutual_information(
        x, _labels(stem, record), bins=record["num_bins_per_dim"], repetitions=record["num_repetitions"],
        sampler="published", seed=record.get("random_seed", 0), max_n=None,
    )
    np.testing.assert_allclose(got.value, record["value_seed0"], rtol=0, atol=1e-9)
    np.testing.assert_allclose(got.extra["h_conditional"], record["h_conditional"], rtol=1e-9, atol=1e-9)
    assert got.params["classes_from"] == "labels"


@needs_golden
@pytest.mark.parametrize(("stem", "record"), CSMI, ids=_ids(CSMI))
def test_csmi_numpy_sampler_within_seed_band(stem: str, record: dict) -> None:
    x = _variant_input(stem, record)
    band = record["seed_band"]
    for seed in (0, 1):
        got = binned_shannon_mutual_information(x, _labels(stem, record), bins=record["num_bins_per_dim"],
                                                seed=seed, max_n=None)
        assert abs(got.value - band["mean"]) <= 4 * band["std"] + 1e-9


def test_bin_edges_follow_linspace_not_floor() -> None:
    # column scaled to u = [0, 0.3, 0.6, 0.7, 1]: 0.3/0.6/0.7 lie just below their linspace edges
    col = np.array([0.0, 0.3, 0.6, 0.7, 1.0])[:, None]
    np.testing.assert_array_equal(bin_indices(col, 10)[:, 0], [1, 3, 6, 7, 10])
    np.testing.assert_array_equal(np.floor(col[:, 0] * 10).astype(int) + 1, [1, 4, 7, 8, 11])  # what floor would do


def test_constant_column_is_one_bin() -> None:
    x = np.random.default_rng(0).uniform(size=(50, 3))
    const = x.copy()
    const[:, 1] = 7.0
    np.testing.assert_array_equal(bin_indices(const, 4)[:, 1], 4)
    np.testing.assert_allclose(
        binned_shannon_entropy(const, bins=4).value, binned_shannon_entropy(const[:, [0, 2]], bins=4).value, atol=1e-12
    )


def test_cse_matches_scipy_entropy_of_cell_counts() -> None:
    x = np.random.default_rng(3).normal(size=(400, 2))
    for bins in (2, 3, 7):
        idx = bin_indices(x, bins)
        _, counts = np.unique(idx, axis=0, return_counts=True)
        expected = scipy_entropy(counts, base=2)
        got = binned_shannon_entropy(x, bins=bins)
        np.testing.assert_allclose(got.value, expected, rtol=0, atol=1e-9)  # eps = 2^-52 shifts by < 1e-12
        assert got.extra["occupied_cells"] == counts.size


def test_cse_tends_to_log2_n_in_high_dimension() -> None:
    x = np.random.default_rng(1).uniform(size=(200, 64))
    np.testing.assert_allclose(binned_shannon_entropy(x).value, math.log2(200), atol=1e-9)


def test_base_converts_units() -> None:
    x = np.random.default_rng(2).normal(size=(300, 2))
    bits = binned_shannon_entropy(x, bins=3)
    nats = binned_shannon_entropy(x, bins=3, base=math.e)
    np.testing.assert_allclose(nats.value, bits.value * math.log(2), rtol=1e-12)
    assert nats.units == "nats"


def test_csmi_follows_the_size_matched_definition() -> None:
    # oracle: sum_c p_c [mean_r H(X*_r) - H(X_c)] written out with the same numpy draws
    from dsecli.inputs.sampling import subset_draws

    rng = np.random.default_rng(4)
    labels = np.repeat([0, 1, 2], [50, 70, 80])
    x = rng.normal(size=(200, 3)) + labels[:, None] * 3.0

    def h(rows: np.ndarray) -> float:
        _, counts = np.unique(bin_indices(rows, 3), axis=0, return_counts=True)
        return float(scipy_entropy(counts, base=2))

    expected = 0.0
    for c in range(3):
        members = labels == c
        draws = subset_draws(200, int(members.sum()), 5, seed=7, sampler="numpy", stream=c)
        expected += members.mean() * (np.mean([h(x[np.sort(d)]) for d in draws]) - h(x[members]))
    got = binned_shannon_mutual_information(x, labels, bins=3, seed=7)
    np.testing.assert_allclose(got.value, expected, rtol=0, atol=1e-9)
    np.testing.assert_allclose(got.value, got.extra["h_marginal_matched"] - got.extra["h_conditional"], atol=1e-12)


def test_dispatcher_gives_the_same_value() -> None:
    x = np.random.default_rng(5).normal(size=(300, 3))
    direct = binned_shannon_entropy(x, bins=3)
    (via,) = estimate_entropy(x, methods="cse", bins=3)
    assert via.value == direct.value
    assert via.method == "cse"


def test_params_and_json() -> None:
    x = np.random.default_rng(6).normal(size=(120, 2))
    r = binned_shannon_mutual_information(x, np.arange(120) % 3, bins=2, seed=3)
    for key in ("bins", "repetitions", "seed", "sampler", "max_n", "ref_kind", "n_classes"):
        assert key in r.params
    assert r.elapsed_s is not None and r.elapsed_s >= 0
    json.dumps(r.to_dict(), allow_nan=False)


def test_bad_bins_is_refused() -> None:
    with pytest.raises(InputError, match=re.escape("`bins` must be an integer >= 1; got 0")):
        binned_shannon_entropy(np.zeros((5, 2)), bins=0)
