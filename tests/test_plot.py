"""PNG figures (spectrum, DSE versus t, batch results) and ``dse plot``."""

from __future__ import annotations

import json
import math
import re
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from dsecli.batch.read import read_result_rows, row_problem
from dsecli.batch.series import batch_series
from dsecli.cli import app
from dsecli.errors import InputError
from dsecli.inputs.specs import checkpoint_of
from dsecli.measures.spectrum_scan import spectrum_scan
from dsecli.report.plots import (
    PlotDependencyError,
    plot_batch_results,
    plot_dse_versus_t,
    plot_spectrum,
)

pytest.importorskip("matplotlib")

runner = CliRunner()
SAMPLE = Path(__file__).resolve().parents[1] / "sample_data" / "digits_trajectory.h5"


def assert_png_has_content(path: Path, *, min_colours: int = 4) -> None:
    """The file decodes as an image that is not blank: pixel variance > 0 and several distinct colours."""
    import matplotlib.image

    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    img = matplotlib.image.imread(path)
    assert img.ndim == 3 and img.shape[0] > 200 and img.shape[1] > 300
    rgb = np.round(img[..., :3] * 255).astype(np.uint8).reshape(-1, 3)
    assert rgb.std() > 0
    assert len(np.unique(rgb, axis=0)) >= min_colours
    # no temporary file left next to it (written atomically)
    assert not [p for p in path.parent.iterdir() if p.name.startswith(f".{path.name}.")]


@pytest.fixture(scope="module")
def scan():
    rng = np.random.default_rng(0)
    centres = rng.normal(0, 20, (3, 5))
    x = np.concatenate([c + rng.normal(0, 1, (40, 5)) for c in centres])
    return spectrum_scan(x, t="1:10,50", sigma=3.0, device="cpu", t_max=50)


def test_plot_spectrum_png(scan, tmp_path) -> None:
    out = tmp_path / "spectrum.png"
    assert plot_spectrum(scan, out, label="blobs") == str(out)
    assert_png_has_content(out, min_colours=6)


def test_plot_dse_versus_t_png_from_report_dict(scan, tmp_path) -> None:
    out = tmp_path / "t.png"
    plot_dse_versus_t(scan.to_dict(), out)
    assert_png_has_content(out, min_colours=6)


def test_plot_replaces_existing_file_atomically(scan, tmp_path) -> None:
    out = tmp_path / "t.png"
    out.write_bytes(b"old")
    plot_dse_versus_t(scan, out)
    assert_png_has_content(out)


def test_plot_rejects_other_formats_and_missing_dirs(scan, tmp_path) -> None:
    with pytest.raises(InputError, match=re.escape("plots are written as PNG, PDF or SVG; give a file name ending in .png, .pdf or .svg")):
        plot_spectrum(scan, tmp_path / "x.eps")
    assert not (tmp_path / "x.eps").exists()
    with pytest.raises(InputError, match="does not exist"):
        plot_spectrum(scan, tmp_path / "missing" / "x.png")


def test_missing_matplotlib_is_one_clear_error(scan, tmp_path, monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)  # import now raises ImportError
    with pytest.raises(PlotDependencyError, match=r"pip install 'dsecli\[plot\]'"):
        plot_spectrum(scan, tmp_path / "x.png")
    assert not (tmp_path / "x.png").exists()
    emb = tmp_path / "e.npy"
    np.save(emb, np.random.default_rng(0).normal(size=(20, 2)))
    res = runner.invoke(app, ["spectrum", str(emb), "--plot", str(tmp_path / "y.png"), "--no-cache", "--device", "cpu"])
    assert res.exit_code == 2
    assert res.output.strip().splitlines() == [
        "error: plotting needs matplotlib, which is not installed; install it with: pip install 'dsecli[plot]'"
    ]


