"""What a new user trips on: each bad input gives one InputError line naming the file, the key and the cause.

One test (or a few) per class of problem; the messages are matched on their words, so that a
rewording that keeps the cause still passes and a raw Python exception never does.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from dsecli.cli import app
from dsecli.errors import InputError
from dsecli.inputs.readers import list_arrays, open_array

runner = CliRunner()


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
