"""The public edge (dsecli.edge) and the one reading of the reference: each decision once per call."""

from __future__ import annotations

import json
import warnings
from functools import partial

import numpy as np
import pytest

import dsecli
import dsecli.device
import dsecli.diffusion.kernels
import dsecli.inputs.clustering
import dsecli.inputs.reference
import dsecli.measures.dse
from dsecli import diffusion_spectral_entropy, diffusion_spectral_mutual_information
from dsecli.edge import check_call
from dsecli.errors import (
    CollectWarnings,
    DataQualityWarning,
    DegenerateKernelWarning,
    DseWarning,
    InputError,
    quiet,
)
from dsecli.methods import (
    ENTROPY_METHODS,
    METHOD_OPTIONS,
    MI_METHODS,
    estimate_entropy,
    estimate_mutual_information,
)


def _blobs(n: int = 120, d: int = 4, k: int = 4, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % k
    return rng.normal(0, 3, (k, d))[labels] + rng.normal(size=(n, d)), labels


def _counting(monkeypatch, module, name: str) -> list[int]:
    calls: list[int] = []
    real = getattr(module, name)

    def spy(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(module, name, spy)
    return calls


# ----------------------------------------------------------------------------- declared options


@pytest.mark.parametrize("name", [*ENTROPY_METHODS, *MI_METHODS])
def test_registry_declares_exactly_the_options_of_each_method(name) -> None:
    fn = {**ENTROPY_METHODS, **MI_METHODS}[name]
    fixed = set(fn.keywords) if isinstance(fn, partial) else set()
    public = fn.func if isinstance(fn, partial) else fn
    torch_methods = {"cse", "csmi"}
    own = set(public.options) - fixed
    assert METHOD_OPTIONS[name] - {"device", "dtype"} == own
    assert ("device" in METHOD_OPTIONS[name]) == (name not in torch_methods)


def test_an_option_no_method_takes_is_an_error_naming_the_methods() -> None:
    x, _ = _blobs()
    with pytest.raises(InputError, match=r"`sigma` is not an option of knn \(knn takes"):
        estimate_entropy(x, methods="knn", sigma=2.0)
    with pytest.raises(InputError, match=r"`sigma` is not an option of knn \(its options: k, metric"):
        dsecli.kozachenko_leonenko_entropy(x, sigma=2.0)
    with pytest.raises(InputError, match="`bins` is not an option of ksg, mine"):
        estimate_mutual_information(x, x[:, 0], methods="ksg,mine", bins=3)


def test_an_option_goes_to_the_methods_that_take_it() -> None:
    x, _ = _blobs()
    dse, knn = estimate_entropy(x, methods="dse,knn", sigma=2.0, k=4, device="cpu")
    assert dse.params["sigma"] == 2.0 and "k" not in dse.params
    assert knn.params["k"] == 4 and "sigma" not in knn.params
    assert dse.value == dsecli.diffusion_spectral_entropy(x, sigma=2.0, device="cpu").value


def test_shared_options_are_checked_once_per_call(monkeypatch) -> None:
    import dsecli.methods

    calls = _counting(monkeypatch, dsecli.methods, "check_call")
    x, y = _blobs()
    estimate_mutual_information(x, y, methods="dsmi,csmi,ksg", device="cpu")
    assert len(calls) == 1
    with pytest.raises(InputError, match="`base` must be > 0 and != 1; got 1"):
        check_call(base=1)


def test_the_public_signature_shows_the_selection_and_the_options() -> None:
    import inspect

    params = inspect.signature(dsecli.diffusion_spectral_mutual_information).parameters
    assert list(params)[:2] == ["x", "y"]
    assert {"max_n", "seed", "base", "device", "sigma", "repetitions"} <= set(params)
    assert "rows" not in params and "call" not in params


# ----------------------------------------------------------------------------- once per call


def test_device_sigma_and_regime_are_decided_once_per_call(monkeypatch) -> None:
    device_calls = _counting(monkeypatch, dsecli.device, "resolve_device")
    sigma_calls = _counting(monkeypatch, dsecli.measures.dse, "resolve_sigma")
    regime_calls = _counting(monkeypatch, dsecli.measures.dse, "kernel_regime")
    x, _ = _blobs()
    with pytest.warns(DegenerateKernelWarning):
        results = estimate_entropy(x, methods="dse,ase-normalized,matrix-entry,renyi-gram", sigma=500.0,
                                   device="cpu")
    assert (len(device_calls), len(sigma_calls), len(regime_calls)) == (1, 1, 1)
    # every result names the regime, each computed from the one check
    assert all(any("uninformative" in w for w in r.warnings) for r in results)
    assert len({json.dumps(r.params["kernel_regime"], sort_keys=True) for r in results}) == 1


def test_the_median_rule_distances_are_formed_once_per_call_and_not_kept_after(monkeypatch) -> None:
    # DSE and DSMI with the median rule: the rule's N x N squared distances serve DSE's kernel and
    # DSMI's subset kernels (80 features: cutting the subsets out of them is the cheaper way)
    from dsecli.inputs.prepare import prepare_rows

    n = 160
    formed: list[int] = []
    real = dsecli.diffusion.kernels.pairwise_sq_dists

    def spy(x, *args, **kwargs):
        formed.append(int(x.shape[0]))
        return real(x, *args, **kwargs)

    monkeypatch.setattr(dsecli.diffusion.kernels, "pairwise_sq_dists", spy)
    x, labels = _blobs(n=n, d=80)
    rows = prepare_rows(x, max_n=None, seed=0, device="cpu")
    dse, dsmi = dsecli.estimate(rows, labels, methods="dse,dsmi", sigma="median", device="cpu")
    assert formed == [n]  # once, for all n rows; no subset's distances from its rows
    assert dsmi.extra["shared_kernel"] is True
    assert not [k for k in rows._resolved if isinstance(k, tuple) and k[0] == "sq_dists"]  # dropped after the call
    # the same values as with that sigma given, each method forming its distances again (DSE: the same bits)
    sigma = dse.params["sigma"]
    alone = diffusion_spectral_entropy(x, sigma=sigma, device="cpu", max_n=None)
    assert alone.value == dse.value
    again = diffusion_spectral_mutual_information(x, labels, sigma=sigma, device="cpu", max_n=None)
    assert again.value == pytest.approx(dsmi.value, abs=1e-12)


def test_a_vector_reference_is_clustered_once_for_every_method(monkeypatch) -> None:
    calls = _counting(monkeypatch, dsecli.inputs.reference, "kmeans")
    x, y = _blobs()
    vectors = np.random.default_rng(1).normal(size=(x.shape[0], 3))
    results = estimate_mutual_information(x, vectors, methods="dsmi,csmi,ksg", device="cpu", n_clusters=4)
    assert len(calls) == 1
    assert {r.params["reference_reading"]["reading"] for r in results} == {
        "vectors"}
    # the class-based methods share the same clusters
    assert results[0].params["reference_detail"] == results[1].params["reference_detail"]


# ----------------------------------------------------------------------------- the one reading of Y


def test_one_hot_labels_are_labels_for_every_method() -> None:
    x, labels = _blobs()
    one_hot = np.eye(4)[labels]
    by_hot = estimate_mutual_information(x, one_hot, methods="dsmi,csmi,ksg", device="cpu")
    by_int = estimate_mutual_information(x, labels, methods="dsmi,csmi,ksg", device="cpu")
    assert [r.value for r in by_hot] == [r.value for r in by_int]
    assert by_hot[2].params["estimator"] == "ross"
    assert all(r.params["reference_reading"]["reading"] == "one-hot" for r in by_hot)


def test_one_hot_with_unused_columns_is_still_labels() -> None:
    x, labels = _blobs(k=4)
    one_hot = np.eye(10)[labels]  # 4 of 10 columns used
    (r,) = estimate_mutual_information(x, one_hot, methods="dsmi", device="cpu")
    assert r.params["n_classes"] == 4 and r.params["reference_reading"]["columns"] == 10


def test_a_near_one_hot_matrix_is_vectors() -> None:
    x, labels = _blobs()
    almost = np.eye(4)[labels]
    almost[0, :] = [1, 1, 0, 0]  # two ones in a row: not one-hot
    reading = dsecli.inputs.reference.read_reference(almost)
    assert reading.reading == "vectors" and not reading.discrete


def test_integral_floats_warn_once_and_every_method_records_the_reading() -> None:
    x, labels = _blobs()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        results = estimate_mutual_information(x, labels.astype(float), methods="dsmi,csmi,ksg", device="cpu")
    texts = [str(w.message) for w in caught if "distinct integral values" in str(w.message)]
    assert len(texts) == 1
    assert all(texts[0] in r.warnings for r in results)
    assert all(r.params["reference_reading"]["reading"] == "scalars" for r in results)
    as_labels = estimate_mutual_information(x, labels.astype(float), methods="dsmi,ksg", device="cpu",
                                            ref_kind="discrete")
    assert as_labels[1].params["estimator"] == "ross"


def test_a_single_class_warns_and_its_ceiling_is_plus_zero() -> None:
    x, _ = _blobs()
    with pytest.warns(DataQualityWarning, match="single class"):
        (r,) = estimate_mutual_information(x, np.zeros(x.shape[0], dtype=int), methods="dsmi", device="cpu")
    assert r.value == 0.0 and r.extra["ceiling"] == 0.0
    assert '"ceiling": 0.0' in json.dumps(r.to_dict()) and "-0" not in json.dumps(r.extra["ceiling"])


@pytest.mark.parametrize(("y", "reading"), [
    (np.array([1, 2, 2, 3] * 5), "labels"),
    (np.array(["a", "b"] * 10), "strings"),
    (np.linspace(0, 1, 20), "scalars"),
    (np.eye(2)[np.arange(20) % 2], "one-hot"),
    (np.random.default_rng(0).normal(size=(20, 2)), "vectors"),
])
def test_each_kind_of_reference_has_its_reading(y, reading) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DseWarning)
        got = dsecli.inputs.reference.read_reference(y)
    assert got.reading == reading
    assert got.discrete == (reading in ("labels", "strings", "one-hot"))


# ----------------------------------------------------------------------------- one warnings channel


def test_nested_collectors_show_a_warning_once_and_quiet_shows_none() -> None:
    def inner() -> list[str]:
        with CollectWarnings() as notes:
            warnings.warn("note A", DseWarning, stacklevel=1)
        return notes

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with CollectWarnings() as outer:
            got = inner()
    assert got == ["note A"] and outer == ["note A"]
    assert [str(w.message) for w in caught] == ["note A"]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with quiet():
            got = inner()
    assert got == ["note A"] and caught == []


def test_a_quiet_call_keeps_its_warnings_in_the_result() -> None:
    x, _ = _blobs()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with quiet():
            r = dsecli.diffusion_spectral_entropy(x, sigma=500.0, device="cpu")
    assert caught == [] and any("uninformative" in w for w in r.warnings)


# ----------------------------------------------------------------------------- what prepared rows keep


def test_rows_derived_from_prepared_rows_never_reuse_a_reading_of_another_reference() -> None:
    from dataclasses import replace

    from dsecli.inputs.prepare import prepare_rows, with_reference

    x, labels = _blobs()
    rows = prepare_rows(x, max_n=None, seed=0, reference=labels, device="cpu")
    first = rows.reference_reading()
    device = rows.device
    assert first.classes().counts.tolist() == [30, 30, 30, 30]
    other = with_reference(rows, labels % 2)
    assert other.reference_reading().classes().counts.tolist() == [60, 60]
    assert other.device is device  # what depends on the rows only is kept
    shuffled = replace(rows, reference=labels[::-1].copy())
    assert shuffled.reference_reading() is not first


def test_a_permutation_null_reads_each_permuted_reference() -> None:
    x, labels = _blobs()
    (r,) = estimate_mutual_information(x, labels, methods="dsmi", sigma=2.0, permutations=9, device="cpu")
    null = r.extra["permutation"]["values"]
    assert max(null) < r.value and len(set(null)) > 1


@pytest.mark.parametrize(("distinct", "warns"), [(256, True), (257, False)])
def test_integral_floats_warn_up_to_their_limit(distinct: int, warns: bool) -> None:
    y = np.arange(2 * distinct, dtype=float) % distinct
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        reading = dsecli.inputs.reference.read_reference(y)
    assert reading.reading == "scalars"
    assert any("distinct integral values" in str(w.message) for w in caught) is warns
