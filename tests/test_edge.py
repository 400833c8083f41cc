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


def _distances_formed(monkeypatch) -> list[int]:
    """The row counts of every N x N squared-distance matrix formed from now on."""
    formed: list[int] = []
    real = dsecli.diffusion.kernels.pairwise_sq_dists

    def spy(x, *args, **kwargs):
        formed.append(int(x.shape[0]))
        return real(x, *args, **kwargs)

    monkeypatch.setattr(dsecli.diffusion.kernels, "pairwise_sq_dists", spy)
    return formed


def test_the_median_rule_distances_are_formed_once_per_call_and_not_kept_after(monkeypatch) -> None:
    # DSE and DSMI with the median rule: the rule's N x N squared distances serve DSE's kernel and
    # DSMI's subset kernels (80 features: cutting the subsets out of them is the cheaper way)
    from dsecli.inputs.prepare import prepare_rows

    n = 160
    formed = _distances_formed(monkeypatch)
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


def test_the_spectrum_scan_uses_the_median_rule_distances_once_and_drops_them(monkeypatch) -> None:
    from dsecli.inputs.prepare import prepare_rows

    n = 160
    formed = _distances_formed(monkeypatch)
    x, _ = _blobs(n=n, d=80)
    rows = prepare_rows(x, max_n=None, seed=0, device="cpu")
    from dsecli.measures.spectrum_scan import diffusion_spectrum

    spectrum = diffusion_spectrum(rows, sigma="median", device="cpu")
    assert formed == [n]  # the median rule's distances serve the kernel too
    assert not [k for k in rows._resolved if isinstance(k, tuple) and k[0] == "sq_dists"]  # dropped after the call
    dse = diffusion_spectral_entropy(x, sigma="median", device="cpu", max_n=None, return_eigenvalues=True)
    assert np.array_equal(np.asarray(spectrum.eigenvalues), np.asarray(dse.eigenvalues))  # the same bits as DSE


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



@pytest.mark.parametrize(("y", "reading"), [
    (np.array([[1], [2], [2], [3]] * 5), "labels"),  # one column of (N, 1): the column, not a matrix
    (np.array([[0.5], [1.5]] * 10), "scalars"),
    (np.array([["a"], ["b"]] * 10), "strings"),
    (np.array([[True], [False]] * 10), "labels"),
    (np.eye(2)[np.arange(20) % 2].reshape(10, 2, 2), "vectors"),  # 0/1 of three dimensions: no rows of 0/1
])
def test_a_reference_of_one_column_is_read_as_that_column(y, reading) -> None:
    got = dsecli.inputs.reference.read_reference(y)
    assert got.reading == reading and got.values.shape[0] == y.shape[0]


def test_a_reference_reading_names_its_classes_and_how_they_were_made(monkeypatch) -> None:
    read = dsecli.inputs.reference.read_reference
    hot = read(np.eye(3)[[0, 1, 2, 2, 1, 0]])
    names = hot.classes().names
    assert names == [0, 1, 2] and all(type(n) is int for n in names)  # column numbers, never floats
    assert hot.classes().codes.tolist() == [0, 1, 2, 2, 1, 0]
    scalars = read(np.arange(100) / 99 * 4 - 1)  # 100 distinct values spread over [-1, 3]
    binned = scalars.classes()  # n_clusters: 10 by default, as published
    assert binned.kind == "binned" and len(binned.names) == 10 and binned.counts.tolist() == [10] * 10
    assert binned.detail == {"n_bins": 10, "min": -1.0, "max": 3.0}
    seeds: list[object] = []
    real = dsecli.inputs.reference.kmeans

    def spy(values, k, *, seed, where=None):
        seeds.append(seed)
        return real(values, k, seed=seed, where=where)

    monkeypatch.setattr(dsecli.inputs.reference, "kmeans", spy)
    blobs = np.concatenate([np.full((5, 2), c) + np.arange(5)[:, None] * 0.01 for c in (0.0, 10.0, 20.0)])
    vectors = read(blobs, seed=7)
    clustered = vectors.classes(3)
    assert seeds == [7] and clustered.kind == "clustered"
    assert clustered.names == [0, 1, 2] and sorted(clustered.counts.tolist()) == [5, 5, 5]
    assert clustered.detail == {"algorithm": "kmeans++/lloyd", "n_init": 10, "seed": 7, "n_clusters": 3}
    assert dsecli.inputs.reference.reference_classes(blobs, n_clusters=3, seed=5).detail["seed"] == 5
    assert seeds == [7, 5]
    assert dsecli.inputs.reference.reference_classes(blobs, n_clusters=3).detail["seed"] == 0  # seed 0 by default
    assert len(dsecli.inputs.reference.reference_classes(np.arange(100) / 99).names) == 10  # 10 bins by default
    assert read(blobs).seed == 0 and read(blobs, seed=3).params() == {"reading": "vectors"}


