"""Readers: every input we can construct gives the plain float64 C-order array's values, or one precise error.

The truth for a valid input is the same numbers written as a plain C-order float64 ``.npy``
(or as the NumPy array itself); for an invalid one, the exact :class:`InputError` message.
"""

from __future__ import annotations

import io
import os
import pickle
import re
import subprocess
import sys
import threading
import warnings
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import dsecli
from dsecli.errors import DseWarning, InputError
from dsecli.inputs.arrays import as_float_matrix, native_numbers
from dsecli.inputs.readers import EXTENSIONS, list_arrays, load_array, open_array
from dsecli.inputs.readers.text import parse_table

SETTINGS = settings(max_examples=int(os.environ.get("DSECLI_HYPOTHESIS_EXAMPLES", "30")), deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])

KINDS = ["f2", "f4", "f8", "i1", "i2", "i4", "i8", "u1", "u2", "u4", "u8", "b1"]
TORCH_KINDS = ["f2", "f4", "f8", "i1", "i2", "i4", "i8", "u1", "b1"]  # dtypes every supported torch has


def _layout(arr: np.ndarray, layout: str) -> np.ndarray:
    if layout == "F":
        return np.asfortranarray(arr)
    if layout == "strided":  # a non-contiguous view: every other row and column of a larger array
        big = np.zeros((arr.shape[0] * 2, arr.shape[1] * 2), dtype=arr.dtype)
        big[::2, ::2] = arr
        view = big[::2, ::2]
        assert not view.flags.c_contiguous or arr.size <= 1
        return view
    return np.ascontiguousarray(arr)


@st.composite
def _matrices(draw: st.DrawFn, kinds: list[str] = KINDS) -> np.ndarray:
    kind = draw(st.sampled_from(kinds))
    order = draw(st.sampled_from(["<", ">"])) if kind not in ("i1", "u1", "b1") else "|"
    dtype = np.dtype(order + kind if order != "|" else kind)
    shape = draw(st.tuples(st.integers(2, 6), st.integers(1, 4)))
    elements = (st.floats(-1000, 1000, width=16 if kind == "f2" else 32 if kind == "f4" else 64)
                if kind.startswith("f") else None)
    arr = draw(hnp.arrays(dtype.newbyteorder("=") if order != "|" else dtype, shape, elements=elements))
    return _layout(arr.astype(dtype), draw(st.sampled_from(["C", "F", "strided"])))


def _write(path: Path, arr: np.ndarray, fmt: str) -> str:
    if fmt == "npy":
        np.save(path, arr)
        return str(path)
    if fmt == "npz":
        np.savez(path, emb=arr, other=np.zeros(2))
        return f"{path}:emb"
    if fmt == "h5":
        import h5py

        with h5py.File(path, "w") as f:
            f.create_dataset("grp/emb", data=arr, dtype=arr.dtype)  # stored in the array's own byte order
        return f"{path}:/grp/emb"
    import torch

    torch.save({"emb": torch.from_numpy(np.ascontiguousarray(arr.astype(arr.dtype.newbyteorder("="))))}, path)
    return f"{path}:emb"


def _plain(arr: np.ndarray) -> np.ndarray:
    """The truth: the same numbers as a C-order float64 array in the machine's byte order."""
    return np.ascontiguousarray(arr.astype(np.float64))


