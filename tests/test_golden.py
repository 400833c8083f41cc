"""Every DSE / ASE / matrix-entry / DSMI / subsampled-DSE value of tests/golden, through the
library and (for a selection) the CLI, within the tolerances of the golden README section 5.

Expected numbers are read from the golden JSON files at test time, never copied here.
"""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest
from conftest import GOLDEN, SHARED_GOLDEN, golden_datasets
from typer.testing import CliRunner

from dsecli import (
    adjacency_spectral_entropy,
    diffusion_spectral_entropy,
    diffusion_spectral_mutual_information,
    matrix_entry_entropy,
)
from dsecli.cli import app
from dsecli.inputs.binning import bin_scalars

DATASETS = golden_datasets()


def test_in_repo_golden_copy_is_complete() -> None:
    # the reference data ship with the tests: every array each values file lists is there, with its SHA-256
    assert (GOLDEN / "README.md").is_file() and "Provenance" in (GOLDEN / "README.md").read_text()
    assert len(DATASETS) == 7
    for ds in DATASETS:
        for entry in ds["values_data"]["files"].values():
            data = (GOLDEN / entry["file"]).read_bytes()
            assert hashlib.sha256(data).hexdigest() == entry["sha256"], entry["file"]
            arr = np.load(GOLDEN / entry["file"])
            assert str(arr.dtype) == entry["dtype"] and list(arr.shape) == entry["shape"]
    # next to the development checkouts, the shared folder it was copied from: the two must not drift apart
    if SHARED_GOLDEN.is_dir():
        for path in sorted(SHARED_GOLDEN.iterdir()):
            if path.suffix in (".npy", ".json"):
                assert (GOLDEN / path.name).read_bytes() == path.read_bytes(), path.name


def _records(*quantities: str) -> list:
    out = []
    for ds in DATASETS:
        for rec in ds["values_data"]["records"]:
            if rec["quantity"] in quantities:
                out.append(pytest.param(ds, rec, id=f"{ds['dataset']}-{rec['id']}"))
    return out


def _x(ds: dict) -> np.ndarray:
    return np.load(GOLDEN / ds["arrays"]["X"])


def _f64_tol(rec: dict) -> float:
    # golden README 5: abs 1e-9 + rel 1e-9 for float64 spectral quantities
    return 1e-9 + 1e-9 * abs(rec["value"])


@pytest.mark.parametrize(("ds", "rec"), _records("dse"))
def test_dse_float64(ds: dict, rec: dict) -> None:
    got = diffusion_spectral_entropy(_x(ds), sigma=rec["sigma"], t=rec["t"], device="cpu")
    assert got.units == "bits"
    assert got.params["sigma"] == rec["sigma"]
    assert abs(got.value - rec["value"]) <= _f64_tol(rec)


@pytest.mark.parametrize(("ds", "rec"), _records("dse"))
def test_dse_float32_within_documented_tolerance(ds: dict, rec: dict) -> None:
    # golden README 5, float32 column: t = 1 within 1e-2, t >= 2 within 1e-5
    tol = 1e-2 if rec["t"] == 1 else 1e-5
    got = diffusion_spectral_entropy(_x(ds), sigma=rec["sigma"], t=rec["t"], device="cpu", dtype="float32")
    assert got.params["dtype"] == "float32"
    assert abs(got.value - rec["value"]) <= tol


@pytest.mark.parametrize(("ds", "rec"), _records("ase"))
def test_adjacency_spectral_entropy(ds: dict, rec: dict) -> None:
    kernel = {"anisotropic": "normalized"}.get(rec["kernel"], rec["kernel"])
    kwargs = {"k": rec["k"]} if kernel == "knn" else {"sigma": rec["sigma"]}
    got = adjacency_spectral_entropy(_x(ds), kernel=kernel, device="cpu", **kwargs)
    # kNN adjacency is non-normal: its eigenvalues are ill-conditioned (golden README 5: abs 1e-5)
    tol = 1e-5 if kernel == "knn" else _f64_tol(rec)
    assert abs(got.value - rec["value"]) <= tol


@pytest.mark.parametrize(("ds", "rec"), _records("matrix_entry_entropy"))
def test_matrix_entry_entropy(ds: dict, rec: dict) -> None:
    got = matrix_entry_entropy(_x(ds), sigma=rec["sigma"], device="cpu")
    assert abs(got.value - rec["value"]) <= _f64_tol(rec)


def test_eigenvalues_match_golden_spectra() -> None:
    for ds in DATASETS:
        vals = ds["values_data"]
        eig = np.load(GOLDEN / ds["arrays"]["eigvals_K"])
        for row, sigma in zip(eig, vals["eigvals_K_sigmas"]):
            got = diffusion_spectral_entropy(_x(ds), sigma=sigma, device="cpu", return_eigenvalues=True)
            assert got.eigenvalues is not None
            # golden README 5: abs 1e-12 per sorted eigenvalue
            np.testing.assert_allclose(np.sort(got.eigenvalues), np.sort(row), rtol=0, atol=1e-12)