# ------------------------------------------------------------------------------------------ batch results


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("/true/epoch_012/embeddings", ("/true/epoch_*/embeddings", 12, "epoch")),
        ("/shuffled/epoch_000/embeddings", ("/shuffled/epoch_*/embeddings", 0, "epoch")),
        ("run3/ckpt-500.npy", ("run3/ckpt-*.npy", 500, "checkpoint")),
        ("emb_step1000.npy", ("emb_step*.npy", 1000, "step")),
        ("layer4/ep7", ("layer4/ep*", 7, "epoch")),
        ("/layer4/embeddings", ("/layer4/embeddings", None, None)),
        ("sleep12.npy", ("sleep12.npy", None, None)),
    ],
)
def test_checkpoint_of(text, expected) -> None:
    assert checkpoint_of(text) == expected


def batch_rows() -> list[dict]:
    rows = []
    for regime, scale in (("true", 1.0), ("shuffled", 0.5)):
        for ep in (8, 0, 2, 1, 4):  # out of order on purpose
            ds = f"/{regime}/epoch_{ep:03d}/embeddings"
            common = {"file": "/data/run.h5", "dataset": ds, "units": "bits", "n_used": 100, "n_total": 100}
            rows.append({**common, "method": "dse", "quantity": "entropy", "value": scale * (1 + ep),
                         "params": {"sigma": 10.0, "sigma_rule": "given", "t": 1}})
            rows.append({**common, "method": "dsmi", "quantity": "mutual_information", "value": scale * ep / 8,
                         "params": {"sigma": 10.0, "sigma_rule": "given", "t": 1}})
    rows.append({"file": "/data/run.h5", "dataset": "/true/epoch_016/embeddings", "method": "dse",
                 "quantity": "entropy", "value": None, "error": "failed"})  # a failed row is skipped
    return rows


def test_batch_series_groups_by_method_and_pattern() -> None:
    series = batch_series(batch_rows())
    got = {(s.quantity, s.method, s.label): (s.x, s.y) for s in series}
    assert set(got) == {("entropy", "dse", "dse · true"), ("entropy", "dse", "dse · shuffled"),
                        ("mutual_information", "dsmi", "dsmi · true"),
                        ("mutual_information", "dsmi", "dsmi · shuffled")}
    x, y = got[("entropy", "dse", "dse · true")]
    assert x == [0, 1, 2, 4, 8] and y == [1, 2, 3, 5, 9]
    assert {s.x_kind for s in series} == {"epoch"}


def test_batch_series_without_checkpoint_numbers() -> None:
    rows = [{"file": f"/x/layer{i % 2}.npy", "method": "dse", "quantity": "entropy", "value": float(i),
             "units": "bits", "index": 10 - i} for i in range(6)]
    series = batch_series(rows)
    assert len(series) == 2 and {s.x_kind for s in series} == {"index"}
    s0 = next(s for s in series if "layer0" in s.pattern)
    assert s0.x == [6, 8, 10] and s0.y == [4.0, 2.0, 0.0]
    plain = batch_series([{"method": "knn", "quantity": "entropy", "value": v} for v in (3.0, 1.0, 2.0)])
    assert plain[0].x == [0, 1, 2] and plain[0].y == [3.0, 1.0, 2.0] and plain[0].x_kind == "order"


def test_batch_series_splits_different_settings() -> None:
    rows = [{"dataset": f"/a/epoch_{e}/emb", "method": "dse", "quantity": "entropy", "value": 1.0 + e,
             "params": {"sigma": s, "sigma_rule": "given", "t": 1}} for e in range(3) for s in (1.0, 10.0)]
    series = batch_series(rows)
    assert sorted(s.label for s in series) == ["dse · (fixed σ = 1, t=1)", "dse · (fixed σ = 10, t=1)"]
    # settings that differ between methods only (cse has bins, dse sigma) stay out of the labels
    mixed = batch_series(rows[::2] + [{"dataset": "/a/epoch_0/emb", "method": "cse", "quantity": "entropy",
                                        "value": 1.0, "params": {"bins": 2}}])
    assert sorted(s.label for s in mixed) == ["cse", "dse"]
    refs = batch_series([{"dataset": "/a/epoch_0/emb", "method": "dsmi", "quantity": "mutual_information",
                          "value": 1.0, "reference": f"run.h5:/{r}", "params": {}} for r in ("labels", "shuffled")])
    assert sorted(s.label for s in refs) == ["dsmi · (ref=labels)", "dsmi · (ref=shuffled)"]


