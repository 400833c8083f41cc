"""``dse batch`` and :func:`dsecli.batch.run_batch`: input expansion, rows, resume, workers, Dask."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from dsecli import diffusion_spectral_entropy, diffusion_spectral_mutual_information
from dsecli.batch import BatchInput, ResultsFile, expand_inputs, run_batch, split_methods
from dsecli.batch.runners import rows_digest as _digest
from dsecli.cli import app
from dsecli.errors import InputError
from dsecli.inputs.sampling import choose_rows

runner = CliRunner()
N = 90


def _trajectory(n: int = N, d: int = 5, epochs=(0, 1, 2, 10), seed: int = 0) -> tuple[dict[int, np.ndarray], np.ndarray]:
    """Three Gaussian classes that separate as the 'epoch' grows."""
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(3), n // 3)
    centres = rng.normal(size=(3, d))
    noise = rng.normal(size=(n, d))
    return {e: (noise + (1 + e) * centres[labels]).astype(np.float64) for e in epochs}, labels


@pytest.fixture()
def h5file(tmp_path: Path) -> tuple[Path, dict[int, np.ndarray], np.ndarray]:
    import h5py

    embs, labels = _trajectory()
    path = tmp_path / "run.h5"
    with h5py.File(path, "w") as f:
        f["labels"] = labels
        f["vectors"] = np.random.default_rng(5).normal(size=(N, 3)) + labels[:, None] * 4.0
        for e, x in embs.items():
            f[f"true/epoch_{e}/embeddings"] = x
            f[f"shuffled/epoch_{e}/embeddings"] = x[::-1].copy()
            f[f"true/epoch_{e}/logits"] = x[:, :2]
    return path, embs, labels


@pytest.fixture()
def npy_dir(tmp_path: Path) -> Path:
    embs, _ = _trajectory()
    d = tmp_path / "runs"
    d.mkdir()
    for e, x in embs.items():
        np.save(d / f"ep{e}.npy", x)
    return d


def _lines(path: Path) -> list[dict]:
    text = path.read_text()
    assert text == "" or text.endswith("\n")
    return [json.loads(line) for line in text.splitlines()]


def _strip_timing(row: dict) -> dict:
    # timings and the machine-dependent diagnostics in `extra` (memory plans) differ between runs
    return {k: v for k, v in row.items() if k not in ("seconds", "extra")}


# ------------------------------------------------------------------------------------------ expansion


def test_globs_sort_naturally_and_h5_patterns_match_dataset_paths(h5file, npy_dir) -> None:
    files = expand_inputs(str(npy_dir / "ep*.npy"))
    assert [os.path.basename(i.file) for i in files] == ["ep0.npy", "ep1.npy", "ep2.npy", "ep10.npy"]
    assert [i.checkpoint for i in files] == [0, 1, 2, 10]
    assert [i.index for i in files] == [0, 1, 2, 3]

    path, _, _ = h5file
    got = expand_inputs(f"{path}:/true/epoch_*/embeddings")
    assert [i.dataset for i in got] == [f"/true/epoch_{e}/embeddings" for e in (0, 1, 2, 10)]
    assert {i.series for i in got} == {"run.h5:/true/epoch_*/embeddings"}
    # `*` crosses `/`; a pattern without the leading slash works too
    both = expand_inputs(f"{path}:*/epoch_1*/embeddings")
    assert [i.dataset for i in both] == ["/shuffled/epoch_1/embeddings", "/shuffled/epoch_10/embeddings",
                                        "/true/epoch_1/embeddings", "/true/epoch_10/embeddings"]
    assert all(i.n_total == N for i in both)


def test_list_file_keeps_order_skips_comments_and_drops_repeats(h5file, npy_dir, tmp_path) -> None:
    path, _, _ = h5file
    listing = tmp_path / "inputs.txt"
    listing.write_text(
        f"# checkpoints\n{npy_dir / 'ep10.npy'}\n\n{path}:/true/epoch_[01]/embeddings\n  {npy_dir / 'ep10.npy'}  \n"
    )
    got = expand_inputs([f"@{listing}", str(npy_dir / "ep2.npy")])
    assert [i.label for i in got] == [
        str(npy_dir / "ep10.npy"), f"{path}:/true/epoch_0/embeddings", f"{path}:/true/epoch_1/embeddings",
        str(npy_dir / "ep2.npy"),
    ]


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("{d}/nothing_*.npy", "`inputs`: no file matches"),
        ("{h5}:/true/epoch_*/nothing", "no dataset matches '/true/epoch_*/nothing'"),
        ("@{d}/missing.txt", "missing.txt: list file not found"),
        ("{d}/absent.npy", "absent.npy: file not found"),
        ("{h5}", "holds several datasets"),
    ],
)
def test_input_errors_are_one_line_with_exit_code_2(spec, message, h5file, npy_dir) -> None:
    path, _, _ = h5file
    spec = spec.format(d=npy_dir, h5=path)
    with pytest.raises(InputError, match=message.replace("*", r"\*").replace("[", r"\[")):
        expand_inputs(spec)
    res = runner.invoke(app, ["batch", spec])
    assert res.exit_code == 2
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0]


def test_empty_list_file_and_nested_list_are_refused(tmp_path) -> None:
    empty = tmp_path / "empty.txt"
    empty.write_text("# nothing here\n\n")
    with pytest.raises(InputError, match="names no inputs"):
        expand_inputs(f"@{empty}")
    nested = tmp_path / "nested.txt"
    nested.write_text(f"@{empty}\n")
    with pytest.raises(InputError, match="cannot name other list files"):
        expand_inputs(f"@{nested}")


def test_methods_split_and_need_a_reference() -> None:
    assert split_methods(None, has_reference=False) == (["dse"], [])
    assert split_methods(None, has_reference=True) == (["dse"], ["dsmi"])
    assert split_methods("dse, csmi,dse", has_reference=True) == (["dse"], ["csmi"])
    with pytest.raises(InputError, match="needs a reference"):
        split_methods("dsmi", has_reference=False)
    with pytest.raises(InputError, match="'nope' is unknown"):
        split_methods("dse,nope", has_reference=False)


# ------------------------------------------------------------------------------------------ rows


def test_rows_hold_the_library_values_and_the_fields_plot_reads(h5file, tmp_path) -> None:
    path, embs, labels = h5file
    out = tmp_path / "results.jsonl"
    summary = run_batch(f"{path}:/true/epoch_*/embeddings", reference=f"{path}:/labels", output=out,
                        sigma="median", device="cpu")
    rows = _lines(out)
    assert summary.computed == len(rows) == 8 and summary.skipped == 0
    assert [r["method"] for r in rows] == ["dse", "dsmi"] * 4
    for r in rows:
        x = embs[r["checkpoint"]]
        if r["method"] == "dse":
            expected = diffusion_spectral_entropy(x, sigma="median", device="cpu").value
            assert r["quantity"] == "entropy" and r["reference"] is None
        else:
            expected = diffusion_spectral_mutual_information(x, labels, sigma="median", device="cpu").value
            assert r["quantity"] == "mutual_information" and r["reference"] == f"{path}:/labels"
        assert r["value"] == expected
        assert r["units"] == "bits" and r["n_used"] == r["n_total"] == N and r["rows_digest"] == "all"
        assert r["file"] == str(path) and r["dataset"] == f"/true/epoch_{r['checkpoint']}/embeddings"
        assert r["params"]["sigma_rule"] == "median" and r["seconds"] >= 0
        assert {"index", "series", "key", "input", "dsecli_version"} <= set(r)
    assert summary.rows == rows


def test_inputs_with_the_same_n_use_the_same_rows(npy_dir, tmp_path) -> None:
    out = tmp_path / "r.jsonl"
    run_batch(str(npy_dir / "ep*.npy"), output=out, max_n=40, seed=3, device="cpu")
    rows = _lines(out)
    idx = choose_rows(N, 40, seed=3)
    assert {r["rows_digest"] for r in rows} == {_digest(idx)}
    assert all(r["n_used"] == 40 and r["subsampled"] for r in rows)
    # the value is DSE of exactly those rows
    x = np.load(npy_dir / "ep2.npy")
    row = next(r for r in rows if r["checkpoint"] == 2)
    assert row["value"] == pytest.approx(diffusion_spectral_entropy(x[idx], max_n=0, device="cpu").value, rel=1e-12)


def test_vector_reference_is_clustered_once_and_matches_dsmi(h5file, tmp_path, monkeypatch) -> None:
    import dsecli.inputs.reference as reference

    path, embs, _ = h5file
    calls = []
    real = reference.kmeans

    def counting(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(reference, "kmeans", counting)
    summary = run_batch(f"{path}:/true/epoch_*/embeddings", reference=f"{path}:/vectors", methods="dsmi,csmi",
                        n_clusters=3, sigma=2.0, device="cpu")
    # once per input, shared by both class-based methods of its one library call
    assert len(calls) == len({r["input"] for r in summary.rows}) > 1
    monkeypatch.setattr(reference, "kmeans", real)
    import h5py

    with h5py.File(path) as f:
        vectors = f["vectors"][()]
    for r in summary.rows:
        direct = diffusion_spectral_mutual_information(embs[r["checkpoint"]], vectors, n_clusters=3, sigma=2.0,
                                                       device="cpu")
        if r["method"] != "dsmi":
            continue
        assert r["value"] == direct.value
        assert r["params"]["classes_from"] == "clustered" and r["params"]["ref_kind"] == "auto"
        assert r["params"]["reference_reading"]["reading"] == "vectors"


def test_reference_row_count_must_match(h5file, tmp_path) -> None:
    path, _, _ = h5file
    np.save(tmp_path / "short.npy", np.arange(N - 1))
    with pytest.raises(InputError, match=f"embeddings have {N} rows but the reference .* has {N - 1}"):
        run_batch(f"{path}:/true/epoch_0/embeddings", reference=str(tmp_path / "short.npy"))


# ------------------------------------------------------------------------------------------ resume


def test_rerun_skips_finished_rows_and_changed_parameters_add_rows(h5file, tmp_path) -> None:
    path, _, _ = h5file
    out = tmp_path / "r.jsonl"
    spec = f"{path}:/true/epoch_*/embeddings"
    run_batch(spec, reference=f"{path}:/labels", output=out, device="cpu")
    before = out.read_bytes()
    again = run_batch(spec, reference=f"{path}:/labels", output=out, device="cpu", sigma="median", t=1, base=2.0)
    assert again.computed == 0 and again.skipped == 8 and out.read_bytes() == before
    assert [r["key"] for r in again.rows] == [r["key"] for r in _lines(out)]
    # k is not a parameter of dse or dsmi: an error naming it; another sigma: new rows for both methods
    with pytest.raises(InputError, match="`k` is not an option of dse, dsmi"):
        run_batch(spec, reference=f"{path}:/labels", output=out, k=7)
    more = run_batch(spec, reference=f"{path}:/labels", output=out, sigma=3.0)
    assert more.computed == 8 and len(_lines(out)) == 16
    keys = [r["key"] for r in _lines(out)]
    assert len(set(keys)) == len(keys)


def test_a_parameter_added_to_a_method_later_keeps_the_keys(npy_dir, tmp_path, monkeypatch) -> None:
    from dsecli.methods import ENTROPY_METHODS

    out = tmp_path / "r.jsonl"
    run_batch(str(npy_dir / "ep*.npy"), output=out, device="cpu", sigma="median")
    real = ENTROPY_METHODS["dse"]

    def newer_dse(x, *, sigma=10.0, t=1, max_n=10_000, seed=0, sampler="numpy", device="auto", dtype="float64",
                  base=2.0, solver="exact", new_option=0.5, flatten=False, drop_nonfinite=False):
        return real(x, sigma=sigma, t=t, max_n=max_n, seed=seed, sampler=sampler, device=device, dtype=dtype,
                    base=base, solver=solver, flatten=flatten, drop_nonfinite=drop_nonfinite)

    from dsecli.methods import METHOD_OPTIONS

    monkeypatch.setitem(ENTROPY_METHODS, "dse", newer_dse)
    monkeypatch.setitem(METHOD_OPTIONS, "dse", METHOD_OPTIONS["dse"] | {"new_option"})
    assert run_batch(str(npy_dir / "ep*.npy"), output=out, device="cpu", sigma="median").computed == 0
    assert run_batch(str(npy_dir / "ep*.npy"), output=out, device="cpu", sigma="median", new_option=0.9).computed == 4


def test_partial_last_line_is_removed_and_complete_rows_kept(npy_dir, tmp_path) -> None:
    out = tmp_path / "r.jsonl"
    spec = str(npy_dir / "ep*.npy")
    run_batch(spec, output=out, device="cpu")
    complete = _lines(out)
    # an interrupted run that had finished 2 rows and was cut in the middle of the third
    text = out.read_text().splitlines(keepends=True)
    out.write_text("".join(text[:2]) + text[2][:37])
    with pytest.warns(Warning, match="removed an incomplete last line"):
        summary = run_batch(spec, output=out, device="cpu")
    assert summary.skipped == 2 and summary.computed == 2
    final = _lines(out)
    assert [_strip_timing(r) for r in final[:2]] == [_strip_timing(r) for r in complete[:2]]
    assert sorted(r["key"] for r in final) == sorted(r["key"] for r in complete)


def test_complete_last_row_without_newline_is_kept(npy_dir, tmp_path) -> None:
    out = tmp_path / "r.jsonl"
    spec = str(npy_dir / "ep*.npy")
    run_batch(spec, output=out, device="cpu")
    out.write_text(out.read_text().rstrip("\n"))
    with pytest.warns(Warning, match="added the missing newline"):
        summary = run_batch(spec, output=out, device="cpu")
    assert summary.computed == 0 and len(_lines(out)) == 4


def test_a_damaged_line_in_the_middle_is_reported_and_the_file_left_alone(npy_dir, tmp_path) -> None:
    out = tmp_path / "r.jsonl"
    run_batch(str(npy_dir / "ep*.npy"), output=out, device="cpu")
    lines = out.read_text().splitlines(keepends=True)
    out.write_text(lines[0] + "not json at all\n" + "".join(lines[2:]))
    before = out.read_bytes()
    with pytest.raises(InputError, match=re.escape(f"{out}: not a dse batch results file (line 2 is not JSON); it "
                                                   "was left unchanged")):
        run_batch(str(npy_dir / "ep*.npy"), output=out, device="cpu")
    assert out.read_bytes() == before


def test_results_file_is_locked_while_a_batch_writes(tmp_path) -> None:
    out = tmp_path / "r.jsonl"
    with ResultsFile(out):
        with pytest.raises(InputError, match="another dse batch is writing"):
            ResultsFile(out).open()


def _kill_mid_run(cmd: list[str], out: Path, sig: int) -> int:
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            if out.exists() and out.read_bytes().count(b"\n") >= 1:
                proc.send_signal(sig)
                break
            time.sleep(0.02)
        return proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM])
def test_killed_batch_resumes_to_the_same_rows(sig, tmp_path) -> None:
    rng = np.random.default_rng(1)
    d = tmp_path / "ckpt"
    d.mkdir()
    n_inputs = 12
    for i in range(n_inputs):
        np.save(d / f"step_{i:03d}.npy", rng.normal(size=(300, 6)))
    out = tmp_path / "killed.jsonl"
    cmd = [sys.executable, "-m", "dsecli", "batch", str(d / "step_*.npy"), "-m", "dse,cse", "--device", "cpu",
           "--sigma", "median", "-o", str(out), "--quiet", "--threads", "1"]
    code = _kill_mid_run(cmd, out, sig)
    partial = _lines(out)  # every line is complete JSON
    assert 1 <= len(partial)
    if len(partial) < 2 * n_inputs:  # it was stopped mid-run
        assert code == (-signal.SIGKILL if sig == signal.SIGKILL else 143)
    done = subprocess.run(cmd, capture_output=True, text=True, check=False, env={**os.environ, "PYTHONWARNINGS": "ignore"})
    assert done.returncode == 0, done.stderr
    final = _lines(out)
    keys = [r["key"] for r in final]
    assert len(keys) == len(set(keys)) == 2 * n_inputs
    assert final[: len(partial)] == partial  # the rows written before the kill are untouched
    reference = tmp_path / "straight.jsonl"
    run_batch(str(d / "step_*.npy"), methods="dse,cse", device="cpu", sigma="median", output=reference, threads=1)
    straight = {r["key"]: _strip_timing(r) for r in _lines(reference)}
    assert {r["key"]: _strip_timing(r) for r in final} == straight


# ------------------------------------------------------------------------------------------ errors per input


def test_keep_going_records_a_failed_input_and_writes_the_others(npy_dir, tmp_path) -> None:
    bad = np.load(npy_dir / "ep1.npy")
    bad[3, 0] = np.nan
    np.save(npy_dir / "ep1.npy", bad)
    out = tmp_path / "r.jsonl"
    with pytest.raises(InputError, match="ep1.npy"):
        run_batch(str(npy_dir / "ep*.npy"), output=out, device="cpu")
    assert [r["checkpoint"] for r in _lines(out)] == [0]  # stopped there; the finished row is kept
    summary = run_batch(str(npy_dir / "ep*.npy"), output=out, device="cpu", keep_going=True)
    assert [f["input"] for f in summary.failures] == [str(npy_dir / "ep1.npy")]
    assert sorted(r["checkpoint"] for r in _lines(out)) == [0, 2, 10]
    res = runner.invoke(app, ["batch", str(npy_dir / "ep*.npy"), "-o", str(out), "--keep-going", "--device", "cpu"])
    assert res.exit_code == 1 and "1 of 4 inputs failed" in res.stderr


# ------------------------------------------------------------------------------------------ CLI


def test_cli_writes_json_lines_to_stdout_without_output(npy_dir) -> None:
    res = runner.invoke(app, ["batch", str(npy_dir / "ep*.npy"), "-m", "dse,knn", "--device", "cpu"])
    assert res.exit_code == 0, res.output
    rows = [json.loads(line) for line in res.stdout.splitlines()]
    assert [(r["checkpoint"], r["method"]) for r in rows] == [(e, m) for e in (0, 1, 2, 10) for m in ("dse", "knn")]


def test_cli_output_table_and_json_summary(h5file, tmp_path) -> None:
    path, _, _ = h5file
    out = tmp_path / "r.jsonl"
    args = ["batch", f"{path}:/true/epoch_*/embeddings", "--ref", f"{path}:/labels", "-o", str(out),
            "--sigma", "median", "--device", "cpu"]
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    assert "dsmi (bits)" in res.stdout and "/true/epoch_10/embeddings" in res.stdout
    res = runner.invoke(app, [*args, "--json"])
    summary = json.loads(res.stdout)
    assert summary["rows_computed"] == 0 and summary["rows_skipped"] == 8 and summary["rows"] == 8


def test_cli_mi_method_without_reference_is_a_usage_error(npy_dir) -> None:
    res = runner.invoke(app, ["batch", str(npy_dir / "ep0.npy"), "-m", "dsmi"])
    assert res.exit_code == 2 and "needs a reference (--ref FILE)" in res.stderr


# ------------------------------------------------------------------------------------------ workers and Dask


def test_worker_processes_give_the_in_process_values(h5file, tmp_path) -> None:
    path, _, _ = h5file
    spec = f"{path}:/*/epoch_[02]/embeddings"
    here = run_batch(spec, reference=f"{path}:/labels", methods="dse,dsmi,csmi", device="cpu")
    there = run_batch(spec, reference=f"{path}:/labels", methods="dse,dsmi,csmi", device="cpu", workers=2,
                      output=tmp_path / "w.jsonl")
    assert [r["key"] for r in there.rows] == [r["key"] for r in here.rows]
    np.testing.assert_allclose([r["value"] for r in there.rows], [r["value"] for r in here.rows], rtol=1e-10, atol=1e-12)
    assert sorted(r["key"] for r in _lines(tmp_path / "w.jsonl")) == sorted(r["key"] for r in here.rows)


@pytest.fixture(scope="module")
def dask_cluster():
    distributed = pytest.importorskip("distributed")
    # the dashboard on any free port: two test runs at once must not collide on 8787
    cluster = distributed.LocalCluster(n_workers=1, processes=False, threads_per_worker=1, dashboard_address=":0")
    try:
        yield cluster.scheduler_address
    finally:
        cluster.close()


def test_dask_cluster_gives_the_in_process_values_and_resumes(dask_cluster, h5file, tmp_path) -> None:
    path, _, _ = h5file
    spec = f"{path}:/true/epoch_*/embeddings"
    out = tmp_path / "dask.jsonl"
    here = run_batch(spec, reference=f"{path}:/vectors", methods="dse,dsmi", n_clusters=3, device="cpu")
    there = run_batch(spec, reference=f"{path}:/vectors", methods="dse,dsmi", n_clusters=3, device="cpu",
                      scheduler=dask_cluster, output=out)
    assert [r["key"] for r in there.rows] == [r["key"] for r in here.rows]
    np.testing.assert_allclose([r["value"] for r in there.rows], [r["value"] for r in here.rows], rtol=1e-10, atol=1e-12)
    res = runner.invoke(app, ["batch", spec, "--ref", f"{path}:/vectors", "--n-clusters", "3", "--device", "cpu",
                              "--scheduler", dask_cluster, "-o", str(out), "--json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["rows_skipped"] == 8


def test_missing_dask_is_a_clear_error(monkeypatch, npy_dir) -> None:
    monkeypatch.setitem(sys.modules, "distributed", None)
    with pytest.raises(InputError, match=r"needs dask.distributed.*pip install 'dsecli\[dask\]'"):
        run_batch(str(npy_dir / "ep0.npy"), scheduler="tcp://127.0.0.1:1")


def test_workers_and_scheduler_are_exclusive(npy_dir) -> None:
    with pytest.raises(InputError, match="cannot be combined"):
        run_batch(str(npy_dir / "ep0.npy"), workers=2, scheduler="tcp://127.0.0.1:1")


def test_batch_input_paths() -> None:
    inp = BatchInput("a/b.h5", "/x/epoch_3/e", 0, 10, 3, "b.h5:/x/epoch_*/e")
    assert inp.label == "a/b.h5:/x/epoch_3/e"
    assert inp.spec == os.path.abspath("a/b.h5") + ":/x/epoch_3/e"


def test_threads_setting_is_restored_after_an_in_process_batch(npy_dir) -> None:
    import torch

    before = torch.get_num_threads()
    run_batch(str(npy_dir / "ep0.npy"), device="cpu", threads=1)
    assert torch.get_num_threads() == before


def test_progress_bar_only_on_a_terminal_and_not_with_quiet() -> None:
    from dsecli.report.progress import BatchBar

    assert BatchBar(quiet=True).progress is None
    bar = BatchBar(quiet=False)  # stderr is not a terminal under pytest
    assert bar.progress is None
    bar(0, 3, None)
    bar.stop()


def _row(i: int) -> dict:
    return {"file": "x.npy", "input": "x.npy", "method": "dse", "quantity": "entropy", "key": f"k{i}", "value": float(i)}


def _fill(path, rows, since=None) -> ResultsFile:
    store = ResultsFile(path, since=since)
    store.open()
    store.append_many(rows)
    store.close()
    return store


def test_a_file_reopened_since_its_mark_reads_only_the_rows_appended_after_it(tmp_path) -> None:
    from dsecli.batch.store import ROW_FIELDS

    assert set(ROW_FIELDS) <= set(_row(0))
    out = tmp_path / "r.jsonl"
    first = _fill(out, [_row(0), _row(1), _row(2)])
    assert first.mark.size == out.stat().st_size and first.mark.lines == 3
    _fill(out, [_row(3), _row(4)])  # another writer, between two steps
    again = ResultsFile(out, since=first.mark)
    again.open()
    assert again.incremental and [r["key"] for r in again.rows] == ["k3", "k4"]
    again.close()
    assert again.mark.lines == 5 and again.mark.size == out.stat().st_size
    # nothing appended since: nothing read
    idle = ResultsFile(out, since=again.mark)
    idle.open()
    assert idle.incremental and idle.rows == []
    idle.close()


@pytest.mark.parametrize("change", ["replaced", "truncated", "rewritten before the mark"])
def test_a_file_that_did_not_only_grow_since_the_mark_is_read_whole(tmp_path, change) -> None:
    out = tmp_path / "r.jsonl"
    mark = _fill(out, [_row(0), _row(1), _row(2)]).mark
    text = out.read_text()
    if change == "replaced":
        tmp = tmp_path / "new.jsonl"
        tmp.write_text(text + json.dumps(_row(9)) + "\n")
        os.replace(tmp, out)  # a new inode, longer than the mark
    elif change == "truncated":
        out.write_text(text.splitlines(keepends=True)[0])
    else:
        # same inode and longer, but the byte before the mark no longer ends a line
        out.write_text(text[:-1] + " " + "\n" + json.dumps(_row(9)) + "\n")
    store = ResultsFile(out, since=mark)
    store.open()
    store.close()
    assert not store.incremental
    assert [r["key"] for r in store.rows] == [json.loads(line)["key"] for line in out.read_text().splitlines()]


def test_a_bad_line_after_the_mark_is_named_by_its_line_in_the_file(tmp_path) -> None:
    out = tmp_path / "r.jsonl"
    mark = _fill(out, [_row(0), _row(1), _row(2)]).mark
    with open(out, "a") as fh:
        fh.write(json.dumps(_row(3)) + "\nnot json\n")
    before = out.read_bytes()
    with pytest.raises(InputError, match=r"\(line 5 is not JSON\)"):
        ResultsFile(out, since=mark).open()
    assert out.read_bytes() == before


def test_a_cut_short_row_after_the_mark_is_trimmed_to_the_mark(tmp_path) -> None:
    out = tmp_path / "r.jsonl"
    mark = _fill(out, [_row(0), _row(1)]).mark
    with open(out, "a") as fh:
        fh.write(json.dumps(_row(2))[:12])
    store = ResultsFile(out, since=mark)
    store.open()
    store.close()
    assert store.incremental and store.rows == [] and out.stat().st_size == mark.size
    assert store.repaired.startswith("removed an incomplete last line")


def test_append_many_writes_complete_lines_with_one_fsync(tmp_path, monkeypatch) -> None:
    import dsecli.batch.store as store_module

    calls = []
    real = os.fsync
    monkeypatch.setattr(store_module.os, "fsync", lambda fd: (calls.append(fd), real(fd))[1])
    out = tmp_path / "r.jsonl"
    _fill(out, [_row(i) for i in range(4)])
    assert len(calls) == 1
    assert [json.loads(line)["key"] for line in out.read_text().splitlines()] == ["k0", "k1", "k2", "k3"]