def test_reference_warnings_name_the_reference_and_point_at_the_caller() -> None:
    read = dsecli.inputs.reference.read_reference
    with pytest.raises(InputError, match=r"^`ref_kind` must be one of auto, discrete, continuous; got 'labels'$"):
        read(np.arange(4), ref_kind="labels")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        read(np.full(6, 3), where="y.npy")
    (w,) = caught
    assert str(w.message) == ("y.npy: reference has a single class (3) on the rows used: I(X; Y) = 0 for every method "
                              "(H(Y) = 0); check that the reference column is the one meant")
    assert w.filename == __file__  # the line that read the reference, not a line of dsecli
    constant = read(np.full(6, 2.5), where="v.npy")  # one bin: warned when the bins are made
    with pytest.warns(DataQualityWarning, match=r"^v\.npy: reference has a single class"):
        constant.classes(2)
    with pytest.warns(DataQualityWarning, match=r"^c\.npy: reference has a single class"):
        dsecli.inputs.reference.reference_classes(np.zeros(5, dtype=int), where="c.npy")
    with pytest.raises(InputError, match=r"^r\.npy: `n_clusters` must be <= N = 6"):
        dsecli.inputs.reference.reference_classes(np.linspace(0, 1, 6), n_clusters=7, where="r.npy")
    with pytest.raises(InputError, match=r"^k\.npy: `ref_kind` discrete needs"):
        dsecli.inputs.reference.reference_classes(np.linspace(0, 1, 6), kind="discrete", where="k.npy")



def test_each_reading_records_how_it_was_decided() -> None:
    read = dsecli.inputs.reference.read_reference
    labels = read(np.array([3, 1, 3, 1]), seed=4, where="y.npy")
    assert labels.params() == {"reading": "labels"} and labels.classes().detail == {}
    assert (labels.seed, labels.where) == (4, "y.npy")
    assert labels.values.dtype == np.float64 and labels.values.tolist() == [[1.0], [0.0], [1.0], [0.0]]
    strings = read(np.array(["b", "a", "b", "a"], dtype=object))
    assert strings.classes().names == ["a", "b"] and strings.classes().detail == {"from": "strings"}
    mixed = read(np.array([1, "a", 1, "a"], dtype=object))  # objects are read as their text
    assert mixed.reading == "strings" and mixed.classes().names == ["1", "a"]
    integral = read(np.array([2.0, 7.0, 2.0, 7.0]), ref_kind="discrete")
    assert integral.params() == {"reading": "integral", "forced_by": "ref_kind=discrete"}
    assert integral.classes().names == [2, 7] and integral.classes().detail == {"from": "integral"}
    forced = read(np.array([3, 1, 3, 1]), ref_kind="continuous")
    assert forced.params() == {"reading": "scalars", "forced_by": "ref_kind=continuous"}
    assert forced.values.dtype == np.float64 and forced.values.tolist() == [[3.0], [1.0], [3.0], [1.0]]
    hot = read(np.eye(3, dtype=np.int8)[[2, 0, 1, 2]])
    assert hot.params() == {"reading": "one-hot", "rule": "3 columns of 0/1 with one 1 per row read as the column "
                                                          "of the 1", "columns": 3}
    assert hot.classes().detail == {"from": "one-hot"} and hot.values.tolist() == [[2.0], [0.0], [1.0], [2.0]]
    assert read(np.eye(3)[[2, 0, 1, 2]], ref_kind="continuous").reading == "vectors"
    vectors = read(np.arange(12, dtype=np.int32).reshape(4, 3))
    assert vectors.values.dtype == np.float64 and vectors.values.shape == (4, 3)
    with pytest.raises(InputError, match=r"^y\.npy: `ref_kind` discrete needs one label per row \(or one-hot rows\); "
                                         r"got a reference with 3 columns: use ref_kind auto"):
        read(np.arange(12.0).reshape(4, 3) / 7, ref_kind="discrete", where="y.npy")
    with pytest.raises(InputError, match=r"non-integral float values \(e\.g\. 0\.5\)"):
        read(np.array([1.0, 0.5, 2.5]), ref_kind="discrete")
    with pytest.raises(InputError, match=r"^z\.npy: `reference` must be numeric labels, strings or numeric vectors; "
                                         r"got dtype complex128$"):
        read(np.ones(4, dtype=complex), where="z.npy")

    def through_an_api(y):
        return read(y)

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        through_an_api(np.array([1.0, 2.0, 1.0, 2.0]))
    (w,) = caught
    assert "2 distinct integral values" in str(w.message) and w.filename == __file__  # the caller of the API


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