def _plain_matrix(arr: np.ndarray) -> np.ndarray:
    """What as_float_matrix gives: the plain values, except a 64-bit integer column that float64 cannot hold exactly,
    which is centred on its lower median first (computed here with Python integers)."""
    out = _plain(arr)
    if arr.dtype.kind in "iu" and arr.dtype.itemsize == 8:
        for j in range(arr.shape[1]):
            col = [int(v) for v in arr[:, j]]
            if all(abs(v) <= 2**53 for v in col) or all(float(v) == v for v in col):
                continue
            med = sorted(col)[(len(col) - 1) // 2]
            out[:, j] = [float(v - med) for v in col]
    return out


@SETTINGS
@given(arr=_matrices(), fmt=st.sampled_from(["npy", "npz", "h5"]))
def test_byte_order_dtype_layout_give_the_plain_values(arr: np.ndarray, fmt: str, tmp_path: Path) -> None:
    spec = _write(tmp_path / f"a.{fmt}", arr, fmt)
    src = open_array(spec)
    got = src.read()
    assert got.dtype.isnative and got.dtype == arr.dtype.newbyteorder("=") and src.dtype == got.dtype
    matrix, _ = as_float_matrix(got)
    np.testing.assert_array_equal(matrix.astype(np.float64), _plain_matrix(arr))
    rows = np.array([0, arr.shape[0] - 1])
    np.testing.assert_array_equal(src.read(rows).astype(np.float64), _plain(arr)[rows])


@SETTINGS
@given(arr=_matrices(TORCH_KINDS))
def test_torch_dtypes_give_the_plain_values(arr: np.ndarray, tmp_path: Path) -> None:
    got = open_array(_write(tmp_path / "a.pt", arr, "pt")).read()
    np.testing.assert_array_equal(got.astype(np.float64), _plain(arr))


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(arr=_matrices(["f2", "f4", "i2", "u1", "b1"]))
def test_public_dse_of_any_layout_equals_the_plain_npy(arr: np.ndarray, tmp_path: Path) -> None:
    path = tmp_path / "odd.npy"
    np.save(path, arr)
    np.save(tmp_path / "plain.npy", _plain(arr))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DseWarning)
        got = dsecli.diffusion_spectral_entropy(open_array(str(path)), device="cpu", max_n=0, sigma=1.0)
        want = dsecli.diffusion_spectral_entropy(open_array(str(tmp_path / "plain.npy")), device="cpu", max_n=0,
                                                 sigma=1.0)
    assert got.value == want.value


@pytest.mark.skipif(np.dtype(np.longdouble).itemsize <= 8, reason="longdouble is float64 on this platform")
def test_longdouble_is_narrowed_to_float64_when_in_range(tmp_path: Path) -> None:
    x = np.random.default_rng(0).normal(size=(6, 2))
    np.save(tmp_path / "wide.npy", x.astype(np.longdouble))
    matrix, _ = as_float_matrix(load_array(str(tmp_path / "wide.npy")))
    assert matrix.dtype == np.float64
    np.testing.assert_array_equal(matrix, x)
    big = x.astype(np.longdouble)
    big[2, 1] = np.longdouble("1e400")
    with pytest.raises(InputError, match=re.escape(
            "w.npy: `embeddings` must fit in float64 (|x| <= 1.8e+308); got dtype float128 with |values| up to "
            "1e+400: rescale the data")):
        native_numbers(big, where="w.npy")


# ---- .npy, .npz and standard input ----------------------------------------------------------------------------


def test_zero_d_npy_is_one_line(tmp_path: Path) -> None:
    np.save(tmp_path / "s.npy", np.array(3.0))
    with pytest.raises(InputError, match=re.escape(
            f"{tmp_path}/s.npy: holds a 0-d array (a single value, shape ()); expected one row per sample")):
        open_array(str(tmp_path / "s.npy"))
    assert list_arrays(str(tmp_path / "s.npy")) == [{"key": None, "shape": [], "dtype": "float64"}]


def test_directory_hints_batch(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=re.escape(
            f"{tmp_path}: is a directory, not a file; it holds no array files ({', '.join(EXTENSIONS)})")):
        open_array(str(tmp_path))


def _stdin(monkeypatch: pytest.MonkeyPatch, data: bytes) -> None:
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(data)))


def test_stdin_random_bytes_get_our_message(monkeypatch: pytest.MonkeyPatch) -> None:
    _stdin(monkeypatch, np.random.default_rng(0).bytes(300))
    with pytest.raises(InputError, match=re.escape(
            "-: standard input is not .npy data (no NumPy header); pipe the bytes of a file written by np.save")):
        open_array("-")


