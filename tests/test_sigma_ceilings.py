"""The bandwidth rules (median default, uninformative-regime warning, batch-wide sigma) and every value's ceiling."""

from __future__ import annotations

import json
import math
import re
import warnings

import numpy as np
import pytest
from scipy.spatial.distance import pdist

from dsecli import (
    binned_shannon_entropy,
    binned_shannon_mutual_information,
    diffusion_spectral_entropy,
    diffusion_spectral_mutual_information,
    kozachenko_leonenko_entropy,
    ksg_mutual_information,
    run_batch,
)
from dsecli.diagnostics.check import sanity_report
from dsecli.diffusion.kernels import (
    FLAT_MEDIAN_AFFINITY,
    ISOLATED_MEDIAN_AFFINITY,
    MEDIAN_MAX_ROWS,
    classify_median_affinity,
    kernel_regime,
    resolve_sigma,
)
from dsecli.errors import DegenerateKernelWarning
from dsecli.report.tables import format_ceiling
from dsecli.results import SATURATION_FRACTION


def _tensor(x: np.ndarray):  # noqa: ANN202 - a torch.Tensor (torch is imported lazily)
    import torch

    return torch.from_numpy(x)


def unit_norm_embeddings(n: int = 400, classes: int = 10, d: int = 64, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((classes, d))
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    y = np.arange(n) % classes
    x = centres[y] + 0.35 / math.sqrt(d) * rng.standard_normal((n, d))
    return x / np.linalg.norm(x, axis=1, keepdims=True), y


def simplex(n: int, scale: float) -> np.ndarray:
    """n points with every pairwise squared distance exactly 2 scale^2."""
    return scale * np.eye(n)


def sigma_for_affinity(a: float, scale: float) -> float:
    # every affinity is exp(-2 scale^2 / (2 sigma^2)) = exp(-scale^2 / sigma^2)
    return scale / math.sqrt(-math.log(a))


# ------------------------------------------------------------------------------------------ defaults


def test_median_default_reproduces_explicit_median() -> None:
    x, _ = unit_norm_embeddings()
    default = diffusion_spectral_entropy(x, device="cpu")
    explicit = diffusion_spectral_entropy(x, sigma="median", device="cpu")
    assert default.params["sigma_rule"] == "median"
    assert default.value == explicit.value and default.params["sigma"] == explicit.params["sigma"]
    # the median rule: sqrt(median_{i<j} d_ij^2 / 2), oracle from scipy's distances (lower median)
    d2 = np.sort(pdist(x, "sqeuclidean"))
    assert default.params["sigma"] == pytest.approx(math.sqrt(d2[(d2.size - 1) // 2] / 2), rel=1e-10)
    assert default.warnings == ()


def test_unit_norm_at_sigma_10_warns_with_the_median_rule_sigma() -> None:
    x, y = unit_norm_embeddings()
    med = resolve_sigma("median", _tensor(x)).value
    with pytest.warns(DegenerateKernelWarning, match=r"median off-diagonal affinity 0\.9\d+ > 0\.9"):
        got = diffusion_spectral_entropy(x, sigma=10, device="cpu")
    (msg,) = got.warnings
    # 79,800 pairs: the check reads 16,384 random ones, and names the median rule's sigma it estimates
    est = got.params["kernel_regime"]["median_rule_sigma"]
    assert est == pytest.approx(med, rel=1e-2)
    assert f"the median rule would give sigma about {est:.4g} (--sigma median; affinities estimated from " in msg
    assert "16,384 random pairs of 79,800, the regime with 99.9999% confidence)" in msg
    assert got.params["kernel_regime"]["regime"] == "flat"
    assert got.params["kernel_regime"]["sigma_over_median_rule"] == pytest.approx(10 / est, rel=1e-12)
    with pytest.warns(DegenerateKernelWarning, match="the kernel sees one blob"):
        mi = diffusion_spectral_mutual_information(x, y, sigma=10, repetitions=1, device="cpu")
    assert any("the median rule would give" in w for w in mi.warnings)
    assert json.loads(json.dumps(got.to_dict()))["warnings"] == [msg]


@pytest.mark.parametrize("side", ["flat", "isolated"])
def test_regime_thresholds_just_below_and_above(side: str) -> None:
    threshold = FLAT_MEDIAN_AFFINITY if side == "flat" else ISOLATED_MEDIAN_AFFINITY
    x = _tensor(simplex(12, 3.0))
    for factor, above in ((1 - 1e-6, False), (1 + 1e-6, True)):
        a = threshold * factor
        reg = kernel_regime(x, sigma_for_affinity(a, 3.0))
        assert reg.median_affinity == pytest.approx(a, rel=1e-9)
        assert reg.median_rule_sigma == pytest.approx(3.0, rel=1e-12)  # sqrt(2 * 9 / 2)
        want = ("flat" if above else None) if side == "flat" else (None if above else "isolated")
        assert reg.kind == want == classify_median_affinity(a)
        for frac in (reg.fraction_above_0_99, reg.fraction_below_1e_6):
            assert 0.0 <= frac <= 1.0
    # the same rule inside DSE: a warning just past the threshold, none just inside
    past = FLAT_MEDIAN_AFFINITY * (1 + 1e-4) if side == "flat" else ISOLATED_MEDIAN_AFFINITY * (1 - 1e-4)
    inside = FLAT_MEDIAN_AFFINITY * (1 - 1e-4) if side == "flat" else ISOLATED_MEDIAN_AFFINITY * (1 + 1e-4)
    with pytest.warns(DegenerateKernelWarning, match="uninformative"):
        diffusion_spectral_entropy(simplex(12, 3.0), sigma=sigma_for_affinity(past, 3.0), device="cpu")
    with warnings.catch_warnings():
        warnings.simplefilter("error", DegenerateKernelWarning)
        r = diffusion_spectral_entropy(simplex(12, 3.0), sigma=sigma_for_affinity(inside, 3.0), device="cpu")
    assert r.params["kernel_regime"]["regime"] == "informative"


def test_regime_fractions_at_their_thresholds() -> None:
    x = _tensor(simplex(10, 1.0))
    hi = kernel_regime(x, sigma_for_affinity(0.99 * (1 + 1e-6), 1.0))
    lo = kernel_regime(x, sigma_for_affinity(0.99 * (1 - 1e-6), 1.0))
    assert (hi.fraction_above_0_99, lo.fraction_above_0_99) == (1.0, 0.0)
    hi = kernel_regime(x, sigma_for_affinity(1e-6 * (1 + 1e-6), 1.0))
    lo = kernel_regime(x, sigma_for_affinity(1e-6 * (1 - 1e-6), 1.0))
    assert (hi.fraction_below_1e_6, lo.fraction_below_1e_6) == (0.0, 1.0)


def test_median_rule_seeded_subsample_above_4096_rows() -> None:
    n = MEDIAN_MAX_ROWS + 300
    x = np.random.default_rng(5).standard_normal((n, 3)) * np.array([1.0, 2.0, 0.5])
    xt = _tensor(x)
    a = resolve_sigma("median", xt, seed=1)
    again = resolve_sigma("median", xt, seed=1)
    other = resolve_sigma("median", xt, seed=2)
    assert a.value == again.value and a.detail == {"rows": MEDIAN_MAX_ROWS, "exact": False, "seed": 1}
    assert other.value != a.value and other.detail["seed"] == 2
    for choice, seed in ((a, 1), (other, 2)):
        idx = np.sort(np.random.default_rng(seed).choice(n, MEDIAN_MAX_ROWS, replace=False))
        d2 = np.sort(pdist(x[idx], "sqeuclidean"))
        assert choice.value == pytest.approx(math.sqrt(d2[(d2.size - 1) // 2] / 2), rel=1e-10)


def test_check_reports_sigma_against_the_median_rule() -> None:
    x, _ = unit_norm_embeddings()
    report = sanity_report(x, sigma=10.0)
    kernel = report.stats["kernel"]
    med = resolve_sigma("median", _tensor(x)).value
    # a sample estimate of the median rule's sigma (16,384 of the 79,800 pairs), and it says so
    assert kernel["median_rule_sigma"] == pytest.approx(med, rel=1e-2)
    assert kernel["ratio"] == pytest.approx(10 / kernel["median_rule_sigma"], rel=1e-12)
    assert kernel["pairs"]["sampled_pairs"] == 16384 and kernel["pairs"]["pairs"] == 400 * 399 // 2
    assert kernel["pairs"]["median"] == "sample" and kernel["pairs"]["confidence"] == 1 - 1e-6
    assert kernel["regime"] == "flat" and 0.9 < kernel["affinity_quantiles"]["q01"] <= kernel["median_affinity"]
    found = {f.code: f for f in report.findings}
    assert "x the median rule" in found["kernel_scale"].message
    assert "the median rule would give" in found["kernel_degenerate"].message
    assert "kernel_degenerate" not in {f.code for f in sanity_report(x, sigma=med).findings}


# ------------------------------------------------------------------------------------------ ceilings


def test_dse_ceiling_is_log_n_and_saturates_at_tiny_sigma() -> None:
    x = np.arange(16.0)[:, None] * 100  # far apart: the operator is the identity
    with pytest.warns(DegenerateKernelWarning, match="every point is nearly alone"):
        got = diffusion_spectral_entropy(x, sigma=1.0, device="cpu")
    assert got.extra["ceiling"] == pytest.approx(math.log2(16)) and got.extra["ceiling_rule"] == "log N_used"
    assert got.value == pytest.approx(4.0, abs=1e-9)
    assert got.extra["fraction_of_ceiling"] == pytest.approx(1.0) and got.extra["saturated"] is True
    assert got.warnings and "every point is nearly alone" in got.warnings[0]
    ok = diffusion_spectral_entropy(unit_norm_embeddings()[0], device="cpu")
    assert ok.extra["ceiling"] == pytest.approx(math.log2(400)) and ok.extra["saturated"] is False
    assert ok.extra["fraction_of_ceiling"] == pytest.approx(ok.value / math.log2(400))


def test_mi_ceiling_is_h_of_the_labels_used() -> None:
    x, y = unit_norm_embeddings(n=200, classes=4)
    for fn, kw in ((diffusion_spectral_mutual_information, {"device": "cpu", "repetitions": 1}),
                   (binned_shannon_mutual_information, {}), (ksg_mutual_information, {"device": "cpu"})):
        got = fn(x, y, **kw)
        assert got.extra["ceiling"] == pytest.approx(math.log2(4)), fn.__name__  # balanced: log2 k
        assert got.extra["ceiling_rule"] == "H(Y) of the labels used"
    # unbalanced labels: the plug-in entropy of the counts
    yu = np.repeat([0, 1, 2], [100, 60, 40])
    p = np.array([100, 60, 40]) / 200
    got = binned_shannon_mutual_information(x, yu)
    assert got.extra["ceiling"] == pytest.approx(float(-(p * np.log2(p)).sum()))
    # a continuous reference has no finite ceiling
    cont = ksg_mutual_information(x[:, :2], x[:, 2], device="cpu")
    assert cont.extra["ceiling"] is None and cont.extra["saturated"] is False


def test_ksg_at_h_of_y_is_saturated() -> None:
    # labels that x separates perfectly: I(X; Y) = H(Y) = log2 4
    rng = np.random.default_rng(3)
    y = np.arange(400) % 4
    x = 100.0 * y[:, None] + rng.standard_normal((400, 2))
    got = ksg_mutual_information(x, y, device="cpu")
    assert got.value >= SATURATION_FRACTION * 2.0
    assert got.extra["saturated"] is True and got.extra["fraction_of_ceiling"] == pytest.approx(got.value / 2.0)


def test_cse_saturates_when_every_cell_holds_one_row() -> None:
    x = np.random.default_rng(0).standard_normal((200, 40))  # 2^40 cells >> 200 rows
    got = binned_shannon_entropy(x)
    assert got.extra["occupied_cells"] == 200
    assert got.extra["ceiling"] == pytest.approx(math.log2(200)) and got.extra["saturated"] is True
    assert got.value == pytest.approx(math.log2(200), abs=1e-9)
    small = binned_shannon_entropy(np.random.default_rng(0).standard_normal((500, 2)))  # 4 cells for 500 rows
    assert small.extra["ceiling"] == pytest.approx(2.0) and small.extra["ceiling_rule"].startswith("D log bins")


def test_differential_entropy_depends_on_units() -> None:
    x = np.random.default_rng(0).standard_normal((300, 3))
    a = kozachenko_leonenko_entropy(x, device="cpu")
    b = kozachenko_leonenko_entropy(10 * x, device="cpu")
    assert a.extra["depends_on_units"] is True and a.extra["ceiling"] is None
    assert b.value - a.value == pytest.approx(3 * math.log2(10), abs=1e-9)  # H(aX) = H(X) + D log a


def test_table_ceiling_cell() -> None:
    assert format_ceiling({"ceiling": 4.0, "fraction_of_ceiling": 1.0, "saturated": True}) == "4 (100%) saturated"
    assert format_ceiling({"ceiling": 10.0, "fraction_of_ceiling": 0.356, "saturated": False}) == "10 (36%)"
    assert format_ceiling({"depends_on_units": True, "ceiling": None}) == "units-dependent"
    assert format_ceiling({"ceiling": None}) == ""


# ------------------------------------------------------------------------------------------ batch


def test_batch_holds_one_sigma(tmp_path) -> None:
    rng = np.random.default_rng(0)
    first = rng.standard_normal((60, 4))
    second = 5.0 * rng.standard_normal((60, 4))
    np.save(tmp_path / "ep_000.npy", first)
    np.save(tmp_path / "ep_001.npy", second)
    spec = str(tmp_path / "ep_*.npy")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DegenerateKernelWarning)
        rows = run_batch(spec, methods="dse,cse", sigma="median-first", device="cpu").rows
        pooled = run_batch(spec, methods="dse", sigma="median-pooled", device="cpu").rows
    dse_rows = [r for r in rows if r["method"] == "dse"]
    want = resolve_sigma("median", _tensor(first)).value
    assert [r["params"]["sigma"] for r in dse_rows] == [want, want]
    assert all(r["params"]["sigma_rule"] == "median-first" for r in dse_rows)
    assert dse_rows[0]["params"]["sigma_detail"]["from"].endswith("ep_000.npy")
    assert "sigma" not in next(r for r in rows if r["method"] == "cse")["params"]
    # pooled: ceil(4096 / 2) >= 60 rows of each input, i.e. all rows of both
    d2 = np.sort(pdist(np.vstack([first, second]), "sqeuclidean"))
    assert [r["params"]["sigma"] for r in pooled] == pytest.approx([math.sqrt(d2[(d2.size - 1) // 2] / 2)] * 2)
    assert pooled[1]["params"]["sigma_detail"]["rows"] == 120


def test_cli_warns_on_stderr_and_in_json(tmp_path) -> None:
    from typer.testing import CliRunner

    from dsecli.cli import app

    x, _ = unit_norm_embeddings(n=120)
    np.save(tmp_path / "x.npy", x)
    med = resolve_sigma("median", _tensor(x)).value
    res = CliRunner().invoke(app, ["entropy", str(tmp_path / "x.npy"), "--sigma", "10", "--json", "--device", "cpu"])
    assert res.exit_code == 0
    out = json.loads(res.stdout)["results"][0]
    (msg,) = out["warnings"]
    assert f"the median rule would give sigma={med:.4g}" in msg and f"warning: {msg}" in res.stderr
    assert out["extra"]["ceiling"] == pytest.approx(math.log2(120)) and out["extra"]["saturated"] is False
    default = json.loads(CliRunner().invoke(app, ["entropy", str(tmp_path / "x.npy"), "--json", "--device", "cpu"]).stdout)
    assert default["results"][0]["params"]["sigma_rule"] == "median" and default["results"][0]["warnings"] == []


def test_batch_rules_are_named_outside_a_batch() -> None:
    from dsecli.errors import InputError

    with pytest.raises(InputError, match=re.escape(
            "`sigma` must be a number > 0, 'median' or 'sqrt-d'; median-first and median-pooled hold one sigma "
            "across the inputs of a batch (dse batch); got 'median-first'")):
        diffusion_spectral_entropy(np.eye(5), sigma="median-first", device="cpu")
