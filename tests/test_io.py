"""Readers, atomic writers, validation details and the sanity checks (library level)."""

from __future__ import annotations

import os
import re
import stat
import warnings
from pathlib import Path

import numpy as np
import pytest

from dsecli.diagnostics.check import (
    constant_columns,
    data_quality_warnings,
    distinct_row_counts,
    duplicate_rows,
    sanity_report,
)
from dsecli.errors import DataQualityWarning, DseWarning, InputError, OutputError
from dsecli.inputs.arrays import check_embeddings
from dsecli.inputs.prepare import prepare_reference, prepare_rows
from dsecli.inputs.readers import list_arrays, load_array, open_array, split_spec
from dsecli.report.writing import check_output_path, remove_pending_files, write_atomic

# ---- readers -----------------------------------------------------------------------------------------------


def test_npy_is_read_lazily_and_rows_match(tmp_path: Path) -> None:
    x = np.arange(60.0).reshape(20, 3)
    np.save(tmp_path / "x.npy", x)
    src = open_array(str(tmp_path / "x.npy"))
    assert src.shape == (20, 3) and src.dtype == np.float64
    rows = np.array([1, 4, 5, 19])
    np.testing.assert_array_equal(src.read(rows), x[rows])
    np.testing.assert_array_equal(src.read(), x)


def test_hdf5_rows_in_runs_and_string_labels(tmp_path: Path) -> None:
    import h5py

    x = np.random.default_rng(0).normal(size=(30, 4))
    labels = np.array(["cat", "dog", "eel"])[np.arange(30) % 3]
    with h5py.File(tmp_path / "d.h5", "w") as f:
        f["emb"] = x
        f["labels"] = labels.astype(h5py.string_dtype())
        f["fixed"] = labels.astype("S3")
    rows = np.array([0, 1, 2, 7, 8, 20])
    np.testing.assert_array_equal(open_array(f"{tmp_path}/d.h5:/emb").read(rows), x[rows])
    for key in ("labels", "/fixed"):
        got = open_array(f"{tmp_path}/d.h5:{key}").read(rows)
        assert got.dtype.kind == "U"  # compared as strings, not Python objects
        np.testing.assert_array_equal(got, labels[rows])


def test_text_tables(tmp_path: Path) -> None:
    x = [[1.5, -2.0], [3.25, 4.0], [0.0, 1e-3]]
    (tmp_path / "h.csv").write_text("a,b\n" + "\n".join(f"{r[0]!r},{r[1]!r}" for r in x) + "\n")
    (tmp_path / "t.tsv").write_text("\n".join(f"{r[0]!r}\t{r[1]!r}" for r in x) + "\n")
    (tmp_path / "w.txt").write_text("\n".join(f"{r[0]!r}  {r[1]!r}" for r in x) + "\n")
    (tmp_path / "labels.csv").write_text("label\ncat\n\"dog\"\ncat\n")
    for name in ("h.csv", "t.tsv", "w.txt"):
        np.testing.assert_array_equal(load_array(str(tmp_path / name)), np.array(x))
    # one column of strings: the first line is data unless header=True (--header) says otherwise
    np.testing.assert_array_equal(load_array(str(tmp_path / "labels.csv"), header=True),
                                  np.array(["cat", "dog", "cat"]))
    np.testing.assert_array_equal(load_array(str(tmp_path / "labels.csv")), np.array(["label", "cat", "dog", "cat"]))


def test_split_spec() -> None:
    assert split_spec("a/b.h5:/grp/ds") == ("a/b.h5", "/grp/ds")
    assert split_spec("b.npz:emb") == ("b.npz", "emb")
    assert split_spec("b.NPZ:emb") == ("b.NPZ", "emb")
    assert split_spec("plain.npy") == ("plain.npy", None)
    assert split_spec("-") == ("-", None)


