"""The one output policy (:mod:`dsecli.report.writing`) and the batch results store (:mod:`dsecli.batch.store`).

Table-driven over every command that writes a file: an output that is an input (by the same path, a
symbolic link, a hard link, ``..``, an absolute path), an empty path and a directory are refused with exit
status 2, one exact ``error:`` line, no traceback, no output on stdout; a character device and a FIFO are
written to and stay what they were; a 250-character file name works. Every input is byte-identical
afterwards and no file is left behind that was not asked for.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import stat
import subprocess
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from dsecli.batch import ResultsFile, run_batch
from dsecli.batch.store import data_sha256, recognise
from dsecli.cli import app
from dsecli.errors import InputError
from dsecli.report.writing import check_distinct_outputs, output_target, write_atomic

runner = CliRunner()
N = 40


def _golden_data_file() -> str:
    from importlib import resources

    return os.fspath(resources.files("dsecli.diagnostics").joinpath("golden_data", "golden_b_blobs_500x32.json"))


def _make_inputs(d: Path) -> None:
    rng = np.random.default_rng(0)
    np.save(d / "x.npy", rng.normal(size=(N, 3)))
    np.save(d / "y.npy", np.arange(N) % 4)
    (d / "sub").mkdir()
    res = runner.invoke(app, ["batch", str(d / "x.npy"), "--method", "cse", "-o", str(d / "r.jsonl")])
    assert res.exit_code == 0, res.stderr
    (d / "o.csv").write_text("input,accuracy\nx.npy,0.5\n")


def _digests(paths: list[Path | str]) -> dict[str, str]:
    return {str(p): hashlib.sha256(Path(p).read_bytes()).hexdigest() for p in paths}


def _tree(d: Path) -> set[str]:
    return {str(p.relative_to(d)) for p in d.rglob("*")}


def _run(args: list[str]):
    """Invoke ``dse``: it must end by its own exit (no uncaught exception), and print no traceback."""
    res = runner.invoke(app, args)
    if res.exception is not None:
        assert isinstance(res.exception, SystemExit), repr(res.exception)
    assert "Traceback" not in res.stdout + res.stderr, res.stdout + res.stderr
    return res


def _error_line(stderr: str) -> str:
    lines = [ln for ln in stderr.splitlines() if ln.startswith("error: ")]
    assert len(lines) == 1, stderr
    return lines[0][len("error: "):]


@dataclass(frozen=True)
class Command:
    id: str
    args: Callable[[str], list[str]]  # the command line with OUT as the output
    input: str  # the input an aliased output points at (relative to the working folder, or absolute)
    option: str = "--output"
    png: bool = False  # writes PNG bytes


COMMANDS = [
    Command("entropy", lambda o: ["entropy", "x.npy", "--method", "cse", "-o", o], "x.npy"),
    Command("mi", lambda o: ["mi", "x.npy", "y.npy", "--method", "csmi", "-o", o], "y.npy"),
    Command("check", lambda o: ["check", "x.npy", "-o", o], "x.npy"),
    Command("info", lambda o: ["info", "x.npy", "-o", o], "x.npy"),
    Command("spectrum", lambda o: ["spectrum", "x.npy", "--no-cache", "--device", "cpu", "-o", o], "x.npy"),
    Command("spectrum-plot", lambda o: ["spectrum", "x.npy", "--no-cache", "--device", "cpu", "--plot", o],
            "x.npy", option="--plot", png=True),
    Command("batch", lambda o: ["batch", "x.npy", "--method", "cse", "-o", o], "x.npy"),
    Command("plot", lambda o: ["plot", "r.jsonl", "-o", o], "r.jsonl", png=True),
    Command("correlate", lambda o: ["correlate", "r.jsonl", "o.csv", "-o", o], "o.csv"),
    Command("validate", lambda o: ["validate", "--method", "cse", "-o", o], _golden_data_file()),
]


def _alias(kind: str, target: str, work: Path) -> str:
    """A path naming the file ``target`` in another way."""
    absolute = os.path.abspath(target)
    if kind == "same":
        return target
    if kind == "absolute":
        return absolute
    if kind == "dotdot":
        parent = os.path.dirname(absolute)
        return os.path.join(parent, "..", os.path.basename(parent), os.path.basename(absolute))
    if kind == "symlink":
        os.symlink(absolute, work / "link.out")
        return "link.out"
    if kind == "hardlink":
        try:
            os.link(absolute, work / "hard.out")
        except OSError as exc:  # another file system (the installed package's data)
            pytest.skip(f"cannot hard-link {absolute} here ({exc.strerror})")
        return "hard.out"
    raise AssertionError(kind)


ALIASES = ["same", "absolute", "dotdot", "symlink", "hardlink"]


@pytest.fixture()
def work(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    _make_inputs(tmp_path)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _protected(work: Path, cmd: Command) -> list[Path | str]:
    return [work / "x.npy", work / "y.npy", work / "r.jsonl", work / "o.csv", cmd.input if os.path.isabs(cmd.input) else work / cmd.input]


@pytest.mark.parametrize("alias", ALIASES)
@pytest.mark.parametrize("cmd", COMMANDS, ids=[c.id for c in COMMANDS])
def test_an_output_that_is_an_input_is_refused(cmd: Command, alias: str, work: Path) -> None:
    out = _alias(alias, cmd.input, work)
    files = _protected(work, cmd)
    before, tree = _digests(files), _tree(work)
    res = _run(cmd.args(out))
    assert res.exit_code == 2, res.stderr
    how = "" if os.path.abspath(out) == os.path.abspath(cmd.input) else ", the same file by another path or link"
    assert _error_line(res.stderr) == (f"{out}: `{cmd.option}` names an input file ({cmd.input}{how}); writing there "
                                       "would destroy it; choose another file name")
    assert res.stdout == ""
    assert _digests(files) == before and _tree(work) == tree


SHAPES = [
    ("empty", "", "`{option}` must be a file path; got an empty string (an unset shell variable?)"),
    ("existing-dir", "sub", "sub: `{option}` must be a file, not a directory"),
    ("existing-dir-slash", "sub/", "sub/: `{option}` must be a file, not a directory"),
    ("new-dir-slash", "newdir/", "newdir/: `{option}` must be a file name, not a directory (it ends with '/')"),
    ("dot", "sub/.", "sub/.: `{option}` must be a file, not a directory"),
    ("missing-dir", "nope/r.out", "nope/r.out: `{option}` must be in an existing directory; {work}/nope does not exist"),
    ("name-too-long", "a" * 300, "{out}: `{option}` file name is 300 bytes long; this file system allows at most 255"),
]


@pytest.mark.parametrize(("shape", "out", "message"), SHAPES, ids=[s[0] for s in SHAPES])
@pytest.mark.parametrize("cmd", COMMANDS, ids=[c.id for c in COMMANDS])
def test_empty_and_directory_outputs_are_usage_errors_before_computing(cmd: Command, shape: str, out: str,
                                                                       message: str, work: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    if shape == "name-too-long" and os.pathconf(work, "PC_NAME_MAX") != 255:
        pytest.skip("this file system's name limit is not 255")
    # a computation that would start would read rows: it must not get there
    started: list[int] = []
    import dsecli.inputs.prepare
    import dsecli.methods

    for mod in (dsecli.inputs.prepare, dsecli.methods):
        monkeypatch.setattr(mod, "prepare_rows", lambda *a, **k: started.append(1))
    files = _protected(work, cmd)
    before, tree = _digests(files), _tree(work)
    res = _run(cmd.args(out))
    assert res.exit_code == 2, res.stderr
    assert _error_line(res.stderr) == message.format(option=cmd.option, work=work, out=out)
    assert res.stdout == "" and started == []
    assert _digests(files) == before and _tree(work) == tree


@pytest.mark.parametrize("cmd", [c for c in COMMANDS if c.png], ids=[c.id for c in COMMANDS if c.png])
def test_a_plot_file_must_be_png_pdf_or_svg_before_anything_is_computed(cmd: Command, work: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    import dsecli.batch.read
    import dsecli.measures.spectrum_scan

    started: list[int] = []
    monkeypatch.setattr(dsecli.measures.spectrum_scan, "spectrum_scan", lambda *a, **k: started.append(1))
    monkeypatch.setattr(dsecli.batch.read, "read_result_rows", lambda *a, **k: started.append(1))
    before, tree = _digests(_protected(work, cmd)), _tree(work)
    res = _run(cmd.args("figure.txt"))
    assert res.exit_code == 2
    assert _error_line(res.stderr) == ("figure.txt: plots are written as PNG, PDF or SVG; give a file name ending in "
                                       ".png, .pdf or .svg")
    assert started == [] and res.stdout == ""
    assert _digests(_protected(work, cmd)) == before and _tree(work) == tree


def _check_written(cmd: Command, data: bytes) -> None:
    if cmd.png:
        assert data.startswith(b"\x89PNG\r\n\x1a\n")
    elif cmd.id == "batch":
        rows = [json.loads(line) for line in data.decode().splitlines()]
        assert [r["method"] for r in rows] == ["cse"] and rows[0]["input"] == "x.npy"
    else:
        assert isinstance(json.loads(data), dict)


@pytest.mark.parametrize("cmd", COMMANDS, ids=[c.id for c in COMMANDS])
def test_a_character_device_is_written_to_and_never_replaced(cmd: Command, work: Path) -> None:
    st = os.stat("/dev/null")
    files = _protected(work, cmd)
    before, tree = _digests(files), _tree(work)
    res = _run(cmd.args("/dev/null"))
    assert res.exit_code == 0, res.stderr
    after = os.stat("/dev/null")
    assert stat.S_ISCHR(after.st_mode) and (after.st_ino, after.st_rdev) == (st.st_ino, st.st_rdev)
    assert _digests(files) == before and _tree(work) == tree


@pytest.mark.parametrize("cmd", COMMANDS, ids=[c.id for c in COMMANDS])
def test_a_fifo_is_written_to_and_stays_a_fifo(cmd: Command, work: Path) -> None:
    fifo = work / "pipe.out"
    os.mkfifo(fifo)
    got: list[bytes] = []
    reader = threading.Thread(target=lambda: got.append(fifo.read_bytes()), daemon=True)
    reader.start()
    files = _protected(work, cmd)
    before, tree = _digests(files), _tree(work)
    try:
        res = _run(cmd.args("pipe.out"))
    finally:
        reader.join(timeout=60)
        if reader.is_alive():  # the command never opened the FIFO: let the reader finish
            with open(fifo, "wb"):
                pass
            reader.join(timeout=5)
    assert res.exit_code == 0, res.stderr
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)
    _check_written(cmd, got[0])
    assert _digests(files) == before and _tree(work) == tree


@pytest.mark.parametrize("cmd", COMMANDS, ids=[c.id for c in COMMANDS])
def test_a_long_but_valid_output_name_works(cmd: Command, work: Path) -> None:
    name = "r" * 246 + (".png" if cmd.png else ".out")
    assert len(name) == 250
    files = _protected(work, cmd)
    before, tree = _digests(files), _tree(work)
    res = _run(cmd.args(name))
    assert res.exit_code == 0, res.stderr
    _check_written(cmd, (work / name).read_bytes())
    assert _digests(files) == before and _tree(work) == tree | {name}


def test_the_process_own_stdout_is_appended_to_not_replaced(tmp_path: Path) -> None:
    np.save(tmp_path / "x.npy", np.random.default_rng(0).normal(size=(N, 3)))
    log = tmp_path / "log.txt"
    log.write_bytes(b"earlier line\n")
    with open(log, "ab") as fh:
        proc = subprocess.run([sys.executable, "-m", "dsecli", "check", "x.npy", "--json", "-o", "/dev/stdout"],
                              cwd=tmp_path, stdout=fh, stderr=subprocess.PIPE, env={**os.environ}, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert os.path.islink("/dev/stdout") or stat.S_ISCHR(os.stat("/dev/stdout").st_mode)
    text = log.read_text()
    assert text.startswith("earlier line\n")
    # the report written to --output (indented) and the --json line, both in the same stream
    rest = text[len("earlier line\n"):]
    pretty, _, line = rest.rstrip("\n").rpartition("\n")
    assert json.loads(pretty) == json.loads(line)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["log.txt", "x.npy"]


def test_standard_input_redirected_from_the_output_file_is_refused(tmp_path: Path) -> None:
    np.save(tmp_path / "x.npy", np.random.default_rng(0).normal(size=(N, 3)))
    before, tree = _digests([tmp_path / "x.npy"]), _tree(tmp_path)
    with open(tmp_path / "x.npy", "rb") as stdin:
        proc = subprocess.run([sys.executable, "-m", "dsecli", "check", "-", "-o", "x.npy"], cwd=tmp_path, stdin=stdin,
                              capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr == ("error: x.npy: `--output` names an input file (standard input, the same file by another "
                           "path or link); writing there would destroy it; choose another file name\n")
    assert _digests([tmp_path / "x.npy"]) == before and _tree(tmp_path) == tree


def test_outputs_of_one_command_must_differ(work: Path) -> None:
    res = _run(["spectrum", "x.npy", "--no-cache", "--plot", "a.png", "--plot-t", "a.png"])
    assert res.exit_code == 2
    assert _error_line(res.stderr) == "a.png: `--plot-t` and `--plot` name the same file; give each its own file"
    os.symlink("a.png", work / "b.png")
    with pytest.raises(InputError, match=re.escape("b.png: `--plot` and `--output` name the same file")):
        check_distinct_outputs({"--output": "a.png", "--plot": "b.png"})
    check_distinct_outputs({"--output": "/dev/null", "--plot": "/dev/null"})  # a device may take both


def test_write_through_a_symlink_keeps_the_link_and_leaves_no_temporary_file(tmp_path: Path) -> None:
    real = tmp_path / "d" / "real.json"
    real.parent.mkdir()
    real.write_text("old")
    real.chmod(0o640)
    link = tmp_path / "link.json"
    link.symlink_to(real)
    assert output_target(link).kind == "regular" and output_target(link).file == str(real)
    write_atomic(link, "new")
    assert link.is_symlink() and real.read_text() == "new" and stat.S_IMODE(real.stat().st_mode) == 0o640
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["d", "link.json", "real.json"]
    assert output_target(tmp_path / "fresh.json").kind == "new"
    assert output_target("/dev/null").kind == "direct"


def test_a_block_device_is_refused() -> None:
    devices = [p for p in Path("/dev").iterdir() if p.exists() and stat.S_ISBLK(os.stat(p).st_mode)]
    if not devices:
        pytest.skip("no block device here")
    with pytest.raises(InputError, match=re.escape(f"{devices[0]}: `output` is a block device; give a regular "
                                                   "file, a character device or a FIFO")):
        output_target(devices[0])


# ------------------------------------------------------------------------------------------ batch results file


def _results_file(work: Path) -> bytes:
    return (work / "r.jsonl").read_bytes()


NOT_RESULTS = [
    ("text-no-final-newline", lambda w: b"hello\nworld", "line 1 is not JSON"),
    ("npy", lambda w: (w / "x.npy").read_bytes(), "line 1 is not UTF-8 text"),
    ("json-report", lambda w: json.dumps({"results": [{"value": 1.0}]}, indent=2).encode(), "line 1 is not JSON"),
    ("json-lines-of-other-objects", lambda w: b'{"a": 1}\n{"a": 2}\n',
     "line 1 is a JSON object without the row fields file, input, method, quantity, value, key"),
    ("json-array-line", lambda w: b"[1, 2]\n", "line 1 is not a JSON object"),
    ("blank-lines", lambda w: b"\n\n", "line 1 is blank and no line holds a row"),
    ("rows-then-a-note-without-newline", lambda w: _results_file(w) + b"my note",
     "line 2 is not JSON, and the file does not end with a newline"),
    ("rows-then-a-foreign-line", lambda w: _results_file(w) + b'{"a": 1}\n',
     "line 2 is a JSON object without the row fields file, input, method, quantity, value, key"),
]


@pytest.mark.parametrize(("kind", "content", "why"), NOT_RESULTS, ids=[c[0] for c in NOT_RESULTS])
def test_batch_refuses_a_file_that_is_not_a_results_file_untouched(kind, content, why, work: Path) -> None:
    target = work / "other.out"
    target.write_bytes(content(work))
    target.chmod(0o640)
    st = os.stat(target)
    files = [target, work / "x.npy"]
    before, tree = _digests(files), _tree(work)
    res = _run(["batch", "x.npy", "--method", "cse", "-o", "other.out"])
    assert res.exit_code == 2, res.stderr
    assert _error_line(res.stderr) == (f"other.out: not a dse batch results file ({why}); it was left unchanged; "
                                       "give a new file name or the results file of an earlier batch as --output")
    assert res.stdout == ""
    after = os.stat(target)
    assert _digests(files) == before and _tree(work) == tree
    assert (after.st_ino, after.st_mtime_ns, after.st_mode) == (st.st_ino, st.st_mtime_ns, st.st_mode)


def test_recognition_is_pure_and_names_the_repair() -> None:
    row = b'{"file":"a","input":"a","method":"dse","quantity":"entropy","value":1.0,"key":"k"}'
    assert recognise(b"", "r") == ([], None)
    assert recognise(row + b"\n", "r")[1] is None
    assert recognise(row, "r")[1] == "newline"
    assert recognise(row + b"\n" + row[:20], "r")[1] == "trim"
    assert recognise(row[:12], "r") == ([], "trim")  # the first write of a batch, cut short


def test_a_batch_that_writes_no_row_leaves_no_results_file(work: Path) -> None:
    (work / "junk.npy").write_bytes(b"not numpy")
    res = _run(["batch", "junk.npy", "--keep-going", "-o", "new.jsonl"])
    assert res.exit_code == 1
    assert _error_line(res.stderr) == ("1 of 1 inputs failed; first: junk.npy: not a .npy file (no NumPy header); "
                                       "is it another format?")
    assert not (work / "new.jsonl").exists()
    with ResultsFile(work / "locked.jsonl"):
        pass
    assert not (work / "locked.jsonl").exists()


def test_keep_going_goes_on_past_inputs_that_fail_to_open(work: Path) -> None:
    (work / "junk.npy").write_bytes(b"not numpy")
    (work / "junk.h5").write_bytes(b"not hdf5")
    files = [work / "x.npy", work / "junk.npy", work / "junk.h5"]
    before = _digests(files)
    args = ["batch", "junk.npy", "missing.npy", "junk.h5:/epoch_*/emb", "x.npy", "--method", "cse", "-o", "k.jsonl"]
    stop = _run(args)
    assert stop.exit_code == 2
    assert _error_line(stop.stderr) == "junk.npy: not a .npy file (no NumPy header); is it another format?"
    assert not (work / "k.jsonl").exists()

    res = _run([*args, "--keep-going", "--json"])
    assert res.exit_code == 1
    warned = [ln[len("warning: "):] for ln in res.stderr.splitlines() if ln.startswith("warning: ")]
    assert warned[:2] == ["junk.npy: not a .npy file (no NumPy header); is it another format?; skipped",
                          "missing.npy: file not found; skipped"]
    assert warned[2].startswith("junk.h5") and warned[2].endswith("; skipped")
    assert _error_line(res.stderr) == ("3 of 4 inputs failed; first: junk.npy: not a .npy file (no NumPy header); "
                                       "is it another format?")
    summary = json.loads(res.stdout)
    assert [(f["input"], f["stage"]) for f in summary["failures"]] == [
        ("junk.npy", "open"), ("missing.npy", "open"), ("junk.h5:/epoch_*/emb", "open")]
    rows = [json.loads(line) for line in (work / "k.jsonl").read_text().splitlines()]
    assert [r["input"] for r in rows] == ["x.npy"]
    assert _digests(files) == before


def test_library_keep_going_reports_open_failures(work: Path) -> None:
    with pytest.warns(Warning, match=re.escape("missing.npy: file not found; skipped (keep_going=True)")):
        summary = run_batch(["missing.npy", "x.npy"], methods="cse", keep_going=True)
    assert summary.inputs == 1 and [r["input"] for r in summary.rows] == ["x.npy"]
    assert summary.failures == [{"input": "missing.npy", "error": "missing.npy: file not found", "stage": "open"}]


# ------------------------------------------------------------------------------------------ resume fingerprints


def _entropy(x: np.ndarray, method: str = "cse") -> float:
    from dsecli import estimate_entropy

    (res,) = estimate_entropy(x, methods=[method], device="cpu")
    return res.value


def _mi(x: np.ndarray, y: np.ndarray) -> float:
    from dsecli import estimate_mutual_information

    (res,) = estimate_mutual_information(x, y, methods=["csmi"], device="cpu")
    return res.value


def test_resume_after_the_input_was_regenerated_recomputes_and_says_why(work: Path) -> None:
    out = work / "f.jsonl"
    first = run_batch("x.npy", methods="cse", output=out)
    assert first.computed == 1
    row = first.rows[0]
    x_old = np.load(work / "x.npy")
    assert row["input_fingerprint"]["size"] == os.path.getsize(work / "x.npy")
    assert row["input_fingerprint"]["rows_sha256"] == data_sha256(x_old)
    new = np.random.default_rng(7).normal(size=(N, 3)) * 5
    np.save(work / "x.npy", new)  # same name, same shape and size, other numbers
    reason = "input changed: mtime, rows hash differ"
    message = f"x.npy: {reason}; recomputing its stored rows"
    with pytest.warns(Warning, match=re.escape(message)):
        again = run_batch("x.npy", methods="cse", output=out)
    assert (again.computed, again.skipped, again.replaced) == (1, 0, 1)
    (now,) = again.rows
    assert now["replaces"] == {"reason": reason, "value": row["value"], "dsecli_version": row["dsecli_version"]}
    assert now["value"] == pytest.approx(_entropy(new)) and now["value"] != pytest.approx(row["value"])
    assert message in now["warnings"]
    # the old row stays in the file (it only grows); readers take the later row of a key
    from dsecli.batch.read import read_result_rows

    assert len(out.read_text().splitlines()) == 2
    assert [r["value"] for r in read_result_rows(out)] == [now["value"]]
    # and a third run reuses the new row
    assert run_batch("x.npy", methods="cse", output=out).computed == 0


def test_the_cli_reports_a_recomputed_row(work: Path) -> None:
    _run(["batch", "x.npy", "--method", "cse", "-o", "c.jsonl"])
    np.save(work / "x.npy", np.random.default_rng(3).normal(size=(N, 3)))
    res = _run(["batch", "x.npy", "--method", "cse", "-o", "c.jsonl", "--json"])
    assert res.exit_code == 0
    assert "warning: x.npy: input changed: mtime, rows hash differ; recomputing its stored rows" in res.stderr
    summary = json.loads(res.stdout)
    assert (summary["rows_computed"], summary["rows_skipped"], summary["rows_replaced"]) == (1, 0, 1)


@pytest.mark.parametrize("change", ["touched", "rewritten-same-numbers", "copied-back"])
def test_the_same_data_under_a_new_time_is_reused(change: str, work: Path) -> None:
    out = work / "s.jsonl"
    run_batch("x.npy", methods="cse", output=out)
    before = out.read_bytes()
    x = np.load(work / "x.npy")
    if change == "touched":
        os.utime(work / "x.npy", ns=(1, 1))
    elif change == "rewritten-same-numbers":
        np.save(work / "x.npy", x)
    else:
        os.rename(work / "x.npy", work / "moved.npy")
        np.save(work / "x.npy", x.copy())
    summary = run_batch("x.npy", methods="cse", output=out)
    assert (summary.computed, summary.skipped) == (0, 1) and out.read_bytes() == before


def test_another_dataset_added_to_an_hdf5_file_keeps_the_rows_of_the_others(work: Path) -> None:
    import h5py

    x = np.load(work / "x.npy")
    with h5py.File(work / "run.h5", "w") as f:
        f["epoch_0/emb"] = x
    out = work / "h.jsonl"
    run_batch("run.h5:/epoch_*/emb", methods="cse", output=out)
    with h5py.File(work / "run.h5", "a") as f:
        f["epoch_1/emb"] = x * 2  # training wrote the next checkpoint: the file's size and mtime change
    summary = run_batch("run.h5:/epoch_*/emb", methods="cse", output=out)
    assert (summary.computed, summary.skipped) == (1, 1)
    assert [r["dataset"] for r in summary.rows] == ["/epoch_0/emb", "/epoch_1/emb"]
    assert summary.rows[1]["replaces"] is None


def test_a_row_without_a_fingerprint_is_recomputed(work: Path) -> None:
    out = work / "o.jsonl"
    run_batch("x.npy", methods="cse", output=out)
    (row,) = [json.loads(line) for line in out.read_text().splitlines()]
    for field in ("input_fingerprint", "reference_fingerprint", "replaces"):
        row.pop(field)
    out.write_text(json.dumps(row) + "\n")  # as an older dsecli wrote it
    summary = run_batch("x.npy", methods="cse", output=out)
    assert summary.computed == 1
    assert summary.rows[0]["replaces"]["reason"] == "no input fingerprint recorded (a row from an older dsecli)"


def test_rerun_with_another_reference_or_a_regenerated_one_recomputes_mi_only(work: Path) -> None:
    out = work / "m.jsonl"
    x = np.load(work / "x.npy")
    y = np.load(work / "y.npy")
    first = run_batch("x.npy", reference="y.npy", methods="cse,csmi", output=out)
    assert first.computed == 2
    assert first.rows[1]["reference_fingerprint"]["rows_sha256"] == data_sha256(y)
    assert first.rows[0]["reference_fingerprint"] is None

    y2 = (np.arange(N) // 10) % 2
    np.save(work / "y2.npy", y2)
    other = run_batch("x.npy", reference="y2.npy", methods="cse,csmi", output=out)
    assert (other.computed, other.skipped) == (1, 1)
    assert [r["method"] for r in other.rows] == ["cse", "csmi"]
    assert other.rows[1]["reference"] == "y2.npy" and other.rows[1]["replaces"] is None
    assert other.rows[1]["value"] == pytest.approx(_mi(x, y2)) and other.rows[0] == first.rows[0]

    np.save(work / "y.npy", y2)  # the first reference regenerated under its name
    regenerated = run_batch("x.npy", reference="y.npy", methods="cse,csmi", output=out)
    assert (regenerated.computed, regenerated.skipped) == (1, 1)
    mi_row = regenerated.rows[1]
    assert mi_row["replaces"]["reason"] == "reference changed: mtime, rows hash differ"
    assert mi_row["value"] == pytest.approx(_mi(x, y2)) and mi_row["value"] != pytest.approx(first.rows[1]["value"])


def test_every_warning_the_batch_prints_is_in_the_row(work: Path) -> None:
    x = np.load(work / "x.npy")
    x[5] = x[2]  # a duplicate row
    x[:, 1] = 0.25  # a constant column
    np.save(work / "dup.npy", x)
    res = _run(["batch", "dup.npy", "--method", "cse,dse", "--device", "cpu", "-o", "w.jsonl"])
    assert res.exit_code == 0, res.stderr
    printed = [ln[len("warning: "):] for ln in res.stderr.splitlines() if ln.startswith("warning: ")]
    assert any("duplicate" in w for w in printed) and any("constant" in w for w in printed), printed
    rows = [json.loads(line) for line in (work / "w.jsonl").read_text().splitlines()]
    assert set(printed) <= {w for row in rows for w in row["warnings"]}, (printed, rows)
    about_the_input = [w for w in printed if "duplicate" in w or "constant" in w]
    for row in rows:  # raised while reading the input: they belong to every row of it
        assert set(about_the_input) <= set(row["warnings"]), (about_the_input, row["warnings"])


def test_rows_are_reread_only_when_the_file_changed_and_mtime_alone_does_not_hide_a_change(
        work: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import dsecli.batch.run

    out = work / "t.jsonl"
    run_batch("x.npy", methods="cse,knn", output=out)
    reads: list[str] = []
    real = dsecli.batch.run._rows_hash_now

    def counting(inp, selection):
        reads.append(inp.label)
        return real(inp, selection)

    monkeypatch.setattr(dsecli.batch.run, "_rows_hash_now", counting)
    assert run_batch("x.npy", methods="cse,knn", output=out).computed == 0
    assert reads == []  # size, mtime and ctime as recorded: the file was not read again
    # other numbers of the same size, then the old mtime put back: only the ctime and the rows tell
    st = os.stat(work / "x.npy")
    np.save(work / "x.npy", np.random.default_rng(11).normal(size=(N, 3)))
    os.utime(work / "x.npy", ns=(st.st_atime_ns, st.st_mtime_ns))
    summary = run_batch("x.npy", methods="cse,knn", output=out)
    assert reads == ["x.npy"]  # once per input, not once per method
    assert summary.computed == 2
    assert {r["replaces"]["reason"] for r in summary.rows} == {"input changed: rows hash differ"}


BATCH_INPUTS = [
    ("list-file", ["@list.txt"], "list.txt", "list.txt"),
    ("reference", ["x.npy", "--ref", "y.npy", "--method", "csmi"], "y.npy", "y.npy"),
    ("glob-match", ["*.npy"], "x.npy", "x.npy"),
    ("hdf5-pattern", ["run.h5:/epoch_*/emb"], "run.h5", "run.h5"),
]


@pytest.mark.parametrize(("kind", "args", "out", "named"), BATCH_INPUTS, ids=[b[0] for b in BATCH_INPUTS])
def test_batch_never_writes_over_any_file_it_reads(kind, args, out, named, work: Path) -> None:
    import h5py

    (work / "list.txt").write_text("x.npy\n")
    with h5py.File(work / "run.h5", "w") as f:
        f["epoch_0/emb"] = np.load(work / "x.npy")
    files = [work / "x.npy", work / "y.npy", work / "list.txt", work / "run.h5"]
    before, tree = _digests(files), _tree(work)
    res = _run(["batch", *args, "-o", out])
    assert res.exit_code == 2, res.stderr
    assert _error_line(res.stderr) == (f"{out}: `--output` names an input file ({named}); writing there would "
                                       "destroy it; choose another file name")
    assert _digests(files) == before and _tree(work) == tree


def test_a_glob_over_the_folder_of_the_results_file_leaves_the_results_file_out(work: Path) -> None:
    runs = work / "runs"
    runs.mkdir()
    np.save(runs / "ep1.npy", np.load(work / "x.npy"))
    args = ["batch", "runs/*", "--method", "cse", "-o", "runs/r.jsonl"]
    assert _run(args).exit_code == 0
    before = (runs / "r.jsonl").read_bytes()
    again = _run([*args, "--json"])  # the glob now matches r.jsonl too
    assert again.exit_code == 0, again.stderr
    assert json.loads(again.stdout)["rows_skipped"] == 1 and (runs / "r.jsonl").read_bytes() == before
    only = _run(["batch", "runs/r*", "-o", "runs/r.jsonl"])
    assert only.exit_code == 2
    assert _error_line(only.stderr) == "`inputs`: 'runs/r*' matches only the results file runs/r.jsonl"