def test_plot_batch_results_png(tmp_path) -> None:
    path = tmp_path / "results.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in batch_rows()) + "\n\n")
    out = tmp_path / "curves.png"
    summary = plot_batch_results(path, out)
    assert summary["plot"] == str(out) and len(summary["series"]) == 4
    assert_png_has_content(out, min_colours=6)
    only = plot_batch_results(path, tmp_path / "dse.png", methods=["DSE"], xscale="linear")
    assert {s["method"] for s in only["series"]} == {"dse"}
    with pytest.raises(InputError, match="no result rows with a finite value"):
        plot_batch_results(path, tmp_path / "none.png", methods=["ksg"])
    with pytest.raises(InputError, match="`xscale` must be one of"):
        plot_batch_results(path, tmp_path / "bad.png", xscale="loglog")


def test_read_result_rows_errors(tmp_path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"method": "dse", "value": 1}\n{not json}\n')
    with pytest.raises(InputError, match="line 2 is not valid JSON"):
        read_result_rows(bad)
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n")
    with pytest.raises(InputError, match="no result rows"):
        read_result_rows(empty)


def test_a_last_line_without_its_newline_is_a_row_being_written(tmp_path) -> None:
    import json

    from dsecli.errors import DseWarning
    from dsecli.monitor.monitor import read_runs

    row = {"method": "dse", "quantity": "entropy", "value": 1.5, "units": "bits", "key": "a", "run_id": "r1"}
    live = tmp_path / "live.jsonl"
    live.write_text(json.dumps(row) + "\n" + json.dumps({**row, "key": "b"})[:30])  # a write in progress
    with pytest.warns(DseWarning, match=re.escape(f"{live}: line 2, the last, is incomplete")):
        assert [r["key"] for r in read_result_rows(live)] == ["a"]
    with pytest.warns(DseWarning):
        assert [r["key"] for r in read_runs(live)["r1"]] == ["a"]
    live.write_text(json.dumps(row) + "\n" + json.dumps({**row, "key": "b"})[:30] + "\n")  # complete, and broken
    with pytest.raises(InputError, match="line 2 is not valid JSON"):
        read_result_rows(live)
    bad = tmp_path / "bad.jsonl"  # only the last line can be a write in progress
    bad.write_text('{"method": "dse", "val\n' + json.dumps(row))
    with pytest.raises(InputError, match="line 1 is not valid JSON"):
        read_result_rows(bad)
    with pytest.raises(InputError, match="results file not found"):
        read_result_rows(tmp_path / "missing.jsonl")
    arr = tmp_path / "arr.json"
    arr.write_text(json.dumps([{"value": 1.0, "method": "dse"}]))
    assert read_result_rows(arr) == [{"value": 1.0, "method": "dse"}]
    report = tmp_path / "report.jsonl"  # one `dse entropy --json` report per line
    report.write_text(json.dumps({"command": "entropy", "results": [{"method": "dse", "value": 2.0}]}) + "\n")
    assert read_result_rows(report) == [{"method": "dse", "value": 2.0}]



