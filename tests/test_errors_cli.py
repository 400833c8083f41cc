"""One validation policy: every bad input gives one line on stderr, a documented exit code, no traceback,
and never creates or changes an output file.

Table-driven: each case is (arguments, exit code, the exact error line or warning line). Every failing case
is run with ``--output`` pointing at an existing file whose bytes must not change, in a folder where no
new file (not even a temporary one) may appear.
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from dsecli.cli import app
from dsecli.errors import ExitStatus

runner = CliRunner()
SENTINEL = b'{"sentinel": "an earlier result that a failing run must not touch"}\n'


def _write_inputs(d: Path) -> None:
    import h5py
    import torch

    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 3))
    np.save(d / "x.npy", x)
    np.save(d / "x5.npy", x[:5])
    np.save(d / "y.npy", np.arange(40) % 4)
    np.save(d / "y39.npy", np.arange(39) % 4)
    np.save(d / "yfloat.npy", (np.arange(40) % 4).astype(np.float64))
    np.save(d / "yfrac.npy", (np.arange(40) % 4) + 0.5)
    np.save(d / "yneg.npy", np.arange(40) % 4 - 2)
    np.save(d / "ystr.npy", np.array(["cat", "dog", "eel", "fox"])[np.arange(40) % 4])
    ysingle = np.arange(40) % 4
    ysingle[0] = 9
    np.save(d / "ysingle.npy", ysingle)
    np.save(d / "yvec.npy", np.repeat(rng.normal(size=(2, 2)), 20, axis=0))
    (d / "folder.npy").mkdir()
    (d / "data.xyz").write_text("1 2 3\n")
    (d / "empty.npy").write_bytes(b"")
    (d / "junk.npy").write_bytes(b"hello, this is not numpy")
    (d / "junk.h5").write_bytes(b"hello, this is not hdf5")
    (d / "junk.pt").write_bytes(b"hello, this is not torch")
    (d / "junk.npz").write_bytes(b"PK\x03\x04 broken zip")
    np.save(d / "full.npy", x)
    np.savez(d / "two.npz", a=x, b=x)
    with h5py.File(d / "two.h5", "w") as f:
        f["a"] = x
        f["g/b"] = x
    torch.save({"a": torch.tensor(x), "b": torch.tensor(x)}, d / "two.pt")
    for name in ("full.npy", "two.npz", "two.h5", "two.pt"):
        raw = (d / name).read_bytes()
        (d / f"trunc{Path(name).suffix}").write_bytes(raw[: len(raw) // 2])
    os.unlink(d / "full.npy")
    torch.save({"m": torch.nn.Linear(2, 2)}, d / "module.pt")
    np.save(d / "strings.npy", np.array([["a", "b"], ["c", "d"]]))
    np.save(d / "objects.npy", np.array([[1, "a"], [2, "b"]], dtype=object), allow_pickle=True)
    np.save(d / "complex.npy", x.astype(np.complex128))
    np.save(d / "x1d.npy", x[:, 0])
    np.save(d / "x3d.npy", rng.normal(size=(20, 3, 2)))
    np.save(d / "n0.npy", np.zeros((0, 3)))
    np.save(d / "n1.npy", np.zeros((1, 3)))
    np.save(d / "d0.npy", np.zeros((10, 0)))
    bad = x.copy()
    bad[3, 1] = np.nan
    bad[7, 0] = np.inf
    np.save(d / "nan.npy", bad)
    dup = x.copy()
    dup[10] = dup[2]
    dup[:, 1] = 0.5
    np.save(d / "dup.npy", dup)
    np.save(d / "huge.npy", np.full((4, 2), 1e300) * np.arange(1, 5)[:, None])
    (d / "ragged.csv").write_text("1,2\n3\n")


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("inputs")
    _write_inputs(d)
    return d


@dataclass
class Case:
    id: str
    args: list[str]
    code: int
    error: str | None = None  # the exact message after "error: " (a prefix when it ends with "(")
    warnings: list[str] = field(default_factory=list)  # exact messages after "warning: "
    with_output: bool = True


E_IN = int(ExitStatus.USAGE_OR_INPUT)
EXT = (".npy, .npz, .h5, .hdf5, .hdf, .he5, .pt, .pth, .csv, .tsv, .txt, .safetensors, .parquet, .pq, .feather, .arrow, "
       ".zarr")
D = ["--device", "cpu"]

CASES = [
    # files
    Case("missing-file", ["entropy", "missing.npy"], E_IN, "missing.npy: file not found"),
    Case("directory", ["entropy", "folder.npy"], E_IN,
         f"folder.npy: is a directory, not a file; it holds no array files ({EXT})"),
    Case("unknown-extension", ["entropy", "data.xyz"], E_IN,
         f"data.xyz: unknown extension '.xyz'; expected one of {EXT} (or - for .npy on stdin)"),
    Case("empty-file", ["entropy", "empty.npy"], E_IN, "empty.npy: file is empty"),
    Case("corrupt-npy", ["entropy", "junk.npy"], E_IN, "junk.npy: not a .npy file (no NumPy header); is it another format?"),
    Case("truncated-npy", ["entropy", "trunc.npy"], E_IN, "trunc.npy: corrupt or truncated .npy file ("),
    Case("truncated-npz", ["entropy", "trunc.npz"], E_IN, "trunc.npz: corrupt or truncated .npz file ("),
    Case("corrupt-npz", ["entropy", "junk.npz"], E_IN, "junk.npz: corrupt or truncated .npz file ("),
    Case("truncated-hdf5", ["entropy", "trunc.h5"], E_IN, "trunc.h5: corrupt or truncated HDF5 file ("),
    Case("corrupt-hdf5", ["entropy", "junk.h5"], E_IN, "junk.h5: corrupt or truncated HDF5 file ("),
    Case("truncated-pt", ["entropy", "trunc.pt"], E_IN, "trunc.pt: corrupt or truncated .pt file ("),
    Case("corrupt-pt", ["entropy", "junk.pt"], E_IN, "junk.pt: not a torch file (no zip or pickle header); is it another format?"),
    Case("pickled-module-pt", ["entropy", "module.pt"], E_IN,
         "module.pt: contains pickled Python code/objects (torch.nn.modules.linear.Linear) that weights_only loading "
         "refuses, so it was not loaded; save plain tensors (or a dict of tensors) with torch.save"),
    Case("ragged-csv", ["entropy", "ragged.csv"], E_IN,
         "ragged.csv: line 2 has 1 field(s) but line 1 has 2; every line must have the same number of fields"),
    # keys
    Case("npz-several-arrays", ["entropy", "two.npz"], E_IN, "two.npz: holds several arrays of 2 or more dimensions (a, b); choose one with two.npz:KEY"),
    Case("hdf5-several-datasets", ["entropy", "two.h5"], E_IN,
         "two.h5: holds several datasets of 2 or more dimensions (/a, /g/b); choose one with two.h5:/DATASET"),
    Case("pt-several-tensors", ["entropy", "two.pt"], E_IN, "two.pt: holds several tensors of 2 or more dimensions (a, b); choose one with two.pt:KEY"),
    Case("npz-key-not-found", ["entropy", "two.npz:c"], E_IN, "two.npz: key 'c' not found; arrays: a, b"),
    Case("hdf5-key-not-found", ["entropy", "two.h5:/c"], E_IN, "two.h5: dataset '/c' not found; datasets: /a, /g/b"),
    Case("hdf5-key-is-group", ["entropy", "two.h5:/g"], E_IN, "two.h5: dataset '/g' is a group, not a dataset; the datasets in it: /g/b"),
    Case("pt-key-not-found", ["entropy", "two.pt:c"], E_IN, "two.pt: key 'c' not found; tensors: a, b"),
    Case("npy-with-key", ["entropy", "x.npy:a"], E_IN, "x.npy: a .npy file holds one array; remove the key 'a'"),
    # dtypes and shapes
    Case("strings", ["entropy", "strings.npy"], E_IN, "strings.npy: `embeddings` must be numeric; got dtype <U1 (strings)"),
    Case("objects", ["entropy", "objects.npy"], E_IN, "objects.npy: holds Python objects (dtype object); expected a numeric array"),
    Case("complex", ["entropy", "complex.npy"], E_IN,
         "complex.npy: `embeddings` must be real numbers; got dtype complex128 (complex numbers): take x.real or abs(x) first"),
    Case("1-d", ["entropy", "x1d.npy"], E_IN,
         "x1d.npy: `embeddings` must be 2-D (N rows x D features); got 1-D shape (40,): use x.reshape(-1, 1) for 40 "
         "points of one feature, or x.reshape(1, -1) for one point"),
    Case("3-d", ["entropy", "x3d.npy"], E_IN,
         "x3d.npy: `embeddings` must be 2-D (N rows x D features); got shape (20, 3, 2): pass --flatten to use 20 rows "
         "x 6 features"),
    Case("3-d-flatten", ["entropy", "x3d.npy", "--flatten", *D], 0),
    Case("n-0", ["entropy", "n0.npy"], E_IN, "n0.npy: `embeddings` must have at least 2 rows; got N = 0 (shape (0, 3))"),
    Case("n-1", ["entropy", "n1.npy"], E_IN, "n1.npy: `embeddings` must have at least 2 rows; got N = 1"),
    Case("d-0", ["entropy", "d0.npy"], E_IN, "d0.npy: `embeddings` must have at least 1 feature (column); got D = 0 (shape (10, 0))"),
    Case("n-le-k-knn", ["entropy", "x5.npy", "-m", "knn", "--k", "5", *D], E_IN,
         "x5.npy: `k` must be <= N - 1 = 4 (distinct rows); got 5"),
    Case("n-le-k-ase-knn", ["entropy", "x5.npy", "-m", "ase-knn", "--k", "6", *D], E_IN,
         "x5.npy: `k` must be <= N = 5 for the kNN adjacency (the row itself counts); got 6"),
    Case("n-le-k-ksg", ["mi", "x5.npy", "x5.npy", "-m", "ksg", "--k", "5", *D], E_IN,
         "x5.npy: `k` must be <= N - 1 = 4; got 5"),
    Case("ksg-bad-metric-y", ["mi", "x.npy", "x.npy", "-m", "ksg", "--metric-y", "l2", *D], E_IN,
         "`metric_y` must be one of euclidean, max, manhattan; got 'l2'"),
    Case("knn-weighted-k-too-small", ["entropy", "x.npy", "-m", "knn-weighted", "--k", "0", *D], E_IN,
         "`k` must be an integer >= 1; got 0"),
    Case("infonce-bad-epochs", ["mi", "x.npy", "y.npy", "-m", "infonce", "--epochs", "0", *D], E_IN,
         "`epochs` must be an integer >= 1; got 0"),
    Case("too-large", ["entropy", "huge.npy", *D], E_IN,
         "huge.npy: `embeddings` must have |values| <= 4.74e+153 for D = 2 (squared distances overflow float64); "
         "got 4e+300: rescale the data"),
    # non-finite values
    Case("nan-inf", ["entropy", "nan.npy"], E_IN,
         "nan.npy: `embeddings` must be finite; got NaN or Inf in 2 of 40 rows, first at row 3: clean them or pass "
         "--drop-nonfinite to drop those rows"),
    Case("drop-nonfinite", ["entropy", "nan.npy", "--drop-nonfinite", *D], 0, None,
         ["nan.npy: dropped 2 row(s) holding NaN or Inf (--drop-nonfinite): rows 3, 7; 38 rows remain"]),
    # data quality (warnings, exit 0)
    Case("duplicates-constant", ["entropy", "dup.npy", *D], 0, None, [
        "dup.npy: 1 of 3 columns is constant (column 1): constant columns add nothing to distances or bins (dead units?)",
        "dup.npy: 1 of 40 rows repeats an earlier row (39 distinct; e.g. row 10 repeats row 2): duplicates are points "
        "at distance 0, which lower DSE and make kNN/KSG distances 0; `dse check` reports more"]),
    # references
    Case("x-y-different-n", ["mi", "x.npy", "y39.npy"], E_IN,
         "y39.npy: `reference` must have one row per embedding row; embeddings (x.npy) have 40 rows but the reference "
         "has 39"),
    Case("labels-integral-floats-auto", ["mi", "x.npy", "yfloat.npy", *D], 0, None,
         ["yfloat.npy: reference is a float column of 4 distinct integral values: read as a scalar, as the published "
          "implementation does (binned into n_clusters equal-width bins by dsmi and csmi, used as it is by ksg and "
          "mine); pass ref_kind='discrete' (--ref-kind discrete) to read the values as labels"]),
    Case("labels-integral-floats-discrete", ["mi", "x.npy", "yfloat.npy", "--ref-kind", "discrete", *D], 0),
    Case("labels-fractional-floats-discrete", ["mi", "x.npy", "yfrac.npy", "--ref-kind", "discrete", *D], E_IN,
         "yfrac.npy: `ref_kind` discrete needs integer labels; got non-integral float values (e.g. 0.5): use "
         "--ref-kind continuous or auto"),
    Case("labels-negative", ["mi", "x.npy", "yneg.npy", *D], 0),
    Case("labels-strings", ["mi", "x.npy", "ystr.npy", *D], 0),
    Case("labels-strings-continuous", ["mi", "x.npy", "ystr.npy", "--ref-kind", "continuous"], E_IN,
         "ystr.npy: `ref_kind` must be auto or discrete for a reference of strings (labels); got 'continuous'"),
    Case("single-row-class", ["mi", "x.npy", "ysingle.npy", *D], 0, None,
         ["ysingle.npy: reference class 9 has a single row: the entropy of one row is 0 by definition, so such a "
          "class adds nothing to the mutual information; merge rare classes or collect more rows"]),
    # parameters
    Case("sigma-zero", ["entropy", "x.npy", "--sigma", "0", *D], E_IN, "`sigma` must be > 0; got 0.0"),
    Case("sigma-negative", ["entropy", "x.npy", "--sigma", "-1", *D], E_IN, "`sigma` must be > 0; got -1.0"),
    Case("sigma-nan", ["entropy", "x.npy", "--sigma", "nan", *D], E_IN, "`sigma` must be finite; got nan"),
    Case("sigma-inf", ["entropy", "x.npy", "--sigma", "inf", *D], E_IN, "`sigma` must be finite; got inf"),
    Case("sigma-text", ["entropy", "x.npy", "--sigma", "wide", *D], E_IN,
         "`sigma` must be a number > 0, 'median' or 'sqrt-d'; got 'wide'"),
    Case("t-zero", ["entropy", "x.npy", "--t", "0", *D], E_IN, "`t` must be an integer >= 1; got 0"),
    Case("bins-zero", ["entropy", "x.npy", "-m", "cse", "--bins", "0"], E_IN, "`bins` must be an integer >= 1; got 0"),
    Case("k-zero", ["entropy", "x.npy", "-m", "knn", "--k", "0", *D], E_IN, "`k` must be an integer >= 1; got 0"),
    Case("n-clusters-above-n", ["mi", "x.npy", "y.npy", "--ref-kind", "continuous", "--n-clusters", "50", *D], E_IN,
         "y.npy: `n_clusters` must be <= N = 40 (rows of the reference); got 50"),
    Case("n-clusters-zero", ["mi", "x.npy", "y.npy", "--ref-kind", "continuous", "--n-clusters", "0", *D], E_IN,
         "`n_clusters` must be an integer >= 1; got 0"),
    Case("max-n-negative", ["entropy", "x.npy", "--max-n", "-1", *D], E_IN, "`max_n` must be an integer >= 0; got -1"),
    Case("base-one", ["entropy", "x.npy", "--base", "1", *D], E_IN, "`--base` must be a finite number > 0 and != 1; got '1'"),
    Case("dtype-float16", ["entropy", "x.npy", "--dtype", "float16", *D], E_IN,
         "`dtype` must be float64 or float32; got 'float16'"),
    Case("unknown-method", ["entropy", "x.npy", "-m", "bogus"], E_IN, "`method` 'bogus' is unknown; choose from "),
]


def _error_line(stderr: str) -> str:
    lines = [ln for ln in stderr.splitlines() if ln.startswith("error: ")]
    assert len(lines) == 1, stderr
    return lines[0][len("error: "):]


def _run(args: list[str]):
    res = runner.invoke(app, args)
    combined = res.stdout + res.stderr
    assert "Traceback" not in combined, combined
    assert not isinstance(res.exception, Exception) or isinstance(res.exception, SystemExit), repr(res.exception)
    return res


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_input_case(case: Case, inputs: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(inputs)
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    out = out_dir / "result.json"
    out.write_bytes(SENTINEL)
    res = _run([*case.args, "-o", str(out)] if case.with_output else case.args)
    assert res.exit_code == case.code, res.stderr
    if case.error is not None:
        line = _error_line(res.stderr)
        if case.error.endswith("(") or case.error.endswith(" "):  # the rest quotes a library's own words
            assert line.startswith(case.error), line
        else:
            assert line == case.error
        assert res.stdout == ""
    else:
        assert "error:" not in res.stderr
    shown = [ln[len("warning: "):] for ln in res.stderr.splitlines() if ln.startswith("warning: ")]
    for message in case.warnings:
        assert message in shown, res.stderr
    if case.code != 0:
        assert out.read_bytes() == SENTINEL  # never truncated or replaced by a failing run
        assert sorted(p.name for p in out_dir.iterdir()) == ["result.json"]  # and no temporary file left
    else:
        assert json.loads(out.read_text())["results"]


def test_failing_run_creates_no_output(inputs: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(inputs)
    out = tmp_path / "new.json"
    res = _run(["entropy", "nan.npy", "-o", str(out)])
    assert res.exit_code == E_IN
    assert list(tmp_path.iterdir()) == []


def test_unreadable_file(inputs: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    locked = tmp_path / "locked.npy"
    np.save(locked, np.zeros((4, 2)))
    locked.chmod(0)
    if os.access(locked, os.R_OK):  # root reads anything: make the access check say what a user would see
        real = os.access
        monkeypatch.setattr(os, "access", lambda p, mode, *a, **k: False if Path(p).resolve() == locked.resolve() else real(p, mode, *a, **k))
    monkeypatch.chdir(tmp_path)
    res = _run(["entropy", "locked.npy"])
    assert res.exit_code == E_IN
    assert _error_line(res.stderr) == "locked.npy: file is not readable (permission denied)"
    locked.chmod(0o600)


@pytest.mark.parametrize("kind", ["missing-dir", "is-dir", "not-writable"])
def test_output_path_errors_come_before_the_computation(kind: str, inputs: Path, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(inputs)
    if kind == "missing-dir":
        out = tmp_path / "nope" / "r.json"
        expected = f"{out}: `--output` must be in an existing directory; {out.parent} does not exist"
    elif kind == "is-dir":
        out = tmp_path
        expected = f"{out}: `--output` must be a file, not a directory"
    else:
        ro = tmp_path / "ro"
        ro.mkdir()
        ro.chmod(0o500)
        out = ro / "r.json"
        try:
            (ro / "probe").write_text("x")
            writable = True
        except OSError:
            writable = False
        if writable:  # root ignores directory permissions; a read-only pseudo file system still refuses
            if not sys.platform.startswith("linux"):
                pytest.skip("running as root and no read-only directory to write to")
            out = Path("/proc/dsecli-test-output.json")
        expected = f"{out}: `--output` must be in a writable directory; cannot create files in {out.parent} ("
    # a computation that would take long if it started: the error must come first
    called = []
    monkeypatch.setattr("dsecli.methods.prepare_rows", lambda *a, **k: called.append(1))
    res = _run(["entropy", "x.npy", "-o", str(out)])
    assert res.exit_code == E_IN
    assert _error_line(res.stderr).startswith(expected)
    assert called == []
    if kind == "not-writable":
        (tmp_path / "ro").chmod(0o700)


def test_device_without_cuda_is_an_input_error(inputs: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("CUDA is present")
    monkeypatch.chdir(inputs)
    res = _run(["entropy", "x.npy", "--device", "cuda"])
    assert res.exit_code == E_IN
    assert _error_line(res.stderr) == (
        "`device` 'cuda' requested but CUDA is not available on this machine; use --device cpu (or auto)")


def test_traceback_flag_shows_the_traceback(inputs: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from dsecli.errors import InputError

    monkeypatch.chdir(inputs)
    res = runner.invoke(app, ["entropy", "missing.npy", "--traceback"])
    assert res.exit_code != 0 and isinstance(res.exception, InputError)


def test_unexpected_exception_is_one_line_exit_1(inputs: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(*a, **k):
        raise RuntimeError("something deep failed\nsecond line")

    monkeypatch.chdir(inputs)
    monkeypatch.setattr("dsecli.methods.prepare_rows", boom)
    res = _run(["entropy", "x.npy"])
    assert res.exit_code == int(ExitStatus.COMPUTATION_FAILED)
    assert _error_line(res.stderr) == "RuntimeError: something deep failed (rerun with --traceback for details)"


# ---- memory guard -----------------------------------------------------------------------------------------

MEMORY_PATHS = [
    ["entropy", "x.npy", "-m", "dse"],
    ["entropy", "x.npy", "-m", "ase-gaussian"],
    ["entropy", "x.npy", "-m", "ase-normalized"],
    ["entropy", "x.npy", "-m", "ase-knn"],
    ["entropy", "x.npy", "-m", "matrix-entry"],
    ["mi", "x.npy", "y.npy", "-m", "dsmi"],
]


def _small_memory(monkeypatch: pytest.MonkeyPatch, limit: int = 1024) -> None:
    import dsecli.device
    import dsecli.diffusion.plan
    import dsecli.measures.dse

    for module in (dsecli.device, dsecli.diffusion.plan, dsecli.measures.dse):
        if hasattr(module, "available_memory_bytes"):
            monkeypatch.setattr(module, "available_memory_bytes", lambda device: limit)


@pytest.mark.parametrize("args", MEMORY_PATHS, ids=[a[3] + "-" + a[-1] if a[0] == "mi" else a[-1] for a in MEMORY_PATHS])
def test_memory_guard_stops_every_dense_path(args: list[str], inputs: Path, tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    import dsecli.diffusion.kernels
    import dsecli.measures.dse

    monkeypatch.chdir(inputs)
    _small_memory(monkeypatch)
    allocated: list[str] = []
    for module in (dsecli.diffusion.kernels, dsecli.measures.dse):
        for name in ("pairwise_sq_dists", "gaussian_kernel"):
            if hasattr(module, name):
                real = getattr(module, name)
                monkeypatch.setattr(module, name, lambda *a, _r=real, _n=name, **k: allocated.append(_n) or _r(*a, **k))
    out = tmp_path / "r.json"
    out.write_bytes(SENTINEL)
    res = _run([*args, "--device", "cpu", "-o", str(out)])
    assert res.exit_code == int(ExitStatus.COMPUTATION_FAILED), res.stderr
    line = _error_line(res.stderr)
    assert line.startswith(("N = 40 ", "N = 40:")), line  # the figures: needed versus available
    assert "GiB" in line and "available" in line and "--max-n" in line and "another device" in line
    if args[-1] == "dse" and "approx" in dsecli.measures.dse.SOLVERS:
        assert "--solver approx" in line
    assert allocated == []  # stopped before any N x N matrix
    assert out.read_bytes() == SENTINEL


def test_memory_guard_passes_when_memory_suffices(inputs: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(inputs)
    _small_memory(monkeypatch, limit=10 * 2**20)
    res = _run(["entropy", "x.npy", "--device", "cpu", "--json"])
    assert res.exit_code == 0, res.stderr


def test_memory_guard_library_figures(monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    from dsecli.diffusion.plan import check_dense_memory, dense_matrix_bytes
    from dsecli.errors import MemoryLimitError

    _small_memory(monkeypatch, limit=2**30)
    need = dense_matrix_bytes(20_000, "float64")
    assert need == 2 * 20_000**2 * 8
    with pytest.raises(MemoryLimitError, match=r"N = 20000 needs about 6\.0 GiB .* cpu has 1\.0 GiB available"):
        check_dense_memory(20_000, device=torch.device("cpu"), dtype=torch.float64)
    assert check_dense_memory(1000, device=torch.device("cpu"), dtype=torch.float64) == 2 * 1000**2 * 8


# ---- dse check / info --check ----------------------------------------------------------------------------


def test_check_reports_findings(inputs: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(inputs)
    res = _run(["check", "dup.npy", "--json"])
    assert res.exit_code == 0, res.stderr
    report = json.loads(res.stdout)
    codes = {f["code"]: f for f in report["findings"]}
    assert report["ok"] is False
    assert codes["duplicates"]["details"]["example"] == [2, 10]
    assert report["stats"]["duplicate_rows"] == 1 and report["stats"]["constant_columns"] == 1
    res = _run(["check", "nan.npy"])
    assert res.exit_code == 0 and "nonfinite" in res.stdout


def test_check_input_errors_use_the_same_policy(inputs: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(inputs)
    res = _run(["check", "x1d.npy"])
    assert res.exit_code == E_IN
    assert _error_line(res.stderr).startswith("x1d.npy: `embeddings` must be 2-D")


def test_info_check(inputs: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(inputs)
    res = _run(["info", "two.h5", "--check", "--json"])
    assert res.exit_code == 0, res.stderr
    report = json.loads(res.stdout)
    assert [c["key"] for c in report["checks"]] == ["/a", "/g/b"]
    assert report["checks"][0]["report"]["n_used"] == 40
    res = _run(["info", "two.h5", "--check"])
    assert res.exit_code == 0 and "Check — two.h5:/a" in res.stdout
