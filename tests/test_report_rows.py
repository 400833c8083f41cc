"""Output for pipelines: nothing cut when stdout is not a terminal, and --format json|jsonl|csv|tsv."""

from __future__ import annotations

import csv
import io
import json
import re

import numpy as np
import pytest
from typer.testing import CliRunner

from dsecli.cli import app
from dsecli.errors import InputError
from dsecli.report.rows import check_format, flatten_row, report_rows, rows_text

runner = CliRunner()
LONG = "embeddings_of_a_model_with_a_rather_long_descriptive_name_checkpoint_epoch_0001_layer_12"


@pytest.fixture()
def emb(tmp_path):
    path = tmp_path / f"{LONG}.npy"
    np.save(path, np.random.default_rng(3).normal(size=(150, 5)))
    return path


def _ok(args: list[str]):
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    return res


def test_piped_table_is_never_cut(emb) -> None:
    # CliRunner's stdout is not a terminal: the table takes its natural width, whatever the 80 columns
    res = _ok(["entropy", str(emb), "-m", "dse,knn,cse", "--device", "cpu"])
    assert "…" not in res.stdout
    assert str(emb) in res.stdout.replace("\n", "")  # the whole path, at most wrapped under the title
    report = json.loads(_ok(["entropy", str(emb), "-m", "dse,knn,cse", "--device", "cpu", "--json"]).stdout)
    from dsecli.report.tables import format_params, format_value

    for r in report["results"]:
        line = next(ln for ln in res.stdout.splitlines() if f" {r['method']} " in ln)
        assert format_value(r["value"]) in line
        assert format_params(r["params"]) in line  # the whole parameter list on one line, unfolded


def test_piped_validate_table_is_never_cut() -> None:
    res = runner.invoke(app, ["validate", "-m", "dse"])
    assert res.exit_code == 0, res.output
    assert "…" not in res.stdout
    assert all(line == line.rstrip() for line in res.stdout.splitlines())  # no padding to a console width
    names = [c["name"] for c in json.loads(_ok(["validate", "-m", "dse", "--json"]).stdout)["cases"]]
    for name in names:
        assert re.search(rf"^\s*{re.escape(name)}\s", res.stdout, flags=re.M), name


def _table_of(text: str, fmt: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text), delimiter="," if fmt == "csv" else "\t"))


def _flat(d: dict, prefix: str):
    """(dotted key, leaf value) pairs, as the csv/tsv columns name nested fields."""
    for key, value in d.items():
        if isinstance(value, dict):
            yield from _flat(value, f"{prefix}.{key}")
        else:
            yield f"{prefix}.{key}", value


@pytest.mark.parametrize("fmt", ["csv", "tsv"])
def test_csv_and_tsv_parse_back_to_the_json_values(emb, fmt) -> None:
    args = ["entropy", str(emb), "-m", "dse,knn,cse", "--device", "cpu"]
    report = json.loads(_ok([*args, "--json"]).stdout)
    rows = _table_of(_ok([*args, "--format", fmt]).stdout, fmt)
    assert [r["method"] for r in rows] == [r["method"] for r in report["results"]]
    for row, want in zip(rows, report["results"]):
        assert float(row["value"]) == want["value"]  # shortest repr: the exact float, not a rounded one
        assert int(row["n_used"]) == want["n_used"] and row["units"] == want["units"]
        for key, value in _flat(want["params"], "params"):
            cell = row[key]
            if value is None:
                assert cell == ""
            elif isinstance(value, bool):
                assert cell == ("true" if value else "false")
            elif isinstance(value, (int, float)):
                assert float(cell) == value, key
            else:
                assert cell == str(value), key


def test_jsonl_is_one_result_per_line(emb) -> None:
    args = ["entropy", str(emb), "-m", "dse,cse", "--device", "cpu"]
    report = json.loads(_ok([*args, "--json"]).stdout)
    lines = _ok([*args, "--format", "jsonl"]).stdout.splitlines()
    got = [json.loads(ln) for ln in lines]
    assert [g["value"] for g in got] == [r["value"] for r in report["results"]]
    assert [g["method"] for g in got] == ["dse", "cse"]
    # --format json is --json
    same = json.loads(_ok([*args, "--format", "json"]).stdout)
    assert [r["value"] for r in same["results"]] == [r["value"] for r in report["results"]]


