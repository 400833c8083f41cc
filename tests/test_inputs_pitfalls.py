"""What a new user trips on: each bad input gives one InputError line naming the file, the key and the cause.

One test (or a few) per class of problem; the messages are matched on their words, so that a
rewording that keeps the cause still passes and a raw Python exception never does.
"""

from __future__ import annotations

import json
import re
import warnings

import numpy as np
import pytest
from typer.testing import CliRunner

from dsecli.cli import app
from dsecli.errors import InputError
from dsecli.inputs.readers import list_arrays, open_array

runner = CliRunner()



def _zarr_array(group, name: str, **kw):
    # zarr 3 names it create_array; zarr 2 (the floor versions') create_dataset
    make = getattr(group, "create_array", None) or group.create_dataset
    return make(name, **kw)

def _cli(*args: str):
    return runner.invoke(app, list(args))


# ---- 2. raw Python errors ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["fixed", "list", "label"])
def test_parquet_without_row_groups_reads_as_zero_rows(tmp_path, kind) -> None:
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    t = {"fixed": pa.list_(pa.float32(), 4), "list": pa.list_(pa.float32()), "label": pa.string()}[kind]
    path = tmp_path / "empty.parquet"
    pq.ParquetWriter(path, pa.schema([("emb", t)])).close()
    assert pq.ParquetFile(path).num_row_groups == 0
    src = open_array(str(path))
    assert src.shape[0] == 0 and src.read().shape == src.shape
    res = _cli("entropy", str(path))
    assert res.exit_code == 2
    assert "empty.parquet:emb" in res.output and ("0 rows" in res.output or "N = 0" in res.output
                                                  or "numeric" in res.output), res.output
    assert "Traceback" not in res.output and "row_group_indices" not in res.output


def test_zarr_v3_string_labels_read_as_str(tmp_path) -> None:
    zarr = pytest.importorskip("zarr")
    if int(zarr.__version__.split(".")[0]) < 3:
        pytest.skip("zarr format 3 needs zarr 3")
    z = zarr.create_array(str(tmp_path / "lab.zarr"), shape=(6,), dtype=str, zarr_format=3)
    z[:] = np.array(["cat", "dog", "cat", "bird", "dog", "cat"])
    src = open_array(str(tmp_path / "lab.zarr"))
    got = src.read()
    assert got.dtype.kind == "U" and list(got) == ["cat", "dog", "cat", "bird", "dog", "cat"]
    assert list(src.read(np.array([1, 3]))) == ["dog", "bird"]
    assert list_arrays(str(tmp_path / "lab.zarr"))[0]["dtype"] == "str"
    x = np.random.default_rng(0).normal(size=(6, 3))
    np.save(tmp_path / "x.npy", x)
    res = _cli("mi", str(tmp_path / "x.npy"), str(tmp_path / "lab.zarr"), "--method", "cse", "--json")
    assert "TypeError" not in res.output and "cannot cast" not in res.output, res.output


def test_info_on_npz_with_an_object_array_lists_it_as_not_numeric(tmp_path) -> None:
    path = tmp_path / "obj.npz"
    np.savez(path, x=np.ones((3, 2)), meta=np.array([{"a": 1}, None], dtype=object))
    arrays = list_arrays(str(path))
    assert arrays[0] == {"key": "x", "shape": [3, 2], "dtype": "float64"}
    assert arrays[1]["key"] == "meta" and arrays[1]["shape"] == [2] and "not numeric" in arrays[1]["dtype"]
    res = _cli("info", str(path), "--json")
    assert res.exit_code == 0, res.output
    assert [a["key"] for a in json.loads(res.stdout)["arrays"]] == ["x", "meta"]
    with pytest.raises(InputError, match=r"obj\.npz:meta: holds Python objects"):
        open_array(f"{path}:meta")


# ---- 3. the true cause ---------------------------------------------------------------------------------------------


def test_zarr_group_is_a_group_not_missing(tmp_path) -> None:
    zarr = pytest.importorskip("zarr")
    store = str(tmp_path / "g.zarr")
    root = zarr.open_group(store, mode="w")
    _zarr_array(root.create_group("grp"), "emb", shape=(4, 2), dtype="f8")[:] = 1.0
    root.create_group("empty")
    with pytest.raises(InputError, match=r"g\.zarr: array '/grp' is a group, not an array; the arrays in it: /grp/emb"):
        open_array(f"{store}:/grp")
    with pytest.raises(InputError, match=r"array '/empty' is a group, not an array; it holds no arrays; arrays: /grp/emb"):
        open_array(f"{store}:empty")
    with pytest.raises(InputError, match=r"array '/nope' not found"):
        open_array(f"{store}:/nope")