def test_existing_path_with_colon_is_not_split(tmp_path: Path) -> None:
    odd = tmp_path / "run:1.npy"
    np.save(odd, np.ones((3, 2)))
    assert split_spec(str(odd)) == (str(odd), None)
    assert open_array(str(odd)).shape == (3, 2)


def test_npz_single_array_needs_no_key_and_npy_named_npz(tmp_path: Path) -> None:
    np.savez(tmp_path / "one.npz", emb=np.ones((4, 2)))
    assert open_array(str(tmp_path / "one.npz")).key == "emb"
    np.save(tmp_path / "plain.npy", np.ones((4, 2)))
    os.replace(tmp_path / "plain.npy", tmp_path / "renamed.npz")
    assert open_array(str(tmp_path / "renamed.npz")).shape == (4, 2)


def test_list_arrays_every_format(tmp_path: Path) -> None:
    import h5py
    import torch

    np.savez(tmp_path / "a.npz", x=np.ones((3, 2)), y=np.arange(3))
    with h5py.File(tmp_path / "a.h5", "w") as f:
        f["g/x"] = np.ones((3, 2), dtype=np.float32)
    torch.save({"x": torch.ones(3, 2), "note": "text"}, tmp_path / "a.pt")
    assert list_arrays(str(tmp_path / "a.npz")) == [
        {"key": "x", "shape": [3, 2], "dtype": "float64"}, {"key": "y", "shape": [3], "dtype": "int64"}]
    assert list_arrays(str(tmp_path / "a.h5")) == [{"key": "/g/x", "shape": [3, 2], "dtype": "float32"}]
    assert list_arrays(str(tmp_path / "a.pt")) == [{"key": "x", "shape": [3, 2], "dtype": "float32"}]


def test_stdin_npy(tmp_path: Path) -> None:
    import io

    from typer.testing import CliRunner

    from dsecli.cli import app

    buf = io.BytesIO()
    np.save(buf, np.random.default_rng(0).normal(size=(30, 2)))
    res = CliRunner().invoke(app, ["entropy", "-", "--device", "cpu", "--json"], input=buf.getvalue())
    assert res.exit_code == 0, res.output
    res = CliRunner().invoke(app, ["entropy", "-"], input=b"")
    assert res.exit_code == 2 and "-: standard input is empty; expected .npy bytes" in res.stderr


# ---- atomic output -----------------------------------------------------------------------------------------


def test_write_atomic_replaces_and_keeps_permissions(tmp_path: Path) -> None:
    out = tmp_path / "r.json"
    out.write_text("old")
    out.chmod(0o640)
    write_atomic(out, "new")
    assert out.read_text() == "new"
    assert stat.S_IMODE(out.stat().st_mode) == 0o640
    assert [p.name for p in tmp_path.iterdir()] == ["r.json"]


@pytest.mark.parametrize("failure", [OSError(28, "No space left on device"), KeyboardInterrupt()],
                         ids=["disk-full", "interrupt"])
