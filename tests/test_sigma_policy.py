"""σ policies (:mod:`dsecli.batch.series`): named in one place, recorded in every row of a σ-taking method,
shown by dse batch and dse plot; trends whose direction depends on the policy, and comparisons that mix
policies, are flagged."""

from __future__ import annotations

import json
import re
import warnings
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from dsecli import sigma_policy
from dsecli.batch import run_batch
from dsecli.batch.series import (
    batch_series,
    sigma_policy_mixes,
    sigma_policy_warnings,
    sigma_trend_conflicts,
    warn_sigma_policies,
)
from dsecli.cli import app
from dsecli.errors import ComparabilityWarning
from dsecli.methods import METHOD_OPTIONS

runner = CliRunner()
SAMPLE = Path(__file__).resolve().parents[1] / "sample_data" / "digits_trajectory.h5"


@pytest.mark.parametrize("params,expected", [
    ({"sigma": 0.79, "sigma_rule": "median", "sigma_detail": {"rows": 200}}, "median per input"),
    ({"sigma": 10.0, "sigma_rule": "given"}, "fixed σ = 10"),
    ({"sigma": 0.5, "sigma_rule": "given"}, "fixed σ = 0.5"),
    ({"sigma": 8.0, "sigma_rule": "sqrt-d"}, "sqrt-d per input"),
    ({"sigma": 0.790178, "sigma_rule": "median-first", "sigma_detail": {"inputs": 1}},
     "median of first input (σ = 0.7902)"),
    ({"sigma": 0.790178, "sigma_rule": "median-pooled", "sigma_detail": {"inputs": 10}},
     "median pooled over 10 inputs (σ = 0.7902)"),
    ({"sigma": 10.0}, "σ = 10 (rule not recorded)"),
    ({"bins": 2}, None),
    ({}, None),
    (None, None),
])
def test_sigma_policy_names(params, expected) -> None:
    assert sigma_policy(params) == expected


# ase-knn takes sigma with the other spectral options but builds a kNN adjacency: no σ, no policy
SIGMA_METHODS = sorted(m for m, opts in METHOD_OPTIONS.items() if "sigma" in opts and m != "ase-knn")


@pytest.mark.parametrize("sigma,expected", [
    ("median", "median per input"),
    (2.0, "fixed σ = 2"),
    ("sqrt-d", "sqrt-d per input"),
    ("median-first", "median of first input (σ = "),
    ("median-pooled", "median pooled over 3 inputs (σ = "),
])
def test_every_row_of_a_sigma_method_records_its_policy(tmp_path: Path, sigma, expected: str) -> None:
    rng = np.random.default_rng(0)
    for e in (0, 1, 2):
        np.save(tmp_path / f"epoch_{e}.npy", rng.normal(size=(30, 4)) * (1 + e))
    np.save(tmp_path / "y.npy", np.arange(30) % 3)
    assert {"dse", "dsmi", "matrix-entry", "renyi-gram", "ase-gaussian", "ase-normalized"} <= set(SIGMA_METHODS)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        summary = run_batch(str(tmp_path / "epoch_*.npy"), reference=str(tmp_path / "y.npy"),
                            methods=",".join([*SIGMA_METHODS, "cse", "ase-knn"]), sigma=sigma, max_n=0,
                            device="cpu", k=5)
    assert len(summary.rows) == 3 * (len(SIGMA_METHODS) + 2)
    for row in summary.rows:
        policy = sigma_policy(row["params"])
        if row["method"] in SIGMA_METHODS:
            assert policy is not None and policy.startswith(expected), (row["method"], row["params"])
        else:
            assert policy is None
    # the fixed rules hold one σ for every input; the median rule has one per input
    values = {row["params"]["sigma"] for row in summary.rows if row["method"] == "dse"}
    assert len(values) == (3 if sigma == "median" else 1)


# ------------------------------------------------------------------------------------------ rows to check


def _trajectory(policy: dict, values: list[float], pattern: str = "true", epochs=(0, 1, 2, 4, 8)) -> list[dict]:
    return [{"file": "run.h5", "dataset": f"/{pattern}/epoch_{e:03d}/embeddings",
             "input": f"run.h5:/{pattern}/epoch_{e:03d}/embeddings", "method": "dse", "quantity": "entropy",
             "units": "bits", "value": v, "params": {**policy, "t": 1}} for e, v in zip(epochs, values)]


