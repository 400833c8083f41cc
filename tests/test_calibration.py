"""The dry-run time model calibrated on this machine: probe once, cache, reuse, and say which rates a plan used."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from typer.testing import CliRunner

import dsecli.diffusion.calibration as calibration
from dsecli.cli import app
from dsecli.diffusion.plan import plan_entropy, plan_mutual_information

FAKE = {"gemm": {"float64": 1.0e10, "float32": 2.0e10}, "eig": {"float64": 1.0e-10, "float32": 5.0e-11},
        "eig_by_size": {}, "elem": 1.0e8, "probe_seconds": 0.5}


@pytest.fixture()
def probes(tmp_path, monkeypatch):
    """The probe replaced by fixed rates (counting calls); the cache in tmp_path."""
    monkeypatch.setenv("DSECLI_CACHE_DIR", str(tmp_path))
    calls = []

    def fake(device="cpu"):
        calls.append(str(device))
        return json.loads(json.dumps(FAKE))

    monkeypatch.setattr(calibration, "probe_rates", fake)
    return calls


def test_calibration_is_probed_once_and_reused(probes, tmp_path, monkeypatch) -> None:
    assert calibration.load_calibration("cpu") is None
    first = calibration.calibrate("cpu")
    files = list((tmp_path / "calibration").glob("*.json"))
    assert len(probes) == 1 and len(files) == 1 and first["stored"] is True
    stored = json.loads(files[0].read_text())
    assert stored["rates"] == FAKE and stored["key"] == calibration.machine_key("cpu")
    again = calibration.calibrate("cpu")
    assert len(probes) == 1 and again["created"] == first["created"]  # read back, not probed
    assert calibration.load_calibration("cpu")["rates"] == FAKE
    # another machine (here: another thread count) is another entry, probed on its own
    key = calibration.machine_key("cpu")
    monkeypatch.setattr(calibration, "machine_key", lambda device="cpu": {**key, "threads": key["threads"] + 7})
    assert calibration.load_calibration("cpu") is None
    calibration.calibrate("cpu")
    assert len(probes) == 2 and len(list((tmp_path / "calibration").glob("*.json"))) == 2


def test_damaged_calibration_is_ignored_and_replaced(probes, tmp_path) -> None:
    calibration.calibrate("cpu")
    path = next((tmp_path / "calibration").glob("*.json"))
    path.write_text('{"format": 1, "rates": ')
    assert calibration.load_calibration("cpu") is None
    calibration.calibrate("cpu")
    assert len(probes) == 2 and json.loads(path.read_text())["rates"] == FAKE


def test_plan_says_whether_it_is_calibrated(probes) -> None:
    plain = plan_entropy(3000, 16, solver="exact", device="cpu")
    assert plain["calibration"] == {"calibrated": False, "created": None,
                                    "note": "uncalibrated: default rates (measured on a 2-core AVX-512 CPU)"}
    cal = calibration.calibrate("cpu")
    plan = plan_entropy(3000, 16, solver="exact", device="cpu")  # the stored calibration, no new probe
    assert plan["calibration"]["calibrated"] is True and len(probes) == 1
    assert plan["calibration"]["note"] == f"calibrated on this machine at {cal['created']}"
    assert plan_entropy(3000, 16, solver="exact", device="cpu", calibration=False)["calibration"]["calibrated"] is False
    mi = plan_mutual_information([500, 700], 16, device="cpu")
    assert mi["calibration"]["calibrated"] is True


def test_exact_time_is_the_closed_form_of_the_probe(probes) -> None:
    cal = calibration.calibrate("cpu")
    d = 64
    for n in (2000, 4000, 8000):
        got = plan_entropy(n, d, solver="exact", device="cpu", calibration=cal, memory_bytes=2**40)
        want = 2.0 * n * n * d / 1.0e10 + n * n / 1.0e8 + 1.0e-10 * n**3
        assert got["expected_seconds"] == pytest.approx(want, rel=1e-12)
    # the eigvalsh part grows as N^3 at the measured constant: doubling N multiplies it by 8
    eig = [plan_entropy(n, d, solver="exact", device="cpu", calibration=cal, memory_bytes=2**40)["expected_seconds"]
           - 2.0 * n * n * d / 1.0e10 - n * n / 1.0e8 for n in (3000, 6000)]
    assert eig[1] / eig[0] == pytest.approx(8.0, rel=1e-9)
    f32 = plan_entropy(4000, d, solver="exact", device="cpu", dtype="float32", calibration=cal, memory_bytes=2**40)
    assert f32["expected_seconds"] == pytest.approx(2.0 * 4000**2 * d / 2.0e10 + 4000**2 / 1.0e8 + 5.0e-11 * 4000**3)


def test_dry_run_calibrates_and_reports_it(probes, tmp_path) -> None:
    np.save(tmp_path / "x.npy", np.zeros((5000, 8)))
    res = CliRunner().invoke(app, ["entropy", str(tmp_path / "x.npy"), "--dry-run", "--device", "cpu"])
    assert res.exit_code == 0, res.output
    created = calibration.load_calibration("cpu")["created"]
    assert len(probes) == 1 and f"model     calibrated on this machine at {created}" in res.stdout
    out = json.loads(CliRunner().invoke(app, ["entropy", str(tmp_path / "x.npy"), "--dry-run", "--device", "cpu",
                                              "--json"]).stdout)
    assert len(probes) == 1 and out["calibration"]["calibrated"] is True
    assert out["expected_seconds"] == pytest.approx(2.0 * 5000**2 * 8 / 1e10 + 5000**2 / 1e8 + 1e-10 * 5000**3)


def test_real_probe_measures_positive_rates() -> None:
    rates = calibration.probe_rates("cpu")
    for dt in ("float64", "float32"):
        assert math.isfinite(rates["gemm"][dt]) and rates["gemm"][dt] > 1e6
        assert 0 < rates["eig"][dt] < 1e-5
        assert set(rates["eig_by_size"][dt]) == {str(n) for n in calibration.EIG_SIZES}
    assert rates["elem"] > 1e4 and rates["probe_seconds"] > 0
    assert rates["tile"]["gemm"] > 1e6 and rates["tile"]["exp"] > 1e4
