"""``dse check`` (:mod:`dsecli.diagnostics.check`): it judges what the estimators would run.

The bandwidth is the estimators' (their default rule, resolved by their function), the regime
is judged as they judge it, and a reference is read by their one reading rule.
"""

from __future__ import annotations

import inspect
import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

import dsecli
from dsecli.cli import app
from dsecli.diagnostics.check import DEFAULT_SIGMA, sanity_report
from dsecli.diffusion.kernels import resolve_sigma

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "sample_data" / "digits_trajectory.h5"
runner = CliRunner()


def _codes(report) -> dict[str, object]:
    return {f.code: f for f in report.findings}


def _cli(args: list[str]) -> dict:
    res = runner.invoke(app, [*args, "--json"])
    assert res.exit_code == 0, res.output
    return json.loads(res.stdout)


@pytest.fixture()
def files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 5, 200)
    np.save(tmp_path / "x.npy", rng.normal(size=(200, 4)) * 1e4)  # sigma 10 isolates every point
    np.save(tmp_path / "wide.npy", rng.normal(size=(200, 64)))
    np.save(tmp_path / "labels.npy", labels)
    np.save(tmp_path / "labels_float.npy", labels.astype(np.float64))
    np.save(tmp_path / "one_class.npy", np.zeros(200, dtype=np.int64))
    single = labels.copy()
    single[7] = 9
    np.save(tmp_path / "single_row.npy", single)
    np.save(tmp_path / "one_hot.npy", np.eye(3)[labels % 3])
    np.save(tmp_path / "scalars.npy", rng.normal(size=200))
    np.save(tmp_path / "short.npy", labels[:150])
    monkeypatch.chdir(tmp_path)
    return tmp_path


# ------------------------------------------------------------------------------------------ bandwidth


def test_the_default_sigma_is_the_estimators() -> None:
    default = inspect.signature(dsecli.diffusion_spectral_entropy).parameters["sigma"].default
    assert DEFAULT_SIGMA == default
    assert inspect.signature(sanity_report).parameters["sigma"].default == default
    from dsecli.cli.check import check

    assert inspect.signature(check).parameters["sigma"].default == default


def test_the_median_rule_is_reported_not_judged() -> None:
    import torch

    x = np.random.default_rng(1).normal(size=(300, 3)) * 1e4
    report = sanity_report(x)
    kernel = report.stats["kernel"]
    assert kernel["rule"] == "median" and kernel["degenerate"] is None and report.ok
    med = resolve_sigma("median", torch.from_numpy(x), seed=0).value
    assert kernel["sigma"] == pytest.approx(med, rel=1e-12) and kernel["sigma_median"] == pytest.approx(med, rel=1e-12)
    assert kernel["median_affinity"] == pytest.approx(np.exp(-1))
    found = _codes(report)
    assert "kernel_degenerate" not in found
    assert found["kernel_scale"].message.startswith(f"sigma median: the median rule gives sigma = {med:.4g}")


def test_a_numeric_sigma_is_judged_as_the_estimators_judge_it() -> None:
    x = np.random.default_rng(1).normal(size=(300, 3)) * 1e4
    with pytest.warns(dsecli.errors.DegenerateKernelWarning) as log:
        dsecli.diffusion_spectral_entropy(x, sigma=10.0, device="cpu")
    report = sanity_report(x, sigma=10.0, t=3)
    assert not report.ok and report.stats["t"] == 3 and report.stats["kernel"]["t"] == 3
    assert _codes(report)["kernel_degenerate"].message == str(log[0].message)
    assert "t = 3" in _codes(report)["kernel_scale"].message
    sqrt_d = sanity_report(x, sigma="sqrt-d")
    assert sqrt_d.stats["kernel"]["rule"] == "sqrt-d" and sqrt_d.stats["kernel"]["sigma"] == pytest.approx(np.sqrt(3))


def test_the_median_rule_on_repeated_rows_is_an_error_finding() -> None:
    x = np.vstack([np.zeros((30, 2)), np.random.default_rng(0).normal(size=(5, 2))])
    found = _codes(sanity_report(x))
    assert found["sigma_unusable"].level == "error" and "numeric --sigma" in found["sigma_unusable"].message


def test_cli_sigma_and_t_parse_like_dse_entropy(files: Path) -> None:
    assert _cli(["check", "x.npy"])["ok"] is True
    assert _cli(["check", "x.npy", "--sigma", "median"])["stats"]["kernel"]["rule"] == "median"
    numeric = _cli(["check", "x.npy", "--sigma", "10", "--t", "4"])
    assert numeric["ok"] is False and numeric["stats"]["t"] == 4
    assert "kernel_degenerate" in {f["code"] for f in numeric["findings"]}
    for args, message in ((["--sigma", "wide"], "`sigma` must be a number > 0, 'median' or 'sqrt-d'"),
                          (["--sigma", "-1"], "`sigma` must be"), (["--t", "0"], "`t` must be")):
        res = runner.invoke(app, ["check", "x.npy", *args])
        assert res.exit_code == 2 and message in res.stderr, res.output


