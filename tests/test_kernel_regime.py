"""The kernel-regime check on sampled pairs: its confidence bracket, the exact fallback at the
thresholds, determinism, its cost (no sort of all pairs, no Gram product), and sigma at the ends
of the double range."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

from dsecli import diffusion_spectral_entropy, diffusion_spectral_mutual_information
from dsecli.diffusion import kernels
from dsecli.diffusion.kernels import (
    FLAT_MEDIAN_AFFINITY,
    ISOLATED_MEDIAN_AFFINITY,
    MEDIAN_MAX_ROWS,
    REGIME_CONFIDENCE,
    REGIME_SAMPLE_PAIRS,
    classify_median_affinity,
    gaussian_kernel,
    kernel_regime,
    median_bracket,
    resolve_sigma,
    sample_pair_sq_dists,
)
from dsecli.errors import DegenerateKernelWarning, InputError


def _tensor(x: np.ndarray):  # noqa: ANN202 - a torch.Tensor (torch is imported lazily)
    import torch

    return torch.from_numpy(np.ascontiguousarray(x, dtype=np.float64))


def _exact_lower_median(x: np.ndarray, seed: int = 0) -> float:
    """The population's lower median, as the median rule computes it (all pairs, one selection)."""
    vals, _ = kernels._pair_sq_dists(_tensor(x), seed=seed)
    return kernels._lower_median(vals)


# ------------------------------------------------------------------------------------------ the bracket


@pytest.mark.parametrize(("m", "p"), [(16384, 0.5), (16384, 4 / 7), (1000, 0.5), (301, 0.3), (40, 0.5)])
def test_median_bracket_is_the_binomial_bound(m: int, p: float) -> None:
    from scipy.stats import binom

    alpha = 1.0 - REGIME_CONFIDENCE
    lo, hi = median_bracket(m, p)
    cdf = binom.cdf(np.arange(m), m, p)  # P(S <= j)
    sf = binom.sf(np.arange(m), m, p)  # P(S > j)
    want_lo = np.flatnonzero(cdf <= alpha / 2)
    want_hi = np.flatnonzero(sf <= alpha / 2)
    assert lo == (int(want_lo[-1]) if want_lo.size else None)
    assert hi == (int(want_hi[0]) if want_hi.size else None)
    # the sample's order statistics s[lo] <= M <= s[hi] miss exactly when S <= lo or S > hi
    miss = (binom.cdf(lo, m, p) if lo is not None else 0.0) + (binom.sf(hi, m, p) if hi is not None else 0.0)
    assert miss <= alpha
    if m == 16384 and p == 0.5:  # a bracket of +-2 % of the ranks around the median
        assert 0.48 * m < lo < 0.5 * m < hi < 0.52 * m


def test_bracket_covers_the_population_median_at_its_stated_rate() -> None:
    # an empirical check at a looser confidence (so that misses happen): binomial bounds hold for
    # any population, here one with ties and a gap right at the median
    rng = np.random.default_rng(3)
    population = np.concatenate([np.full(500, 1.0), np.full(499, 2.0), rng.uniform(0, 3, 1)])
    k = (population.size - 1) // 2
    median = np.sort(population)[k]
    m, confidence = 201, 0.9
    lo, hi = median_bracket(m, (k + 1) / population.size, confidence)
    draws = np.sort(rng.choice(population, (4000, m)), axis=1)
    covered = (draws[:, lo] <= median) & (median <= draws[:, hi])
    assert covered.mean() >= confidence - 3 * math.sqrt(confidence * (1 - confidence) / 4000)


def test_sampled_pairs_are_distinct_rows_of_the_median_rule() -> None:
    import torch

    x = _tensor(3.0 * np.eye(40))  # every pair of distinct rows at squared distance 18, a row with itself at 0
    d2 = sample_pair_sq_dists(x, 5000, seed=1)
    assert d2.shape == (5000,) and torch.all(d2 == 18.0)
    # above 4,096 rows the pairs are drawn among the median rule's rows only
    n = MEDIAN_MAX_ROWS + 50
    rows = kernels._median_rule_rows(n, 2)
    assert rows is not None and rows.size == MEDIAN_MAX_ROWS
    mark = np.zeros((n, 1))
    mark[np.setdiff1d(np.arange(n), rows)] = 1e6  # rows outside the subsample are far away
    assert float(sample_pair_sq_dists(_tensor(mark), 20000, seed=2, rows=rows).max()) == 0.0


# ------------------------------------------------------------------------------------------ thresholds


