"""Property-based tests (hypothesis): readers round-trip random arrays; estimators stay in range on valid input
and raise only :class:`~dsecli.errors.DseError` on anything else.

max_examples is kept small so the suite stays fast; the strategies lean on edge cases (N = 1, D = 1, NaN,
Inf, huge values, empty arrays, odd dtypes).
"""

from __future__ import annotations

import math
import os
import tempfile
import warnings
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from dsecli.errors import DseError, DseWarning
from dsecli.inputs.readers import open_array
from dsecli.methods import estimate_entropy, estimate_mutual_information

# DSECLI_HYPOTHESIS_EXAMPLES=2000 for a longer hunt; the suite default stays small
SETTINGS = settings(max_examples=int(os.environ.get("DSECLI_HYPOTHESIS_EXAMPLES", "40")), deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])

DTYPES = [np.float64, np.float32, np.float16, np.int64, np.int32, np.int8, np.uint8, np.bool_]


def _arrays(min_dims: int = 1, max_dims: int = 3, min_side: int = 0) -> st.SearchStrategy[np.ndarray]:
    return st.sampled_from(DTYPES).flatmap(lambda dt: hnp.arrays(
        dtype=dt,
        shape=hnp.array_shapes(min_dims=min_dims, max_dims=max_dims, min_side=min_side, max_side=6),
        elements=hnp.from_dtype(np.dtype(dt), allow_nan=True, allow_infinity=True) if np.dtype(dt).kind == "f"
        else None,
    ))


# ---- readers: write, read back, compare --------------------------------------------------------------------


@SETTINGS
@given(arr=_arrays(), fmt=st.sampled_from(["npy", "npz", "h5", "pt"]))
def test_binary_formats_round_trip(arr: np.ndarray, fmt: str) -> None:
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / f"a.{fmt}"
        spec = str(path)
        if fmt == "npy":
            np.save(path, arr)
        elif fmt == "npz":
            np.savez(path, emb=arr, other=np.zeros(2))
            spec += ":emb"
        elif fmt == "h5":
            import h5py

            with h5py.File(path, "w") as f:
                f["grp/emb"] = arr
            spec += ":/grp/emb"
        else:
            import torch

            torch.save({"emb": torch.from_numpy(np.ascontiguousarray(arr))}, path)
            spec += ":emb"
        src = open_array(spec)
        assert src.shape == arr.shape
        got = src.read()
        assert got.dtype == arr.dtype
        np.testing.assert_array_equal(got, arr)
        if arr.ndim and arr.shape[0] > 1:
            rows = np.array([0, arr.shape[0] - 1])
            np.testing.assert_array_equal(src.read(rows), arr[rows])


@SETTINGS
@given(arr=hnp.arrays(np.float64, hnp.array_shapes(min_dims=2, max_dims=2, min_side=1, max_side=6),
                      elements=st.floats(allow_nan=True, allow_infinity=True)),
       fmt=st.sampled_from(["csv", "tsv", "txt"]), header=st.booleans())
def test_text_formats_round_trip(arr: np.ndarray, fmt: str, header: bool) -> None:
    sep = {"csv": ",", "tsv": "\t", "txt": " "}[fmt]
    lines = ([sep.join(f"c{j}" for j in range(arr.shape[1]))] if header else []) + [
        sep.join(repr(float(v)) for v in row) for row in arr]
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / f"a.{fmt}"
        path.write_text("\n".join(lines) + "\n")
        got = open_array(str(path)).read()
    assert got.shape == arr.shape
    np.testing.assert_array_equal(got.astype(np.float64), arr)


# ---- estimators on valid input ------------------------------------------------------------------------------

_valid_x = st.tuples(st.integers(2, 24), st.integers(1, 5)).flatmap(lambda nd: hnp.arrays(
    np.float64, nd, elements=st.floats(-100, 100, allow_nan=False, allow_infinity=False)))


@SETTINGS
@given(x=_valid_x, sigma=st.floats(0.01, 100.0), t=st.integers(1, 8),
       method=st.sampled_from(["dse", "ase-gaussian", "ase-normalized", "cse"]))
def test_entropy_is_finite_and_within_0_and_log2_n(x: np.ndarray, sigma: float, t: int, method: str) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DseWarning)
        spectral = {} if method == "cse" else {"sigma": sigma, "t": t}  # cse takes neither
        (res,) = estimate_entropy(x, methods=method, device="cpu", max_n=0, **spectral)
    n = x.shape[0]
    assert res.n_used == n and math.isfinite(res.value)
    assert -1e-9 <= res.value <= math.log2(n) + 1e-9


