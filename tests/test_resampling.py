"""Uncertainty: DSMI/CSMI repetition spread, bootstrap intervals and permutation nulls (dsecli.measures.resampling)."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest

import dsecli
from dsecli.errors import InputError
from dsecli.inputs.prepare import prepare_rows
from dsecli.measures.resampling import bootstrap_interval, bootstrap_scheme, permutation_null


def _sigma(method: str) -> dict:
    # sigma is an option of the spectral methods only (any other method refuses it)
    return {"sigma": 2.0} if method in ("dse", "dsmi") else {}

def _classes(n: int = 150, seed: int = 0, shift: float = 2.0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    x = rng.normal(size=(n, 4))
    x[:, 0] += shift * y
    return x, y


# ------------------------------------------------------------------------------------- repetition spread


@pytest.mark.parametrize("method", ["dsmi", "csmi"])
def test_repetition_spread_is_std_of_per_repetition_values(method: str) -> None:
    x, y = _classes()
    (r,) = dsecli.estimate_mutual_information(x, y, methods=method, repetitions=6, device="cpu", **_sigma(method))
    e = r.extra
    # the per-repetition MI rebuilt from the per-class terms: I_r = sum_y p_y (H(X*_r,y) - H(X_y))
    n = sum(c["count"] for c in e["classes"])
    rebuilt = [sum(c["count"] / n * (c["h_subsample_reps"][i] - c["h_given_class"]) for c in e["classes"])
               for i in range(6)]
    assert e["repetition_values"] == pytest.approx(rebuilt, abs=1e-12)
    assert np.mean(e["repetition_values"]) == pytest.approx(r.value, abs=1e-12)
    assert e["repetition_std"] == pytest.approx(float(np.std(e["repetition_values"], ddof=1)), rel=1e-12)
    assert e["repetition_stderr"] == pytest.approx(e["repetition_std"] / math.sqrt(6), rel=1e-12)
    assert e["repetition_std"] > 0


def test_one_repetition_has_zero_spread() -> None:
    x, y = _classes()
    (r,) = dsecli.estimate_mutual_information(x, y, methods="csmi", repetitions=1)
    assert r.extra["repetition_std"] == 0.0 and r.extra["repetition_stderr"] == 0.0


# ------------------------------------------------------------------------------------- permutations


def test_independent_labels_are_not_significant() -> None:
    rng = np.random.default_rng(3)
    x = rng.normal(size=(200, 2))
    y = rng.normal(size=(200, 1))  # independent of x
    (r,) = dsecli.estimate_mutual_information(x, y, methods="ksg", permutations=49, seed=1)
    p = r.extra["permutation"]
    assert p["p_value"] >= 0.05
    null = np.asarray(p["values"])
    assert p["exceed"] == int(np.count_nonzero(null >= r.value))
    assert p["p_value"] == (p["exceed"] + 1) / 50
    assert p["null_mean"] == pytest.approx(float(null.mean()))
    assert p["null_std"] == pytest.approx(float(null.std(ddof=1)))


def test_p_values_of_independent_labels_spread_over_zero_to_one() -> None:
    # under independence a permutation p-value is uniform on {1/(P+1), ..., 1}: mean 0.525 for P = 19
    ps = []
    for s in range(20):
        rng = np.random.default_rng(500 + s)
        x, y = rng.normal(size=(150, 2)), rng.integers(0, 3, 150)
        (r,) = dsecli.estimate_mutual_information(x, y, methods="ksg", permutations=19, seed=s)
        ps.append(r.extra["permutation"]["p_value"])
    ps = np.asarray(ps)
    assert 0.3 < ps.mean() < 0.75, ps
    assert np.mean(ps <= 0.1) <= 0.25, ps  # about 2 of 20 expected at or below 0.1
    assert ps.max() >= 0.8, ps


@pytest.mark.parametrize("method", ["ksg", "csmi", "dsmi"])
def test_informative_labels_give_the_smallest_p_value(method: str) -> None:
    x, y = _classes(n=120, shift=8.0)
    (r,) = dsecli.estimate_mutual_information(x, y, methods=method, permutations=19, device="cpu", **_sigma(method))
    p = r.extra["permutation"]
    assert p["exceed"] == 0
    assert p["p_value"] == 1 / 20
    assert max(p["values"]) < r.value


def test_permutations_need_a_reference() -> None:
    rows = prepare_rows(np.random.default_rng(0).normal(size=(20, 2)), max_n=None, seed=0)
    with pytest.raises(InputError, match=re.escape("`permutations`: ksg needs a reference (Y) to permute")):
        permutation_null(lambda r: r, rows, 0.0, method="ksg", permutations=3)


# ------------------------------------------------------------------------------------- bootstrap


def test_schemes_and_resample_rows() -> None:
    assert bootstrap_scheme("cse") == "replacement"
    assert {bootstrap_scheme(m) for m in ("dse", "dsmi", "csmi", "knn", "ksg", "mine")} == {"subsample"}
    x = np.random.default_rng(0).normal(size=(41, 3))
    rows = prepare_rows(x, max_n=None, seed=0)
    seen: list[np.ndarray] = []

    class _R:
        def __init__(self, v: float) -> None:
            self.value = v
            self.warnings = ()

    def spy(r: object) -> _R:
        seen.append(np.asarray(r.data))  # type: ignore[attr-defined]
        return _R(float(np.asarray(r.data).sum()))

    bootstrap_interval(spy, rows, 0.0, method="knn", resamples=5)
    assert all(s.shape == (20, 3) and np.unique(s, axis=0).shape[0] == 20 for s in seen)
    assert all(np.isin(s, x).all() for s in seen)  # rows of the prepared subsample only
    seen.clear()
    bootstrap_interval(spy, rows, 0.0, method="cse", resamples=5)
    assert all(s.shape == (41, 3) for s in seen)
    assert any(np.unique(s, axis=0).shape[0] < 41 for s in seen)  # drawn with replacement


def test_bootstrap_is_deterministic_for_a_seed() -> None:
    x, y = _classes()
    kw = {"methods": "dsmi,ksg", "sigma": 2.0, "device": "cpu", "bootstrap": 5, "permutations": 3}
    a = dsecli.estimate_mutual_information(x, y, seed=4, **kw)
    b = dsecli.estimate_mutual_information(x, y, seed=4, **kw)
    c = dsecli.estimate_mutual_information(x, y, seed=5, **kw)
    for ra, rb, rc in zip(a, b, c):
        timeless = [{k: v for k, v in r.extra[part].items() if k != "elapsed_s"} for r in (ra, rb)
                    for part in ("bootstrap", "permutation")]
        assert timeless[:2] == timeless[2:]
        assert ra.extra["bootstrap"]["values"] != rc.extra["bootstrap"]["values"]


def test_bootstrap_summary_is_the_percentile_interval_of_its_values() -> None:
    x = np.random.default_rng(1).normal(size=(60, 2))
    (r,) = dsecli.estimate_entropy(x, methods="knn", bootstrap=30, confidence=0.8)
    b = r.extra["bootstrap"]
    vals = np.asarray(b["values"])
    shifted = r.value + math.sqrt(30 / 30) * (vals - vals.mean())
    assert (b["B"], b["confidence"], b["scheme"], b["rows"], b["n"]) == (30, 0.8, "subsample", 30, 60)
    assert b["low"] == pytest.approx(float(np.quantile(shifted, 0.1)))
    assert b["high"] == pytest.approx(float(np.quantile(shifted, 0.9)))
    assert b["std"] == pytest.approx(float(shifted.std(ddof=1)))
    assert b["low"] < r.value < b["high"]


@pytest.mark.filterwarnings("ignore::dsecli.errors.DataQualityWarning")  # 4 distinct rows on purpose
def test_binned_entropy_interval_covers_the_truth() -> None:
    # rows on the 4 corners of the unit square: with 2 bins per column each corner is one cell, so the
    # binned entropy estimates H(p) exactly (no binning error), and the plug-in bias (K-1)/(2N ln 2) is tiny
    p = np.array([0.4, 0.3, 0.2, 0.1])
    truth = float(-(p * np.log2(p)).sum())
    corners = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=float)
    hits = 0
    repeats = 40
    for s in range(repeats):
        x = corners[np.random.default_rng(100 + s).choice(4, size=300, p=p)]
        (r,) = dsecli.estimate_entropy(x, methods="cse", bootstrap=200, confidence=0.9, seed=s)
        b = r.extra["bootstrap"]
        assert b["scheme"] == "replacement"
        hits += b["low"] <= truth <= b["high"]
    # nominal 90 %: 36 of 40 expected; fewer than 30 has probability < 1 % at a true 90 %
    assert hits >= 30, hits


def test_ksg_interval_covers_the_gaussian_mutual_information() -> None:
    rho = 0.6
    truth = -0.5 * math.log2(1 - rho**2)  # bits, bivariate Gaussian
    hits, stds, values = 0, [], []
    repeats = 20
    for s in range(repeats):
        z = np.random.default_rng(200 + s).normal(size=(200, 2))
        x, y = z[:, :1], rho * z[:, :1] + math.sqrt(1 - rho**2) * z[:, 1:]
        (r,) = dsecli.estimate_mutual_information(x, y, methods="ksg", bootstrap=40, confidence=0.9, seed=s)
        b = r.extra["bootstrap"]
        hits += b["low"] <= truth <= b["high"]
        stds.append(b["std"])
        values.append(r.value)
    # nominal 90 %: 18 of 20 expected; at most 13 has probability 0.2 % at a true 90 %
    assert hits >= 14, hits
    # the half-sample std estimates the spread of the estimate over fresh samples (not too wide either)
    assert 0.7 < np.mean(stds) / np.std(values, ddof=1) < 1.4


@pytest.mark.parametrize(("kw", "message"), [
    ({"bootstrap": 1}, "`bootstrap` must be 0 (off) or at least 2 resamples (an interval needs a spread); got 1"),
    ({"bootstrap": -2}, "`bootstrap`"),
    ({"bootstrap": 5, "confidence": 1.5}, "`confidence` must be between 0 and 1 exclusive (e.g. 0.95); got 1.5"),
    ({"permutations": -1}, "`permutations`"),
    ({"bootstrap": 3, "bootstrap_scheme": "jackknife"},
     "`bootstrap_scheme` must be one of auto, replacement, subsample; got 'jackknife'"),
])
def test_bad_resampling_parameters(kw: dict, message: str) -> None:
    x, y = _classes(n=30)
    with pytest.raises(InputError, match=re.escape(message)):
        dsecli.estimate_mutual_information(x, y, methods="csmi", **kw)


def test_entropy_has_no_permutations() -> None:
    with pytest.raises(InputError, match=re.escape("`permutations` applies to mutual information "
                                                   "(estimate_mutual_information, dse mi): an entropy has no "
                                                   "reference to permute")):
        dsecli.estimate_entropy(np.random.default_rng(0).normal(size=(20, 2)), methods="cse", permutations=5)


def test_too_few_rows_for_a_bootstrap() -> None:
    x = np.random.default_rng(0).normal(size=(3, 2))
    with pytest.raises(InputError, match=re.escape("`bootstrap`: knn on N = 3 rows leaves 1 rows per resample; "
                                                   "at least 4 rows are needed")):
        dsecli.estimate_entropy(x, methods="knn", k=1, bootstrap=4)


def test_replicate_errors_name_the_resample() -> None:
    x = np.random.default_rng(0).normal(size=(8, 2))
    # k = 5 fits N = 8 rows but not a half-sample of 4
    with pytest.raises(InputError, match=re.escape("knn: bootstrap resample 1 of 3 (4 of 8 rows without replacement):")):
        dsecli.estimate_entropy(x, methods="knn", k=5, bootstrap=3)


# ------------------------------------------------------------------------------------- command line, plans, batch


@pytest.fixture()
def pair(tmp_path):
    x, y = _classes(n=90, shift=8.0)
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "y.npy", y)
    return tmp_path


def _cli(args: list[str]):
    from typer.testing import CliRunner

    from dsecli.cli import app

    res = CliRunner().invoke(app, args, env={"COLUMNS": "250"})  # a wide table: no cell is cut
    assert "Traceback" not in res.stdout + res.stderr
    return res


def test_cli_mi_reports_interval_and_p_value(pair) -> None:
    import json

    args = ["mi", str(pair / "x.npy"), str(pair / "y.npy"), "-m", "csmi,ksg", "--bootstrap", "6",
            "--permutations", "9", "--confidence", "0.9"]
    res = _cli([*args, "--json"])
    assert res.exit_code == 0, res.stderr
    report = json.loads(res.stdout)
    lib = dsecli.estimate_mutual_information(*_classes(n=90, shift=8.0), methods="csmi,ksg", bootstrap=6,
                                             permutations=9, confidence=0.9)
    for entry, r in zip(report["results"], lib):
        assert entry["extra"]["bootstrap"]["values"] == pytest.approx(r.extra["bootstrap"]["values"])
        assert entry["extra"]["bootstrap"]["confidence"] == 0.9
        assert entry["extra"]["permutation"]["p_value"] == r.extra["permutation"]["p_value"]
    assert report["results"][1]["extra"]["permutation"]["p_value"] == 0.1  # ksg: the smallest, 1 / (9 + 1)
    table = _cli([*args]).stdout
    assert "interval / p" in table and "p=0.1 (P=9)" in table


@pytest.mark.parametrize(("args", "message"), [
    (["--bootstrap", "1"], "`bootstrap` must be 0 (off) or at least 2 resamples (an interval needs a spread); got 1"),
    (["--bootstrap", "5", "--confidence", "1"],
     "`confidence` must be between 0 and 1 exclusive (e.g. 0.95); got 1.0"),
])
def test_cli_bad_resampling_options(pair, args: list[str], message: str) -> None:
    out = pair / "r.json"
    res = _cli(["entropy", str(pair / "x.npy"), "-m", "cse", *args, "-o", str(out)])
    assert res.exit_code == 2
    lines = [ln for ln in res.stderr.splitlines() if ln.startswith("error: ")]
    assert lines == [f"error: {message}"]
    assert not out.exists()


def test_dry_run_counts_the_extra_evaluations(pair) -> None:
    from dsecli import dry_run_entropy, dry_run_mutual_information, plan_entropy

    x = np.load(pair / "x.npy")
    y = np.load(pair / "y.npy")
    base = dry_run_mutual_information(x, y, device="cpu")
    plan = dry_run_mutual_information(x, y, device="cpu", bootstrap=4, permutations=3)
    r = plan["resampling"]
    assert (r["evaluations"], r["rows_per_resample"], r["bootstrap_scheme"]) == (8, 45, "subsample")
    assert r["single_seconds"] == pytest.approx(base["expected_seconds"])
    assert r["permutation_seconds"] == pytest.approx(3 * base["expected_seconds"])
    assert plan["expected_seconds"] == pytest.approx(r["single_seconds"] + r["bootstrap_seconds"]
                                                     + r["permutation_seconds"])
    e = dry_run_entropy(x, device="cpu", bootstrap=5)
    assert e["resampling"]["bootstrap_seconds"] == pytest.approx(
        5 * plan_entropy(45, x.shape[1], device="cpu")["expected_seconds"])
    assert "resampling" not in dry_run_entropy(x, device="cpu")
    res = _cli(["mi", str(pair / "x.npy"), str(pair / "y.npy"), "--dry-run", "--bootstrap", "4", "--permutations",
                "3", "--device", "cpu"])
    assert res.exit_code == 0, res.stderr
    assert "resampling 8 evaluations" in " ".join(res.stdout.split())


def test_batch_rows_carry_the_interval_and_key_on_it(pair) -> None:
    from dsecli import run_batch

    out = pair / "rows.jsonl"
    kw = {"reference": str(pair / "y.npy"), "methods": "cse,ksg", "output": str(out)}
    first = run_batch([str(pair / "x.npy")], bootstrap=4, permutations=5, **kw)
    assert first.computed == 2
    by = {r["method"]: r for r in first.rows}
    assert by["cse"]["extra"]["bootstrap"]["B"] == 4 and "permutation" not in by["cse"]["extra"]
    assert by["ksg"]["extra"]["permutation"]["p_value"] == pytest.approx(1 / 6)
    again = run_batch([str(pair / "x.npy")], bootstrap=4, permutations=5, **kw)
    assert (again.computed, again.skipped) == (0, 2)
    plain = run_batch([str(pair / "x.npy")], **kw)  # without resampling: other rows
    assert plain.computed == 2 and all("bootstrap" not in r["extra"] for r in plain.rows)


def test_batch_table_shows_interval_and_p_value(pair) -> None:
    res = _cli(["batch", str(pair / "x.npy"), "--ref", str(pair / "y.npy"), "-m", "cse,ksg", "--bootstrap", "4",
                "--permutations", "9", "-o", str(pair / "b.jsonl")])
    assert res.exit_code == 0, res.stderr
    assert "p=0.1 (P=9)" in res.stdout and "95% [" in res.stdout


def test_resampling_gives_the_same_values_on_every_device(device: str) -> None:
    x, y = _classes(n=80)
    kw = {"methods": "dsmi", "sigma": 2.0, "bootstrap": 3, "permutations": 3, "seed": 2}
    (cpu,) = dsecli.estimate_mutual_information(x, y, device="cpu", **kw)
    (dev,) = dsecli.estimate_mutual_information(x, y, device=device, **kw)
    for part in ("bootstrap", "permutation"):
        assert dev.extra[part]["values"] == pytest.approx(cpu.extra[part]["values"], abs=1e-9)


def test_huge_resampling_counts_are_refused_by_the_library_before_computing() -> None:
    from dsecli.errors import MemoryLimitError

    x, y = np.random.default_rng(0).normal(size=(30, 3)), np.arange(30) % 3
    with pytest.raises(MemoryLimitError, match=r"`permutations` = 1,000,000,000,000 .*fewer permutations"):
        dsecli.estimate_mutual_information(x, y, methods="csmi", permutations=10**12)
    with pytest.raises(MemoryLimitError, match=r"`bootstrap` = 10,000,000,000,000"):
        dsecli.estimate_entropy(x, methods="cse", bootstrap=10**13)


def test_dry_runs_refuse_the_counts_the_estimates_refuse() -> None:
    from dsecli.measures.dry_run import dry_run_entropy, dry_run_mutual_information

    x, y = np.zeros((50, 3)), np.arange(50) % 2
    for bad, message in ((-5, "`bootstrap` must be an integer >= 0"), (1, "at least 2 resamples")):
        with pytest.raises(InputError, match=re.escape(message)):
            dry_run_entropy(x, bootstrap=bad)
        with pytest.raises(InputError, match=re.escape(message)):
            dry_run_mutual_information(x, y, bootstrap=bad)
    with pytest.raises(InputError, match=re.escape("`permutations` must be an integer >= 0")):
        dry_run_mutual_information(x, y, permutations=-1)
    assert dry_run_entropy(x, bootstrap=10)["resampling"]["evaluations"] == 11