def test_read_result_rows_reads_every_layout_and_numbers_rows_from_one(tmp_path) -> None:
    rows = [{"method": "dse", "value": 1.0}, {"method": "knn", "value": None}]
    arr = tmp_path / "arr.json"  # a JSON array after blank lines and indentation, as editors save it
    arr.write_text("\n  \n  " + json.dumps(rows, indent=2) + "\n")
    assert read_result_rows(arr) == rows
    gaps = tmp_path / "gaps.jsonl"  # blank lines between rows are skipped, never the end of the file
    gaps.write_text("\n".join([json.dumps(rows[0]), "", "   ", json.dumps(rows[1]), ""]))
    assert read_result_rows(gaps) == rows
    # a row that happens to hold a "results" list is still a row (it has a value), not a report
    odd = tmp_path / "odd.jsonl"
    odd.write_text(json.dumps({"method": "dse", "value": 3.0, "results": []}) + "\n")
    assert read_result_rows(odd) == [{"method": "dse", "value": 3.0, "results": []}]
    report = tmp_path / "two_reports.jsonl"
    report.write_text("\n".join(json.dumps({"results": [r]}) for r in rows) + "\n")
    assert read_result_rows(report) == rows
    bad_arr = tmp_path / "bad_arr.json"
    bad_arr.write_text(json.dumps([rows[0], rows[1], {"method": ""}]))
    with pytest.raises(InputError, match=re.escape(f"{bad_arr}: row 3 has no 'value' field")):
        read_result_rows(bad_arr)
    bad_report = tmp_path / "bad_report.jsonl"
    bad_report.write_text(json.dumps(rows[0]) + "\n" + json.dumps({"results": [rows[0], {"method": "dse"}]}) + "\n")
    with pytest.raises(InputError, match=re.escape(f"{bad_report}: line 2 (result 2) has no 'value' field")):
        read_result_rows(bad_report)
    broken = tmp_path / "broken.json"
    broken.write_text('[{"method": "dse",\n "value": }]')
    with pytest.raises(InputError, match=re.escape(f"{broken}: not valid JSON (Expecting value at line 2)")):
        read_result_rows(broken)
    latin = tmp_path / "latin.jsonl"
    latin.write_bytes(b'{"method": "dse", "value": 1.0, "input": "caf\xe9"}\n')
    with pytest.raises(InputError, match=re.escape(f"{latin}: cannot read results (") + ".*utf-8"):
        read_result_rows(latin)
    with pytest.raises(InputError, match=re.escape(f"{tmp_path / 'none.jsonl'}: results file not found")):
        read_result_rows(tmp_path / "none.jsonl")


def test_read_result_rows_keeps_the_last_row_of_a_key_and_checks_only_rows_it_keeps(tmp_path) -> None:
    old = {"key": "a", "method": "dse", "value": "interrupted"}  # superseded: not read, so not checked
    new = {"key": "a", "method": "dse", "value": 2.0}
    other = {"key": "b", "method": "dse", "value": 3.0}
    plain = {"method": "knn", "value": 4.0}  # no key: always kept
    path = tmp_path / "resumed.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in (old, other, plain, new)) + "\n")
    assert read_result_rows(path) == [other, plain, new]
    with pytest.raises(InputError, match=re.escape(f"{path}: line 1 has a 'value' field that is not a number")):
        read_result_rows(path, latest=False)
    both = tmp_path / "both.jsonl"
    first = {"key": "a", "method": "dse", "value": 1.0}
    both.write_text("\n".join(json.dumps(r) for r in (first, plain, new)) + "\n")
    assert read_result_rows(both) == [plain, new]
    assert read_result_rows(both, latest=False) == [first, plain, new]
    # a key that is not a string is no resume key: every such row is kept, and checked
    nokey = tmp_path / "nokey.jsonl"
    nokey.write_text("\n".join(json.dumps(r) for r in ({"key": 1, "method": "dse", "value": 1.0},
                                                         {"key": 1, "method": "dse", "value": None})) + "\n")
    assert [r["value"] for r in read_result_rows(nokey)] == [1.0, None]
    nokey.write_text("\n".join(json.dumps(r) for r in ({"key": 1, "method": "dse", "value": "x"},
                                                         {"key": 1, "method": "dse", "value": None})) + "\n")
    with pytest.raises(InputError, match="line 1 has a 'value' field"):
        read_result_rows(nokey)


@pytest.mark.parametrize(("row", "why"), [
    ([1, 2], "is not a JSON object (a JSON array)"),
    ("dse", "is not a JSON object (a JSON string)"),
    (None, "is not a JSON object (a JSON null)"),
    ({}, "has no 'method' or 'value' field, so it is not a result row"),
    ({"value": 1.0}, "has no 'method' field, so it is not a result row"),
    ({"method": "dse"}, "has no 'value' field, so it is not a result row"),
    ({"method": "", "value": 1.0}, "has a 'method' field that is not a non-empty string (string \"\")"),
    ({"method": None, "value": 1.0}, "has a 'method' field that is not a non-empty string (null null)"),
    ({"method": "dse", "value": True}, "has a 'value' field that is not a number or null (boolean true)"),
    ({"method": "dse", "value": [1.5]}, "has a 'value' field that is not a number or null (array [1.5])"),
    ({"method": "dse", "value": 1.0, "quantity": 1}, "has a 'quantity' field that is not a string (number 1)"),
    ({"method": "dse", "value": 1.0, "units": False}, "has a 'units' field that is not a string (boolean false)"),
    ({"method": "dse", "value": 1.0, "dataset": {}}, "has a 'dataset' field that is not a string (object {})"),
    ({"method": "dse", "value": 1.0, "file": 2.5}, "has a 'file' field that is not a string (number 2.5)"),
    ({"method": "dse", "value": 1.0, "series": ["a"]}, "has a 'series' field that is not a string (array [\"a\"])"),
    ({"method": "dse", "value": 1.0, "params": "x" * 50},
     f"has a 'params' field that is not an object (string \"{'x' * 36}...)"),
    ({"method": "dse", "value": 1.0, "extra": 0}, "has a 'extra' field that is not an object (number 0)"),
])
def test_row_problem_names_the_field_and_its_json_type(row, why) -> None:
    assert row_problem(row) == why