MEDIAN = {"sigma": 1.0, "sigma_rule": "median"}
TEN = {"sigma": 10.0, "sigma_rule": "given"}


def test_opposite_trends_under_two_policies_are_named_with_both_directions() -> None:
    rows = _trajectory(MEDIAN, [5.0, 2.93, 3.0, 2.95, 2.9]) + _trajectory(TEN, [0.0, 0.1, 2.7, 5.2, 9.03])
    (message,) = sigma_trend_conflicts(batch_series(rows))
    assert message == ("dse of run.h5:/true/epoch_*/embeddings (t=1): the trend's direction depends on σ over its 5 "
                       "shared epochs: median per input: falls (5.00 → 2.90, ρ = -0.70); fixed σ = 10: rises "
                       "(0.00 → 9.03, ρ = 1.00); compare trends under one σ policy")
    assert sigma_policy_mixes(batch_series(rows)) == []  # both policies cover every input: no mix
    with pytest.warns(ComparabilityWarning, match=re.escape("median per input: falls (5.00 → 2.90")):
        assert warn_sigma_policies(batch_series(rows)) == [message]


def test_a_trend_against_no_trend_is_a_conflict_and_agreeing_trends_are_not() -> None:
    flat = _trajectory(MEDIAN, [3.0, 2.0, 3.5, 2.5, 3.0]) + _trajectory(TEN, [1.0, 2.0, 3.0, 4.0, 5.0])
    (message,) = sigma_trend_conflicts(batch_series(flat))
    assert "median per input: no monotone trend" in message and "fixed σ = 10: rises" in message
    agree = _trajectory(MEDIAN, [1.0, 1.5, 1.4, 2.0, 2.2]) + _trajectory(TEN, [0.0, 0.1, 2.7, 5.2, 9.03])
    assert sigma_policy_warnings(batch_series(agree)) == []
    one_policy = _trajectory(MEDIAN, [5.0, 4.0, 3.0, 2.0, 1.0]) + _trajectory(MEDIAN, [1.0, 2.0, 3.0, 4.0, 5.0],
                                                                              pattern="shuffled")
    assert sigma_policy_warnings(batch_series(one_policy)) == []


def test_trends_are_compared_over_shared_checkpoints_only() -> None:
    # σ = 10 has only two checkpoints in common with the median rule: too few for a direction
    rows = _trajectory(MEDIAN, [5.0, 4.0, 3.0, 2.0, 1.0]) + _trajectory(TEN, [1.0, 2.0, 3.0], epochs=(0, 1, 16))
    assert sigma_trend_conflicts(batch_series(rows)) == []
    # three shared: the median rule falls there, σ = 10 rises
    rows = _trajectory(MEDIAN, [5.0, 4.0, 3.0, 2.0, 1.0]) + _trajectory(TEN, [1.0, 2.0, 3.0], epochs=(0, 1, 8))
    (message,) = sigma_trend_conflicts(batch_series(rows))
    assert "over its 3 shared epochs" in message and "falls (5.00 → 1.00" in message


def _models(policies: list[dict]) -> list[dict]:
    return [{"file": f"model_{chr(97 + i)}.npy", "input": f"model_{chr(97 + i)}.npy", "method": "dse",
             "quantity": "entropy", "units": "bits", "value": float(i), "index": i, "params": {**p, "t": 1}}
            for i, p in enumerate(policies)]


