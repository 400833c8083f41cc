"""``dse validate``: the known-answer suite passes, and fails when an estimator is wrong."""

from __future__ import annotations

import hashlib
import json
import math
import re
from pathlib import Path

import numpy as np
import pytest
from conftest import GOLDEN
from typer.testing import CliRunner

import dsecli.diagnostics.known_answers as known_answers
import dsecli.diffusion.eigen
import dsecli.diffusion.kernels
import dsecli.measures.dse
from dsecli.cli import app
from dsecli.diagnostics.known_answers import load_golden, run_validation
from dsecli.errors import InputError

runner = CliRunner()


@pytest.fixture(scope="module")
def fast_report() -> known_answers.ValidationReport:
    return run_validation(mode="fast", device="cpu")


def _wrong_bandwidth_kernel(x, sigma, *, sq_dists=None):
    """exp(-d^2 / sigma^2) instead of exp(-d^2 / (2 sigma^2)): the classic convention slip (from the
    distances the median rule formed, where the caller passes them)."""
    import torch

    if sq_dists is None:
        xc = x - x.mean(dim=0, keepdim=True)
        sq_dists = torch.cdist(xc, xc) ** 2
    return torch.exp(-sq_dists / (sigma * sigma))


def test_fast_suite_passes_on_cpu(fast_report):
    failed = [(c.name, c.got, c.expected, c.tolerance, c.error) for c in fast_report.cases if not c.passed]
    assert not failed
    assert fast_report.passed and fast_report.n_failed == 0
    names = {c.name for c in fast_report.cases}
    # the cases the suite promises, whatever baselines are registered
    for required in ("dse-sigma-to-0", "dse-clusters-k1", "dse-clusters-k2", "dse-clusters-k5", "dse-clusters-k10",
                     "dsmi-cluster-labels-k2", "dsmi-independent-labels", "dsmi-self-clusters-vs-permuted",
                     "golden-dse-sigma10-t1", "golden-dsmi-labels-sigma10-t1"):
        assert required in names


def test_every_case_states_its_tolerance_and_source(fast_report):
    for c in fast_report.cases:
        assert c.tolerance_note and c.reference, c.name
        if c.comparison == "approx":
            assert c.tolerance > 0, c.name


def test_known_values_are_the_closed_forms(fast_report):
    by_name = {c.name: c for c in fast_report.cases}
    assert by_name["dse-sigma-to-0"].expected == 6.0
    for k in (1, 2, 5, 10):
        assert by_name[f"dse-clusters-k{k}"].expected == pytest.approx(math.log2(k), abs=0)
    golden = json.loads((Path(known_answers.__file__).parent / "golden_data" / "golden_b_blobs_500x32.json").read_text())
    rec = {r["id"]: r for r in golden["records"]}
    assert by_name["golden-dse-sigma10-t1"].expected == rec["dse_sigma10_t1"]["value"]


def test_report_is_strict_json(fast_report):
    text = json.dumps(fast_report.to_dict(), allow_nan=False)
    back = json.loads(text)
    assert back["passed"] is True and back["n_cases"] == len(fast_report.cases)


def test_wrong_kernel_bandwidth_makes_the_suite_fail(monkeypatch):
    monkeypatch.setattr(dsecli.diffusion.kernels, "gaussian_kernel", _wrong_bandwidth_kernel)
    report = run_validation(mode="fast", device="cpu", methods="dse")
    assert not report.passed
    failed = {c.name for c in report.cases if not c.passed}
    # every golden value depends on the bandwidth convention
    assert {"golden-dse-sigma10-t1", "golden-dse-sigma10-t2", "golden-dse-sigma-med-t1"} <= failed
    # the limits do not (sigma -> 0 is still the identity): they are not what catches this slip
    assert "dse-sigma-to-0" not in failed


def test_ignoring_diffusion_time_makes_the_suite_fail(monkeypatch):
    real = dsecli.measures.dse.spectral_entropy
    monkeypatch.setattr(dsecli.measures.dse, "spectral_entropy", lambda lam, *, t=1, base=2.0: real(lam, t=1, base=base))
    report = run_validation(mode="fast", device="cpu", methods="dse")
    failed = {c.name for c in report.cases if not c.passed}
    assert {"dse-clusters-k2", "golden-dse-sigma10-t2", "golden-dse-sigma10-t5"} <= failed