def _pt(tmp_path):
    torch = pytest.importorskip("torch")
    path = tmp_path / "ck.pt"
    torch.save({"a.b": torch.ones(5, 3), "a": {"b": torch.zeros(5, 3)}, "layers": [torch.ones(4, 2)] * 2,
                "cfg": {"lr": 0.1}, "epoch": 4}, path)
    return path


def test_pt_key_holding_a_list_or_dict_says_what_it_holds(tmp_path) -> None:
    path = _pt(tmp_path)
    with pytest.raises(InputError, match=re.escape(f"{path}: key 'layers' holds a list of 2 entries with 2 tensors, "
                                                   "not a tensor; the tensors in it: layers.0, layers.1")):
        open_array(f"{path}:layers")
    with pytest.raises(InputError, match=re.escape(f"{path}: key 'cfg' holds a dict of 1 entry and no tensors, "
                                                   "not a tensor")):
        open_array(f"{path}:cfg")
    with pytest.raises(InputError, match=re.escape(f"{path}: key 'epoch' holds a int (4), not a tensor")):
        open_array(f"{path}:epoch")


def test_pt_dotted_key_naming_two_values_is_refused_and_both_are_listed(tmp_path) -> None:
    path = _pt(tmp_path)
    with pytest.raises(InputError, match=re.escape(f"{path}: key 'a.b' is ambiguous: it names 2 values (/a.b and /a/b")):
        open_array(f"{path}:a.b")
    np.testing.assert_array_equal(open_array(f"{path}:/a.b").read(), np.ones((5, 3), np.float32))
    np.testing.assert_array_equal(open_array(f"{path}:/a/b").read(), np.zeros((5, 3), np.float32))
    keys = [a["key"] for a in list_arrays(str(path))]
    assert keys == ["/a.b", "/a/b", "layers.0", "layers.1"]
    for k in keys:  # every listed name opens exactly one tensor
        open_array(f"{path}:{k}")


def test_info_with_a_key_lists_that_array(tmp_path) -> None:
    path = _pt(tmp_path)
    res = _cli("info", f"{path}:/a/b", "--json")
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["arrays"] == [{"key": "/a/b", "shape": [5, 3], "dtype": "float32"}]
    res = _cli("info", f"{path}:layers.0", "--check", "--json")
    assert res.exit_code == 0, res.output
    res = _cli("info", f"{path}:a.b")
    assert res.exit_code == 2 and "ambiguous" in res.output and "file not found" not in res.output
    res = _cli("info", f"{path}:nope")
    assert res.exit_code == 2 and "key 'nope' not found" in res.output


# ---- 4. silent answers ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("dtype", "offset"), [("int64", 2**62), ("int64", -(2**63) + 5), ("uint64", 2**64 - 2000)])
def test_integers_beyond_2_53_keep_their_distances(tmp_path, dtype, offset) -> None:
    from dsecli import diffusion_spectral_entropy
    from dsecli.inputs.arrays import as_float_matrix

    small = np.random.default_rng(0).integers(0, 1000, (60, 4))
    x = (np.array(small, dtype=object) + offset).astype(dtype)  # exact: no float on the way
    assert len(np.unique(x.astype(np.float64), axis=0)) < 60  # a plain cast merges distinct rows
    got, _ = as_float_matrix(x)
    assert len(np.unique(got, axis=0)) == len(np.unique(small, axis=0))
    np.testing.assert_array_equal(np.diff(got, axis=0), np.diff(small.astype(np.float64), axis=0))
    want = diffusion_spectral_entropy(small.astype(np.float64), sigma=10.0, device="cpu").value
    assert diffusion_spectral_entropy(x, sigma=10.0, device="cpu").value == pytest.approx(want, abs=1e-12)
    np.save(tmp_path / "ids.npy", x)
    res = _cli("check", str(tmp_path / "ids.npy"), "--json")
    assert "repeat an earlier row" not in res.output


def test_integers_spread_beyond_2_53_that_float64_would_merge_are_refused() -> None:
    from dsecli.inputs.arrays import as_float_matrix

    x = np.array([[-(2**63)], [2**63 - 1], [2**63 - 2], [0]], dtype=np.int64)
    with pytest.raises(InputError, match=r"column 0 holds integers \(int64\) spread over more than 2\*\*53"):
        as_float_matrix(x, where="ids.npy")
    spread = np.array([[-(2**62)], [2**62], [0]], dtype=np.int64)  # far apart but exact after centring
    np.testing.assert_array_equal(as_float_matrix(spread)[0][:, 0], [-(2.0**62), 2.0**62, 0.0])