def test_a_comparison_across_inputs_that_mixes_policies_is_flagged() -> None:
    rows = _models([MEDIAN] * 8 + [TEN] * 4)
    assert sigma_policy_mixes(batch_series(rows)) == [
        "the dse rows (t=1) of 12 inputs mix σ policies (median per input: 8, fixed σ = 10: 4); values under "
        "different σ are not comparable"]
    two_fixed = _models([TEN] * 3 + [{"sigma": 5.0, "sigma_rule": "given"}] * 2)
    assert sigma_policy_mixes(batch_series(two_fixed)) == [
        "the dse rows (t=1) of 5 inputs mix σ policies (fixed σ = 10: 3, fixed σ = 5: 2); values under different "
        "σ are not comparable"]
    assert sigma_policy_mixes(batch_series(_models([MEDIAN] * 12))) == []
    # methods without σ, and other methods or settings, are other comparisons
    other = _models([MEDIAN] * 3) + [{**r, "method": "cse", "params": {"bins": 2}} for r in _models([{}] * 3)]
    assert sigma_policy_mixes(batch_series(other)) == []


def test_a_policy_that_covers_every_input_is_not_a_mix() -> None:
    rows = _models([MEDIAN] * 4) + [{**r, "params": {**TEN, "t": 1}} for r in _models([MEDIAN] * 2)]
    assert sigma_policy_mixes(batch_series(rows)) == []


# ----------------------------------------------------------------------------------------- dse batch, plot


def test_batch_and_plot_flag_a_trajectory_whose_trend_depends_on_sigma(tmp_path: Path) -> None:
    out = tmp_path / "r.jsonl"
    spec = f"{SAMPLE}:/true/epoch_00*/embeddings"
    first = runner.invoke(app, ["batch", spec, "--max-n", "200", "-o", str(out)])
    assert first.exit_code == 0, first.stderr
    assert "σ policy: median per input" in first.stdout and "trend's direction" not in first.stderr
    second = runner.invoke(app, ["batch", spec, "--max-n", "200", "--sigma", "10", "-o", str(out)])
    assert second.exit_code == 0, second.stderr
    assert "σ policy: fixed σ = 10" in second.stdout
    lines = [ln for ln in second.stderr.splitlines() if "trend's direction depends on σ" in ln]
    assert len(lines) == 1
    assert re.search(r"median per input: \w[\w ]* \(\d\.\d\d → \d\.\d\d, ρ = -?\d\.\d\d\); fixed σ = 10: rises "
                     r"\(0\.00 → \d\.\d\d, ρ = 1\.00\)", lines[0]), lines[0]
    assert "median per input: rises" not in lines[0]
    summary = runner.invoke(app, ["batch", spec, "--max-n", "200", "--sigma", "10", "-o", str(out), "--json"])
    assert any("trend's direction depends on σ" in n for n in json.loads(summary.stdout)["notes"])
    pytest.importorskip("matplotlib")
    plot = runner.invoke(app, ["plot", str(out), "-o", str(tmp_path / "p.png"), "--json"])
    assert plot.exit_code == 0, plot.stderr
    assert [ln for ln in plot.stderr.splitlines() if "trend's direction depends on σ" in ln] == [
        f"warning: {lines[0][len('warning: '):]}"]
    assert [w for w in json.loads(plot.stdout)["warnings"] if "trend's direction depends on σ" in w] == [
        lines[0][len('warning: '):]]  # in the summary too
    policies = {s["label"]: s["sigma_policy"] for s in json.loads(plot.stdout)["series"]}
    assert policies == {"dse · (median per input, t=1)": "median per input",
                        "dse · (fixed σ = 10, t=1)": "fixed σ = 10"}
    table = runner.invoke(app, ["plot", str(out), "-o", str(tmp_path / "p.png")])
    assert "σ policy" in table.stdout and "fixed σ = 10" in table.stdout


def test_plot_of_one_policy_warns_nothing(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    path = tmp_path / "r.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in _trajectory(MEDIAN, [5.0, 4.0, 3.0, 2.0, 1.0])))
    res = runner.invoke(app, ["plot", str(path), "-o", str(tmp_path / "p.png")])
    assert res.exit_code == 0 and "warning" not in res.stderr
    mixed = tmp_path / "m.jsonl"
    mixed.write_text("".join(json.dumps(r) + "\n" for r in _models([MEDIAN] * 8 + [TEN] * 4)))
    res = runner.invoke(app, ["plot", str(mixed), "-o", str(tmp_path / "m.png")])
    assert res.exit_code == 0
    assert "warning: the dse rows (t=1) of 12 inputs mix σ policies (median per input: 8, fixed σ = 10: 4)" in res.stderr