def test_row_problem_of_rows_made_in_python_and_the_whole_message(tmp_path) -> None:
    # rows handed over in Python (batch_series, the monitor) may hold values JSON has no name for
    assert row_problem({"method": "dse", "value": (1, 2)}) == \
        "has a 'value' field that is not a number or null (tuple [1, 2])"
    assert row_problem({"method": "dse", "value": {3}}) == \
        "has a 'value' field that is not a number or null (set \"{3}\")"
    at_limit = "y" * 38  # 40 characters once quoted: shown whole
    assert row_problem({"method": "dse", "value": 1.0, "units": 1, "params": at_limit}) == \
        "has a 'units' field that is not a string (number 1)"
    assert row_problem({"method": "dse", "value": 1.0, "params": at_limit}) == \
        f"has a 'params' field that is not an object (string \"{at_limit}\")"
    path = tmp_path / "r.jsonl"
    path.write_text(json.dumps({"method": "dse"}) + "\n")
    with pytest.raises(InputError) as err:
        read_result_rows(path)
    assert str(err.value) == (f"{path}: line 1 has no 'value' field, so it is not a result row; results are the rows "
                              "of dse batch, of dse entropy/mi --json or --format jsonl, or of the training monitor")
    arr = tmp_path / "resumed.json"  # rows of one key in a JSON array: the last is kept there too
    arr.write_text(json.dumps([{"key": "a", "method": "dse", "value": 1.0}, {"key": "a", "method": "dse", "value": 2.0}]))
    assert [r["value"] for r in read_result_rows(arr)] == [2.0]
    assert [r["value"] for r in read_result_rows(arr, latest=False)] == [1.0, 2.0]


def test_row_problem_accepts_every_valid_row() -> None:
    assert row_problem({"method": "dse", "value": None}) is None  # a failed row
    assert row_problem({"method": "dse", "value": 3}) is None
    full = {"method": "dse", "value": -1.5, "quantity": "entropy", "units": "bits", "dataset": "/e", "file": "e.h5",
            "series": "epoch_*", "params": {"sigma": 1.0}, "extra": {}}
    assert row_problem(full) is None
    assert row_problem({**full, "quantity": None, "units": None, "dataset": None, "file": None, "series": None,
                        "params": None, "extra": None}) is None