def test_stdin_big_endian_npy_and_npz(monkeypatch: pytest.MonkeyPatch) -> None:
    x = np.random.default_rng(0).normal(size=(5, 2))
    buf = io.BytesIO()
    np.save(buf, x.astype(">f8"))
    _stdin(monkeypatch, buf.getvalue())
    np.testing.assert_array_equal(load_array("-"), x)
    buf = io.BytesIO()
    np.savez(buf, emb=x)
    _stdin(monkeypatch, buf.getvalue())
    np.testing.assert_array_equal(load_array("-"), x)


def _through_fifo(tmp_path: Path, name: str, payload: bytes, **kwargs) -> np.ndarray:
    """Open a FIFO while a thread writes ``payload`` once; fails (never hangs) if the reader opens it twice."""
    fifo = tmp_path / name
    os.mkfifo(fifo)

    def write() -> None:
        with open(fifo, "wb") as fh:
            fh.write(payload)

    writer = threading.Thread(target=write, daemon=True)
    writer.start()
    result: dict[str, object] = {}

    def read() -> None:
        try:
            result["value"] = load_array(str(fifo), **kwargs)
        except BaseException as exc:  # noqa: BLE001 - handed to the test thread
            result["error"] = exc

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    reader.join(timeout=20)
    assert not reader.is_alive(), "the FIFO reader hangs (opened twice?)"
    if "error" in result:
        raise result["error"]  # type: ignore[misc]
    return result["value"]  # type: ignore[return-value]


@pytest.mark.parametrize("fmt", ["npy", "npz", "h5", "pt", "csv"])
def test_fifo_is_read_once(fmt: str, tmp_path: Path) -> None:
    x = np.random.default_rng(0).normal(size=(6, 3))
    source = tmp_path / f"src.{fmt}"
    if fmt == "csv":
        source.write_text("\n".join(",".join(repr(float(v)) for v in row) for row in x) + "\n")
    else:
        _write(source, x.astype(">f8") if fmt != "pt" else x, fmt)
    spec_key = {"npz": "emb", "h5": "/grp/emb", "pt": "emb"}.get(fmt)
    name = f"fifo.{fmt}"
    got = _through_fifo(tmp_path, name, source.read_bytes()) if spec_key is None else None
    if spec_key is not None:
        fifo = tmp_path / name
        os.mkfifo(fifo)
        threading.Thread(target=lambda: fifo.write_bytes(source.read_bytes()), daemon=True).start()
        got = load_array(f"{fifo}:{spec_key}")
    np.testing.assert_array_equal(got, x)


# ---- HDF5 -----------------------------------------------------------------------------------------------------


def _h5(tmp_path: Path, build) -> str:
    import h5py

    path = tmp_path / "d.h5"
    with h5py.File(path, "w", libver="latest") as f:
        build(f)
    return str(path)


@pytest.mark.parametrize(("build", "message"), [
    (lambda f: f.create_dataset("x", shape=(8, 2), dtype="f8"),
     "was created but never written (no data stored), so HDF5 would read every value as the fill value (0.0); write "
     "the data first"),
    (lambda f: f.create_dataset("x", shape=(8, 2), dtype="f4", chunks=(2, 2)),
     "was created but never written (no data stored), so HDF5 would read every value as the fill value (0.0); write "
     "the data first"),
    (lambda f: f.create_dataset("x", shape=(8, 2), dtype="f8", fillvalue=7.5),
     "was created but never written (no data stored), so HDF5 would read every value as the fill value (7.5); write "
     "the data first"),
    (lambda f: f.create_dataset("x", shape=(8, 2), dtype="f8", chunks=(2, 2)).__setitem__(slice(0, 4), 1.0),
     "was only partly written (2 of 4 chunks never written), so HDF5 would read those values as the fill value (0.0); "
     "write the data first"),
    (lambda f: f.create_dataset("x", data=3.0), "is a scalar dataset (one value, shape ()); expected one row per sample"),
    (lambda f: f.create_dataset("x", data=__import__("h5py").Empty("f8")),
     "has an empty (null) dataspace: no shape and no values"),
], ids=["contiguous", "chunked", "fillvalue", "partly-chunked", "scalar", "null-dataspace"])
def test_hdf5_datasets_that_hold_no_data(build, message: str, tmp_path: Path) -> None:
    path = _h5(tmp_path, build)
    with pytest.raises(InputError, match=re.escape(f"{path}:/x: {message}")):
        load_array(f"{path}:/x")  # an unwritten dataset opens (its shape is known) but never reads