# ------------------------------------------------------------------------------------------ reference


@pytest.mark.parametrize(("ref", "code", "level"), [
    ("one_class.npy", "reference_single_class", "error"),
    ("single_row.npy", "reference_single_row_classes", "warning"),
    ("short.npy", "reference_rows", "error"),
    ("one_hot.npy", "reference_one_hot", "note"),
    ("labels_float.npy", "reference_integral", "note"),
    ("scalars.npy", "reference_scalars", "note"),
    ("labels.npy", "reference_labels", "note"),
])
def test_reference_findings(files: Path, ref: str, code: str, level: str) -> None:
    report = _cli(["check", "x.npy", "--ref", ref])
    found = {f["code"]: f for f in report["findings"]}
    assert found[code]["level"] == level
    assert report["ok"] is (level == "note")
    assert not any(c.startswith("swapped") for c in found)


def test_reference_messages_and_reading(files: Path) -> None:
    one = {f["code"]: f for f in _cli(["check", "x.npy", "--ref", "one_class.npy"])["findings"]}
    assert "MI is 0 for every method" in one["reference_single_class"]["message"]
    scalars = _cli(["check", "x.npy", "--ref", "scalars.npy", "--n-clusters", "4"])
    assert "into 4 equal-width bins" in {f["code"]: f for f in scalars["findings"]}["reference_scalars"]["message"]
    assert scalars["stats"]["reference"]["reading"] == "scalars" and scalars["stats"]["reference"]["classes"] == 4
    hot = _cli(["check", "x.npy", "--ref", "one_hot.npy"])["stats"]["reference"]
    assert (hot["reading"], hot["classes"]) == ("one-hot", 3)
    forced = _cli(["check", "x.npy", "--ref", "labels.npy", "--ref-kind", "continuous"])["stats"]["reference"]
    assert forced["reading"] == "scalars"
    res = runner.invoke(app, ["check", "x.npy", "--ref", "scalars.npy", "--ref-kind", "discrete"])
    assert res.exit_code == 2 and "`ref_kind` discrete needs integer labels" in res.stderr
    res = runner.invoke(app, ["check", "x.npy", "--ref", "labels.npy", "--ref-kind", "labels"])
    assert res.exit_code == 2 and "`ref_kind` must be one of auto, discrete, continuous" in res.stderr


def test_swapped_embeddings_and_reference(files: Path) -> None:
    # labels given as EMB, the embeddings as REF: an error finding, not a refusal to check
    swapped = _cli(["check", "labels.npy", "--ref", "wide.npy"])
    found = {f["code"]: f for f in swapped["findings"]}
    assert swapped["ok"] is False and found["swapped"]["level"] == "error"
    assert found["swapped"]["message"].startswith("EMB and REF look swapped: pass the embeddings first")
    # a reference with many more columns than the embeddings: a warning
    wide = {f["code"]: f for f in _cli(["check", "x.npy", "--ref", "wide.npy"])["findings"]}
    assert wide["swapped"]["level"] == "warning"
    # the right order is fine
    right = _cli(["check", "wide.npy", "--ref", "labels.npy"])
    assert "swapped" not in {f["code"] for f in right["findings"]}
    # without --ref a 1-D EMB is an input error as before
    res = runner.invoke(app, ["check", "labels.npy"])
    assert res.exit_code == 2 and "`embeddings` must be 2-D" in res.stderr


def test_the_reference_is_an_input_never_written_over(files: Path) -> None:
    res = runner.invoke(app, ["check", "x.npy", "--ref", "labels.npy", "-o", "labels.npy"])
    assert res.exit_code == 2 and np.load(files / "labels.npy").shape == (200,)


# ------------------------------------------------------------------------------------------ sample data


@pytest.mark.skipif(not SAMPLE.exists(), reason="sample data missing")
def test_the_bundled_sample_is_judged_at_the_estimators_sigma() -> None:
    pytest.importorskip("h5py")
    spec = f"{SAMPLE}:/true/epoch_032/embeddings"
    assert _cli(["check", spec, "--ref", f"{SAMPLE}:/labels"])["ok"] is True
    paper = _cli(["check", spec, "--sigma", "10"])
    assert paper["ok"] is False and paper["stats"]["kernel"]["regime"] == "isolated"