def test_read_results_summary_columns_from_a_written_row(tmp_path) -> None:
    from dsecli.batch.read import RESULT_COLUMNS, read_results

    row = {"input": "e.h5:/epoch_3", "dataset": "/epoch_3", "checkpoint": 3, "series": "epoch_*", "reference": "y.npy",
           "method": "dsmi", "quantity": "mutual_information", "value": 1.25, "units": "bits", "n_used": 90,
           "n_total": 100, "run_id": "r1", "key": "k1", "params": {"sigma": 2.0, "t": 4},
           "extra": {"error_estimate_bits": None, "spread": 0.1, "std": 0.2, "ceiling": {"value": None, "bits": 3.3}}}
    failed = {"method": "dse", "value": None, "params": None, "extra": None}
    other = {"method": "knn", "value": 2.0, "extra": {"ceiling": 5.0}}
    path = tmp_path / "r.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in (row, failed, other)) + "\n")
    table = read_results(path)
    records = table.to_dict("records") if hasattr(table, "to_dict") else table
    assert list(records[0]) == list(RESULT_COLUMNS)
    got = dict(records[0])
    assert got == {"input": "e.h5:/epoch_3", "dataset": "/epoch_3", "checkpoint": 3, "series": "epoch_*",
                   "reference": "y.npy", "method": "dsmi", "quantity": "mutual_information", "value": 1.25,
                   "units": "bits", "error": 0.2, "ceiling": 3.3, "n_used": 90, "n_total": 100, "sigma": 2.0,
                   "t": 4, "run_id": "r1", "key": "k1"}  # error: the first of ERROR_KEYS set (std before spread)
    assert records[2]["ceiling"] == 5.0 and records[2]["method"] == "knn"
    wide = read_results(path, flatten=True)
    columns = list(wide.columns) if hasattr(wide, "columns") else list(wide[0])
    assert "params.sigma" in columns and "extra.ceiling.bits" in columns
    ceilings = tmp_path / "c.jsonl"
    ceilings.write_text("\n".join(json.dumps({"key": k, "method": "dse", "value": 1.0, "extra": {"ceiling": c}})
                                  for k, c in (("a", {"value": 2.5, "bits": 3.3}), ("b", {"value": None}),
                                               ("c", 9.0), ("c", 7.0))) + "\n")
    table = read_results(ceilings)  # the ceiling's value before its bits; of rows of one key only the last
    records = table.to_dict("records") if hasattr(table, "to_dict") else table
    assert [r["key"] for r in records] == ["a", "b", "c"] and records[0]["ceiling"] == 2.5
    assert records[1]["ceiling"] is None or math.isnan(records[1]["ceiling"])
    assert records[2]["ceiling"] == 7.0
    assert len(read_results(ceilings, latest=False)) == 4


def test_read_results_without_pandas_gives_flat_dicts(tmp_path, monkeypatch) -> None:
    from dsecli.batch.read import RESULT_COLUMNS, read_results

    monkeypatch.setitem(sys.modules, "pandas", None)  # `import pandas` raises ImportError
    path = tmp_path / "r.jsonl"
    path.write_text(json.dumps({"method": "dse", "value": 1.5, "units": "bits", "params": {"sigma": 2.0}}) + "\n")
    (row,) = read_results(path)
    assert list(row) == list(RESULT_COLUMNS)
    assert (row["method"], row["value"], row["units"], row["sigma"], row["input"]) == ("dse", 1.5, "bits", 2.0, None)
    assert read_results(path, flatten=True) == [{"method": "dse", "value": 1.5, "units": "bits", "params.sigma": 2.0}]


def test_cli_plot(tmp_path) -> None:
    path = tmp_path / "results.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in batch_rows()))
    out = tmp_path / "curves.png"
    res = runner.invoke(app, ["plot", str(path), "-o", str(out), "--json"])
    assert res.exit_code == 0, res.output
    summary = json.loads(res.stdout)
    assert summary["plot"] == str(out) and len(summary["series"]) == 4
    assert_png_has_content(out)
    res = runner.invoke(app, ["plot", str(path), "-o", str(tmp_path / "t.png")])
    assert res.exit_code == 0 and "dsmi" in res.stdout
    res = runner.invoke(app, ["plot", str(tmp_path / "missing.jsonl"), "-o", str(out)])
    assert res.exit_code == 2 and "results file not found" in res.output


