"""The ``dse`` command: help, version, readers, JSON, atomic --output, and the import budget."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from typer.testing import CliRunner

from dsecli import diffusion_spectral_entropy
from dsecli.cli import app

runner = CliRunner()


@pytest.fixture()
def emb(tmp_path):
    x = np.random.default_rng(0).normal(size=(120, 4))
    path = tmp_path / "emb.npy"
    np.save(path, x)
    return path, x


def _json(args: list[str], **kw) -> dict:
    res = runner.invoke(app, args, **kw)
    assert res.exit_code == 0, res.output
    return json.loads(res.stdout)


def test_every_command_has_help() -> None:
    import typer.main

    group = typer.main.get_command(app)
    assert {"entropy", "mi", "info"} <= set(group.commands)
    for name in group.commands:
        res = runner.invoke(app, [name, "--help"])
        assert res.exit_code == 0 and "Usage" in res.stdout, name


def test_version_and_module_entry_point() -> None:
    from dsecli import __version__

    assert __version__ in runner.invoke(app, ["--version"]).stdout
    proc = subprocess.run([sys.executable, "-m", "dsecli", "--help"], capture_output=True, text=True, check=False)
    assert proc.returncode == 0 and "entropy" in proc.stdout


def test_help_does_not_import_torch() -> None:
    code = (
        "import sys\n"
        "from dsecli.cli import app\n"
        "try:\n    app(['--help'])\nexcept SystemExit:\n    pass\n"
        "bad = [m for m in ('torch', 'h5py', 'matplotlib') if m in sys.modules]\n"
        "print('HEAVY', bad)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "HEAVY []" in proc.stdout


def test_json_is_one_strict_object(emb) -> None:
    path, x = emb
    res = runner.invoke(app, ["entropy", str(path), "--sigma", "1.5", "--json", "--device", "cpu"])
    assert res.exit_code == 0
    lines = [ln for ln in res.stdout.splitlines() if ln.strip()]
    assert len(lines) == 1
    out = json.loads(lines[0], parse_constant=lambda c: pytest.fail(f"non-strict JSON constant {c}"))
    expected = diffusion_spectral_entropy(x, sigma=1.5, device="cpu").value
    assert out["results"][0]["value"] == pytest.approx(expected, abs=1e-12)
    assert out["n_used"] == 120 and out["results"][0]["params"]["sigma"] == 1.5


def test_table_shows_n_used_of_n_total(emb) -> None:
    path, _ = emb
    res = runner.invoke(app, ["entropy", str(path), "--max-n", "50", "--device", "cpu"])
    assert res.exit_code == 0
    assert "N used 50 of 120 total" in res.stdout and "bits" in res.stdout


def test_output_is_written_atomically(emb, tmp_path) -> None:
    path, _ = emb
    out = tmp_path / "report.json"
    out.write_text("previous")
    res = runner.invoke(app, ["entropy", str(path), "--output", str(out), "--device", "cpu"])
    assert res.exit_code == 0
    assert json.loads(out.read_text())["results"][0]["method"] == "dse"
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []
    # a failing run leaves the previous file untouched
    before = out.read_text()
    bad = runner.invoke(app, ["entropy", str(path), "--sigma", "-1", "--output", str(out)])
    assert bad.exit_code == 2 and out.read_text() == before


@pytest.mark.parametrize("fmt", ["npz", "h5", "pt", "csv", "tsv", "txt", "stdin"])
def test_readers_give_the_same_value(fmt: str, emb, tmp_path) -> None:
    path, x = emb
    expected = diffusion_spectral_entropy(x, sigma=2.0, device="cpu").value
    kwargs: dict = {}
    if fmt == "npz":
        np.savez(tmp_path / "e.npz", emb=x, other=np.zeros(3))
        spec = f"{tmp_path / 'e.npz'}:emb"
    elif fmt == "h5":
        import h5py

        with h5py.File(tmp_path / "e.h5", "w") as fh:
            fh.create_dataset("/run/layer4", data=x)
            fh.create_dataset("/run/labels", data=np.arange(120))
        spec = f"{tmp_path / 'e.h5'}:/run/layer4"
    elif fmt == "pt":
        import torch

        torch.save({"emb": torch.as_tensor(x)}, tmp_path / "e.pt")
        spec = f"{tmp_path / 'e.pt'}:emb"
    elif fmt in ("csv", "tsv", "txt"):
        sep = {"csv": ",", "tsv": "\t", "txt": " "}[fmt]
        np.savetxt(tmp_path / f"e.{fmt}", x, delimiter=sep, fmt="%.17g", header=sep.join("abcd"), comments="")
        spec = str(tmp_path / f"e.{fmt}")
    else:
        import io

        buf = io.BytesIO()
        np.save(buf, x)
        spec, kwargs = "-", {"input": buf.getvalue()}
    out = _json(["entropy", spec, "--sigma", "2", "--json", "--device", "cpu"], **kwargs)
    assert out["results"][0]["value"] == pytest.approx(expected, abs=1e-12)


def test_hdf5_reads_only_subsampled_rows(tmp_path) -> None:
    import h5py

    from dsecli.inputs.readers import open_array
    from dsecli.inputs.sampling import take_rows

    x = np.arange(2000 * 3, dtype=np.float64).reshape(2000, 3)
    with h5py.File(tmp_path / "big.h5", "w") as fh:
        fh.create_dataset("x", data=x, chunks=(100, 3))
    src = open_array(f"{tmp_path / 'big.h5'}:/x")
    rows = take_rows(src, max_n=50, seed=1)
    assert rows.indices is not None
    np.testing.assert_array_equal(rows.data, x[rows.indices])


def test_npy_is_memory_mapped(tmp_path) -> None:
    from dsecli.inputs.readers import open_array

    np.save(tmp_path / "m.npy", np.ones((10, 2)))
    src = open_array(str(tmp_path / "m.npy"))
    assert src.shape == (10, 2)
    assert isinstance(src._reader.__closure__[0].cell_contents, np.memmap)


def test_info_lists_datasets(tmp_path) -> None:
    import h5py

    with h5py.File(tmp_path / "r.h5", "w") as fh:
        fh.create_dataset("/a/x", data=np.zeros((5, 3), np.float32))
        fh.create_dataset("/b", data=np.zeros(5, np.int64))
    out = _json(["info", str(tmp_path / "r.h5"), "--json"])
    got = {a["key"]: (a["shape"], a["dtype"]) for a in out["arrays"]}
    assert got == {"/a/x": ([5, 3], "float32"), "/b": ([5], "int64")}


def test_mi_command_with_labels(tmp_path) -> None:
    rng = np.random.default_rng(1)
    labels = np.repeat(np.arange(3), 40)
    x = rng.normal(size=(3, 5))[labels] * 50 + rng.normal(size=(120, 5))
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "y.npy", labels)
    out = _json(["mi", str(tmp_path / "x.npy"), str(tmp_path / "y.npy"), "--sigma", "3", "--t", "10", "--json"])
    res = out["results"][0]
    assert res["method"] == "dsmi" and res["params"]["n_classes"] == 3
    assert res["value"] == pytest.approx(np.log2(3), abs=0.05)


def test_output_may_not_overwrite_the_input(emb) -> None:
    path, _ = emb
    before = path.read_bytes()
    res = runner.invoke(app, ["entropy", str(path), "--output", str(path)])
    assert res.exit_code == 2 and "`--output` names an input file" in res.output
    assert path.read_bytes() == before


def test_dry_run_plans_without_computing(tmp_path, monkeypatch) -> None:
    import dsecli.diffusion.eigen

    big = np.lib.format.open_memmap(tmp_path / "big.npy", mode="w+", dtype=np.float32, shape=(60_000, 8))
    big.flush()
    del big

    def fail(*args, **kwargs):  # pragma: no cover - must not be reached
        raise AssertionError("--dry-run computed something")

    monkeypatch.setattr(dsecli.diffusion.eigen, "symmetric_eigenvalues", fail)
    out = _json(["entropy", str(tmp_path / "big.npy"), "--max-n", "0", "--solver", "auto", "--dry-run", "--json"])
    assert out["n_rows"] == 60_000 and out["n_total"] == 60_000
    assert out["solver"] == "approx" and out["expected_seconds"] > 0
    exact = _json(["entropy", str(tmp_path / "big.npy"), "--max-n", "0", "--dry-run", "--json"])
    # two N x N float64 matrices at least: the plan must not understate the exact path
    assert exact["solver"] == "exact" and exact["memory_bytes"] >= 2 * 60_000**2 * 8


def test_solver_and_tol_bits_reach_dse_and_dsmi(tmp_path) -> None:
    rng = np.random.default_rng(1)
    y = np.repeat(np.arange(2), 300)
    x = rng.normal(size=(600, 8)) + 3.0 * y[:, None]
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "y.npy", y)
    ent = _json(["entropy", str(tmp_path / "x.npy"), "--solver", "approx", "--tol-bits", "0.02", "--sigma", "median",
                 "--device", "cpu", "--json"])["results"][0]
    assert ent["params"]["solver"] == "approx" and ent["params"]["tol_bits"] == 0.02
    assert 0 < ent["extra"]["error_estimate_bits"] <= 0.02
    exact = diffusion_spectral_entropy(x, sigma="median", device="cpu")
    assert abs(ent["value"] - exact.value) <= ent["extra"]["error_estimate_bits"]
    mi = _json(["mi", str(tmp_path / "x.npy"), str(tmp_path / "y.npy"), "--solver", "approx", "--sigma", "median",
                "--device", "cpu", "--json"])["results"][0]
    assert mi["params"]["solver"] == "approx" and mi["extra"]["solvers"] == {"300": "approx"}
    assert 0 < mi["extra"]["error_estimate_bits"] <= 0.01
    table = runner.invoke(app, ["mi", str(tmp_path / "x.npy"), str(tmp_path / "y.npy"), "--solver", "approx",
                                "--sigma", "median", "--device", "cpu"])
    assert table.exit_code == 0 and "approx" in table.stdout  # the solver is shown beside the value


def test_mi_dry_run_plans_per_class_size_without_computing(tmp_path, monkeypatch) -> None:
    import dsecli.diffusion.eigen

    big = np.lib.format.open_memmap(tmp_path / "big.npy", mode="w+", dtype=np.float32, shape=(60_000, 8))
    big.flush()
    del big
    np.save(tmp_path / "y.npy", np.repeat(np.arange(4), 15_000))

    def fail(*args, **kwargs):  # pragma: no cover - must not be reached
        raise AssertionError("--dry-run computed something")

    monkeypatch.setattr(dsecli.diffusion.eigen, "symmetric_eigenvalues", fail)
    monkeypatch.setattr(dsecli.diffusion.kernels, "gaussian_kernel", fail)
    args = ["mi", str(tmp_path / "big.npy"), str(tmp_path / "y.npy"), "--max-n", "0", "--dry-run"]
    auto = _json([*args, "--solver", "auto", "--device", "cpu", "--json"])
    assert auto["n_rows"] == 60_000 and auto["n_classes"] == 4 and auto["dse_count"] == 4 * (1 + 5)
    assert list(auto["sizes"]) == ["15000"] and auto["sizes"]["15000"]["solver"] == "approx"  # above 10,000
    assert auto["shared_kernel"] is False and auto["expected_seconds"] > 0
    assert auto["expected_seconds"] == pytest.approx(24 * auto["sizes"]["15000"]["expected_seconds"])
    capped = _json([*args[:3], "--dry-run", "--device", "cpu", "--json"])  # default --max-n 10000
    assert capped["n_rows"] == 10_000 and all(p["solver"] == "exact" for p in capped["sizes"].values())
    text = runner.invoke(app, [*args, "--solver", "auto", "--device", "cpu"])
    assert text.exit_code == 0 and "class size 15,000: solver approx" in text.stdout
    assert "nothing was computed" in text.stdout


def test_mi_plan_is_what_runs() -> None:
    from dsecli import diffusion_spectral_mutual_information
    from dsecli.diffusion.plan import plan_mutual_information

    rng = np.random.default_rng(2)
    y = np.repeat(np.arange(3), [150, 100, 50])
    x = rng.normal(size=(300, 4))
    plan = plan_mutual_information(np.bincount(y), 4, solver="auto", repetitions=2, device="cpu")
    got = diffusion_spectral_mutual_information(x, y, solver="auto", repetitions=2, device="cpu")
    assert got.extra["solvers"] == {m: p["solver"] for m, p in plan["sizes"].items()}
    assert got.extra["shared_kernel"] == plan["shared_kernel"] and plan["dse_count"] == 3 * 3


def test_threads_option_limits_torch_and_restores(emb, monkeypatch) -> None:
    import torch

    from dsecli.device import cpu_threads
    from dsecli.errors import InputError

    before = torch.get_num_threads()
    with cpu_threads(1):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before
    with pytest.raises(InputError, match="threads"), cpu_threads(0):
        pass  # pragma: no cover - the guard raises on entry
    seen: list[int] = []
    import dsecli.methods

    real = dsecli.methods.ENTROPY_METHODS["dse"]
    monkeypatch.setitem(dsecli.methods.ENTROPY_METHODS, "dse",
                        lambda *a, **k: seen.append(torch.get_num_threads()) or real(*a, **k))
    path, x = emb
    one = _json(["entropy", str(path), "--threads", "1", "--device", "cpu", "--json"])["results"][0]
    assert seen == [1] and torch.get_num_threads() == before
    assert one["value"] == pytest.approx(diffusion_spectral_entropy(x, device="cpu").value, abs=1e-12)
    bad = runner.invoke(app, ["entropy", str(path), "--threads", "0"])
    assert bad.exit_code == 2 and "threads" in bad.stderr