@SETTINGS
@given(x=_valid_x, sigma=st.floats(0.01, 100.0))
def test_matrix_entry_entropy_within_0_and_2_log2_n(x: np.ndarray, sigma: float) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DseWarning)
        (res,) = estimate_entropy(x, methods="matrix-entry", sigma=sigma, device="cpu", max_n=0)
    assert math.isfinite(res.value) and -1e-9 <= res.value <= 2 * math.log2(x.shape[0]) + 1e-9


@SETTINGS
@given(x=_valid_x, data=st.data())
def test_dsmi_is_finite(x: np.ndarray, data: st.DataObject) -> None:
    n = x.shape[0]
    y = data.draw(hnp.arrays(np.int64, n, elements=st.integers(-2, 2)))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DseWarning)
        (res,) = estimate_mutual_information(x, y, methods="dsmi", sigma=1.0, device="cpu", max_n=0, repetitions=2)
    assert math.isfinite(res.value)
    assert abs(res.value) <= math.log2(n) + 1e-9


# ---- anything else: a DseError, never another exception ----------------------------------------------------

_any_x = st.one_of(
    _arrays(min_dims=0, max_dims=3),
    hnp.arrays(np.float64, hnp.array_shapes(min_dims=2, max_dims=2, max_side=6),
               elements=st.floats(allow_nan=True, allow_infinity=True)),  # huge and tiny magnitudes
    st.sampled_from([np.array([["a", "b"], ["c", "d"]]), np.ones((3, 2), dtype=np.complex128),
                     np.array([[1, None], [2, 3]], dtype=object), np.zeros((0, 3)), np.zeros((4, 0))]),
)
_any_sigma = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(-3, 3),
                       st.sampled_from(["median", "sqrt-d", "", "wide", "1e-200", "-0"]))
_any_int = st.one_of(st.integers(-3, 12), st.floats(allow_nan=True), st.sampled_from([True, "3", None]))


@SETTINGS
@given(x=_any_x, sigma=_any_sigma, t=_any_int, k=_any_int, bins=_any_int, max_n=_any_int,
       method=st.sampled_from(["dse", "ase-knn", "matrix-entry", "cse", "knn"]),
       dtype=st.sampled_from(["float64", "float32"]), drop=st.booleans())
def test_entropy_raises_only_dse_errors(x, sigma, t, k, bins, max_n, method, dtype, drop) -> None:
    kwargs = {"sigma": sigma, "t": t, "k": k, "bins": bins, "max_n": max_n, "dtype": dtype, "drop_nonfinite": drop}
    kwargs = {key: v for key, v in kwargs.items() if v is not None}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DseWarning)
            (res,) = estimate_entropy(x, methods=method, device="cpu", **kwargs)
    except DseError as exc:
        text = str(exc)
        assert text and "\n" not in text  # one line
        return
    assert math.isfinite(res.value) or method == "knn" and res.value == -math.inf


@SETTINGS
@given(x=_valid_x, data=st.data(), method=st.sampled_from(["dsmi", "csmi", "ksg"]),
       ref_kind=st.sampled_from(["auto", "discrete", "continuous", "bogus"]), n_clusters=_any_int)
def test_mutual_information_raises_only_dse_errors(x, data, method, ref_kind, n_clusters) -> None:
    n = x.shape[0]
    y = data.draw(st.one_of(
        hnp.arrays(st.sampled_from([np.int64, np.float64, np.float32, np.bool_]),
                   st.sampled_from([(n,), (n, 1), (n, 2), (n + 1,), (n, 0), (n, 2, 2)])),
        st.just(np.array(["a", "b"] * n)[:n]),
        st.just(np.ones(n, dtype=np.complex128)),
    ))
    kwargs = {"ref_kind": ref_kind, "n_clusters": n_clusters, "repetitions": 2, "sigma": 1.0, "max_n": 0}
    kwargs = {key: v for key, v in kwargs.items() if v is not None}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DseWarning)
            (res,) = estimate_mutual_information(x, y, methods=method, device="cpu", **kwargs)
    except DseError as exc:
        assert str(exc) and "\n" not in str(exc)
        return
    assert math.isfinite(res.value)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_nonfinite_values_never_reach_the_kernel(bad: float) -> None:
    x = np.random.default_rng(0).normal(size=(10, 2))
    x[4, 1] = bad
    with pytest.raises(DseError, match="first at row 4"):
        estimate_entropy(x, methods="dse", device="cpu")
