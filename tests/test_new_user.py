"""What a new user trips on: one regression test per item (messages, advice, hints, pipelines,
hostile stored rows, figures, the approximate solver's accuracy)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from dsecli.cli import app

runner = CliRunner()


def _run(args: list[str]):
    res = runner.invoke(app, args)
    assert not isinstance(res.exception, Exception) or isinstance(res.exception, SystemExit), repr(res.exception)
    return res


# 1. messages and tables quote data: no emoji codes, no markup
def test_keys_with_emoji_codes_print_as_written(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    rng = np.random.default_rng(0)
    np.savez("obj.npz", **{":x:": rng.normal(size=(30, 3)), "[b]": rng.normal(size=(30, 2))})
    res = _run(["info", "obj.npz"])
    assert res.exit_code == 0 and ":x:" in res.stdout and "[b]" in res.stdout
    assert "\u274c" not in res.stdout
    res = _run(["entropy", "obj.npz"])
    assert res.exit_code == 2
    assert ":x:" in res.stderr and "[b]" in res.stderr and "\u274c" not in res.stderr


# 2. the error names the true cause
def test_huge_permutations_name_the_option(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    rng = np.random.default_rng(0)
    np.save("x.npy", rng.normal(size=(40, 3)))
    np.save("y.npy", np.arange(40) % 4)
    res = _run(["mi", "x.npy", "y.npy", "--permutations", "1000000000000"])
    assert res.exit_code == 1
    assert "`permutations` = 1,000,000,000,000" in res.stderr and "fewer permutations" in res.stderr
    assert "--max-n" not in res.stderr and "approx" not in res.stderr


def test_swapped_mi_arguments_get_the_hint(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    rng = np.random.default_rng(0)
    np.save("emb.npy", rng.normal(size=(60, 16)))
    np.save("y.npy", np.arange(60) % 4)
    np.save("y2.npy", (np.arange(60) % 4).reshape(-1, 1))
    hint = "EMB and REF look swapped: pass the embeddings first"
    res = _run(["mi", "y.npy", "emb.npy"])  # 1-D labels as EMB: refused, with the hint
    assert res.exit_code == 2 and "reshape" in res.stderr and hint in res.stderr
    res = _run(["mi", "y2.npy", "emb.npy", "--format", "csv"])  # runs, with the hint as a warning
    assert res.exit_code == 0 and f"warning: {hint}" in res.stderr
    res = _run(["mi", "emb.npy", "y.npy", "--format", "csv"])
    assert res.exit_code == 0 and hint not in res.stderr
    res = _run(["check", "y2.npy", "--ref", "emb.npy"])  # the same rule
    assert hint in res.stdout


def test_knn_zero_distances_give_the_cause(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from dsecli.errors import ComputationError
    from dsecli.estimators.kl import zero_distance_error

    monkeypatch.chdir(tmp_path)
    np.save("tiny.npy", np.random.default_rng(0).normal(size=(40, 2)) * 1e-170)
    for method in ("knn", "knn-weighted"):
        res = _run(["entropy", "tiny.npy", "-m", method, "--dtype", "float64"])
        assert res.exit_code == 1, res.stderr
        line = res.stderr.strip().splitlines()[-1]
        assert line.startswith("error: tiny.npy: 40 of 40 distinct rows have") and "rescale" in line
        assert "float64" in line and "use dtype float64" not in line
    err = zero_distance_error(3, 40, 2, source="a.npy", dtype="float32")
    assert isinstance(err, ComputationError) and "use dtype float64" in str(err)


# 3. hints from the library's own tables
def _help(*command: str) -> str:
    res = _run([*command, "--help"])
    assert res.exit_code == 0, res.output
    return " ".join(res.output.split())


def test_help_lists_every_format_all_and_mine_defaults() -> None:
    import inspect

    from dsecli import mine_mutual_information
    from dsecli.inputs.readers import EXTENSIONS
    from dsecli.methods import ENTROPY_ALL, MI_ALL

    for command in ("entropy", "spectrum", "check", "info", "mi"):
        text = _help(command)
        missing = [ext for ext in EXTENSIONS if f"{ext}," not in text and f"{ext})" not in text]
        assert not missing, (command, missing)
    assert f"all = {', '.join(ENTROPY_ALL)}" in _help("entropy")
    assert f"all = {', '.join(MI_ALL)})" in _help("mi")
    text = _help("mi")
    defaults = inspect.signature(mine_mutual_information).parameters
    for option, name in (("--hidden-units", "hidden_units"), ("--epochs", "epochs"), ("--holdout", "holdout_fraction"),
                         ("--learning-rate", "learning_rate")):
        tail = text[text.index(option + " <"):]
        assert f"(default {defaults[name].default})" in tail[:200], option


# 4. pipelines
def test_entropy_and_mi_rows_name_their_inputs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import csv
    import io
    import json

    monkeypatch.chdir(tmp_path)
    rng = np.random.default_rng(0)
    np.save("x.npy", rng.normal(size=(40, 3)))
    np.save("y.npy", np.arange(40) % 4)
    res = _run(["entropy", "x.npy", "-q", "--format", "csv"])
    row = next(csv.DictReader(io.StringIO(res.stdout)))
    assert row["input"] == "x.npy" and row["method"] == "dse"
    res = _run(["mi", "x.npy", "y.npy", "-q", "--format", "jsonl"])
    row = json.loads(res.stdout.splitlines()[0])
    assert (row["input"], row["reference"], row["method"]) == ("x.npy", "y.npy", "dsmi")


def _batch_dir(tmp_path: Path) -> Path:
    d = tmp_path / "runs"
    d.mkdir()
    rng = np.random.default_rng(0)
    for epoch in range(2):
        np.save(d / f"epoch_{epoch}.npy", rng.normal(size=(40, 3)))
    np.save(d / "y.npy", np.arange(40) % 4)
    return d


def test_batch_leaves_the_reference_out_of_its_inputs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import json

    from dsecli import expand_inputs

    d = _batch_dir(tmp_path)
    monkeypatch.chdir(tmp_path)
    res = _run(["batch", "runs", "--ref", "runs/y.npy", "-q", "-m", "dse,dsmi"])
    assert res.exit_code == 0, res.stderr
    inputs = {json.loads(line)["input"] for line in res.stdout.splitlines()}
    assert inputs == {"runs/epoch_0.npy", "runs/epoch_1.npy"}
    # named as an input, it stays one; by another path, it is still the reference
    assert [b.file for b in expand_inputs(["runs/y.npy"], reference="runs/y.npy")] == ["runs/y.npy"]
    assert len(expand_inputs([str(d / "*.npy")], reference=str(d / ".." / "runs" / "y.npy"))) == 2


def test_read_results_gives_a_small_table(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pd = pytest.importorskip("pandas")
    from dsecli import read_results
    from dsecli.batch.read import RESULT_COLUMNS

    _batch_dir(tmp_path)
    monkeypatch.chdir(tmp_path)
    res = _run(["batch", "runs", "--ref", "runs/y.npy", "-q", "-m", "dse,dsmi", "-o", "r.jsonl"])
    assert res.exit_code == 0, res.stderr
    df = read_results("r.jsonl")
    assert isinstance(df, pd.DataFrame) and list(df.columns) == list(RESULT_COLUMNS) and len(df) == 4
    dse = df[df.method == "dse"].sort_values("checkpoint")
    assert list(dse.checkpoint) == [0, 1] and (dse.units == "bits").all()
    assert np.allclose(dse.ceiling, np.log2(40)) and (dse.t == 1).all() and dse.sigma.notna().all()
    dsmi = df[df.method == "dsmi"]
    assert (dsmi.reference == "runs/y.npy").all() and dsmi.error.notna().all()
    wide = read_results("r.jsonl", flatten=True)
    assert "params.sigma" in wide.columns and len(wide.columns) > len(df.columns)
    (tmp_path / "bad.jsonl").write_text('{"method": "dse", "value": 1}\n[1, 2]\n')
    with pytest.raises(Exception, match=r"bad.jsonl: line 2 is not a result row"):
        read_results("bad.jsonl")