def test_failed_write_leaves_old_file(failure: BaseException, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import dsecli.report.writing

    out = tmp_path / "r.json"
    out.write_text("old")

    def fail(*a, **k):
        raise failure

    monkeypatch.setattr(dsecli.report.writing.os, "replace", fail)
    expected = OutputError if isinstance(failure, OSError) else KeyboardInterrupt
    with pytest.raises(expected) as info:
        write_atomic(out, "new")
    if expected is OutputError:
        assert str(info.value) == (f"{out}: cannot write `output` (no space left on device); the previous file, if "
                                   "any, is unchanged")
        assert info.value.exit_status == 1
    assert out.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["r.json"]
    assert remove_pending_files() == []


def test_check_output_path_messages(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=re.escape(f"{tmp_path}: `out` must be a file, not a directory")):
        check_output_path(tmp_path, name="out")
    missing = tmp_path / "no" / "r.json"
    with pytest.raises(InputError, match=re.escape(f"`out` must be in an existing directory; {missing.parent} does")):
        check_output_path(missing, name="out")
    with pytest.raises(InputError, match="must be a file path; got an empty string"):
        check_output_path("", name="out")
    assert check_output_path(tmp_path / "ok.json") == str(tmp_path / "ok.json")
    assert list(tmp_path.iterdir()) == []  # the probe file is gone


# ---- validation details ------------------------------------------------------------------------------------


def test_nonfinite_rows_are_numbered_as_in_the_file_after_subsampling() -> None:
    x = np.random.default_rng(0).normal(size=(1000, 3))
    x[[500, 900], 0] = np.nan
    with pytest.raises(InputError) as info:
        prepare_rows(x, max_n=0, seed=0)
    assert "got NaN or Inf in 2 of 1000 rows, first at row 500" in str(info.value)
    rows = prepare_rows(np.delete(x, [500, 900], axis=0), max_n=100, seed=0)  # no NaN: fine
    assert rows.n_used == 100
    # subsampled: the count is of sampled rows, the row number is the file's
    from dsecli.inputs.sampling import choose_rows

    idx = choose_rows(1000, 800, seed=3)
    hit = [i for i in (500, 900) if i in set(idx.tolist())]
    assert hit, "the seed should sample a bad row"
    with pytest.raises(InputError, match=re.escape(f"of the 800 sampled rows (of 1000), first at row {hit[0]}")):
        prepare_rows(x, max_n=800, seed=3)


def test_drop_nonfinite_keeps_reference_aligned() -> None:
    x = np.random.default_rng(0).normal(size=(10, 2))
    x[[2, 5]] = np.inf
    y = np.arange(10)
    with pytest.warns(DseWarning, match=re.escape("dropped 2 row(s) holding NaN or Inf (--drop-nonfinite): rows 2, 5; "
                                                  "8 rows remain")):
        rows = prepare_rows(x, max_n=0, seed=0, drop_nonfinite=True)
    np.testing.assert_array_equal(prepare_reference(y, rows), np.delete(y, [2, 5]))


def test_magnitude_limit_depends_on_d() -> None:
    check_embeddings(np.full((3, 2), 1e150) * np.arange(3)[:, None])
    with pytest.raises(InputError, match="squared distances overflow float64"):
        check_embeddings(np.full((3, 2), 1e154) * np.arange(3)[:, None])


def test_reference_messages() -> None:
    rows = prepare_rows(np.random.default_rng(0).normal(size=(6, 2)), max_n=0, seed=0)
    with pytest.raises(InputError, match=re.escape("`reference` must be finite; got NaN or Inf in 1 of 6 rows, "
                                                   "first at row 4")):
        prepare_reference(np.array([0, 1, 2, 3, np.nan, 5]), rows)
    with pytest.raises(InputError, match=re.escape("`reference` must hold numbers or strings; got dtype object")):
        prepare_reference(np.array([0, 1, 2, 3, None, 5], dtype=object), rows)
    with pytest.raises(InputError, match=re.escape("embeddings have 6 rows but the reference has 5")):
        prepare_reference(np.arange(5), rows)


# ---- sanity checks -----------------------------------------------------------------------------------------


def _independent_duplicates(x: np.ndarray) -> int:
    return x.shape[0] - np.unique(x, axis=0).shape[0]


@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.int64, np.uint8])
def test_duplicate_rows_agree_with_numpy_unique(dtype: type) -> None:
    rng = np.random.default_rng(1)
    x = rng.integers(0, 3, size=(400, 3)).astype(dtype)  # many exact repeats
    n_dup, n_distinct, pair = duplicate_rows(x)
    assert n_dup == _independent_duplicates(x) and n_distinct == np.unique(x, axis=0).shape[0]
    i, j = pair
    assert i < j and np.array_equal(x[i], x[j])
    counts, _ = distinct_row_counts(x)
    assert counts.sum() == 400
    np.testing.assert_array_equal(np.sort(counts), np.sort(np.unique(x, axis=0, return_counts=True)[1]))