def _reference(ds: dict, rec: dict) -> np.ndarray:
    name = rec["reference"].split()[0]
    if name == "X":  # the record uses the given spectral-cluster partition of X itself
        return np.load(GOLDEN / ds["arrays"]["spectral_clusters"])
    return np.load(GOLDEN / ds["arrays"][name])


@pytest.mark.parametrize(("ds", "rec"), _records("dsmi"))
def test_dsmi_published_sampler_is_exact(ds: dict, rec: dict) -> None:
    got = diffusion_spectral_mutual_information(
        _x(ds), _reference(ds, rec), sigma=rec["sigma"], t=rec["t"], repetitions=rec["num_repetitions"],
        n_clusters=rec["n_clusters"], sampler="published", seed=rec["random_seed"] if "random_seed" in rec else 0,
        device="cpu",
    )
    assert abs(got.value - rec["value_seed0"]) <= 1e-9
    assert abs(got.extra["h_conditional"] - rec["h_conditional"]) <= 1e-9 + 1e-9 * abs(rec["h_conditional"])


@pytest.mark.parametrize(("ds", "rec"), _records("dsmi"))
def test_dsmi_numpy_sampler_within_seed_band(ds: dict, rec: dict) -> None:
    band = rec["seed_band"]
    got = diffusion_spectral_mutual_information(
        _x(ds), _reference(ds, rec), sigma=rec["sigma"], t=rec["t"], repetitions=rec["num_repetitions"],
        n_clusters=rec["n_clusters"], device="cpu",
    )
    # golden README 5: any other sampler must land within 4 standard deviations of the band mean
    assert abs(got.value - band["mean"]) <= 4 * band["std"] + 1e-9


@pytest.mark.parametrize(("ds", "rec"), _records("dse_subsampled"))
def test_subsampled_dse(ds: dict, rec: dict) -> None:
    x = _x(ds)
    exact = diffusion_spectral_entropy(x, sigma=rec["sigma"], t=rec["t"], max_n=rec["max_N"], sampler="published",
                                       seed=rec["random_seed"], device="cpu")
    assert exact.n_used == rec["max_N"] and exact.n_total == x.shape[0] and exact.subsampled
    assert abs(exact.value - rec["value_seed0"]) <= 1e-9
    other = diffusion_spectral_entropy(x, sigma=rec["sigma"], t=rec["t"], max_n=rec["max_N"], device="cpu")
    band = rec["seed_band"]
    assert abs(other.value - band["mean"]) <= 4 * band["std"] + 1e-9
    full = diffusion_spectral_entropy(x, sigma=rec["sigma"], t=rec["t"], max_n=0, device="cpu")
    assert abs(full.value - rec["value_without_subsampling"]) <= 1e-9


def test_scalar_reference_bins_match_golden() -> None:
    for ds in DATASETS:
        for name in ("ref_grid", "ref_scalar"):
            if name in ds["arrays"]:
                r = np.load(GOLDEN / ds["arrays"][name])
                expected = np.load(GOLDEN / ds["arrays"][f"{name}_bins"])
                np.testing.assert_array_equal(bin_scalars(r, 10), expected)


def _cli_json(args: list[str]) -> dict:
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


@pytest.mark.parametrize(("ds", "rec"), [p for p in _records("dse") if p.values[1]["t"] in (1, 2)][:6])
def test_cli_dse_golden(ds: dict, rec: dict) -> None:
    path = str(GOLDEN / ds["arrays"]["X"])
    out = _cli_json(["entropy", path, "--sigma", repr(rec["sigma"]), "--t", str(rec["t"]), "--device", "cpu", "--json"])
    (res,) = out["results"]
    assert res["method"] == "dse" and res["units"] == "bits"
    assert abs(res["value"] - rec["value"]) <= _f64_tol(rec)


def test_cli_variants_and_dsmi_golden() -> None:
    ds = next(d for d in DATASETS if d["dataset"].startswith("b_blobs"))
    recs = ds["values_data"]["records"]
    path = str(GOLDEN / ds["arrays"]["X"])
    me = next(r for r in recs if r["quantity"] == "matrix_entry_entropy")
    ase = next(r for r in recs if r["quantity"] == "ase" and r["kernel"] == "gaussian")
    out = _cli_json(["entropy", path, "--method", "matrix-entry", "--sigma", repr(me["sigma"]), "--json", "--device", "cpu"])
    assert abs(out["results"][0]["value"] - me["value"]) <= _f64_tol(me)
    out = _cli_json(["entropy", path, "--method", "ase-gaussian", "--sigma", repr(ase["sigma"]), "--json", "--device", "cpu"])
    assert abs(out["results"][0]["value"] - ase["value"]) <= _f64_tol(ase)
    dsmi = next(r for r in recs if r["quantity"] == "dsmi" and r["reference"].startswith("labels"))
    labels = str(GOLDEN / ds["arrays"]["labels"])
    out = _cli_json(["mi", path, labels, "--sigma", repr(dsmi["sigma"]), "--t", str(dsmi["t"]), "--sampler", "published",
                     "--json", "--device", "cpu"])
    assert abs(out["results"][0]["value"] - dsmi["value_seed0"]) <= 1e-9