def test_hdf5_zero_rows_is_not_called_unwritten(tmp_path: Path) -> None:
    path = _h5(tmp_path, lambda f: f.create_dataset("x", shape=(0, 3), dtype="f8"))
    assert open_array(path).shape == (0, 3)


def test_hdf5_virtual_dataset(tmp_path: Path) -> None:
    import h5py

    x = np.random.default_rng(0).normal(size=(6, 2))
    with h5py.File(tmp_path / "src.h5", "w") as f:
        f["d"] = x.astype(">f8")
    layout = h5py.VirtualLayout(shape=(6, 2), dtype="f8")
    layout[:] = h5py.VirtualSource("src.h5", "d", shape=(6, 2))
    with h5py.File(tmp_path / "v.h5", "w", libver="latest") as f:
        f.create_virtual_dataset("v", layout, fillvalue=0)
    np.testing.assert_array_equal(load_array(str(tmp_path / "v.h5")), x)  # the source is found next to it
    os.remove(tmp_path / "src.h5")
    with pytest.raises(InputError, match=re.escape(
            f"{tmp_path}/v.h5:/v: is a virtual dataset whose source src.h5:d is missing, so HDF5 would read those rows "
            "as the fill value; put the source file next to it")):
        open_array(str(tmp_path / "v.h5"))


