"""Spectrum, DSE versus t, automatic t, the spectrum cache and ``dse spectrum``."""

from __future__ import annotations

import json
import math
import re

import numpy as np
import pytest
from typer.testing import CliRunner

import dsecli.diffusion.eigen
from dsecli import diffusion_spectral_entropy
from dsecli.cli import app
from dsecli.diffusion.cache import CacheWarning, SpectrumCache, default_cache_dir, resolve_cache_dir
from dsecli.errors import DseWarning, InputError
from dsecli.measures.spectrum_scan import (
    diffusion_spectrum,
    dse_versus_t,
    knee_t,
    kneedle,
    parse_t_values,
    rows_sha256,
    rule_of_thumb_t,
    spectrum_scan,
)

runner = CliRunner()


def blobs(k: int = 4, n: int = 50, d: int = 10, radius: float = 60.0, seed: int = 0) -> np.ndarray:
    """k Gaussian blobs (std 1) with centres ``radius`` from the origin: far apart for sigma ~ 3."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 1, (k, d))
    centres *= radius / np.linalg.norm(centres, axis=1, keepdims=True)
    return np.concatenate([c + rng.normal(0, 1, (n, d)) for c in centres])


@pytest.fixture()
def count_eigensolves(monkeypatch):
    """Count calls of the eigensolver used by diffusion_spectral_entropy."""
    calls = {"n": 0}
    real = dsecli.diffusion.eigen.symmetric_eigenvalues

    def spy(a):
        calls["n"] += 1
        return real(a)

    monkeypatch.setattr(dsecli.diffusion.eigen, "symmetric_eigenvalues", spy)
    return calls


# ------------------------------------------------------------------------------------------- t parser


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("1,2,5,10", (1, 2, 5, 10)),
        ("1:5", (1, 2, 3, 4, 5)),
        ("1:50:5", tuple(range(1, 51, 5))),
        ("1:10:3", (1, 4, 7, 10)),
        ("7:7", (7,)),
        (" 10, 2 ,2,1:3 ", (1, 2, 3, 10)),
        ("1:3,,", (1, 2, 3)),
        (4, (4,)),
        ([3, 1, 3], (1, 3)),
    ],
)
def test_parse_t_values(spec, expected) -> None:
    assert parse_t_values(spec) == expected


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("0", "`t` values must be integers >= 1; got '0'"),
        ("5:1", "`t` range '5:1' must be start:stop[:step] with 1 <= start <= stop and step >= 1"),
        ("1:10:0", "`t` range '1:10:0' must be start:stop[:step]"),
        ("0:3", "`t` range '0:3' must be start:stop[:step]"),
        ("1.5", "`t` must be a list or range of integers"),
        ("-1", "`t` must be a list or range of integers"),
        ("a:b", "`t` must be a list or range of integers"),
        ("", "`t` is empty"),
        (",", "`t` is empty"),
        ("1:1000000", "`t` asks for more than 100,000 values"),
    ],
)
def test_parse_t_values_rejects(spec, message) -> None:
    with pytest.raises(InputError, match=re.escape(message)):
        parse_t_values(spec)


# ---------------------------------------------------------------------------- DSE(t) from one spectrum


@pytest.mark.parametrize("sigma", [1.5, "median"])
def test_dse_versus_t_equals_library_dse(sigma, tmp_path) -> None:
    x = np.random.default_rng(3).normal(size=(70, 5))
    ts = [1, 2, 3, 7, 20, 100]
    spectrum_scan(x, t=ts, sigma=sigma, device="cpu", cache=tmp_path)
    scan = spectrum_scan(x, t=ts, sigma=sigma, device="cpu", cache=tmp_path)  # from the cached spectrum
    assert scan.spectrum.cache["hit"]
    for t, v in zip(scan.t_values, scan.dse_values):
        ref = diffusion_spectral_entropy(x, sigma=sigma, t=t, device="cpu").value
        assert abs(v - ref) <= 1e-12, (t, v, ref)
    # the dense curve agrees with the requested values
    for t, v in zip(scan.t_values, scan.dse_values):
        assert scan.curve_dse[t - 1] == v


def test_dse_versus_t_base_and_large_t() -> None:
    lam = np.array([1.0, 0.999, 0.5, 0.1, -0.05, 1e-300, 0.0])
    bits = dse_versus_t(lam, [1, 10], base=2)
    nats = dse_versus_t(lam, [1, 10], base=math.e)
    np.testing.assert_allclose(nats, bits * math.log(2), rtol=1e-12)
    huge = dse_versus_t(lam, [10**6, 10**9])
    assert np.all(np.isfinite(huge))
    # at t = 1e9, 0.999^t underflows to 0: only the eigenvalue 1 is left, DSE is (nearly) 0
    assert huge[1] < 1e-9


def test_dse_is_nonincreasing_in_t() -> None:
    x = np.random.default_rng(5).normal(size=(80, 3))
    scan = spectrum_scan(x, t="1:60", sigma=1.0, device="cpu", t_max=60)
    assert np.all(np.diff(scan.dse_values) <= 1e-12)


# -------------------------------------------------------------------------------------- automatic t


def test_auto_t_on_separated_clusters_reaches_log2_k() -> None:
    k = 4
    x = blobs(k=k)
    scan = spectrum_scan(x, t="1:100", sigma=3.0, device="cpu")  # knee searched on t = 1..1000
    h = dict(zip(scan.t_values, scan.dse_values))
    plateau = scan.curve_dse[-1]
    # DSE(t) starts well above log2 k and settles at log2 k
    assert h[1] > math.log2(k) + 2
    assert abs(plateau - math.log2(k)) < 1e-6 and abs(h[100] - math.log2(k)) < 1e-6
    knee = scan.auto_t["knee"]
    assert knee.t is not None and 1 < knee.t < 20
    # the knee is on the plateau: within 0.05 bits of log2 k, and nothing after it falls by more
    assert abs(knee.value - math.log2(k)) < 0.05
    assert h[knee.t] - plateau < 0.05
    # ... and it is not later than needed: one step before, more than twice as much fall was left
    assert h[knee.t - 1] - plateau > 2 * (h[knee.t] - plateau)
    assert not knee.detail["still_falling"]
    # k = 4 eigenvalues stay at 1 (to rounding) but the rule allows round(1% of 200) = 2: not applicable
    rule = scan.auto_t["rule_of_thumb"]
    assert rule.t is None and "within rounding of 1" in rule.detail["reason"]
    # with 400 rows (4 may stay above 0.01) the rule applies and also lands near log2 k
    big = spectrum_scan(blobs(k=k, n=100), t="1", sigma=3.0, device="cpu", max_n=0)
    rule = big.auto_t["rule_of_thumb"]
    assert rule.t is not None and abs(rule.value - math.log2(k)) < 0.2


def test_kneedle_piecewise_linear_corner() -> None:
    t = np.arange(1, 31, dtype=float)
    y = np.maximum(10.0 - t, 2.0)  # falls with slope 1, flat from t = 8
    assert t[kneedle(t, y)] == 8


def test_kneedle_exponential_closed_form() -> None:
    # y = exp(-x/tau) on [0, T]: the normalised gap below the chord peaks at
    # x* = tau * ln((T / tau) / (1 - exp(-T / tau)))
    tau, T = 3.0, 100.0
    x = np.linspace(0, T, 100_001)
    y = np.exp(-x / tau)
    expected = tau * math.log((T / tau) / (1 - math.exp(-T / tau)))
    assert x[kneedle(x, y)] == pytest.approx(expected, abs=2e-3)


def test_kneedle_flat_and_straight() -> None:
    x = np.arange(10.0)
    assert kneedle(x, np.full(10, 3.0)) == 0  # flat: already on the plateau
    assert kneedle(x, 5 - x) is None  # straight: no knee
    assert kneedle(x, 5 - x**0.5 * 0 - (x / 9) ** 2) is None  # concave: no point below the chord
    with pytest.raises(InputError, match="1-d arrays of one length"):
        kneedle(x, x[:-1])


def test_knee_t_on_two_level_spectrum() -> None:
    # m eigenvalues 1 and n at r: the n small ones carry as much mass as the m large ones at
    # t0 = log(n / m) / log(1 / r); DSE(t) falls from about log2(N) to log2(m) around t0.
    m, n, r = 8, 992, 0.5
    lam = np.concatenate([np.ones(m), np.full(n, r)])
    t0 = math.log(n / m) / math.log(1 / r)
    t, detail = knee_t(lam)
    assert t0 < t < t0 + 8
    h1, ht = dse_versus_t(lam, [1, t])
    # on the plateau: less than 2% of the total fall (about 6.7 bits) is still to come
    assert 0 < ht - math.log2(m) < 0.02 * (h1 - math.log2(m))
    assert not detail["still_falling"]
    # the t-range hardly moves the knee (log t axis)
    for t_max in (100, 300, 3000):
        assert abs(knee_t(lam, t_max=t_max)[0] - t) <= 1


def test_t_max_bounds() -> None:
    lam = np.array([1.0, 0.5, 0.25])
    with pytest.raises(InputError, match=re.escape("`t_max` must be an integer >= 3; got 2")):
        knee_t(lam, t_max=2)
    with pytest.raises(InputError, match=re.escape("`t_max` must be <= 100,000")):
        knee_t(lam, t_max=10**6)


def test_knee_t_flags_a_curve_still_falling() -> None:
    lam = np.concatenate([[1.0], np.full(200, 0.995)])  # time scale ~ 200 steps
    _, detail = knee_t(lam, t_max=50)
    assert detail["still_falling"]
    x = np.random.default_rng(0).normal(size=(60, 2))  # a narrow kernel: eigenvalues near 1, slow fall
    with pytest.warns(DseWarning, match="still falling at t_max=10"):
        scan = spectrum_scan(x, sigma=0.1, device="cpu", t_max=10, t="1")
    assert any("raise --t-max" in w for w in scan.warnings)
    # clusters within clusters: DSE(t) keeps falling at every scale, and the flag stays up
    assert spectrum_scan(x, sigma=0.1, device="cpu", t_max=10_000, t="1").auto_t["knee"].detail["still_falling"]


def brute_rule(lam: np.ndarray, q: int, threshold: float = 0.01) -> int:
    mod = np.abs(lam) / np.abs(lam).max()
    for t in range(1, 100_000):
        if np.count_nonzero(mod**t > threshold) <= q:
            return t
    raise AssertionError("not reached")


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_rule_of_thumb_matches_brute_force(seed) -> None:
    rng = np.random.default_rng(seed)
    lam = np.concatenate([[1.0], rng.uniform(-0.2, 0.999, 499)])
    t, detail = rule_of_thumb_t(lam)
    assert detail["max_above"] == 5  # round(1% of 500)
    assert t == brute_rule(lam, 5)
    mod = np.abs(lam)
    assert np.count_nonzero(mod**t > 0.01) <= 5 < np.count_nonzero(mod ** (t - 1) > 0.01) or t == 1


def test_rule_of_thumb_not_applicable() -> None:
    lam = np.concatenate([np.ones(3), np.full(97, 0.3)])  # 3 eigenvalues 1, but at most 1 may stay
    t, detail = rule_of_thumb_t(lam)
    assert t is None and "never fall below" in detail["reason"]
    near = np.concatenate([[1.0], np.full(2, 1 - 1e-15), np.full(97, 0.3)])
    t, detail = rule_of_thumb_t(near)
    assert t is None and "within rounding of 1" in detail["reason"]
    with pytest.raises(InputError, match="`threshold` must be in"):
        rule_of_thumb_t(lam, threshold=2)


# ------------------------------------------------------------------------------------------------ cache


def test_rows_sha256_depends_on_values_and_shape() -> None:
    a = np.arange(12.0).reshape(4, 3)
    assert rows_sha256(a) == rows_sha256(a.astype(np.float32))  # same values
    assert rows_sha256(a) != rows_sha256(a.reshape(3, 4))
    b = a.copy()
    b[0, 0] = np.nextafter(0.0, 1.0)
    assert rows_sha256(a) != rows_sha256(b)


def test_cache_hit_returns_identical_values_without_recomputing(tmp_path, count_eigensolves) -> None:
    x = np.random.default_rng(1).normal(size=(90, 4))
    first = spectrum_scan(x, t="1:20", sigma=2.0, device="cpu", cache=tmp_path)
    assert count_eigensolves["n"] == 1 and first.spectrum.cache["hit"] is False
    assert first.spectrum.cache["file"] and (tmp_path / "spectra").is_dir()
    second = spectrum_scan(x, t="1:20", sigma=2.0, device="cpu", cache=tmp_path)
    assert count_eigensolves["n"] == 1, "the cached spectrum was recomputed"
    assert second.spectrum.cache["hit"] is True
    np.testing.assert_array_equal(second.eigenvalues, first.eigenvalues)
    np.testing.assert_array_equal(second.dse_values, first.dse_values)
    assert second.spectrum.rows_sha256 == first.spectrum.rows_sha256
    assert second.params["sigma"] == first.params["sigma"] and second.params["device"] == "cpu"
    # the same rows reached another way (a permuted copy is different rows: a miss)
    diffusion_spectrum(x.copy(), sigma=2.0, device="cpu", cache=tmp_path)
    assert count_eigensolves["n"] == 1
    diffusion_spectrum(x[::-1].copy(), sigma=2.0, device="cpu", cache=tmp_path)
    assert count_eigensolves["n"] == 2


def test_cache_key_covers_sigma_dtype_and_rows(tmp_path, count_eigensolves) -> None:
    x = np.random.default_rng(2).normal(size=(120, 3))
    base = {"device": "cpu", "cache": tmp_path}
    diffusion_spectrum(x, sigma=1.0, **base)
    assert count_eigensolves["n"] == 1
    for kwargs in ({"sigma": 1.5}, {"sigma": 1.0, "dtype": "float32"}, {"sigma": 1.0, "max_n": 100},
                   {"sigma": 1.0, "max_n": 100, "seed": 1}):
        before = count_eigensolves["n"]
        res = diffusion_spectrum(x, **{**base, **kwargs})
        assert count_eigensolves["n"] == before + 1 and not res.cache["hit"], kwargs
    # a sigma rule is keyed by its numeric value: "median" hits when the number matches a given sigma
    med = diffusion_spectrum(x, sigma="median", **base)
    again = diffusion_spectrum(x, sigma=med.params["sigma"], **base)
    assert again.cache["hit"] and again.params["sigma_rule"] == "given" and med.params["sigma_rule"] == "median"


def test_corrupt_cache_entry_is_recomputed_with_a_warning(tmp_path, count_eigensolves) -> None:
    x = np.random.default_rng(4).normal(size=(50, 3))
    first = diffusion_spectrum(x, sigma=1.0, device="cpu", cache=tmp_path)
    path = first.cache["file"]
    with open(path, "wb") as fh:
        fh.write(b"PK\x03\x04 not really a zip file")
    with pytest.warns(CacheWarning, match="unreadable.*recomputing"):
        second = diffusion_spectrum(x, sigma=1.0, device="cpu", cache=tmp_path)
    assert not second.cache["hit"] and count_eigensolves["n"] == 2
    np.testing.assert_array_equal(second.eigenvalues, first.eigenvalues)
    third = diffusion_spectrum(x, sigma=1.0, device="cpu", cache=tmp_path)  # repaired
    assert third.cache["hit"] and count_eigensolves["n"] == 2


def test_inconsistent_cache_entry_is_a_miss(tmp_path) -> None:
    x = np.random.default_rng(4).normal(size=(40, 3))
    first = diffusion_spectrum(x, sigma=1.0, device="cpu", cache=tmp_path)
    with np.load(first.cache["file"]) as npz:
        meta = str(npz["meta"][()])
    np.savez(first.cache["file"], eigenvalues=first.eigenvalues[:-1], meta=np.array(meta))  # truncated spectrum
    with pytest.warns(CacheWarning, match="inconsistent"):
        again = diffusion_spectrum(x, sigma=1.0, device="cpu", cache=tmp_path)
    assert not again.cache["hit"]


def test_kernel_warnings_survive_a_cache_hit(tmp_path) -> None:
    x = np.random.default_rng(8).normal(size=(40, 3))
    with pytest.warns(DseWarning, match="sigma=1000 .* the kernel sees one blob"):
        diffusion_spectrum(x, sigma=1000.0, device="cpu", cache=tmp_path)
    # the kernel's regime is checked on every call (it needs no eigenvalues), cache hit or not
    with pytest.warns(DseWarning, match="sigma=1000 .* the kernel sees one blob"):
        hit = diffusion_spectrum(x, sigma=1000.0, device="cpu", cache=tmp_path)
    assert hit.cache["hit"] and any("the kernel sees one blob" in w for w in hit.warnings)


def test_unwritable_cache_warns_and_still_computes(tmp_path) -> None:
    blocker = tmp_path / "not_a_dir"
    blocker.write_text("a file where the cache directory should be")
    x = np.random.default_rng(6).normal(size=(30, 2))
    with pytest.warns(CacheWarning, match="could not write the cache entry"):
        res = diffusion_spectrum(x, sigma=1.0, device="cpu", cache=blocker)
    assert not res.cache["hit"] and res.cache["file"] is None and res.eigenvalues.shape == (30,)


def test_cache_store_is_atomic_and_readable(tmp_path) -> None:
    cache = SpectrumCache(tmp_path)
    fields = {"rows_sha256": "x", "sigma": 1.0}
    path = cache.store(fields, np.array([1.0, 0.5]), {"params": {}})
    assert path is not None and [p.name for p in (tmp_path / "spectra").iterdir()] == [path.name]
    got = cache.load(fields)
    assert got is not None and got.eigenvalues.tolist() == [1.0, 0.5]
    assert cache.load({**fields, "sigma": 2.0}) is None


def test_default_cache_dir(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("DSECLI_CACHE_DIR", str(tmp_path / "a"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_cache_dir() == tmp_path / "a"
    monkeypatch.delenv("DSECLI_CACHE_DIR")
    assert default_cache_dir() == tmp_path / "xdg" / "dsecli"
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/ignored")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert default_cache_dir() == tmp_path / "home" / ".cache" / "dsecli"
    assert resolve_cache_dir(False) is None and resolve_cache_dir(None) is None
    assert resolve_cache_dir(str(tmp_path)) == tmp_path


def test_scan_report_is_strict_json() -> None:
    x = np.random.default_rng(7).normal(size=(40, 3))
    d = spectrum_scan(x, t="1,3", sigma=1.0, device="cpu", t_max=20).to_dict()
    text = json.dumps(d, allow_nan=False)
    back = json.loads(text)
    assert [r["t"] for r in back["dse"]] == [1, 3]
    assert len(back["eigenvalues"]) == 40 and back["eigenvalues"][0] == pytest.approx(1.0)
    assert set(back["auto_t"]) == {"knee", "rule_of_thumb"}
    assert back["cache"]["enabled"] is False and back["units"] == "bits"


# -------------------------------------------------------------------------------------------------- CLI


@pytest.fixture()
def emb(tmp_path, monkeypatch):
    monkeypatch.setenv("DSECLI_CACHE_DIR", str(tmp_path / "cache"))
    path = tmp_path / "blobs.npy"
    np.save(path, blobs(k=3, n=30))
    return path


def _run(args):
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    return res


def test_cli_spectrum_json_and_cache(emb, tmp_path) -> None:
    args = ["spectrum", str(emb), "--sigma", "3", "--t", "1:5,50", "--device", "cpu", "--json"]
    first = json.loads(_run(args).stdout)
    second = json.loads(_run(args).stdout)
    assert first["cache"]["hit"] is False and second["cache"]["hit"] is True
    assert first["cache"]["dir"] == str(tmp_path / "cache")
    assert [d["t"] for d in first["dse"]] == [1, 2, 3, 4, 5, 50]
    assert first["dse"] == second["dse"] and first["eigenvalues"] == second["eigenvalues"]
    ref = diffusion_spectral_entropy(np.load(emb), sigma=3.0, t=50, device="cpu").value
    assert abs(first["dse"][-1]["value"] - ref) <= 1e-12
    off = json.loads(_run([*args, "--no-cache"]).stdout)
    assert off["cache"] == {"enabled": False, "hit": False, "dir": None, "file": None, "key": None}
    other = json.loads(_run([*args, "--cache-dir", str(tmp_path / "elsewhere")]).stdout)
    assert other["cache"]["hit"] is False and (tmp_path / "elsewhere" / "spectra").is_dir()


def test_cli_spectrum_table(emb) -> None:
    out = _run(["spectrum", str(emb), "--sigma", "3", "--t", "1,2", "--device", "cpu"]).stdout
    assert "DSE (bits)" in out and "knee (auto)" in out and "cache: miss" in out


def test_cli_spectrum_outputs(emb, tmp_path) -> None:
    base = ["spectrum", str(emb), "--sigma", "3", "--t", "1,4", "--device", "cpu", "-q"]
    _run([*base, "-o", str(tmp_path / "r.json")])
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["command"] == "spectrum" and len(report["eigenvalues"]) == 90
    _run([*base, "-o", str(tmp_path / "e.npy")])
    np.testing.assert_array_equal(np.load(tmp_path / "e.npy"), np.asarray(report["eigenvalues"]))
    _run([*base, "-o", str(tmp_path / "e.npz")])
    with np.load(tmp_path / "e.npz") as z:
        assert z["t"].tolist() == [1, 4]
        np.testing.assert_array_equal(z["dse"], [d["value"] for d in report["dse"]])
        assert json.loads(str(z["report"][()]))["rows_sha256"] == report["rows_sha256"]


def test_cli_spectrum_bad_t_is_a_usage_error(emb) -> None:
    res = runner.invoke(app, ["spectrum", str(emb), "--t", "3:1", "--device", "cpu"])
    assert res.exit_code == 2
    assert "error: `t` range '3:1'" in res.output and "Traceback" not in res.output


def test_cli_spectrum_missing_output_dir_fails_before_computing(emb, tmp_path, count_eigensolves) -> None:
    res = runner.invoke(app, ["spectrum", str(emb), "--plot", str(tmp_path / "no" / "x.png"), "--device", "cpu"])
    assert res.exit_code == 2 and "does not exist" in res.output
    assert count_eigensolves["n"] == 0
