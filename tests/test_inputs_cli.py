"""Every bad input class through the CLI: exit 2, one ``error:`` line naming the file (and key), no traceback,
nothing created or changed; every valid odd input: the same value as the plain float64 C-order ``.npy``.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from dsecli.cli import app
from dsecli.inputs.readers import EXTENSIONS

runner = CliRunner()
X = np.random.default_rng(0).normal(size=(12, 3))
D = ["--device", "cpu"]


def _csv(rows: np.ndarray, end: str = "") -> str:
    return "\n".join(",".join(repr(float(v)) for v in row) + end for row in rows) + "\n"


def _h5(name: str, build: Callable) -> Callable[[Path], None]:
    def write(d: Path) -> None:
        import h5py

        with h5py.File(d / name, "w", libver="latest") as f:
            build(f)

    return write


def _virtual(d: Path) -> None:
    import h5py

    with h5py.File(d / "src.h5", "w") as f:
        f["d"] = X
    layout = h5py.VirtualLayout(shape=X.shape, dtype="f8")
    layout[:] = h5py.VirtualSource("src.h5", "d", shape=X.shape)
    with h5py.File(d / "v.h5", "w", libver="latest") as f:
        f.create_virtual_dataset("v", layout, fillvalue=0)
    os.remove(d / "src.h5")


def _external(d: Path) -> None:
    import h5py

    here = os.getcwd()
    os.chdir(d)  # a relative external name, as a tool working in that folder writes it
    try:
        with h5py.File("ext.h5", "w") as f:
            f.create_dataset("x", data=X, external=[("ext.bin", 0, X.nbytes)])
        os.remove("ext.bin")
    finally:
        os.chdir(here)


class _CallsAFunction:
    def __reduce__(self):
        return (os.getcwd, ())


def _torch(name: str, make: Callable) -> Callable[[Path], None]:
    def write(d: Path) -> None:
        import torch

        torch.save(make(torch), d / name)

    return write


def _partly_written(f) -> None:
    f.create_dataset("x", shape=(12, 3), dtype="f8", chunks=(4, 3))[:4] = 1.0


@dataclass
class Bad:
    id: str
    build: Callable[[Path], None]
    args: list[str]
    error: str
    stdin: bytes | None = None


REFUSED = ("contains pickled Python code/objects ({}) that weights_only loading refuses, so it was not loaded; save "
           "plain tensors (or a dict of tensors) with torch.save")
BAD = [
    Bad("npy-0-d", lambda d: np.save(d / "s.npy", np.array(2.0)), ["entropy", "s.npy"],
        "s.npy: holds a 0-d array (a single value, shape ()); expected one row per sample"),
    Bad("npy-float128-overflow", lambda d: np.save(d / "w.npy", np.full((3, 2), np.longdouble("1e400"))),
        ["entropy", "w.npy", *D],
        "w.npy: `embeddings` must fit in float64 (|x| <= 1.8e+308); got dtype float128 with |values| up to 1e+400: "
        "rescale the data"),
    Bad("stdin-random-bytes", lambda d: None, ["entropy", "-"],
        "-: standard input is not .npy data (no NumPy header); pipe the bytes of a file written by np.save",
        stdin=np.random.default_rng(1).bytes(200)),
    Bad("directory", lambda d: (d / "runs").mkdir(), ["entropy", "runs"],
        f"runs: is a directory, not a file; it holds no array files ({', '.join(EXTENSIONS)})"),
    Bad("hdf5-never-written", _h5("u.h5", lambda f: f.create_dataset("x", shape=(12, 3), dtype="f8")),
        ["entropy", "u.h5:/x"],
        "u.h5:/x: was created but never written (no data stored), so HDF5 would read every value as the fill value "
        "(0.0); write the data first"),
    Bad("hdf5-partly-written", _h5("p.h5", _partly_written), ["check", "p.h5"],
        "p.h5:/x: was only partly written (2 of 3 chunks never written), so HDF5 would read those values as the fill "
        "value (0.0); write the data first"),
    Bad("hdf5-virtual-missing-source", _virtual, ["entropy", "v.h5"],
        "v.h5:/v: is a virtual dataset whose source src.h5:d is missing, so HDF5 would read those rows as the fill "
        "value; put the source file next to it"),
    Bad("hdf5-scalar", _h5("s.h5", lambda f: f.create_dataset("x", data=1.0)), ["entropy", "s.h5:x"],
        "s.h5:/x: is a scalar dataset (one value, shape ()); expected one row per sample"),
    Bad("hdf5-null-dataspace", _h5("n.h5", lambda f: f.create_dataset("x", data=__import__("h5py").Empty("f8"))),
        ["mi", "n.h5", "n.h5"], "n.h5:/x: has an empty (null) dataspace: no shape and no values"),
    Bad("pt-sparse", _torch("sp.pt", lambda torch: {"e": torch.eye(4).to_sparse()}), ["entropy", "sp.pt"],
        "sp.pt:e: holds a sparse_coo tensor; save it dense (t.to_dense()) with torch.save"),
    Bad("pt-pickled-call", _torch("call.pt", lambda torch: {"e": _CallsAFunction()}), ["entropy", "call.pt"],
        "call.pt: " + REFUSED.format(os.getcwd.__module__ + ".getcwd")),
    Bad("pt-complex", _torch("c.pt", lambda torch: torch.ones(4, 2, dtype=torch.complex64)), ["entropy", "c.pt"],
        "c.pt: `embeddings` must be real numbers; got dtype complex64 (complex numbers): take x.real or abs(x) first"),
    Bad("csv-empty-field", lambda d: (d / "e.csv").write_text("1,2\n3,\n4,5\n"), ["entropy", "e.csv"],
        "e.csv: line 2, field 2 is empty (a missing value?); fill it in or remove the line"),
    Bad("csv-header-only", lambda d: (d / "h.csv").write_text("a,b\n"), ["entropy", "h.csv", "--header"],
        "h.csv: holds only a header line, no data"),
    Bad("csv-labels-first-line-is-data", lambda d: (np.save(d / "x.npy", X[:3]),
                                                    (d / "l.csv").write_text("label\ncat\ndog\ncat\n")),
        ["mi", "x.npy", "l.csv"],
        "l.csv: `reference` must have one row per embedding row; embeddings (x.npy) have 3 rows but the reference has 4"),
    Bad("csv-no-header-keeps-strings", lambda d: (d / "h.csv").write_text("a,b\n1,2\n3,4\n"),
        ["entropy", "h.csv", "--no-header"],
        "h.csv: line 1, field 1 is not a number ('a') (--no-header: the first line is data); a table of several "
        "columns must hold numbers only (a file of labels has one column)"),
    Bad("csv-na-cell", lambda d: (d / "na.csv").write_text("1,2\n3,NA\n4,5\n"), ["entropy", "na.csv"],
        "na.csv: line 2, field 2 is not a number ('NA'); a table of several columns must hold numbers only (a file "
        "of labels has one column)"),
    Bad("pt-meta", _torch("meta.pt", lambda torch: torch.empty(3, 2, device="meta")), ["entropy", "meta.pt"],
        "meta.pt: holds a meta tensor (a shape without values); save a tensor that holds data"),
    Bad("pt-nested-dict-no-tensors", _torch("n.pt", lambda torch: {"a": {"b": 1}}), ["entropy", "n.pt"],
        "n.pt: holds a dict with no tensors in it (keys: a); save a tensor or a dict of tensors"),
    Bad("hdf5-external-missing", _external, ["entropy", "ext.h5"],
        "ext.h5:/x: keeps its values in the external file ext.bin, which is missing; put it next to the HDF5 file or "
        "in the working directory"),
    Bad("broken-symlink", lambda d: os.symlink("gone.npy", d / "l.npy"), ["entropy", "l.npy"],
        "l.npy: is a symbolic link to gone.npy, which does not exist"),
    Bad("device", lambda d: os.symlink("/dev/zero", d / "z.npy"), ["entropy", "z.npy"],
        "z.npy: is a device, not a file; save the data to a file, or pipe it to - (standard input)"),
    Bad("pt-int-keys", _torch("ik.pt", lambda torch: {0: torch.ones(3, 2), 1: torch.ones(3, 2)}), ["entropy", "ik.pt"],
        "ik.pt: holds several tensors of 2 or more dimensions (0, 1); choose one with ik.pt:KEY"),
]


def _snapshot(d: Path) -> dict[str, str]:
    return {str(p.relative_to(d)): hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir"
            for p in sorted(d.rglob("*"))}


def _run(args: list[str], stdin: bytes | None = None):
    res = runner.invoke(app, args, input=stdin)
    assert "Traceback" not in res.stdout + res.stderr, res.stdout + res.stderr
    return res


@pytest.mark.parametrize("case", BAD, ids=[c.id for c in BAD])
def test_bad_input(case: Bad, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    if "float128" in case.id and np.dtype(np.longdouble).itemsize <= 8:
        pytest.skip("longdouble is float64 on this platform")
    data = tmp_path / "data"
    data.mkdir()
    case.build(data)
    monkeypatch.chdir(data)
    out = tmp_path / "out.json"
    before = _snapshot(data)
    res = _run([*case.args, "-o", str(out)], case.stdin)
    assert res.exit_code == 2, res.stderr
    errors = [ln for ln in res.stderr.splitlines() if ln.startswith("error: ")]
    assert errors == [f"error: {case.error}"], res.stderr
    assert res.stdout == ""
    assert _snapshot(data) == before  # inputs byte-identical, nothing created next to them
    assert not out.exists()


# ---- valid odd inputs: the value of the plain .npy -----------------------------------------------------------


def _value(res) -> float:
    assert res.exit_code == 0, res.stderr
    return json.loads(res.stdout)["results"][0]["value"]


def _npy_bytes(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, arr)
    return buf.getvalue()


GOOD: list[tuple[str, Callable[[Path], None], list[str]]] = [
    ("npy-big-endian", lambda d: np.save(d / "a.npy", X.astype(">f8")), ["a.npy"]),
    ("npy-fortran", lambda d: np.save(d / "a.npy", np.asfortranarray(X)), ["a.npy"]),
    ("npy-float128", lambda d: np.save(d / "a.npy", X.astype(np.longdouble)), ["a.npy"]),
    ("npz-big-endian", lambda d: np.savez(d / "a.npz", e=X.astype(">f8")), ["a.npz"]),
    ("hdf5-big-endian", _h5("a.h5", lambda f: f.create_dataset("e", data=X.astype(">f8"), dtype=">f8")), ["a.h5"]),
    ("csv-bom", lambda d: (d / "a.csv").write_bytes(_csv(X).encode("utf-8-sig")), ["a.csv"]),
    ("csv-bom-header", lambda d: (d / "a.csv").write_bytes(("x,y,z\n" + _csv(X)).encode("utf-8-sig")), ["a.csv"]),
    ("csv-trailing-commas", lambda d: (d / "a.csv").write_text(_csv(X, end=",")), ["a.csv"]),
    ("csv-numeric-header-said", lambda d: (d / "a.csv").write_text("0,1,2\n" + _csv(X)), ["a.csv", "--header"]),
    ("symlink", lambda d: (np.save(d / "t.npy", X), os.symlink(d / "t.npy", d / "a.npy")), ["a.npy"]),
]


@pytest.mark.parametrize(("build", "args"), [g[1:] for g in GOOD], ids=[g[0] for g in GOOD])
def test_odd_valid_inputs_give_the_plain_value(build, args: list[str], tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    np.save(tmp_path / "plain.npy", X)
    want = _value(_run(["entropy", str(tmp_path / "plain.npy"), "--json", *D]))
    data = tmp_path / "data"
    data.mkdir()
    build(data)
    monkeypatch.chdir(data)
    before = _snapshot(data)
    assert _value(_run(["entropy", *args, "--json", *D])) == want
    assert _snapshot(data) == before


def test_stdin_and_fifo_big_endian_give_the_plain_value(tmp_path: Path) -> None:
    np.save(tmp_path / "plain.npy", X)
    want = _value(_run(["entropy", str(tmp_path / "plain.npy"), "--json", *D]))
    payload = _npy_bytes(X.astype(">f8"))
    assert _value(_run(["entropy", "-", "--json", *D], payload)) == want
    fifo = tmp_path / "pipe.npy"
    os.mkfifo(fifo)
    threading.Thread(target=lambda: fifo.write_bytes(payload), daemon=True).start()
    assert _value(_run(["entropy", str(fifo), "--json", *D])) == want


def test_header_option_decides_for_a_label_column(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    np.save("x.npy", X[:4])
    Path("l.csv").write_text("label\ncat\ndog\ncat\ndog\n")
    Path("l_plain.csv").write_text("cat\ndog\ncat\ndog\n")
    said = _value(_run(["mi", "x.npy", "l.csv", "--header", "--json", *D]))
    assert said == _value(_run(["mi", "x.npy", "l_plain.csv", "--json", *D]))
    res = _run(["info", "l.csv", "--header", "--json"])
    assert json.loads(res.stdout)["arrays"] == [{"key": None, "shape": [4], "dtype": "<U3"}]