def test_hdf5_locked_by_a_writer_is_not_corrupt(tmp_path: Path) -> None:
    if os.environ.get("HDF5_USE_FILE_LOCKING", "").upper() == "FALSE":
        pytest.skip("HDF5 file locking is switched off in this environment")
    path = _h5(tmp_path, lambda f: f.create_dataset("x", data=np.ones((4, 2))))
    holder = subprocess.Popen(
        [sys.executable, "-c", "import h5py, sys, time; f = h5py.File(sys.argv[1], 'a'); print('open', flush=True); "
         "time.sleep(60)", path], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "open"
        with pytest.raises(InputError, match=re.escape(
                f"{path}: the file is locked by a program that has it open for writing (HDF5 file locking); wait "
                "until that program closes it")):
            open_array(path)
    finally:
        holder.kill()
        holder.wait()
        if holder.stdout is not None:
            holder.stdout.close()


def test_hdf5_left_open_by_a_crashed_writer(tmp_path: Path) -> None:
    path = tmp_path / "crash.h5"
    subprocess.run([sys.executable, "-c", "import h5py, os, sys; f = h5py.File(sys.argv[1], 'w', libver='latest'); "
                    "f['x'] = [[1.0, 2.0], [3.0, 4.0]]; f.flush(); os._exit(0)", str(path)], check=True)
    with pytest.raises(InputError, match=re.escape(
            f"{path}: the file is marked as open for writing, by a program still writing it or one that stopped "
            "without closing it; when no program has it open, h5clear -s clears the mark")):
        open_array(str(path))


# ---- torch ----------------------------------------------------------------------------------------------------


def test_torch_low_precision_floats_are_exact_in_float32(tmp_path: Path) -> None:
    import torch

    x = torch.randn(6, 3, generator=torch.Generator().manual_seed(0))
    for dtype in (torch.bfloat16, getattr(torch, "float8_e4m3fn", torch.bfloat16)):
        t = x.to(dtype)
        torch.save(t, tmp_path / "low.pt")
        got = load_array(str(tmp_path / "low.pt"))
        assert got.dtype == np.float32
        np.testing.assert_array_equal(got, t.float().numpy())


def test_torch_sparse_and_complex(tmp_path: Path) -> None:
    import torch

    torch.save(torch.eye(3).to_sparse(), tmp_path / "sp.pt")
    with pytest.raises(InputError, match=re.escape(
            f"{tmp_path}/sp.pt: holds a sparse_coo tensor; save it dense (t.to_dense()) with torch.save")):
        open_array(str(tmp_path / "sp.pt"))
    torch.save({"c": torch.ones(3, 2, dtype=torch.complex64)}, tmp_path / "c.pt")
    with pytest.raises(InputError, match=re.escape(
            "c.pt:c: `embeddings` must be real numbers; got dtype complex64 (complex numbers)")):
        dsecli.diffusion_spectral_entropy(open_array(f"{tmp_path}/c.pt:c"), device="cpu")


class _CallsAFunction:
    """Pickles as a call of os.getcwd (harmless, and never run: weights-only loading refuses it)."""

    def __reduce__(self):
        return (os.getcwd, ())


REFUSED = ("contains pickled Python code/objects ({}) that weights_only loading refuses, so it was not loaded; save "
           "plain tensors (or a dict of tensors) with torch.save")


@pytest.mark.parametrize(("obj", "name"), [
    (lambda: {"x": _CallsAFunction()}, os.getcwd.__module__ + ".getcwd"),
    (lambda: {"m": __import__("torch").nn.Linear(2, 2)}, "torch.nn.modules.linear.Linear"),
], ids=["function-call", "module"])
def test_torch_pickled_code_is_named_not_called_corrupt(obj, name: str, tmp_path: Path) -> None:
    import torch

    torch.save(obj(), tmp_path / "p.pt")
    with pytest.raises(InputError, match=re.escape(f"{tmp_path}/p.pt: " + REFUSED.format(name))):
        open_array(str(tmp_path / "p.pt"))


# torch 2.2/2.3 and 2.13 word the refusal differently; the cause is read from the file's pickle either way
@pytest.mark.parametrize("text", [
    "Weights only load failed. Re-running `torch.load` with `weights_only` set to `False` will likely succeed, but it "
    "can result in arbitrary code execution.Do it only if you get the file from a trusted source. WeightsUnpickler "
    "error: Unsupported class torch.nn.modules.linear.Linear",
    "Weights only load failed. In PyTorch 2.6, ...\n\nTrying to load unsupported GLOBAL torch.nn.modules.linear.Linear "
    "whose module torch.nn.modules.linear is blocked.",
    "something torch has never said",
], ids=["torch-2.2", "torch-2.13", "unknown-wording"])
def test_torch_refusal_is_found_whatever_torch_says(text: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    torch.save({"m": torch.nn.Linear(2, 2)}, tmp_path / "m.pt")

    def refuse(*args, **kwargs):
        raise pickle.UnpicklingError(text)

    monkeypatch.setattr(torch, "load", refuse)
    with pytest.raises(InputError, match=re.escape(REFUSED.format("torch.nn.modules.linear.Linear"))):
        open_array(str(tmp_path / "m.pt"))


@pytest.mark.parametrize("torch_list", [True, False], ids=["torch-allowlist", "own-pattern"])
def test_torch_corrupt_pickle_is_corrupt(torch_list: bool, tmp_path: Path) -> None:
    import torch

    import dsecli.inputs.readers.pt

    torch.save({"x": torch.ones(2, 2), "p": torch.nn.Parameter(torch.ones(2))}, tmp_path / "ok.pt")
    torch.save({"m": torch.nn.Linear(2, 2)}, tmp_path / "m.pt")

    def broken(*args, **kwargs):
        raise pickle.UnpicklingError("Weights only load failed. WeightsUnpickler error: Unsupported operand 118")

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(torch, "load", broken)
        if not torch_list:  # torch's private allowlist gone: the tensor globals still pass our own pattern
            mp.setattr(dsecli.inputs.readers.pt, "_allowed_globals", lambda: set())
        with pytest.raises(InputError, match=re.escape(REFUSED.format("torch.nn.modules.linear.Linear"))):
            open_array(str(tmp_path / "m.pt"))
        with pytest.raises(InputError, match=re.escape(
                f"{tmp_path}/ok.pt: corrupt or truncated .pt file (Weights only load failed.")):
            open_array(str(tmp_path / "ok.pt"))


# ---- text tables ----------------------------------------------------------------------------------------------

X = np.array([[1.5, -2.0], [3.25, 4.0], [0.0, 1e-3], [-7.0, 0.5]])
CSV = "\n".join(",".join(repr(float(v)) for v in row) for row in X) + "\n"


@pytest.mark.parametrize(("raw", "header"), [
    (CSV.encode(), None),
    (CSV.encode("utf-8-sig"), None),  # Excel's "CSV UTF-8": a byte-order mark, no header
    (CSV.encode("utf-16"), None),
    (("a,b\n" + CSV).encode("utf-8-sig"), None),
    (CSV.replace("\n", ",\n").encode(), None),  # a trailing comma on every line
    (CSV.replace("\n", "\r\n").encode(), None),
    (("# written by hand\n\n" + CSV + "\n\n").encode(), None),
    (("x,y\n" + CSV).encode(), True),
    (CSV.encode(), False),
], ids=["plain", "bom", "utf-16", "bom-header", "trailing-comma", "crlf", "comments-blank", "header", "no-header"])
def test_text_tables_give_the_plain_values(raw: bytes, header: bool | None) -> None:
    got = parse_table("t.csv", raw, header=header)
    assert got.dtype == np.float64
    np.testing.assert_array_equal(got, X)


def test_float_text_is_never_read_as_truncated_integers() -> None:
    # numpy 1.x loadtxt(dtype=int64) truncates "0.5" to 0 with only a warning: the type is decided by parsing
    got = parse_table("f.csv", b"0.5,1.5\n2.5,3.5\n")
    assert got.dtype == np.float64
    np.testing.assert_array_equal(got, [[0.5, 1.5], [2.5, 3.5]])
    ints = parse_table("i.csv", b"1\n-2\n+3\n")
    assert ints.dtype == np.int64 and ints.tolist() == [[1], [-2], [3]]
    mixed = parse_table("m.csv", b"1,2\n3,4.0\n")
    assert mixed.dtype == np.float64
    huge = parse_table("h.csv", b"1\n99999999999999999999\n")  # beyond int64: float64
    assert huge.dtype == np.float64 and huge[1, 0] == 1e20


def test_string_labels_never_lose_a_row_to_the_header_rule() -> None:
    np.testing.assert_array_equal(parse_table("l.csv", b"cat\ndog\ncat\n"), ["cat", "dog", "cat"])
    np.testing.assert_array_equal(parse_table("l.csv", b"label\ncat\ndog\n"), ["label", "cat", "dog"])
    np.testing.assert_array_equal(parse_table("l.csv", b"label\ncat\ndog\n", header=True), ["cat", "dog"])
    np.testing.assert_array_equal(parse_table("l.csv", b'"a, b"\nc\n'), ["a, b", "c"])


def test_txt_splits_at_commas_or_whitespace() -> None:
    np.testing.assert_array_equal(parse_table("w.txt", b"1.5  2\n3\t4\n"), [[1.5, 2.0], [3.0, 4.0]])
    np.testing.assert_array_equal(parse_table("c.txt", b"1.5,2\n3, 4\n"), [[1.5, 2.0], [3.0, 4.0]])


@pytest.mark.parametrize(("raw", "message"), [
    (b"1,2\n3\n", "line 2 has 1 field(s) but line 1 has 2; every line must have the same number of fields"),
    (b"1,2\n3,,\n", "line 2 has 3 field(s) but line 1 has 2; every line must have the same number of fields"),
    (b"1,2\n,4\n", "line 2, field 1 is empty (a missing value?); fill it in or remove the line"),
    (b"a,b\n", "holds only a header line, no data"),
    (b"# nothing\n\n", "file is empty (no data lines)"),
    (b"\xff\x00\x81binary", "not a UTF-8 text file (is it a binary format with a text extension?)"),
], ids=["ragged", "extra-field", "empty-field", "header-only", "comments-only", "binary"])
def test_text_errors(raw: bytes, message: str) -> None:
    header = True if raw == b"a,b\n" else None
    with pytest.raises(InputError, match=re.escape(f"t.csv: {message}")):
        parse_table("t.csv", raw, header=header)


@SETTINGS
@given(table=hnp.arrays(np.float64, st.tuples(st.integers(1, 6), st.integers(1, 4)),
                        elements=st.floats(allow_nan=True, allow_infinity=True)),
       fmt=st.sampled_from(["csv", "tsv", "txt"]), bom=st.booleans(), trailing=st.booleans(),
       header=st.booleans())
def test_header_rule_never_swallows_a_numeric_row(table: np.ndarray, fmt: str, bom: bool, trailing: bool,
                                                   header: bool) -> None:
    sep = {"csv": ",", "tsv": "\t", "txt": " "}[fmt]
    end = sep if trailing and fmt != "txt" else ""
    lines = [sep.join(f"col {j}" if fmt != "txt" else f"c{j}" for j in range(table.shape[1])) + end] if header else []
    lines += [sep.join(repr(float(v)) for v in row) + end for row in table]
    got = parse_table(f"t.{fmt}", ("\n".join(lines) + "\n").encode("utf-8-sig" if bom else "utf-8"))
    assert got.shape == table.shape  # no row lost, no header kept
    np.testing.assert_array_equal(got, table)


# ---- any other array: the one error its class gets -------------------------------------------------------------


def _expected_error(arr: np.ndarray, label: str) -> str:
    """The message each class of invalid array gets, written from the rules (not from our output)."""
    kind = {"c": "complex numbers", "U": "strings", "M": "datetimes"}.get(arr.dtype.kind)
    if arr.ndim == 0:
        return f"{label}: holds a 0-d array (a single value, shape ()); expected one row per sample"
    if arr.dtype.kind == "c":
        return (f"{label}: `embeddings` must be real numbers; got dtype {arr.dtype.newbyteorder('=')} ({kind}): take "
                "x.real or abs(x) first")
    if kind:
        return f"{label}: `embeddings` must be numeric; got dtype {arr.dtype.newbyteorder('=')} ({kind})"
    if arr.ndim == 1:
        n = arr.shape[0]
        return (f"{label}: `embeddings` must be 2-D (N rows x D features); got 1-D shape ({n},): use x.reshape(-1, 1) "
                f"for {n} points of one feature, or x.reshape(1, -1) for one point")
    if arr.shape[0] == 0:
        return f"{label}: `embeddings` must have at least 2 rows; got N = 0 (shape {arr.shape})"
    if arr.shape[1] == 0:
        return f"{label}: `embeddings` must have at least 1 feature (column); got D = 0 (shape {arr.shape})"
    return f"{label}: `embeddings` must have at least 2 rows; got N = {arr.shape[0]}"


_invalid = st.one_of(
    hnp.arrays(st.sampled_from([np.dtype("<c16"), np.dtype(">c8"), np.dtype("<U3"), np.dtype("M8[s]")]),
               st.tuples(st.integers(2, 5), st.integers(1, 3))),
    hnp.arrays(st.sampled_from([np.dtype("<f8"), np.dtype(">f4"), np.dtype("i2")]),
               st.sampled_from([(), (0,), (1,), (5,), (0, 3), (4, 0), (1, 3)]),
               elements=st.integers(-100, 100)),  # finite: NaN/Inf have their own message, tested elsewhere
)


@SETTINGS
@given(arr=_invalid, fmt=st.sampled_from(["npy", "h5"]))
def test_invalid_arrays_get_their_class_message(arr: np.ndarray, fmt: str, tmp_path: Path) -> None:
    if fmt == "h5" and (arr.dtype.kind in "UM" or arr.ndim == 0):
        return  # HDF5 stores no datetimes, strings are decoded labels, scalars have their own test
    spec = _write(tmp_path / f"a.{fmt}", arr, fmt)  # the label in messages is the spec: file, or file:/dataset
    with pytest.raises(InputError) as info:
        dsecli.diffusion_spectral_entropy(open_array(spec), device="cpu", max_n=0)
    assert str(info.value) == _expected_error(arr, spec)