def test_a_case_that_raises_is_a_failure_with_its_message(monkeypatch):
    def boom(*args, **kwargs):
        raise RuntimeError("solver exploded\nsecond line")

    monkeypatch.setattr(dsecli.diffusion.eigen, "symmetric_eigenvalues", boom)
    report = run_validation(mode="fast", device="cpu", methods="dse")
    assert report.n_failed == len(report.cases)
    assert report.cases[0].error == "RuntimeError: solver exploded"
    json.dumps(report.to_dict(), allow_nan=False)  # NaN expected/tolerance become null


def test_cli_validate_json_passes():
    result = runner.invoke(app, ["validate", "--device", "cpu", "--json", "--method", "dse"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["passed"] and report["options"]["methods"] == ["dse"]
    assert all(c["method"] == "dse" for c in report["cases"])


def test_cli_validate_table_and_exit_1_on_failure(monkeypatch):
    monkeypatch.setattr(dsecli.diffusion.kernels, "gaussian_kernel", _wrong_bandwidth_kernel)
    result = runner.invoke(app, ["validate", "--device", "cpu", "-m", "dse"])
    assert result.exit_code == 1
    assert "FAIL" in result.stdout and "golden-dse-sigma10-t1" in result.stdout


def test_float32_uses_float32_tolerances():
    report = run_validation(mode="fast", device="cpu", dtype="float32", methods="dse")
    assert report.passed
    golden_t1 = next(c for c in report.cases if c.name == "golden-dse-sigma10-t1")
    assert golden_t1.tolerance == 1e-2 and "float32" in golden_t1.tolerance_note


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"methods": "nope"}, "`method` 'nope' has no validation cases"),
        ({"mode": "slow"}, "`mode` must be one of fast, full; got 'slow'"),
        ({"dtype": "float16"}, "`dtype` must be float64 or float32; got 'float16'"),
    ],
)
def test_bad_options_are_input_errors(kwargs, message):
    with pytest.raises(InputError, match=re.escape(message)):
        run_validation(device="cpu", **kwargs)


def test_cli_unknown_method_exits_2():
    result = runner.invoke(app, ["validate", "--method", "nope"])
    assert result.exit_code == 2


def test_shipped_golden_case_is_the_shared_golden_data():
    shared = json.loads((GOLDEN / "b_blobs_500x32_values.json").read_text())
    data_dir = Path(known_answers.__file__).parent / "golden_data"
    shipped = json.loads((data_dir / "golden_b_blobs_500x32.json").read_text())
    g = load_golden()
    for key, name in (("X", "b_blobs_500x32_X.npy"), ("labels", "b_blobs_500x32_labels.npy"),
                      ("spectral_clusters", "b_blobs_500x32_spectral_clusters.npy")):
        np.testing.assert_array_equal(g[key], np.load(GOLDEN / name))
        digest = hashlib.sha256((data_dir / name).read_bytes()).hexdigest()
        assert digest == shipped["files"][name]["sha256"]
    shared_records = {r["id"]: r for r in shared["records"]}
    for rec in shipped["records"]:
        assert rec == shared_records[rec["id"]]
    assert g["sigma_med"] == shared["sigma_med"]


@pytest.mark.slow
def test_approx_solver_passes_with_its_reported_bound():
    report = run_validation(mode="fast", device="cpu", solver="approx", methods="dse")
    assert report.passed, [(c.name, c.deviation, c.tolerance) for c in report.cases if not c.passed]
    golden = next(c for c in report.cases if c.name == "golden-dse-sigma10-t1")
    assert "approximate solver" in golden.tolerance_note and golden.tolerance > 1e-9


@pytest.mark.slow
def test_full_mode_passes_on_cpu():
    report = run_validation(mode="full", device="cpu")
    assert report.passed, [(c.name, c.got, c.expected, c.tolerance, c.error) for c in report.cases if not c.passed]
    assert {"dsmi-cluster-labels-k10", "golden-dse-sigma1-t1"} <= {c.name for c in report.cases}