def test_negative_zero_is_the_same_point() -> None:
    x = np.array([[0.0, 1.0], [-0.0, 1.0], [2.0, 3.0]])
    assert duplicate_rows(x)[:2] == (1, 2)


def test_constant_columns() -> None:
    x = np.random.default_rng(0).normal(size=(20, 5))
    x[:, [1, 4]] = 3.0
    np.testing.assert_array_equal(constant_columns(x), [1, 4])


def test_data_quality_warnings_from_prepare_rows_name_file_rows() -> None:
    x = np.random.default_rng(0).normal(size=(50, 3))
    x[30] = x[7]
    x[:, 2] = 0.0
    with warnings.catch_warnings(record=True) as log:
        warnings.simplefilter("always")
        prepare_rows(x, max_n=0, seed=0)
    messages = [str(w.message) for w in log if issubclass(w.category, DataQualityWarning)]
    assert "1 of 3 columns is constant (column 2)" in messages[0]
    assert "1 of 50 rows repeats an earlier row (49 distinct; e.g. row 30 repeats row 7)" in messages[1]
    assert data_quality_warnings(np.random.default_rng(0).normal(size=(10, 2))) == []
    everything_same = data_quality_warnings(np.ones((5, 2)), where="f.npy")
    assert everything_same == ["f.npy: all 2 columns are constant: every row is the same point, so every entropy of "
                               "these rows is 0 and every mutual information is 0"]


def test_sanity_report_saturation_matches_cse() -> None:
    from dsecli.estimators import binned_shannon_entropy

    x = np.random.default_rng(0).normal(size=(300, 64))  # 2^64 cells >> 300 rows
    report = sanity_report(x, sigma=10.0)
    codes = {f.code for f in report.findings}
    assert "binned_saturation" in codes
    cse = binned_shannon_entropy(x, bins=2)
    assert report.stats["binned_cells"] == cse.extra["occupied_cells"]
    np.testing.assert_allclose(report.stats["binned_entropy_bits"], cse.value, rtol=0, atol=1e-12)
    low = sanity_report(np.random.default_rng(0).normal(size=(300, 2)))
    assert "binned_saturation" not in {f.code for f in low.findings}
    assert low.stats["binned_cells"] == 4


def test_sanity_report_nonfinite_precision_and_scale() -> None:
    x = np.random.default_rng(0).normal(size=(100, 4)).astype(np.float16)
    x[3, 0] = np.inf
    report = sanity_report(x)
    found = {f.code: f for f in report.findings}
    assert found["nonfinite"].level == "error" and found["nonfinite"].details["first_row"] == 3
    assert found["precision"].message.startswith("float16 input")
    assert report.stats["n_finite_rows"] == 99
    # sigma 10 (the paper's setting) judged against the data's scale; the default median rule is never flagged
    big = sanity_report(np.random.default_rng(0).normal(size=(100, 2)) * 1e4, sigma=10.0)
    assert any(f.code == "kernel_degenerate" and "< 1e-6" in f.message for f in big.findings)
    tiny = sanity_report(np.random.default_rng(0).normal(size=(100, 2)) * 1e-3, sigma=10.0)
    assert any(f.code == "kernel_degenerate" and "> 0.99" in f.message for f in tiny.findings)
    assert report.to_dict()["ok"] is False


def test_sanity_report_subsamples_like_the_estimators(tmp_path: Path) -> None:
    x = np.random.default_rng(0).normal(size=(500, 3))
    np.save(tmp_path / "x.npy", x)
    report = sanity_report(open_array(str(tmp_path / "x.npy")), max_n=100)
    assert (report.n_used, report.n_total, report.source) == (100, 500, str(tmp_path / "x.npy"))
    assert report.findings[0].code == "subsampled"
    # every row: the memory-mapped, read-only array itself (no warning from torch about it)
    assert sanity_report(open_array(str(tmp_path / "x.npy")), max_n=0).n_used == 500