def two_level(n1: int, n2: int, within: float, between: float) -> np.ndarray:
    """n1 + n2 rows whose squared distances are ``within`` inside each group and ``between`` across."""
    n = n1 + n2
    x = np.zeros((n, n + 1))
    x[:, :n] = math.sqrt(within / 2.0) * np.eye(n)
    x[n1:, n] = math.sqrt(between - within)
    return x


@pytest.mark.parametrize(("threshold", "n1", "n2", "want"), [
    (FLAT_MEDIAN_AFFINITY, 313, 287, "flat"),  # median just above 0.9 (within pairs: a majority of 38)
    (FLAT_MEDIAN_AFFINITY, 300, 300, None),  # just below 0.9 (within pairs one short of half)
    (ISOLATED_MEDIAN_AFFINITY, 313, 287, None),  # just above 1e-3
    (ISOLATED_MEDIAN_AFFINITY, 300, 300, "isolated"),  # just below 1e-3
])
def test_threshold_decided_by_the_exact_median_where_the_sample_cannot(threshold: float, n1: int, n2: int,
                                                                       want: str | None) -> None:
    # half the pairs just above the threshold, half just below: the sample's median lands on either
    # side (about one seed in two), so only the exact selection can classify
    delta = 1e-3
    x = two_level(n1, n2, -2.0 * math.log(threshold * (1 + delta)), -2.0 * math.log(threshold * (1 - delta)))
    xt = _tensor(x)
    m_exact = _exact_lower_median(x)
    assert classify_median_affinity(math.exp(-m_exact / 2.0)) == want
    misled = 0
    for seed in range(6):
        reg = kernel_regime(xt, 1.0, seed=seed)
        assert reg.detail["sampled_pairs"] == REGIME_SAMPLE_PAIRS < reg.detail["pairs"] == 600 * 599 // 2
        assert reg.detail["median"] == "selected" and reg.kind == want
        assert reg.median_affinity == pytest.approx(math.exp(-m_exact / 2.0), rel=1e-12)
        assert reg.median_rule_sigma == pytest.approx(math.sqrt(m_exact / 2.0), rel=1e-12)
        sample = np.sort(sample_pair_sq_dists(xt, REGIME_SAMPLE_PAIRS, seed=seed).numpy())
        misled += classify_median_affinity(math.exp(-sample[(sample.size - 1) // 2] / 2.0)) != want
    assert misled >= 1  # the sample alone would have got it wrong for some seed
    # the same decision inside DSE: a warning exactly when the exact median is past the threshold
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", DegenerateKernelWarning)
        got = diffusion_spectral_entropy(x, sigma=1.0, device="cpu")
    assert got.params["kernel_regime"]["regime"] == (want or "informative")
    assert any(issubclass(w.category, DegenerateKernelWarning) for w in caught) == (want is not None)


@pytest.mark.parametrize("side", ["flat", "isolated"])
def test_sigma_on_the_threshold_selects_the_median_of_the_4096_row_subsample(side: str) -> None:
    n = MEDIAN_MAX_ROWS + 200
    x = np.random.default_rng(4).standard_normal((n, 3)) * np.array([1.0, 3.0, 0.2])
    m_exact = _exact_lower_median(x, seed=7)  # over the median rule's seeded 4,096 rows
    a = FLAT_MEDIAN_AFFINITY if side == "flat" else ISOLATED_MEDIAN_AFFINITY
    sigma = math.sqrt(m_exact / (-2.0 * math.log(a)))  # the population median's affinity is the threshold
    reg = kernel_regime(_tensor(x), sigma, seed=7)
    assert reg.detail["median"] == "selected" and reg.detail["rows"] == MEDIAN_MAX_ROWS
    assert reg.median_affinity == pytest.approx(math.exp(-m_exact / (2.0 * sigma * sigma)), rel=1e-13)
    assert reg.median_rule_sigma == pytest.approx(resolve_sigma("median", _tensor(x), seed=7).value, rel=1e-14)
    assert reg.kind == classify_median_affinity(reg.median_affinity)


def test_band_selection_with_ties_at_its_ends(monkeypatch: pytest.MonkeyPatch) -> None:
    # a small integer lattice: few distinct distances, each shared by many pairs
    x = np.array([[i, j] for i in range(9) for j in range(7)], dtype=np.float64)
    xt = _tensor(x)
    vals, _ = kernels._pair_sq_dists(xt, seed=0)
    ordered = np.sort(vals.numpy())
    k = (ordered.size - 1) // 2
    median = ordered[k]
    assert (ordered == median).sum() > 10
    distinct = np.unique(ordered)
    at = int(np.searchsorted(distinct, median))

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("the band held the median: no selection among all pairs")

    monkeypatch.setattr(kernels, "_pair_sq_dists", refuse)
    for lo, hi in [(median, median), (distinct[at - 1], median), (median, distinct[at + 1]),
                   (distinct[at - 2], distinct[at + 3]), (0.0, math.inf), (ordered[k - 1], ordered[k + 1])]:
        assert kernels._select_pair_median(xt, None, float(lo), float(hi)) == median
    monkeypatch.undo()
    # a band that misses the median still gives it, from every pair
    for lo, hi in [(distinct[at + 1], distinct[at + 2]), (0.0, distinct[at - 1])]:
        assert kernels._select_pair_median(xt, None, float(lo), float(hi)) == median


def test_thresholds_themselves_are_informative() -> None:
    assert classify_median_affinity(FLAT_MEDIAN_AFFINITY) is None
    assert classify_median_affinity(ISOLATED_MEDIAN_AFFINITY) is None
    assert classify_median_affinity(math.nextafter(FLAT_MEDIAN_AFFINITY, 1.0)) == "flat"
    assert classify_median_affinity(math.nextafter(ISOLATED_MEDIAN_AFFINITY, 0.0)) == "isolated"


# ------------------------------------------------------------------------------------------ determinism, cost


def blobs(n: int, d: int = 16, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 10, n)
    return rng.normal(0.0, 1.5, (10, d))[labels] + rng.standard_normal((n, d)), labels


def test_same_seed_same_bits() -> None:
    x, _ = blobs(1500)
    xt = _tensor(x)
    for sigma in (0.5, 4.0, 40.0):
        a, b = kernel_regime(xt, sigma, seed=3), kernel_regime(xt, sigma, seed=3)
        assert a.to_dict() == b.to_dict() and a.detail["median"] == "sample"
        assert a.affinity_quantiles != kernel_regime(xt, sigma, seed=4).affinity_quantiles
    # the reported numbers are the sample's order statistics: the lower median, the quantiles' ranks
    sample = np.sort(sample_pair_sq_dists(xt, REGIME_SAMPLE_PAIRS, seed=3).numpy())
    m = sample.size
    reg = kernel_regime(xt, 4.0, seed=3)
    assert reg.median_affinity == math.exp(-sample[(m - 1) // 2] / 32.0)
    assert reg.median_rule_sigma == math.sqrt(sample[(m - 1) // 2] / 2.0)
    assert reg.affinity_quantiles["q05"] == math.exp(-sample[round(0.95 * (m - 1))] / 32.0)
    assert reg.fraction_above_0_99 == np.count_nonzero(np.exp(-sample / 32.0) > 0.99) / m
    assert reg.detail["median_affinity_interval"] == [
        math.exp(-sample[median_bracket(m)[1]] / 32.0), math.exp(-sample[median_bracket(m)[0]] / 32.0)]
    r1 = diffusion_spectral_entropy(x, sigma=0.5, device="cpu", max_n=0)
    r2 = diffusion_spectral_entropy(x, sigma=0.5, device="cpu", max_n=0)
    assert r1.params["kernel_regime"] == r2.params["kernel_regime"] and r1.warnings == r2.warnings


@pytest.mark.parametrize("sigma", [0.5, 4.0, 40.0])  # isolated, informative, flat
def test_the_check_never_sorts_all_pairs_nor_forms_a_gram(monkeypatch: pytest.MonkeyPatch, sigma: float) -> None:
    import torch

    x, y = blobs(1200)  # 719,400 pairs
    calls = {"sort": 0, "kthvalue": 0}
    sorts = {"torch": torch.sort, "numpy": np.sort}

    def small_sort(library: str):  # noqa: ANN202
        def sort(a, *args, **kwargs):  # noqa: ANN001, ANN202
            calls["sort"] += 1
            assert np.size(a) <= REGIME_SAMPLE_PAIRS, f"a sort of {np.size(a):,} values"
            return sorts[library](a, *args, **kwargs)
        return sort

    def no_kthvalue(*args: object, **kwargs: object) -> None:
        raise AssertionError("a selection among all pairs")

    def no_gram(*args: object, **kwargs: object) -> None:
        raise AssertionError("the check formed pairwise distances")

    xt = _tensor(x)
    with monkeypatch.context() as patch:
        patch.setattr(torch, "sort", small_sort("torch"))
        patch.setattr(np, "sort", small_sort("numpy"))
        patch.setattr(torch, "kthvalue", no_kthvalue)
        for name in ("_pair_sq_dists", "_select_pair_median", "pairwise_sq_dists", "_sq_dists_block"):
            patch.setattr(kernels, name, no_gram)
        reg = kernel_regime(xt, sigma)
    assert calls["sort"] == 1 and reg.detail["median"] == "sample"
    # inside DSMI (whose own kernel forms distances): the check sorts no more than its sample
    monkeypatch.setattr(torch, "sort", small_sort("torch"))
    monkeypatch.setattr(np, "sort", small_sort("numpy"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DegenerateKernelWarning)
        got = diffusion_spectral_mutual_information(x, y, sigma=sigma, repetitions=1, device="cpu", max_n=0)
    assert got.params["kernel_regime"]["regime"] == reg.to_dict()["regime"]


# ------------------------------------------------------------------------------------------ sigma at the ends


@pytest.mark.parametrize("sigma", [1e308, 1e200, 9.5e153, 1.3e154, 7e153, 1e20])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_huge_sigma_is_flat_not_an_error(sigma: float, dtype: str) -> None:
    x, _ = blobs(200, d=4)  # 19,900 pairs: the sampled check
    with pytest.warns(DegenerateKernelWarning, match="the kernel sees one blob"):
        got = diffusion_spectral_entropy(x, sigma=sigma, device="cpu", dtype=dtype)
    assert got.value == pytest.approx(0.0, abs=1e-6 if dtype == "float64" else 1e-3)  # float32: rounding
    regime = got.params["kernel_regime"]
    assert regime["regime"] == "flat" and regime["median_affinity"] == 1.0


def test_huge_sigma_on_huge_data_keeps_the_kernel() -> None:
    # exponents of order 1e-3 with sigma past 6.7e153, where 1/(2 sigma^2) is subnormal (or 0 from
    # 1.3e154): the kernel, the check and DSE are those of the same data in units 1e152 times smaller
    x, _ = blobs(80, d=3)
    unit = 1e152
    big = gaussian_kernel(_tensor(x * unit), 100.0 * unit)
    small = gaussian_kernel(_tensor(x), 100.0).numpy()
    assert small.min() < 0.995  # not all ones
    assert np.allclose(big.numpy(), small, rtol=1e-13, atol=0)
    for s in (7e153, 1e154, 2e154):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DegenerateKernelWarning)
            small_dse = diffusion_spectral_entropy(x, sigma=s / unit, device="cpu")
            large_dse = diffusion_spectral_entropy(x * unit, sigma=s, device="cpu")
        assert small_dse.value > 1e-4
        assert large_dse.value == pytest.approx(small_dse.value, rel=1e-8)
        assert large_dse.params["kernel_regime"]["median_affinity"] == pytest.approx(
            small_dse.params["kernel_regime"]["median_affinity"], rel=1e-12)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_smallest_sigma_is_isolated_and_one_below_is_refused(dtype: str) -> None:
    import torch

    x, _ = blobs(40, d=4)
    smallest = 2.0 * math.sqrt(0.5 / torch.finfo(getattr(torch, dtype)).max)
    with pytest.warns(DegenerateKernelWarning, match="every point is nearly alone"):
        got = diffusion_spectral_entropy(x, sigma=smallest, device="cpu", dtype=dtype)
    assert got.value == pytest.approx(math.log2(40), rel=1e-6)
    assert got.params["kernel_regime"]["median_affinity"] == 0.0
    with pytest.raises(InputError, match=r"^`sigma` must be >= .* \(1/\(2 sigma\^2\) overflows below\)"):
        diffusion_spectral_entropy(x, sigma=smallest * (1 - 1e-9), device="cpu", dtype=dtype)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_kernel_factors_past_sigma_squared_overflow(dtype: str) -> None:
    # the approximate solver's factored kernel: sigma^2 overflows a double from 1.3e154 (it raised
    # OverflowError), and 1/sigma^2 is subnormal in the storage dtype well before
    import torch

    x, _ = blobs(50, d=3)
    xt = _tensor(x)
    xc = xt - xt.mean(dim=0, keepdim=True)
    store = getattr(torch, dtype)
    tol = 1e-14 if dtype == "float64" else 2e-7
    for unit, sigma in ((1e153, 1.2e154), (1e150, 1e151), (1e17, 3e19), (1.0, 1e308)):
        tile = kernels.kernel_factors(xc * unit, sigma, dtype=store).tile(0, 50, 0, 50).double().numpy()
        want = gaussian_kernel(xt, sigma / unit).numpy()
        assert np.abs(tile - want).max() < tol