@pytest.mark.parametrize("fmt", [2, 3])
def test_zarr_with_stale_consolidated_metadata_reads_the_true_shape(tmp_path, fmt) -> None:
    zarr = pytest.importorskip("zarr")
    if int(zarr.__version__.split(".")[0]) < 3:
        pytest.skip("writing both store formats needs zarr 3")
    store = str(tmp_path / "s.zarr")
    g = zarr.open_group(store, mode="w", zarr_format=fmt)
    g.create_array("emb", shape=(4, 2), chunks=(2, 2), dtype="f8")[:] = np.arange(8.0).reshape(4, 2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zarr 3: consolidated metadata is not part of format 3
        zarr.consolidate_metadata(store)
        a = zarr.open_array(f"{store}/emb", mode="a", zarr_format=fmt)
        a.resize((6, 2))
        a[4:] = 9.0  # the consolidated copy still says (4, 2)
        assert zarr.open(store, mode="r")["emb"].shape == (4, 2)
    src = open_array(store)
    assert src.shape == (6, 2)
    np.testing.assert_array_equal(src.read()[4:], np.full((2, 2), 9.0))
    assert list_arrays(store)[0]["shape"] == [6, 2]


def test_dry_run_plans_an_unwritten_hdf5_dataset_and_says_so(tmp_path) -> None:
    h5py = pytest.importorskip("h5py")
    path = tmp_path / "nw.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("emb", shape=(300, 8), dtype="f4")
    res = _cli("entropy", str(path), "--dry-run")
    assert res.exit_code == 0, res.output
    assert "N used 300 of 300, D = 8" in res.stdout and "data      not written yet: was created but never written" \
        in res.stdout
    res = _cli("entropy", str(path), "--dry-run", "--json")
    assert res.exit_code == 0, res.output
    plan = json.loads(res.stdout)
    assert plan["n_rows"] == 300 and "never written" in plan["data_not_written"]
    res = _cli("entropy", str(path))
    assert res.exit_code == 2 and "nw.h5:/emb: was created but never written" in res.output
    np.save(tmp_path / "lab.npy", np.arange(300) % 3)
    res = _cli("mi", str(path), str(tmp_path / "lab.npy"), "--dry-run")
    assert res.exit_code == 0 and "data      not written yet: was created but never written" in res.stdout, res.output
    res = _cli("mi", str(path), str(tmp_path / "lab.npy"))
    assert res.exit_code == 2 and "nw.h5:/emb: was created but never written" in res.output


# ---- 5. nearest match ----------------------------------------------------------------------------------------------


def test_suggest_offers_a_handful_and_counts_the_rest() -> None:
    from dsecli.errors import suggest

    names = [f"/run{i}/emb_{s}" for i in range(8) for s in ("train", "test", "val")]
    assert suggest("/run3/emb_tran", names, what="dataset") == \
        "; did you mean '/run3/emb_train'? (24 datasets in all; dse info lists them)"
    assert suggest("/RUN1/EMB_VAL", names, what="dataset").startswith("; did you mean '/run1/emb_val'?")
    many = suggest("emb_val", names, what="dataset")
    assert many.count("'/run") == 5 and "(24 datasets in all" in many
    far = suggest("/zzz", names, what="dataset")
    assert far == ("; 24 datasets, none close to '/zzz': /run0/emb_train, /run0/emb_test, /run0/emb_val, "
                   "/run1/emb_train, /run1/emb_test and 19 more (dse info lists them)")
    assert suggest("c", ["a", "b"], what="array") == "; arrays: a, b"
    assert suggest("embx", ["emb", "labels"], what="tensor") == "; did you mean 'emb'? tensors: emb, labels"
    assert suggest("x", [], what="column") == "; there are no columns"


def test_suggest_lists_a_short_list_whole_and_offers_the_nearest_names_of_a_long_one() -> None:
    from dsecli.errors import suggest

    assert suggest("q", list("abcde")) == "; keys: a, b, c, d, e"  # `limit` names: all shown
    assert suggest("q", list("abcdef")) == "; 6 keys, none close to 'q': a, b, c, d, e and 1 more (dse info lists them)"
    assert suggest("q", list("abc"), limit=2) == "; 3 keys, none close to 'q': a, b and 1 more (dse info lists them)"
    layers = [f"/l{i}/emb" for i in range(1, 8)]  # one character from '/l8/emb' each: a tie, at most 5 offered
    assert suggest("/l8/emb", layers) == ("; did you mean '/l1/emb', '/l2/emb', '/l3/emb', '/l4/emb' or '/l5/emb'? "
                                          "(7 keys in all; dse info lists them)")
    two = ["/l1/emb", "/l2/emb", "/x9/abc", "/q/r", "/s/t", "/u/v"]
    assert suggest("/l3/emb", two) == "; did you mean '/l1/emb' or '/l2/emb'? (6 keys in all; dse info lists them)"
    near = ["/emb_trains_x", "/emb_train", "/a", "/b", "/c", "/d"]  # 1 edit beats 4, whatever the order
    assert suggest("/emb_trai", near) == "; did you mean '/emb_train'? (6 keys in all; dse info lists them)"
    assert suggest("RUN1/EMB_VAL/", ["/run1/emb_val", *near]).startswith("; did you mean '/run1/emb_val'? (7 keys")
    # no similar name: one that holds the name asked for, or one (of 3 characters or more) held in it
    held = ["embedding_train_layer", "labels_of_all_rows", "aaaa", "bbbb", "cccc", "dddd"]
    assert suggest("EMB", held, what="dataset") == \
        "; did you mean 'embedding_train_layer'? (6 datasets in all; dse info lists them)"
    assert suggest("runs/model_v2", ["/run", "model/", "v2", "aaaa", "bbbb", "cccc"]) == \
        "; did you mean '/run' or 'model/'? (6 keys in all; dse info lists them)"
    # the same name but for case wins over a name nearer in characters
    assert suggest("/LAYER_ONE", ["/LAYER_ONE_X", "/layer_one", "a", "b", "c", "d"]) == \
        "; did you mean '/layer_one'? (6 keys in all; dse info lists them)"
    # similar enough at a ratio of exactly 0.6 (3 of 'abc' matched in 10 characters), not held in the name
    assert suggest("abc", ["axbxcxx", "qqqq", "rrrr", "ssss", "tttt", "uuuu"]) == \
        "; did you mean 'axbxcxx'? (6 keys in all; dse info lists them)"
    # as many edits away: the more similar first; three names are listed "a, b or c"
    assert suggest("abcd", ["abxd", "abcdX", "qqqq", "rrrr", "ssss", "tttt"]) == \
        "; did you mean 'abcdX' or 'abxd'? (6 keys in all; dse info lists them)"
    assert suggest("/l9/emb", [*layers[:3], "aaaa", "bbbb", "cccc"]) == \
        "; did you mean '/l1/emb', '/l2/emb' or '/l3/emb'? (6 keys in all; dse info lists them)"
    assert suggest("/", ["aaaa", "bbbb", "cccc", "dddd", "eeee", "ffff"]) == \
        "; 6 keys, none close to '/': aaaa, bbbb, cccc, dddd, eeee and 1 more (dse info lists them)"


def test_wrong_hdf5_key_among_many_names_a_few_not_all(tmp_path) -> None:
    h5py = pytest.importorskip("h5py")
    path = tmp_path / "many.h5"
    with h5py.File(path, "w") as f:
        for layer in range(23):
            f[f"/model/layer_{layer:02d}/embeddings"] = np.zeros((3, 2))
    with pytest.raises(InputError) as info:
        open_array(f"{path}:/model/layer_07/embedding")
    msg = str(info.value)
    assert msg == (f"{path}: dataset '/model/layer_07/embedding' not found; did you mean "
                   "'/model/layer_07/embeddings'? (23 datasets in all; dse info lists them)")
    with pytest.raises(InputError) as info:
        open_array(f"{path}:/nothing/like/it")
    assert "and 18 more" in str(info.value) and len(str(info.value)) < 300 + len(str(path))


@pytest.mark.parametrize("fmt", ["npz", "pt", "safetensors", "parquet", "zarr"])
def test_every_container_suggests_the_nearest_key(tmp_path, fmt) -> None:
    names = [f"layer{i}" for i in range(12)]
    arrays = {n: np.full((4, 2), i, dtype=np.float32) for i, n in enumerate(names)}
    path = _container(tmp_path, fmt, arrays)
    with pytest.raises(InputError, match=r"'/?layr7' not found; did you mean '/?layer7'\? \(12 \w+ in all"):
        open_array(f"{path}:layr7")


def _container(tmp_path, fmt: str, arrays: dict) -> str:
    """``arrays`` (name -> array) saved as one container file of format ``fmt``; returns its path."""
    path = str(tmp_path / f"c.{fmt}")
    if fmt == "npz":
        np.savez(path, **arrays)
    elif fmt == "h5":
        h5py = pytest.importorskip("h5py")
        with h5py.File(path, "w") as f:
            for k, v in arrays.items():
                f[k] = v
    elif fmt == "pt":
        torch = pytest.importorskip("torch")
        torch.save({k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in arrays.items()}, path)
    elif fmt == "safetensors":
        st = pytest.importorskip("safetensors.numpy")
        st.save_file({k: np.ascontiguousarray(v) for k, v in arrays.items()}, path)
    elif fmt == "parquet":
        pa = pytest.importorskip("pyarrow")
        import pyarrow.parquet as pq

        cols = {}
        for k, v in arrays.items():
            cols[k] = pa.array(list(v)) if v.ndim == 2 else pa.array(v)
        pq.write_table(pa.table(cols), path)
    elif fmt == "zarr":
        zarr = pytest.importorskip("zarr")
        g = zarr.open_group(path, mode="w")
        for k, v in arrays.items():
            _zarr_array(g, k, shape=v.shape, dtype=v.dtype)[:] = v
    return path


# ---- 6. one key rule for every container ---------------------------------------------------------------------------

CONTAINERS = ["npz", "h5", "pt", "safetensors", "parquet", "zarr"]


@pytest.mark.parametrize("fmt", CONTAINERS)
def test_without_a_key_the_only_array_of_two_or_more_dimensions_is_used(tmp_path, fmt) -> None:
    emb = np.arange(12, dtype=np.float32).reshape(6, 2)
    path = _container(tmp_path, fmt, {"emb": emb, "label": np.arange(6, dtype=np.int64)})
    src = open_array(path)
    assert src.key.strip("/") == "emb" and src.shape == (6, 2)
    np.testing.assert_array_equal(src.read(), emb)


@pytest.mark.parametrize("fmt", CONTAINERS)
def test_without_a_key_several_candidates_are_listed(tmp_path, fmt) -> None:
    two = _container(tmp_path, fmt, {"a": np.ones((4, 2), np.float32), "b": np.ones((4, 3), np.float32),
                                     "y": np.arange(4, dtype=np.int64)})
    with pytest.raises(InputError, match=r"holds several \w+( of 2 or more dimensions)? \(/?a, /?b[,)].*"
                                         r"choose one with .*:"):
        open_array(two)
    sub = tmp_path / "flat"
    sub.mkdir()
    flat = _container(sub, fmt, {"y": np.arange(4, dtype=np.int64), "z": np.arange(4, dtype=np.int64)})
    with pytest.raises(InputError, match=r"holds several \w+(, none of 2 or more dimensions)? \(/?y, /?z.*choose one"):
        open_array(flat)


# ---- 7. np.asarray of a lazy source --------------------------------------------------------------------------------


def test_np_asarray_of_an_opened_file_reads_it(tmp_path) -> None:
    import dsecli

    x = np.arange(12, dtype=np.float32).reshape(4, 3)
    np.save(tmp_path / "x.npy", x)
    src = dsecli.open_array(str(tmp_path / "x.npy"))
    got = np.asarray(src)
    assert got.dtype == np.float32 and got.shape == (4, 3)
    np.testing.assert_array_equal(got, x)
    np.testing.assert_array_equal(np.asarray(src, dtype=np.float64), x.astype(np.float64))
    np.testing.assert_array_equal(np.array(src), x)
    if int(np.__version__.split(".")[0]) >= 2:  # NumPy 1.x has no copy= in asarray
        with pytest.raises(ValueError, match="copy=False"):
            np.asarray(src, copy=False)
    h5py = pytest.importorskip("h5py")
    with h5py.File(tmp_path / "nw.h5", "w") as f:
        f.create_dataset("emb", shape=(5, 2), dtype="f4")
    with pytest.raises(InputError, match="never written"):
        np.asarray(dsecli.open_array(str(tmp_path / "nw.h5")))


def test_without_a_key_many_candidates_are_counted_not_all_listed(tmp_path) -> None:
    path = _container(tmp_path, "npz", {f"layer{i}": np.ones((3, 2)) for i in range(23)})
    with pytest.raises(InputError, match=re.escape(f"{path}: holds several arrays of 2 or more dimensions (layer0, "
                                                   f"layer1, layer2, layer3, layer4 and 18 more) (dse info {path} "
                                                   f"lists them); choose one with {path}:KEY")):
        open_array(path)