def test_collected_warnings_keep_carried_notes_first_each_message_once_and_pass_other_warnings_on() -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with CollectWarnings(("carried", "carried", "note B")) as notes:
            warnings.warn("note A", DseWarning, stacklevel=1)
            warnings.warn("note B", DseWarning, stacklevel=1)  # carried: recorded and shown before, not again
            warnings.warn("note A", DataQualityWarning, stacklevel=1)
            warnings.warn("not ours", RuntimeWarning, stacklevel=1)
    assert notes == ["carried", "note B", "note A"]
    assert [(w.category, str(w.message)) for w in caught] == [(DseWarning, "note A"), (RuntimeWarning, "not ours")]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with quiet(), CollectWarnings() as notes:
            warnings.warn("kept", DseWarning, stacklevel=1)
            warnings.warn("still shown", UserWarning, stacklevel=1)  # quiet holds back dsecli's warnings only
        with CollectWarnings() as after:  # quiet ends with its block
            warnings.warn("shown", DseWarning, stacklevel=1)
    assert notes == ["kept"] and after == ["shown"]
    assert [str(w.message) for w in caught] == ["still shown", "shown"]
    reached: list[int] = []
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # the caller's filters hold inside the block for others'
        with pytest.raises(RuntimeWarning, match="raised where warned"), CollectWarnings():
            warnings.warn("raised where warned", RuntimeWarning, stacklevel=1)
            reached.append(1)
    assert reached == []


def test_first_line_is_the_first_line_cut_at_a_sentence_or_the_limit() -> None:
    from dsecli.errors import first_line

    assert first_line(ValueError("bad input\nTraceback detail")) == "bad input"
    assert first_line(ValueError("  padded  \n")) == "padded"
    assert first_line(KeyError()) == "KeyError" and first_line(RuntimeError(" \n ")) == "RuntimeError"
    exact = "x" * 160
    assert first_line(RuntimeError(exact)) == exact  # at the limit: whole
    long = "y" * 161
    assert first_line(RuntimeError(long)) == "y" * 157 + "..."  # over it: 160 characters with the ellipsis
    talk = "CUDA out of memory. Tried to allocate 2.00 GiB. " + "z" * 200
    assert first_line(RuntimeError(talk)) == "CUDA out of memory."
    late = "w" * 170 + ". more"  # its first sentence ends past the limit: cut at the limit
    assert first_line(RuntimeError(late)) == "w" * 157 + "..."
    assert first_line(RuntimeError("a. b c d e f"), limit=8) == "a."
    assert first_line(RuntimeError("abcdefghij"), limit=8) == "abcde..."
    assert first_line(RuntimeError("a. bcdefg"), limit=9) == "a. bcdefg"
    assert first_line(RuntimeError(". " + "v" * 200)) == "."  # a sentence that ends at once


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


def test_byte_string_labels_are_named_as_text_and_read_as_the_same_labels() -> None:
    read = dsecli.inputs.reference.read_reference
    text = np.array(["cat", "dog", "cat", "émeu", "dog", "cat"])
    as_bytes = np.char.encode(text, "utf-8")  # dtype "S": how HDF5 string datasets often arrive
    by_bytes, by_text = read(as_bytes).classes(), read(text).classes()
    assert by_bytes.names == ["cat", "dog", "émeu"] == by_text.names
    assert by_bytes.codes.tolist() == by_text.codes.tolist() == [0, 1, 0, 2, 1, 0]
    # bytes that are not UTF-8 keep their escapes, and two of them stay two labels
    odd = read(np.array([b"\xff", b"\xfe", b"\xff"])).classes()
    assert odd.names == ["\\xfe", "\\xff"] and odd.codes.tolist() == [1, 0, 1]
    x = np.random.default_rng(0).normal(size=(6, 3))
    mi_bytes = diffusion_spectral_mutual_information(x, as_bytes, sigma=1.0, device="cpu").value
    assert mi_bytes == diffusion_spectral_mutual_information(x, text, sigma=1.0, device="cpu").value