def test_cli_spectrum_plots(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("DSECLI_CACHE_DIR", str(tmp_path / "cache"))
    emb = tmp_path / "e.npy"
    rng = np.random.default_rng(1)
    np.save(emb, np.concatenate([c + rng.normal(0, 1, (30, 4)) for c in rng.normal(0, 30, (3, 4))]))
    res = runner.invoke(app, ["spectrum", str(emb), "--sigma", "3", "--device", "cpu", "--plot",
                              str(tmp_path / "s.png"), "--plot-t", str(tmp_path / "t.png"), "-q"])
    assert res.exit_code == 0, res.output
    assert_png_has_content(tmp_path / "s.png", min_colours=6)
    assert_png_has_content(tmp_path / "t.png", min_colours=6)


@pytest.mark.skipif(not SAMPLE.exists(), reason=f"sample data not found at {SAMPLE}")
def test_digits_sample_spectrum_plot(tmp_path) -> None:
    from dsecli.inputs.readers import open_array

    src = open_array(f"{SAMPLE}:/true/epoch_256/embeddings")
    scan = spectrum_scan(src, t="1,10", sigma=10.0, device="cpu", max_n=200)
    assert scan.n_used == 200 and scan.dse_values[0] > scan.dse_values[1] > 0
    plot_spectrum(scan, tmp_path / "digits.png", label="digits")
    assert_png_has_content(tmp_path / "digits.png", min_colours=6)


# ------------------------------------------------------------------ formats, bands, colours, ceilings, ticks


def test_pdf_and_svg_by_extension(scan, tmp_path) -> None:
    plot_spectrum(scan, tmp_path / "s.pdf")
    plot_dse_versus_t(scan, tmp_path / "t.SVG")
    pdf = (tmp_path / "s.pdf").read_bytes()
    svg = (tmp_path / "t.SVG").read_text()
    assert pdf.startswith(b"%PDF-") and pdf.rstrip().endswith(b"%%EOF")
    assert svg.lstrip().startswith("<?xml") and "<svg" in svg[:2000] and svg.rstrip().endswith("</svg>")
    # no creation date: the same figure gives the same bytes
    plot_spectrum(scan, tmp_path / "again.pdf")
    assert (tmp_path / "again.pdf").read_bytes() == pdf


def _rows_with_uncertainty() -> list[dict]:
    rows = []
    for ep in (0, 1, 2, 4, 8):
        for regime in ("true", "shuffled"):
            common = {"file": "/d/run.h5", "dataset": f"/{regime}/epoch_{ep:03d}/embeddings", "units": "bits"}
            v = 1.0 + ep / 4 if regime == "true" else 0.5
            rows.append({**common, "method": "dse", "quantity": "entropy", "value": v,
                         "extra": {"ceiling": {"value": math.log2(500)}, "bootstrap": {"low": v - 0.1, "high": v + 0.2}}})
            rows.append({**common, "method": "dsmi", "quantity": "mutual_information", "value": v / 3,
                         "extra": {"std": 0.05}})
    return rows


def test_series_keep_their_colour_across_panels_and_bands_follow() -> None:
    from dsecli.report.plots import batch_figure

    fig, series = batch_figure(_rows_with_uncertainty(), title="run")
    ent, mi = fig.axes
    assert ent.get_title() == "Entropy" and mi.get_title() == "Mutual information"
    colour = {}
    for ax in (ent, mi):
        for line in ax.get_lines():
            if line.get_gid() != "ceiling":
                regime = "shuffled" if "shuffled" in line.get_label() else "true"
                colour.setdefault(regime, set()).add(line.get_color())
    assert len(colour["true"]) == 1 and len(colour["shuffled"]) == 1 and colour["true"] != colour["shuffled"]
    assert fig.get_suptitle() == "run"
    # the bootstrap interval of entropy rows, value +- std of the MI rows, each in its series' colour
    from matplotlib.colors import to_rgba

    bands = {c.get_gid(): c for ax in (ent, mi) for c in ax.collections}
    assert set(bands) == {f"band:{s.label}" for s in series}
    true_dse = next(s for s in series if s.method == "dse" and "true" in s.label)
    assert true_dse.low == [y - 0.1 for y in true_dse.y] and true_dse.high == [y + 0.2 for y in true_dse.y]
    face = bands[f"band:{true_dse.label}"].get_facecolor()[0]
    assert np.allclose(face[:3], to_rgba(next(iter(colour["true"])))[:3])
    true_mi = next(s for s in series if s.method == "dsmi" and "true" in s.label)
    assert np.allclose(np.subtract(true_mi.high, true_mi.y), 0.05)


def test_shared_ceiling_is_a_dotted_line_only_when_all_rows_share_it() -> None:
    from dsecli.report.plots import batch_figure

    fig, _ = batch_figure(_rows_with_uncertainty())
    ent, mi = fig.axes
    ceilings = [ln for ln in ent.get_lines() if ln.get_gid() == "ceiling"]
    assert len(ceilings) == 1 and ceilings[0].get_linestyle() == ":"
    assert np.allclose(ceilings[0].get_ydata(), math.log2(500))
    assert not [ln for ln in mi.get_lines() if ln.get_gid() == "ceiling"]  # MI rows carry none
    mixed = _rows_with_uncertainty()
    mixed[0]["extra"]["ceiling"] = {"value": 5.0}  # one row with another ceiling: no line
    fig, _ = batch_figure(mixed)
    assert not [ln for ln in fig.axes[0].get_lines() if ln.get_gid() == "ceiling"]
    plain = batch_figure([{"method": "dse", "quantity": "entropy", "value": 1.0, "extra": {"ceiling": 3.0}},
                          {"method": "dse", "quantity": "entropy", "value": 2.0, "extra": {"ceiling": 3.0}}])[0]
    assert [ln.get_ydata()[0] for ln in plain.axes[0].get_lines() if ln.get_gid() == "ceiling"] == [3.0]


def test_log_epoch_axis_ticks_are_the_checkpoints() -> None:
    from dsecli.report.plots import batch_figure

    rows = [{"dataset": f"/a/epoch_{e}/emb", "method": "dse", "quantity": "entropy", "value": 1.0 + e}
            for e in (0, 1, 2, 4, 8, 16, 32, 64)]
    ax = batch_figure(rows)[0].axes[0]
    assert ax.get_xscale() == "symlog"
    assert list(ax.get_xticks()) == [0, 1, 2, 4, 8, 16, 32, 64]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["0", "1", "2", "4", "8", "16", "32", "64"]
    many = [{"dataset": f"/a/epoch_{e}/emb", "method": "dse", "quantity": "entropy", "value": 1.0}
            for e in [0, *range(1, 5000, 97)]]
    ticks = list(batch_figure(many, xscale="log")[0].axes[0].get_xticks())
    assert ticks == [0, 1, 10, 100, 1000]


def test_cli_plot_pdf_with_title(tmp_path) -> None:
    path = tmp_path / "results.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in _rows_with_uncertainty()))
    res = runner.invoke(app, ["plot", str(path), "-o", str(tmp_path / "c.pdf"), "--title", "Training run", "--json"])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "c.pdf").read_bytes().startswith(b"%PDF")
    assert all(s["band"] for s in json.loads(res.stdout)["series"])
    res = runner.invoke(app, ["plot", str(path), "-o", str(tmp_path / "c.jpg")])
    assert res.exit_code == 2 and res.stderr.strip() == (f"error: {tmp_path / 'c.jpg'}: plots are written as PNG, PDF "
                                                         "or SVG; give a file name ending in .png, .pdf or .svg")
    assert not (tmp_path / "c.jpg").exists()