def test_validate_and_check_rows_as_csv(emb) -> None:
    cases = json.loads(_ok(["validate", "-m", "dse", "--json"]).stdout)["cases"]
    rows = _table_of(_ok(["validate", "-m", "dse", "--format", "csv"]).stdout, "csv")
    assert [r["name"] for r in rows] == [c["name"] for c in cases]
    assert [r["passed"] for r in rows] == ["true" if c["passed"] else "false" for c in cases]
    findings = json.loads(_ok(["check", str(emb), "--json"]).stdout)["findings"]
    rows = _table_of(_ok(["check", str(emb), "--format", "tsv"]).stdout, "tsv")
    assert [(r["code"], r["message"]) for r in rows] == [(f["code"], f["message"]) for f in findings]


@pytest.mark.parametrize(("args", "message"), [
    (["--format", "xml"], "`--format` must be one of table, json, jsonl, csv, tsv; got 'xml'"),
    (["--json", "--format", "csv"], "`--json` and `--format csv` disagree; give one of them"),
])
def test_bad_format_is_one_error_line_before_computing(emb, tmp_path, args, message) -> None:
    out = tmp_path / "r.json"
    res = runner.invoke(app, ["entropy", str(emb), "--device", "cpu", "-o", str(out), *args])
    assert res.exit_code == 2
    assert res.stderr.strip() == f"error: {message}"
    assert "Traceback" not in res.output and res.stdout == ""
    assert not out.exists()


def test_format_helpers() -> None:
    assert check_format(None) == "table" and check_format(None, as_json=True) == "json"
    with pytest.raises(InputError, match=re.escape("`--format` must be one of table, json, jsonl, csv, tsv; got 'yaml'")):
        check_format("yaml")
    assert flatten_row({"a": 1, "p": {"s": 2.5, "q": {"r": None}}, "e": {}}) == {"a": 1, "p.s": 2.5, "p.q.r": None,
                                                                              "e": {}}
    assert report_rows({"cases": [{"x": 1}]}) == [{"x": 1}]
    assert report_rows({"x": 1}) == [{"x": 1}]
    text = rows_text([{"a": 0.1 + 0.2, "b": "x,y", "c": [1, 2]}, {"a": None, "d": True}], "csv")
    got = list(csv.reader(io.StringIO(text)))
    assert got == [["a", "b", "c", "d"], [repr(0.1 + 0.2), "x,y", "[1,2]", ""], ["", "", "", "true"]]
    assert float(got[1][0]) == 0.1 + 0.2


@pytest.fixture()
def checkpoints(tmp_path):
    rng = np.random.default_rng(5)
    paths = []
    for epoch in (0, 1, 2):
        p = tmp_path / f"{LONG}_ep{epoch}.npy"
        np.save(p, rng.normal(size=(80, 4)) * (1 + epoch))
        paths.append(str(p))
    return paths


@pytest.mark.parametrize("fmt", ["csv", "tsv"])
def test_batch_rows_as_csv_match_the_streamed_rows(checkpoints, tmp_path, fmt) -> None:
    args = ["batch", *checkpoints, "-m", "dse,cse", "--device", "cpu"]
    streamed = [json.loads(ln) for ln in _ok(args).stdout.splitlines()]  # jsonl, the default without --output
    rows = _table_of(_ok([*args, "--format", fmt]).stdout, fmt)
    assert [(r["input"], r["method"]) for r in rows] == [(s["input"], s["method"]) for s in streamed]
    assert [float(r["value"]) for r in rows] == [s["value"] for s in streamed]
    # with --output: the table by default, cut nowhere
    out = tmp_path / "r.jsonl"
    res = _ok([*args, "-o", str(out)])
    assert "…" not in res.stdout and checkpoints[-1] in res.stdout
    summary = json.loads(_ok([*args, "-o", str(out), "--format", "json"]).stdout)
    assert summary["rows"] == 6 and summary["rows_skipped"] == 6
