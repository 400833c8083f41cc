"""Tensors as they come out of a model, and numpy memmaps, accepted by every public function.

Truth: the same numbers given as a plain float64 (or float32) numpy array; results must be
equal exactly (the same rows reach the same computation), and nothing may enter the autograd graph.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from conftest import CUDA

import dsecli
from dsecli.device import to_tensor
from dsecli.errors import InputError
from dsecli.inputs import arrays, findings
from dsecli.inputs.prepare import prepare_rows

torch = pytest.importorskip("torch")

N, D = 40, 5
TINY_MINE = {"epochs": 2, "batch_size": 16, "patience": 0, "hidden_units": 8}


def _x(dtype: Any = np.float64) -> np.ndarray:
    return np.random.default_rng(3).normal(size=(N, D)).astype(dtype)


def _y() -> np.ndarray:
    return np.arange(N) % 4


# every public function that takes embeddings, with small settings; (name, call(x) -> value)
ENTROPY_CALLS: list[tuple[str, Callable[[Any], float]]] = [
    ("dse", lambda x: dsecli.diffusion_spectral_entropy(x, sigma=2.0).value),
    ("ase", lambda x: dsecli.adjacency_spectral_entropy(x, sigma=2.0).value),
    ("matrix-entry", lambda x: dsecli.matrix_entry_entropy(x, sigma=2.0).value),
    ("binned", lambda x: dsecli.binned_shannon_entropy(x).value),
    ("kl", lambda x: dsecli.kozachenko_leonenko_entropy(x).value),
    ("kl-weighted", lambda x: dsecli.weighted_kl_entropy(x).value),
    ("renyi-gram", lambda x: dsecli.renyi_gram_entropy(x).value),
    ("vne-cov", lambda x: dsecli.covariance_von_neumann_entropy(x).value),
    ("rankme", lambda x: dsecli.rankme_entropy(x).value),
    ("estimate", lambda x: dsecli.estimate_entropy(x, methods=["dse"], sigma=2.0)[0].value),
    ("spectrum", lambda x: dsecli.spectrum_scan(x, t=[1, 2], sigma=2.0).to_dict()["dse"][1]),
    ("sanity", lambda x: dsecli.sanity_report(x).to_dict()["n_used"]),
]
MI_CALLS: list[tuple[str, Callable[[Any, Any], float]]] = [
    ("dsmi", lambda x, y: dsecli.diffusion_spectral_mutual_information(x, y, sigma=2.0).value),
    ("binned-mi", lambda x, y: dsecli.binned_shannon_mutual_information(x, y).value),
    ("ksg", lambda x, y: dsecli.ksg_mutual_information(x, y).value),
    ("mine", lambda x, y: dsecli.mine_mutual_information(x, y, **TINY_MINE).value),
    ("estimate-mi", lambda x, y: dsecli.estimate_mutual_information(x, y, methods=["dsmi"], sigma=2.0)[0].value),
]


def _same(a: Any, b: Any) -> None:
    if isinstance(a, float) and np.isnan(a):
        assert np.isnan(b)
    else:
        assert a == b


@pytest.mark.parametrize("name,call", ENTROPY_CALLS, ids=[c[0] for c in ENTROPY_CALLS])
def test_requires_grad_tensor_is_detached_and_gives_the_array_value(name: str, call: Callable[[Any], Any]) -> None:
    x = _x()
    t = torch.tensor(x, requires_grad=True)
    _same(call(t), call(x))
    assert t.grad is None and t.grad_fn is None  # nothing flowed back into the leaf


@pytest.mark.parametrize("name,call", MI_CALLS, ids=[c[0] for c in MI_CALLS])
def test_requires_grad_tensors_for_mutual_information(name: str, call: Callable[[Any, Any], Any]) -> None:
    x, y = _x(), _y()
    t = torch.tensor(x, requires_grad=True)
    # a non-leaf output of a layer: what a forward pass hands over
    out = t * 1.0
    _same(call(out, torch.as_tensor(y)), call(x, y))
    assert t.grad is None


def test_nothing_is_recorded_in_the_autograd_graph() -> None:
    t = torch.tensor(_x(), requires_grad=True)
    out = t * 2.0  # has a grad_fn
    rows = prepare_rows(out, max_n=None, seed=0)
    assert isinstance(rows.data, np.ndarray)
    xt = to_tensor(out, device=torch.device("cpu"), dtype=torch.float64)
    assert xt.grad_fn is None and not xt.requires_grad
    dsecli.diffusion_spectral_entropy(out, sigma=2.0)
    out.sum().backward()  # the graph is the caller's as before: only their own ops in it
    assert torch.equal(t.grad, torch.full_like(t, 2.0))


@pytest.mark.parametrize("tdtype", ["float16", "bfloat16"])
def test_half_precision_is_widened_to_float64(tdtype: str) -> None:
    t = torch.tensor(_x()).to(getattr(torch, tdtype))
    widened = t.to(torch.float64).numpy()  # exact: every float16/bfloat16 is a float64
    rows = prepare_rows(t, max_n=None, seed=0)
    assert rows.data.dtype == np.float64
    np.testing.assert_array_equal(rows.data, widened)
    assert dsecli.diffusion_spectral_entropy(t, sigma=2.0).value == dsecli.diffusion_spectral_entropy(
        widened, sigma=2.0).value


def test_float32_tensor_keeps_float32_and_shares_memory() -> None:
    t = torch.tensor(_x(np.float32))
    rows = prepare_rows(t, max_n=None, seed=0)
    assert rows.data.dtype == np.float32
    assert rows.data.ctypes.data == t.data_ptr()  # not copied
    assert dsecli.diffusion_spectral_entropy(t, sigma=2.0, dtype="float32").value == \
        dsecli.diffusion_spectral_entropy(_x(np.float32), sigma=2.0, dtype="float32").value


@pytest.mark.parametrize("view", ["transposed", "strided", "column-slice"])
def test_non_contiguous_views(view: str) -> None:
    base = torch.tensor(np.random.default_rng(5).normal(size=(2 * N, 2 * D)))
    t = {"transposed": base[:D, :N].T, "strided": base[::2, :D], "column-slice": base[:N, 1::2]}[view]
    assert not t.is_contiguous()
    plain = np.array(t.numpy(), order="C")
    assert dsecli.diffusion_spectral_entropy(t, sigma=2.0).value == dsecli.diffusion_spectral_entropy(
        plain, sigma=2.0).value
    assert dsecli.kozachenko_leonenko_entropy(t).value == dsecli.kozachenko_leonenko_entropy(plain).value


def test_subsampled_tensor_takes_the_rows_of_the_array() -> None:
    x = _x()
    rows_t = prepare_rows(torch.tensor(x), max_n=15, seed=4)
    rows_a = prepare_rows(x, max_n=15, seed=4)
    np.testing.assert_array_equal(rows_t.indices, rows_a.indices)
    np.testing.assert_array_equal(rows_t.data, rows_a.data)


@pytest.mark.parametrize("how", ["np.memmap", "np.load mmap_mode=r"])
def test_numpy_memmaps(tmp_path: Any, how: str) -> None:
    x = _x()
    if how == "np.memmap":
        mm = np.memmap(tmp_path / "x.dat", dtype=np.float64, mode="w+", shape=x.shape)
        mm[:] = x
        mm.flush()
        arr = np.memmap(tmp_path / "x.dat", dtype=np.float64, mode="r", shape=x.shape)
    else:
        np.save(tmp_path / "x.npy", x)
        arr = np.load(tmp_path / "x.npy", mmap_mode="r")
    before = (tmp_path / ("x.dat" if how == "np.memmap" else "x.npy")).read_bytes()
    assert dsecli.diffusion_spectral_entropy(arr, sigma=2.0).value == dsecli.diffusion_spectral_entropy(
        x, sigma=2.0).value
    assert dsecli.diffusion_spectral_entropy(arr, sigma=2.0, max_n=12).value == dsecli.diffusion_spectral_entropy(
        x, sigma=2.0, max_n=12).value
    assert dsecli.binned_shannon_entropy(arr).value == dsecli.binned_shannon_entropy(x).value
    assert (tmp_path / ("x.dat" if how == "np.memmap" else "x.npy")).read_bytes() == before  # never written


def test_to_tensor_passes_a_matching_tensor_through() -> None:
    t = torch.tensor(_x(), requires_grad=True)
    out = to_tensor(t, device=torch.device("cpu"), dtype=torch.float64)
    assert out.data_ptr() == t.data_ptr() and not out.requires_grad
    other = to_tensor(t, device=torch.device("cpu"), dtype=torch.float32)
    assert other.dtype == torch.float32 and other.data_ptr() != t.data_ptr()


# ---- the checks that run on a GPU tensor's device, exercised here with CPU tensors against numpy


def test_device_checks_agree_with_numpy() -> None:
    x = _x()
    x[:, 2] = 1.5  # a constant column
    x[9] = x[3]  # a repeat
    x[20] = x[3]
    x[11, 0] = np.nan
    x[30, 4] = np.inf
    t = torch.tensor(x)
    np.testing.assert_array_equal(arrays.nonfinite_rows(t), arrays.nonfinite_rows(x))
    finite = np.delete(x, [11, 30], axis=0)
    tf = torch.tensor(finite)
    np.testing.assert_array_equal(findings.constant_columns(tf), findings.constant_columns(finite))
    assert findings.duplicate_rows(tf) == findings.duplicate_rows(finite) == (2, N - 4, (3, 9))
    assert findings.data_quality_warnings(tf) == findings.data_quality_warnings(finite)
    signed = torch.tensor([[0.0, 1.0], [-0.0, 1.0], [2.0, 3.0]])
    assert findings.duplicate_rows(signed) == findings.duplicate_rows(signed.numpy()) == (1, 2, (0, 1))


@pytest.mark.parametrize("tdtype", ["float16", "bfloat16", "int32", "bool", "float32", "float64"])
def test_device_dtype_rules(tdtype: str) -> None:
    t = (torch.arange(12).reshape(6, 2) % 3).to(getattr(torch, tdtype))
    out, flat = arrays._device_float_matrix(t, where=None, name="embeddings", flatten=False, min_rows=2)
    assert flat is None
    assert out.dtype == (t.dtype if tdtype in ("float32", "float64") else torch.float64)
    np.testing.assert_array_equal(out.numpy(), t.to(torch.float64).numpy())


@pytest.mark.parametrize("shape,flatten", [((7,), False), ((3, 2, 2), False), ((0, 3), False), ((4, 0), False)])
def test_device_shape_messages_are_those_of_arrays(shape: tuple[int, ...], flatten: bool) -> None:
    arr = np.zeros(shape)
    with pytest.raises(InputError) as expected:
        arrays.as_float_matrix(arr, where="f.npy", flatten=flatten)
    with pytest.raises(InputError, match=re.escape(str(expected.value))):
        arrays._device_float_matrix(torch.zeros(shape), where="f.npy", name="embeddings", flatten=flatten,
                                    min_rows=2)


def test_tensor_errors_name_the_cause() -> None:
    with pytest.raises(InputError, match=re.escape("`embeddings` must be finite; got NaN or Inf in 1 of 40 rows, "
                                                   "first at row 7")):
        t = torch.tensor(_x())
        t[7, 1] = float("nan")
        dsecli.diffusion_spectral_entropy(t)
    with pytest.raises(InputError, match=re.escape("`embeddings` must be real numbers; got dtype complex128")):
        dsecli.diffusion_spectral_entropy(torch.tensor(_x()).to(torch.complex128))
    with pytest.raises(InputError, match=re.escape("`embeddings` must be real numbers; got dtype complex64 (complex "
                                                   "numbers): take x.real or abs(x) first")):
        arrays._device_float_matrix(torch.zeros(3, 2, dtype=torch.complex64), where=None, name="embeddings",
                                    flatten=False, min_rows=2)


def test_device_working_range_on_tensors() -> None:
    t = torch.full((4, 2), 1e19)
    with pytest.raises(InputError, match=re.escape("in float32 (squared distances overflow); got 1e+19")):
        arrays.check_working_range(t, torch.float32)
    arrays.check_working_range(t, torch.float64)


@pytest.mark.parametrize("name,call", ENTROPY_CALLS + MI_CALLS, ids=[c[0] for c in ENTROPY_CALLS + MI_CALLS])
def test_the_device_path_end_to_end_with_cpu_tensors(name: str, call: Callable[..., Any],
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """What a GPU tensor goes through (kept as a tensor, checked with torch ops), run here on CPU tensors."""
    x, y = _x(), _y()
    x[5] = x[2]  # a duplicate row: the data-quality count runs on the tensor too
    args = (x, y) if (name, call) in MI_CALLS else (x,)
    want = call(*args)
    monkeypatch.setattr(arrays, "stays_on_device", lambda t: True)
    t = torch.tensor(x, requires_grad=True)
    rows = prepare_rows(t, max_n=None, seed=0)
    assert torch.is_tensor(rows.data) and rows.data.data_ptr() == t.data_ptr()  # not copied
    assert any("repeats row 2" in w for w in rows.warnings)
    _same(call(*((t, torch.as_tensor(y)) if len(args) == 2 else (t,))), want)
    assert t.grad is None


# ---- on a GPU: the tensor stays there and gives the CPU value


@pytest.mark.cuda
@pytest.mark.skipif(not CUDA, reason="no CUDA device")
def test_cuda_tensor_stays_on_its_device_and_equals_cpu() -> None:
    x = _x()
    t = torch.tensor(x, device="cuda", requires_grad=True)
    rows = prepare_rows(t, max_n=None, seed=0, device="cuda")
    assert rows.data.device.type == "cuda"
    assert to_tensor(rows.data, device=rows.device, dtype=torch.float64).data_ptr() == rows.data.data_ptr()
    cpu = dsecli.diffusion_spectral_entropy(x, sigma=2.0, device="cpu").value
    gpu = dsecli.diffusion_spectral_entropy(t, sigma=2.0, device="cuda").value
    assert gpu == pytest.approx(cpu, rel=1e-10, abs=1e-12)
    sub = prepare_rows(t, max_n=15, seed=4, device="cuda")
    np.testing.assert_array_equal(sub.data.cpu().numpy(), prepare_rows(x, max_n=15, seed=4).data)
    for _name, call in ENTROPY_CALLS:
        call(t)
    for _name, mi_call in MI_CALLS:
        mi_call(t, torch.as_tensor(_y(), device="cuda"))
    assert t.grad is None