@pytest.mark.parametrize(("row", "why"), [
    ({"method": "dse", "value": 1.0, "params": [1, 2]}, "line 2 has a 'params' field that is not an object"),
    ({"method": "dse", "value": 1.0, "params": "sigma"}, "line 2 has a 'params' field that is not an object"),
    ({"value": 2.0}, "line 2 has no 'method' field"),
    ({"method": "dse", "value": "1.5"}, "line 2 has a 'value' field that is not a number"),
    ({"method": 3, "value": 1.0}, "line 2 has a 'method' field that is not a non-empty string"),
])
def test_plot_refuses_a_malformed_row_naming_file_and_line(tmp_path, row, why) -> None:
    path = tmp_path / "results.jsonl"
    good = {"file": "a.npy", "method": "dse", "quantity": "entropy", "value": 1.5, "params": {"sigma": 1.0}}
    path.write_text(json.dumps(good) + "\n" + json.dumps(row) + "\n")
    with pytest.raises(InputError, match=re.escape(f"{path}: {why}")):
        read_result_rows(path)
    res = runner.invoke(app, ["plot", str(path), "-o", str(tmp_path / "p.png")])
    assert res.exit_code == 2 and why in res.output and "Error" not in res.output
    assert not (tmp_path / "p.png").exists()
    with pytest.raises(InputError, match="result row 2"):
        batch_series([good, row])
