"""safetensors, Parquet / Arrow IPC, zarr, nested ``.pt`` dicts and folders as inputs.

Each format is written here and read back through :func:`dsecli.open_array` (all rows and a
subsample) and through :func:`dsecli.diffusion_spectral_entropy`; the truth is the same data
saved as ``.npy``. Subsample reads are checked to touch only the row groups (Parquet) or chunks
(zarr) that hold the rows asked for. Every error is matched on its full text.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from dsecli import diffusion_spectral_entropy, diffusion_spectral_mutual_information, list_arrays, open_array
from dsecli.cli import app
from dsecli.errors import InputError
from dsecli.inputs.specs import expand_inputs

RNG = np.random.default_rng(7)
X = RNG.standard_normal((60, 5)).astype(np.float32)
Y = RNG.integers(0, 3, size=60)
NAMES = np.array(["cat", "dog", "eel"])[Y]
ROWS = np.array([0, 3, 4, 5, 31, 59])
runner = CliRunner()


def _dse_of(spec: str, npy: Path) -> tuple[float, float]:
    """DSE of a file spec and of the same data as .npy, on a 40-row seeded subsample (a lazy row read)."""
    np.save(npy, X)
    kw = {"sigma": 1.0, "max_n": 40, "seed": 3, "device": "cpu"}
    return (diffusion_spectral_entropy(open_array(spec), **kw).value,
            diffusion_spectral_entropy(open_array(str(npy)), **kw).value)


def _raises(spec: str, message: str) -> None:
    with pytest.raises(InputError, match=re.escape(message) + "$"):
        open_array(spec).read()


# ---- safetensors ------------------------------------------------------------------------------------------------


@pytest.fixture
def st_file(tmp_path: Path) -> Path:
    st = pytest.importorskip("safetensors.numpy")
    path = tmp_path / "a.safetensors"
    st.save_file({"emb": X, "label": Y}, str(path))
    return path


def test_safetensors_values_equal_npy(st_file: Path, tmp_path: Path) -> None:
    src = open_array(f"{st_file}:emb")
    assert (src.shape, src.dtype) == (X.shape, np.float32)
    np.testing.assert_array_equal(src.read(), X)
    np.testing.assert_array_equal(src.read(ROWS), X[ROWS])
    np.testing.assert_array_equal(open_array(f"{st_file}:label").read(ROWS), Y[ROWS])
    got, want = _dse_of(f"{st_file}:emb", tmp_path / "x.npy")
    assert got == want
    assert list_arrays(str(st_file)) == [{"key": "emb", "shape": [60, 5], "dtype": "float32"},
                                         {"key": "label", "shape": [60], "dtype": "int64"}]


def test_safetensors_bfloat16_widened_exactly(tmp_path: Path) -> None:
    pytest.importorskip("safetensors")
    import torch
    from safetensors.torch import save_file

    t = torch.tensor(X).to(torch.bfloat16)
    save_file({"h": t}, str(tmp_path / "b.safetensors"))
    src = open_array(str(tmp_path / "b.safetensors"))  # the only tensor: no key needed
    assert src.dtype == np.float32
    np.testing.assert_array_equal(src.read(ROWS), t.float().numpy()[ROWS])


def test_safetensors_errors(st_file: Path, tmp_path: Path) -> None:
    assert open_array(str(st_file)).key == "emb"  # the only tensor of 2 or more dimensions: no key needed
    _raises(f"{st_file}:emb2", f"{st_file}: tensor 'emb2' not found; did you mean 'emb'? tensors: emb, label")
    bad = tmp_path / "junk.safetensors"
    bad.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00not json at all!")
    with pytest.raises(InputError, match=re.escape(f"{bad}: corrupt or truncated safetensors file (")):
        open_array(str(bad))
    (tmp_path / "e.safetensors").write_bytes(b"")
    _raises(str(tmp_path / "e.safetensors"), f"{tmp_path / 'e.safetensors'}: file is empty")


# ---- Parquet and Arrow IPC (Feather) ----------------------------------------------------------------------------


def _table():
    pa = pytest.importorskip("pyarrow")
    return pa.table({
        "emb": pa.FixedSizeListArray.from_arrays(pa.array(X.ravel()), X.shape[1]),  # datasets' Sequence(length=5)
        "vec": pa.array([list(r) for r in X], type=pa.list_(pa.float32())),  # datasets' Sequence()
        "label": pa.array(NAMES.tolist()),
        "y": pa.array(Y),
        **{f"c{j}": pa.array(X[:, j]) for j in range(X.shape[1])},
    })


def _write(tmp_path: Path, ext: str, table=None, rows_per_group: int = 8) -> Path:
    table = _table() if table is None else table
    path = tmp_path / f"t{ext}"
    if ext == ".parquet":
        import pyarrow.parquet as pq

        pq.write_table(table, path, row_group_size=rows_per_group)
    else:
        import pyarrow.feather as feather

        feather.write_feather(table, str(path), chunksize=rows_per_group)
    return path


@pytest.mark.parametrize("ext", [".parquet", ".feather"])
def test_arrow_values_equal_npy(ext: str, tmp_path: Path) -> None:
    path = _write(tmp_path, ext)
    for key in ("emb", "vec", "c0,c1,c2,c3,c4"):
        src = open_array(f"{path}:{key}")
        assert src.shape == X.shape and src.dtype == np.float32, key
        np.testing.assert_array_equal(src.read(), X)
        np.testing.assert_array_equal(src.read(ROWS), X[ROWS])
    np.testing.assert_array_equal(open_array(f"{path}:c2,c0").read(ROWS), X[ROWS][:, [2, 0]])
    every = open_array(f"{path}:*")  # y (int64) and c0..c4 (float32): float64, in the table's order
    assert every.dtype == np.float64
    np.testing.assert_array_equal(every.read(ROWS), np.column_stack([Y, X]).astype(np.float64)[ROWS])
    np.testing.assert_array_equal(open_array(f"{path}:label").read(ROWS), NAMES[ROWS])
    np.testing.assert_array_equal(open_array(f"{path}:y").read(), Y)
    got, want = _dse_of(f"{path}:emb", tmp_path / "x.npy")
    assert got == want


@pytest.mark.parametrize("ext", [".parquet", ".feather"])
def test_arrow_label_column_is_a_reference(ext: str, tmp_path: Path) -> None:
    path = _write(tmp_path, ext)
    kw = {"sigma": 1.0, "device": "cpu", "max_n": None}
    for key, labels in (("label", NAMES), ("y", Y)):
        got = diffusion_spectral_mutual_information(open_array(f"{path}:emb"), open_array(f"{path}:{key}"), **kw)
        want = diffusion_spectral_mutual_information(X, labels, **kw)
        assert got.value == want.value, key


def test_parquet_subsample_reads_only_its_row_groups(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = _write(tmp_path, ".parquet", rows_per_group=10)  # groups of rows 0-9, 10-19, ..., 50-59
    import pyarrow.parquet as pq

    read: list[int] = []
    original = pq.ParquetFile.read_row_group

    def spy(self, i, *args, **kwargs):
        read.append(i)
        return original(self, i, *args, **kwargs)

    monkeypatch.setattr(pq.ParquetFile, "read_row_group", spy)
    src = open_array(f"{path}:emb")  # a fixed-size list: the width is in the schema, nothing read at open
    assert read == []
    np.testing.assert_array_equal(src.read(ROWS), X[ROWS])
    assert read == [0, 3, 5]


def test_arrow_info_lists_columns(tmp_path: Path) -> None:
    path = _write(tmp_path, ".parquet")
    listed = {a["key"]: (a["shape"], a["dtype"]) for a in list_arrays(str(path))}
    assert listed["emb"] == ([60, 5], "float32") and listed["vec"] == ([60, 5], "float32")
    assert listed["label"] == ([60], "str") and listed["y"] == ([60], "int64")
    assert listed["*"] == ([60, 6], "float64")  # y (int64) and c0..c4 (float32) together
    res = runner.invoke(app, ["info", "--json", str(path)])
    assert res.exit_code == 0, res.stderr
    assert [a["key"] for a in json.loads(res.stdout)["arrays"]] == list(listed)


@pytest.mark.parametrize("ext", [".parquet", ".feather"])
def test_arrow_errors(ext: str, tmp_path: Path) -> None:
    pa = pytest.importorskip("pyarrow")
    p = _write(tmp_path, ext)
    _raises(str(p), f"{p}: holds several columns (emb, vec, label, y, c0, c1, c2, c3, c4); choose one with "
            f"{p}:COLUMN, several with {p}:COL1,COL2, or every numeric column with {p}:*")
    _raises(f"{p}:embedding", f"{p}: column 'embedding' not found; did you mean 'emb'? (9 columns in all; dse info "
            "lists them)")
    _raises(f"{p}:c0,label", f"{p}: column 'label' (string) cannot be taken together with others; {p}:COL1,COL2 "
            "takes numeric columns only")
    odd = tmp_path / "odd"
    odd.mkdir()
    q = _write(odd, ext, pa.table({
        "s": pa.array([{"a": 1}, {"a": 2}]),
        "ragged": pa.array([[1.0, 2.0], [3.0]]),
        "gap": pa.array([1.0, None]),
        "name": pa.array(["x", "y"]),
    }))
    _raises(f"{q}:s", f"{q}: column 's' has type struct<a: int64>, which is not numbers, a list of numbers, or labels")
    _raises(f"{q}:ragged", f"{q}:ragged: column 'ragged' row 1 has 1 values, the first row 2; every vector must have "
            "the same length")
    _raises(f"{q}:gap", f"{q}:gap: column 'gap' has missing values (null), first at row 1; fill or drop them")
    _raises(f"{q}:*", f"{q}:*: column 'gap' has missing values (null), first at row 1; fill or drop them")
    only = tmp_path / "only"
    only.mkdir()
    r = _write(only, ext, pa.table({"name": pa.array(["x", "y"]), "flag": pa.array([True, False])}))
    _raises(f"{r}:*", f"{r}: has no numeric columns for {r}:*; columns: name, flag")
    junk = tmp_path / f"junk{ext}"
    junk.write_bytes(b"this is not a table at all")
    kind = "Parquet" if ext == ".parquet" else "Arrow IPC"
    with pytest.raises(InputError, match=re.escape(f"{junk}: corrupt or truncated {kind} file (")):
        open_array(str(junk))


def test_missing_package_names_the_extra(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("x.parquet", "x.feather", "x.safetensors"):
        (tmp_path / name).write_bytes(b"PAR1")
    (tmp_path / "s.zarr").mkdir()
    for module in ("pyarrow", "safetensors", "zarr"):
        monkeypatch.setitem(sys.modules, module, None)  # import fails as when not installed
    extra = 'install it with pip install "dsecli[formats]"'
    for spec, what, package in (("x.parquet", "Parquet", "pyarrow"), ("x.feather", "Arrow/Feather", "pyarrow"),
                                ("x.safetensors", "safetensors", "safetensors"), ("s.zarr", "zarr", "zarr")):
        _raises(str(tmp_path / spec), f"{tmp_path / spec}: reading {what} needs {package}; {extra}")


# ---- zarr ---------------------------------------------------------------------------------------------------------


def _zarr_major() -> int:
    zarr = pytest.importorskip("zarr")
    return int(zarr.__version__.split(".")[0])


def _zarr_store(path: Path, fmt: int, arrays: dict[str, np.ndarray], chunk_rows: int = 10) -> None:
    major = _zarr_major()
    import zarr

    if major < 3:
        if fmt == 3:
            pytest.skip("zarr 2.x writes format 2 only")
        root = zarr.open_group(str(path), mode="w")
        for name, a in arrays.items():
            root.create_dataset(name, data=a, chunks=(chunk_rows,) + a.shape[1:])
        return
    root = zarr.open_group(str(path), mode="w", zarr_format=fmt)
    for name, a in arrays.items():
        arr = root.create_array(name, shape=a.shape, chunks=(chunk_rows,) + a.shape[1:], dtype=a.dtype)
        arr[...] = a


def _chunk_file(array_dir: Path, i: int) -> Path:
    """The file of row-chunk ``i`` of a 2-D array: ``i.0`` in format 2, ``c/i/0`` in format 3."""
    found = [p for p in array_dir.rglob("*") if p.is_file() and p.relative_to(array_dir).parts in
             ((f"{i}.0",), ("c", str(i), "0"))]
    assert len(found) == 1
    return found[0]


@pytest.mark.parametrize("fmt", [2, 3])
def test_zarr_values_equal_npy(fmt: int, tmp_path: Path) -> None:
    store = tmp_path / "s.zarr"
    _zarr_store(store, fmt, {"run/emb": X, "run/y": Y})
    for key in ("/run/emb", "run/emb"):
        src = open_array(f"{store}:{key}")
        assert (src.shape, src.dtype, src.key) == (X.shape, np.float32, "/run/emb")
        np.testing.assert_array_equal(src.read(), X)
        np.testing.assert_array_equal(src.read(ROWS), X[ROWS])
    got, want = _dse_of(f"{store}:/run/emb", tmp_path / "x.npy")
    assert got == want
    np.testing.assert_array_equal(open_array(f"{store}:/run/y").read(ROWS), Y[ROWS])
    assert [(a["key"], a["shape"]) for a in list_arrays(str(store))] == [("/run/emb", [60, 5]), ("/run/y", [60])]
    _raises(f"{store}:/run/z", f"{store}: array '/run/z' not found; did you mean '/run/y'? arrays: /run/emb, /run/y")
    assert open_array(str(store)).key == "/run/emb"  # the only array of 2 or more dimensions: no key needed


@pytest.mark.parametrize("fmt", [2, 3])
def test_zarr_subsample_reads_only_its_chunks(fmt: int, tmp_path: Path) -> None:
    store = tmp_path / "s.zarr"
    _zarr_store(store, fmt, {"emb": X}, chunk_rows=10)
    # chunk 2 (rows 20-29) made unreadable: rows outside it still read, a row inside it fails
    _chunk_file(store / "emb", 2).write_bytes(b"not a compressed chunk")
    src = open_array(str(store))  # one array: no key needed
    np.testing.assert_array_equal(src.read(ROWS), X[ROWS])
    with pytest.raises(InputError, match=re.escape(f"{store}:/emb: cannot read the data, a chunk may be corrupt or "
                                                   "truncated (")):
        src.read(np.array([1, 25]))


@pytest.mark.parametrize("fmt", [2, 3])
def test_zarr_partly_written_refused(fmt: int, tmp_path: Path) -> None:
    store = tmp_path / "p.zarr"
    _zarr_store(store, fmt, {"emb": X}, chunk_rows=20)
    _chunk_file(store / "emb", 1).unlink()
    _raises(f"{store}:emb", f"{store}:/emb: was only partly written (1 of 3 chunks never written), so zarr would "
            "read those values as the fill value (0.0); write the data first")


def test_zarr_store_without_extension_and_not_a_store(tmp_path: Path) -> None:
    _zarr_major()
    store = tmp_path / "plain_dir"
    _zarr_store(store, 2, {"emb": X})
    np.testing.assert_array_equal(open_array(f"{store}").read(ROWS), X[ROWS])
    np.testing.assert_array_equal(open_array(f"{store}:/emb").read(ROWS), X[ROWS])
    (tmp_path / "e.zarr").mkdir()
    _raises(str(tmp_path / "e.zarr"), f"{tmp_path / 'e.zarr'}: not a zarr store (no zarr.json, .zarray or .zgroup in it)")


# ---- nested dicts in .pt checkpoints ----------------------------------------------------------------------------


def test_pt_nested_dicts_both_spellings(tmp_path: Path) -> None:
    import torch

    path = tmp_path / "ckpt.pt"
    torch.save({"embeddings": {"train": torch.tensor(X), "test": torch.tensor(X[:7])},
                "layers": [torch.tensor(X[:, :2])], "epoch": 4, "model.weight": torch.ones(3, 2)}, path)
    for key in ("embeddings.train", "/embeddings/train", "embeddings/train"):
        np.testing.assert_array_equal(open_array(f"{path}:{key}").read(ROWS), X[ROWS])
    np.testing.assert_array_equal(open_array(f"{path}:layers.0").read(), X[:, :2])
    np.testing.assert_array_equal(open_array(f"{path}:/layers/0").read(), X[:, :2])
    np.testing.assert_array_equal(open_array(f"{path}:model.weight").read(), np.ones((3, 2), np.float32))
    assert [(a["key"], a["shape"]) for a in list_arrays(str(path))] == [
        ("embeddings.train", [60, 5]), ("embeddings.test", [7, 5]), ("layers.0", [60, 2]), ("model.weight", [3, 2])]
    names = "embeddings.train, embeddings.test, layers.0, model.weight"
    _raises(f"{path}:embeddings.val", f"{path}: key 'embeddings.val' not found; did you mean 'embeddings.train'? "
            f"tensors: {names}")
    _raises(f"{path}:/epoch", f"{path}: key '/epoch' holds a int (4), not a tensor; tensors: {names}")
    _raises(str(path), f"{path}: holds several tensors of 2 or more dimensions ({names}); choose one with {path}:KEY")
    assert [b.dataset for b in expand_inputs(f"{path}:embeddings.*")] == ["embeddings.test", "embeddings.train"]


def test_pt_nested_without_tensors(tmp_path: Path) -> None:
    import torch

    torch.save({"config": {"lr": 0.1}, "epoch": 3}, tmp_path / "n.pt")
    _raises(str(tmp_path / "n.pt"), f"{tmp_path / 'n.pt'}: holds a dict with no tensors in it (keys: config, epoch); "
            "save a tensor or a dict of tensors")


# ---- folders ----------------------------------------------------------------------------------------------------


def test_folder_as_batch_input(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    runs.mkdir()
    for ep in (10, 2, 1):
        np.save(runs / f"ep{ep}.npy", X[: 20 + ep])
    (runs / "notes.md").write_text("not an array")
    (runs / "sub").mkdir()
    got = expand_inputs(str(runs))
    assert [Path(b.file).name for b in got] == ["ep1.npy", "ep2.npy", "ep10.npy"]
    assert [b.checkpoint for b in got] == [1, 2, 10] and [b.n_total for b in got] == [21, 22, 30]
    assert [b.file for b in expand_inputs(str(runs), exclude=str(runs / "ep2.npy"))] == [
        str(runs / "ep1.npy"), str(runs / "ep10.npy")]
    empty = tmp_path / "empty"
    empty.mkdir()
    from dsecli.inputs.readers import EXTENSIONS

    with pytest.raises(InputError, match=re.escape(
            f"`inputs`: the folder {empty} holds no array files ({', '.join(EXTENSIONS)})")):
        expand_inputs(str(empty))


def test_folder_hint_names_the_extensions_present(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    runs.mkdir()
    for i in range(3):
        np.save(runs / f"e{i}.npy", X)
    np.savez(runs / "a.npz", X)
    _raises(str(runs), f"{runs}: is a directory, not a file; it holds 3 .npy, 1 .npz files; to measure each use dse "
            f"batch {runs} (or dse batch '{runs}/*.npy')")
    res = runner.invoke(app, ["entropy", str(runs), "--device", "cpu"])
    assert res.exit_code == 2
    assert [ln for ln in res.stderr.splitlines() if ln.startswith("error: ")] == [
        f"error: {runs}: is a directory, not a file; it holds 3 .npy, 1 .npz files; to measure each use dse batch "
        f"{runs} (or dse batch '{runs}/*.npy')"]
    assert "Traceback" not in res.stderr


def test_cli_entropy_of_a_parquet_column_equals_npy(tmp_path: Path) -> None:
    path = _write(tmp_path, ".parquet")
    np.save(tmp_path / "x.npy", X)
    values = []
    for spec in (f"{path}:emb", str(tmp_path / "x.npy")):
        res = runner.invoke(app, ["entropy", spec, "--device", "cpu", "--json", "--sigma", "1"])
        assert res.exit_code == 0, res.stderr
        values.append(json.loads(res.stdout)["results"][0]["value"])
    assert values[0] == values[1]


def test_parquet_categorical_labels_and_variable_lists(tmp_path: Path) -> None:
    pa = pytest.importorskip("pyarrow")
    table = pa.table({"cat": pa.array(NAMES.tolist()).dictionary_encode(),
                      "vec": pa.array([list(r) for r in X.astype(np.float64)])})
    path = _write(tmp_path, ".parquet", table, rows_per_group=16)
    src = open_array(f"{path}:cat")
    assert src.dtype.kind == "U"
    np.testing.assert_array_equal(src.read(ROWS), NAMES[ROWS])
    vec = open_array(str(path))  # the only vector column: no key needed
    assert (vec.key, vec.shape, vec.dtype) == ("vec", X.shape, np.float64)
    np.testing.assert_array_equal(vec.read(ROWS), X.astype(np.float64)[ROWS])


def test_cli_batch_over_a_folder(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    runs.mkdir()
    for ep in (10, 2):
        np.save(runs / f"ep{ep}.npy", X)
    out = tmp_path / "out.jsonl"
    res = runner.invoke(app, ["batch", str(runs), "-o", str(out), "--device", "cpu", "--sigma", "1"])
    assert res.exit_code == 0, res.stderr
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [(Path(r["file"]).name, r["checkpoint"]) for r in rows] == [("ep2.npy", 2), ("ep10.npy", 10)]
