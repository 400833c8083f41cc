"""The approximate DSE solver against exact eigenvalues, its plan and memory guard, and CPU/CUDA agreement.

Truths: golden values read from tests/golden at test time, and exact spectra from
``torch.linalg.eigvalsh`` of the same operator. The solver must land within the error bound it
reports (and within 0.01 bits) on the golden data and on seeded N = 3,000 sets at t = 1, 2, 5.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from conftest import CUDA, GOLDEN, golden_datasets

from dsecli import diffusion_spectral_entropy, diffusion_spectral_mutual_information
from dsecli.diffusion.kernels import diffusion_operator
from dsecli.diffusion.operators import DenseDiffusionOperator, KernelRowsOperator, build_operator
from dsecli.diffusion.plan import AUTO_EXACT_MAX_N, plan_entropy
from dsecli.diffusion.slq import ApproxSettings, approximate_spectral_entropy
from dsecli.diffusion.spectral import spectral_entropy
from dsecli.errors import ComputationError, InputError, MemoryLimitError

torch = pytest.importorskip("torch")  # module-level torch imports are banned by the lint rules
DATASETS = golden_datasets()
LN2 = math.log(2.0)


def _golden_dse() -> list:
    out = []
    for ds in DATASETS:
        for rec in ds["values_data"]["records"]:
            if rec["quantity"] == "dse":
                out.append(pytest.param(ds, rec, id=f"{ds['dataset']}-{rec['id']}"))
    return out


def _x(ds: dict) -> np.ndarray:
    return np.load(GOLDEN / ds["arrays"]["X"])


def _seeded(kind: str, n: int, d: int = 64, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if kind == "blobs":
        centers = rng.normal(0, 4, (10, d))
        return centers[rng.integers(0, 10, n)] + rng.normal(0, 1, (n, d))
    if kind == "manifold":  # a curved 3-d sheet in d dimensions, small noise
        z = rng.uniform(0, 1, (n, 3))
        q = np.linalg.qr(rng.normal(0, 1, (d, 4)))[0]
        return np.c_[np.sin(6 * z[:, 0]), np.cos(6 * z[:, 0]), z[:, 1:]] @ q.T * 3 + rng.normal(0, 0.05, (n, d))
    return rng.normal(0, 1, (n, d))


# ---------------------------------------------------------------------------------------------
# accuracy


@pytest.mark.skipif(not DATASETS, reason=f"golden data not found at {GOLDEN}")
@pytest.mark.parametrize(("ds", "rec"), _golden_dse())
def test_approx_within_reported_bound_on_golden(ds: dict, rec: dict) -> None:
    got = diffusion_spectral_entropy(_x(ds), sigma=rec["sigma"], t=rec["t"], solver="approx", device="cpu")
    bound = got.extra["error_estimate"]
    assert got.params["solver"] == "approx"
    assert abs(got.value - rec["value"]) <= min(bound, 0.01)
    # the bound meets its target unless the probe budget ran out (then it says so)
    assert got.extra["converged"] == (bound <= 0.01)
    assert got.extra["error_estimate_bits"] == pytest.approx(bound)  # units are bits here


@pytest.mark.skipif(not DATASETS, reason=f"golden data not found at {GOLDEN}")
@pytest.mark.parametrize("name", ["b_blobs_500x32", "d_cube4_500x64"])
def test_approx_float32_within_float32_tolerance(name: str) -> None:
    # golden README 5, float32: t = 1 within 1e-2 bits, t >= 2 within 1e-5 (plus the solver's bound)
    ds = next(d for d in DATASETS if d["dataset"] == name)
    for rec in ds["values_data"]["records"]:
        if rec["quantity"] != "dse" or rec["sigma_name"] == "sigma1":
            continue
        got = diffusion_spectral_entropy(_x(ds), sigma=rec["sigma"], t=rec["t"], solver="approx", device="cpu",
                                         dtype="float32")
        tol = (1e-2 if rec["t"] == 1 else 1e-5) + got.extra["error_estimate"]
        assert abs(got.value - rec["value"]) <= tol, rec["id"]


@pytest.fixture(scope="module")
def seeded_spectra() -> dict:
    """Operators and exact DSE of two seeded N = 3,000 sets at two bandwidths."""
    out = {}
    # "manifold-wide": sigma far above the sheet's scale, so hundreds of eigenpairs are deflated
    for key, kind, sigma in [("blobs", "blobs", 10.0), ("manifold", "manifold", 2.0), ("normal", "normal", 10.0),
                             ("manifold-wide", "manifold", 10.0)]:
        x = torch.as_tensor(_seeded(kind, 3000))
        lam = torch.linalg.eigvalsh(diffusion_operator(x, sigma))
        out[key] = (x, sigma, lam)
    return out


@pytest.mark.parametrize("kind", ["blobs", "manifold", "normal"])
@pytest.mark.parametrize("t", [1, 2, 5])
def test_approx_within_bound_seeded_3000(seeded_spectra: dict, kind: str, t: int) -> None:
    x, sigma, lam = seeded_spectra[kind]
    exact = spectral_entropy(lam, t=t, base=math.e)
    op = DenseDiffusionOperator(x, sigma)
    nats, rep = approximate_spectral_entropy(op, t=t, seed=0)
    assert abs(nats - exact) <= rep["error_estimate_nats"]
    assert abs(nats - exact) / LN2 <= 0.01
    assert rep["deflated_eigenpairs"] >= 1 and rep["probes"] >= 32 and rep["lanczos_steps"] == 20


@pytest.mark.parametrize("key", ["manifold", "manifold-wide"])
def test_float32_storage_and_rows_operator_within_their_bound(seeded_spectra: dict, key: str) -> None:
    # float32 storage: the kept Ritz values converge only to ~u; the bound carries that term
    x, sigma, lam = seeded_spectra[key]
    exact = spectral_entropy(lam, t=1, base=math.e)
    for op in (DenseDiffusionOperator(x, sigma, storage=torch.float32), KernelRowsOperator(x, sigma)):
        nats, rep = approximate_spectral_entropy(op, t=1, seed=1)
        assert abs(nats - exact) <= rep["error_estimate_nats"], op.kind
        assert abs(nats - exact) / LN2 <= 0.01, op.kind


@pytest.mark.parametrize("kind", ["blobs", "uniform", "offset"])
@pytest.mark.parametrize("shrink", [1.0, 0.25])
@pytest.mark.parametrize("d", [8, 64, 300])
def test_kernel_factors_entry_error_within_unit(kind: str, shrink: float, d: int) -> None:
    # the float32 tile against the float64 kernel: every entry within `unit` of itself
    from dsecli.diffusion.kernels import gaussian_kernel, kernel_factors, resolve_sigma

    rng = np.random.default_rng(d)
    n = 600
    if kind == "blobs":
        x = rng.normal(0, 1.5, (10, d))[rng.integers(0, 10, n)] + rng.normal(0, 1, (n, d))
    elif kind == "uniform":
        x = rng.uniform(0, 1, (n, d))
    else:  # far from the origin and anisotropic: centring must happen before float32
        x = rng.normal(0, 1, (n, d)) * np.geomspace(1, 100, d) + 1e4
    xt = torch.as_tensor(x)
    sigma = resolve_sigma("median", xt, seed=0).value * shrink
    g = gaussian_kernel(xt, sigma)
    f = kernel_factors(xt - xt.mean(dim=0, keepdim=True), sigma, dtype=torch.float32)
    tile = torch.tril(f.tile(0, n, 0, n).double())
    low = torch.tril(g)
    normal = low >= 1e-30  # smaller entries underflow float32 (to 0 or subnormals): absolutely negligible
    tiny = (tile - low).abs()[~normal]
    assert tiny.numel() == 0 or float(tiny.max()) < 1e-30
    rel = ((tile - low).abs() / low.clamp(min=1e-300))[normal].max().item()
    assert rel <= f.unit
    assert rel >= f.unit / 100  # the unit is a bound of the right size, not a blanket
    assert bool((torch.diagonal(tile) == 1.0).all())


def test_rows_operator_tiles_in_both_directions_equal_dense(monkeypatch: pytest.MonkeyPatch) -> None:
    # column chunks that straddle the diagonal blocks: the triangle is still covered exactly once
    import dsecli.diffusion.operators as ops

    monkeypatch.setattr(ops, "ROWS_TILE_COLUMNS", 97)
    x = torch.as_tensor(_seeded("blobs", 700, 16))
    dense = DenseDiffusionOperator(x, 5.0)
    rows = KernelRowsOperator(x, 5.0, block_elements=700 * 64, evaluation=torch.float64)
    v = torch.randn(700, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    torch.testing.assert_close(rows.matmat(v), dense.matmat(v), rtol=1e-10, atol=1e-13)
    assert rows.trace == pytest.approx(float(torch.diagonal(dense.a).sum()), rel=1e-12)
    assert rows.frobenius_sq == pytest.approx(dense.frobenius_sq, rel=1e-10)


def test_rows_operator_products_equal_dense() -> None:
    # evaluated in float64, the triangle applied both ways is the dense operator to rounding
    x = torch.as_tensor(_seeded("blobs", 700, 16))
    dense = DenseDiffusionOperator(x, 5.0)
    rows = KernelRowsOperator(x, 5.0, block_elements=700 * 64, evaluation=torch.float64)  # three row blocks
    assert rows.step == 256
    v = torch.randn(700, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(rows.matmat(v), dense.matmat(v), rtol=1e-10, atol=1e-13)
    assert rows.trace == pytest.approx(float(torch.diagonal(dense.a).sum()), rel=1e-12)
    assert rows.frobenius_sq == pytest.approx(dense.frobenius_sq, rel=1e-10)
    # in float32 (the default) every entry errs by at most `unit` of itself, so |A v - A~ v| <= unit A |v|
    # plus the float32 product's own rounding (a few units of 2^-24 of A |v|)
    r32 = KernelRowsOperator(x, 5.0, block_elements=700 * 64)
    assert r32.storage == torch.float32 and 2.0**-24 < r32.unit < 1e-4
    scale = dense.matmat(v.abs())
    err = (r32.matmat(v) - dense.matmat(v)).abs()
    assert bool((err <= (r32.unit + 8 * 2.0**-24) * scale).all())
    assert r32.trace == pytest.approx(rows.trace, rel=r32.unit)
    assert r32.frobenius_sq == pytest.approx(rows.frobenius_sq, rel=4 * r32.unit)
    # the closed-form top eigenvector: A q^1/2 = q^1/2
    v1 = dense.top_eigenvector()[:, None]
    torch.testing.assert_close(dense.matmat(v1), v1, rtol=0, atol=1e-12)


def test_seed_reproducible_and_no_global_rng() -> None:
    x = _seeded("blobs", 800, 16)
    state = torch.random.get_rng_state()
    np_state = np.random.get_state()[1].copy()  # noqa: NPY002 - checking that the legacy global state is untouched
    a = diffusion_spectral_entropy(x, sigma=8.0, solver="approx", seed=3, device="cpu")
    b = diffusion_spectral_entropy(x, sigma=8.0, solver="approx", seed=3, device="cpu")
    c = diffusion_spectral_entropy(x, sigma=8.0, solver="approx", seed=4, device="cpu")
    assert a.value == b.value
    assert a.value != c.value  # another seed: other probes (and still within bounds of each other)
    assert abs(a.value - c.value) <= a.extra["error_estimate"] + c.extra["error_estimate"]
    assert torch.equal(torch.random.get_rng_state(), state)
    assert np.array_equal(np.random.get_state()[1], np_state)  # noqa: NPY002


def test_result_reports_solver_details() -> None:
    x = _seeded("normal", 600, 8)
    r = diffusion_spectral_entropy(x, sigma="median", t=2, solver="approx", base=math.e, device="cpu")
    ex = r.extra
    for key in ("error_estimate", "error_estimate_bits", "stderr_bits", "quadrature_error_bits",
                "deflation_error_bits", "deflated_eigenpairs", "probes", "lanczos_steps", "operator",
                "operator_storage", "krylov_dim", "plan", "timings_s"):
        assert key in ex, key
    assert r.units == "nats"
    assert ex["error_estimate"] == pytest.approx(ex["error_estimate_bits"] * LN2)
    assert r.params["solver"] == "approx" and r.params["tol_bits"] == 0.01
    json.dumps(r.to_dict(), allow_nan=False)


def test_auto_picks_by_size() -> None:
    x = _seeded("blobs", 400, 8)
    r = diffusion_spectral_entropy(x, sigma=6.0, solver="auto", device="cpu")
    assert r.params["solver"] == "exact" and r.params["solver_requested"] == "auto"
    exact = diffusion_spectral_entropy(x, sigma=6.0, device="cpu")
    assert r.value == exact.value
    assert plan_entropy(AUTO_EXACT_MAX_N["cpu"] + 1, 32, solver="auto", device="cpu")["solver"] == "approx"


def test_return_eigenvalues_needs_exact() -> None:
    x = _seeded("blobs", 300, 8)
    with pytest.raises(InputError, match="return_eigenvalues"):
        diffusion_spectral_entropy(x, solver="approx", return_eigenvalues=True, device="cpu")
    r = diffusion_spectral_entropy(x, solver="auto", return_eigenvalues=True, device="cpu")
    assert r.params["solver"] == "exact" and r.eigenvalues.shape == (300,)


# ---------------------------------------------------------------------------------------------
# plan and memory guard


def test_plan_operator_follows_memory() -> None:
    n, d = 50_000, 256
    big = plan_entropy(n, d, solver="approx", device="cpu", memory_bytes=64 * 2**30)
    mid = plan_entropy(n, d, solver="approx", device="cpu", memory_bytes=24 * 2**30)
    small = plan_entropy(n, d, solver="approx", device="cpu", memory_bytes=4 * 2**30)
    assert (big["operator"], big["storage_dtype"]) == ("dense", "float64")
    assert (mid["operator"], mid["storage_dtype"]) == ("dense", "float32")
    assert small["operator"] == "rows" and small["fits"]
    assert big["memory_bytes"] > mid["memory_bytes"] > small["memory_bytes"]
    assert mid["memory_bytes"] >= n * n * 4
    exact = plan_entropy(n, d, solver="exact", device="cpu", memory_bytes=24 * 2**30)
    assert exact["memory_bytes"] >= 2 * n * n * 8 and not exact["fits"]
    for p in (big, mid, small, exact):
        assert p["expected_seconds"] > 0 and p["reason"]
    huge = plan_entropy(200_000, 256, solver="auto", device="cpu", memory_bytes=24 * 2**30)
    assert huge["operator"] == "rows" and huge["fits"] and huge["memory_bytes"] < 8 * 2**30


def test_memory_and_time_guards_raise_with_plan(monkeypatch: pytest.MonkeyPatch) -> None:
    import dsecli.diffusion.plan as plan_mod

    x = _seeded("blobs", 500, 8)
    monkeypatch.setattr(plan_mod, "available_memory_bytes", lambda device: 1_000_000)
    with pytest.raises(MemoryLimitError, match="does not fit: solver exact"):
        diffusion_spectral_entropy(x, solver="exact", device="cpu")
    monkeypatch.undo()
    with pytest.raises(ComputationError, match="max_seconds"):
        diffusion_spectral_entropy(x, solver="exact", device="cpu", max_seconds=1e-9)
    with pytest.raises(InputError, match="solver"):
        diffusion_spectral_entropy(x, solver="lanczos", device="cpu")


# ---------------------------------------------------------------------------------------------
# DSMI: every DSE is taken at a class size, each planned like DSE


def _three_classes(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = np.repeat(np.arange(3), n // 3)
    centers = rng.normal(0, 3, (3, 16))
    return centers[y] + rng.normal(0, 1, (y.size, 16)), y


def test_dsmi_per_subset_kernels_equal_shared_kernel(monkeypatch: pytest.MonkeyPatch) -> None:
    # without room for the N x N kernel, each subset's kernel comes from its own rows: same value
    import dsecli.diffusion.plan as plan_mod

    x, y = _three_classes(600)
    # zero columns change no distance, but make cutting the subsets from one kernel the cheaper way
    x = np.c_[x, np.zeros((x.shape[0], 300))]
    shared = diffusion_spectral_mutual_information(x, y, sigma="median", device="cpu")
    assert shared.extra["shared_kernel"] is True
    room = 2 * 600**2 * 8 - 1  # below two 600 x 600 matrices, far above the 200-row subsets
    monkeypatch.setattr(plan_mod, "available_memory_bytes", lambda device: room)
    alone = diffusion_spectral_mutual_information(x, y, sigma="median", device="cpu")
    assert alone.extra["shared_kernel"] is False
    assert alone.extra["solvers"] == {"200": "exact"}
    assert alone.value == pytest.approx(shared.value, abs=1e-10)
    assert "error_estimate" not in alone.extra  # exact everywhere: nothing to bound


@pytest.mark.parametrize(("counts", "d", "sigma", "shared"), [
    # a numeric sigma: the N x N distances would be computed for the subsets alone
    ([400] * 10, 4096, 1.0, False),  # 10 classes: the sets cover 0.6 N^2 entries, fewer than the N x N kernel
    ([2000, 2000], 64, 1.0, False),  # few features: an entry costs about what gathering it does
    ([2000, 2000], 512, 1.0, True),  # 2 classes: 3 N^2 entries, each dear to compute
    ([2000, 2000], 100, 1.0, False),
    ([2000, 2000], 110, 1.0, True),  # the break-even: N^2 (2 D + 20) = 3 N^2 (2 D - 128) at D = 101
    # the median rule's distances of all rows are kept (N <= 4096): only gathering against computing
    ([400] * 10, 4096, "median", True),
    ([100] * 10, 2048, "median", True),  # the training monitor's conv2 layer
    ([2000, 2000], 64, "median", False),  # gathering an entry costs what computing it does at D = 64
    ([2000, 2000], 65, "median", True),
    ([2500, 2500], 100, "median", False),  # N > 4096: the median rule reads a subsample, nothing is kept
])
def test_dsmi_cuts_subsets_from_the_distances_only_where_cheaper(counts, d, sigma, shared) -> None:
    from dsecli.diffusion.plan import plan_mutual_information

    plan = plan_mutual_information(counts, d, solver="exact", device="cpu", memory_bytes=2**40, sigma=sigma)
    assert plan["shared_kernel"] is shared
    assert plan["kept_distances"] is (sigma == "median" and sum(counts) <= 4096)


def test_median_rule_distances_are_kept_only_where_three_matrices_fit() -> None:
    from dsecli.diffusion.plan import MEMORY_FRACTION, dense_matrix_bytes, keeps_distances

    n, d = 1000, 8
    need = dense_matrix_bytes(n, "float64", copies=3) + n * d * 8 * 2
    have = math.ceil(need / MEMORY_FRACTION) + 1
    assert keeps_distances(n, d, sigma="median", device="cpu", dtype="float64", memory_bytes=have)
    assert not keeps_distances(n, d, sigma="median", device="cpu", dtype="float64", memory_bytes=have * 2 // 3)
    assert not keeps_distances(n, d, sigma=2.0, device="cpu", dtype="float64", memory_bytes=2**40)
    assert not keeps_distances(5000, d, sigma="median", device="cpu", dtype="float64", memory_bytes=2**40)


def test_dsmi_approx_within_its_bound_of_exact() -> None:
    x, y = _three_classes(3000)
    exact = diffusion_spectral_mutual_information(x, y, sigma="median", device="cpu", repetitions=2)
    approx = diffusion_spectral_mutual_information(x, y, sigma="median", device="cpu", repetitions=2,
                                                   solver="approx", tol_bits=0.01)
    assert approx.params["solver"] == "approx" and approx.params["tol_bits"] == 0.01
    assert approx.extra["solvers"] == {"1000": "approx"} and approx.extra["approx_runs"] == 3 * (1 + 2)
    bound = approx.extra["error_estimate"]
    assert 0 < bound <= 0.01  # each DSE ran at tol / 2, so the sum of the weighted bounds meets tol
    assert abs(approx.value - exact.value) <= bound
    # the class terms themselves are within their share of the bound
    for ce, ca in zip(exact.extra["classes"], approx.extra["classes"], strict=True):
        assert abs(ce["h_given_class"] - ca["h_given_class"]) <= 0.005


def test_dsmi_auto_is_exact_below_the_threshold_and_guards_time() -> None:
    x, y = _three_classes(300)
    auto = diffusion_spectral_mutual_information(x, y, device="cpu", solver="auto")
    exact = diffusion_spectral_mutual_information(x, y, device="cpu")
    assert auto.extra["solvers"] == {"100": "exact"} and auto.value == exact.value
    assert auto.params["solver"] == "exact" and auto.params["solver_requested"] == "auto"
    with pytest.raises(ComputationError, match=r"N = 300: about .* DSEs .*max_seconds"):
        diffusion_spectral_mutual_information(x, y, device="cpu", max_seconds=1e-9)
    with pytest.raises(InputError, match="solver"):
        diffusion_spectral_mutual_information(x, y, device="cpu", solver="lanczos")


# VmHWM (peak RSS of this process image): ru_maxrss would carry the parent's peak across fork + exec
_PEAK_SCRIPT = textwrap.dedent("""
    import json, sys
    import numpy as np
    from dsecli import diffusion_spectral_entropy
    def peak():
        with open("/proc/self/status") as fh:
            return next(int(line.split()[1]) * 1024 for line in fh if line.startswith("VmHWM:"))
    n, solver = int(sys.argv[1]), sys.argv[2]
    x = np.random.default_rng(0).normal(size=(n, 16))
    diffusion_spectral_entropy(x[:300], solver=solver, device="cpu", max_n=0)  # load libraries first
    before = peak()
    r = diffusion_spectral_entropy(x, solver=solver, device="cpu", max_n=0)
    after = peak()
    print(json.dumps({"delta": after - before, "plan": r.extra["plan"]["memory_bytes"],
                      "operator": r.extra["plan"]["operator"]}))
""")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/status")
@pytest.mark.parametrize("solver", ["exact", "approx"])
def test_memory_plan_matches_peak_rss(solver: str) -> None:
    # peak resident memory of a fresh process grows by about what the plan says (N^2 terms dominate)
    n = 3000
    out = subprocess.run([sys.executable, "-c", _PEAK_SCRIPT, str(n), solver], capture_output=True, text=True,
                         check=True, timeout=300)
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert 0.6 * got["plan"] <= got["delta"] <= 1.25 * got["plan"] + 64 * 2**20, got


# ---------------------------------------------------------------------------------------------
# CUDA: same code, same numbers in float64


@pytest.mark.cuda
@pytest.mark.skipif(not CUDA, reason="no CUDA device")
@pytest.mark.parametrize("solver", ["exact", "approx"])
def test_cuda_float64_agrees_with_cpu(solver: str) -> None:
    x = _seeded("blobs", 2000, 32)
    cpu = diffusion_spectral_entropy(x, sigma=10.0, t=2, solver=solver, device="cpu")
    gpu = diffusion_spectral_entropy(x, sigma=10.0, t=2, solver=solver, device="cuda")
    assert gpu.params["device"].startswith("cuda")
    # exact: rounding only; approx: same seeded probes (drawn on the CPU), rounding-level differences
    assert gpu.value == pytest.approx(cpu.value, abs=1e-9 if solver == "exact" else 1e-6)


@pytest.mark.cuda
@pytest.mark.skipif(not CUDA, reason="no CUDA device")
def test_cuda_float64_dsmi_agrees_with_cpu() -> None:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 10, 1500)
    x = rng.normal(0, 1, (10, 32))[y] * 3 + rng.normal(0, 1, (1500, 32))
    cpu = diffusion_spectral_mutual_information(x, y, sigma=10.0, device="cpu")
    gpu = diffusion_spectral_mutual_information(x, y, sigma=10.0, device="cuda")
    assert gpu.value == pytest.approx(cpu.value, abs=1e-9)


@pytest.mark.cuda
@pytest.mark.skipif(not CUDA, reason="no CUDA device")
def test_cuda_rows_operator_agrees_with_cpu() -> None:
    x = torch.as_tensor(_seeded("manifold", 1500, 16))
    cpu = build_operator(x, 2.0, kind="rows")
    gpu = build_operator(x.cuda(), 2.0, kind="rows")
    v = torch.randn(1500, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    # both evaluate float32 tiles: each within its unit of the float64 operator
    assert gpu.storage == cpu.storage == torch.float32 and gpu.unit == pytest.approx(cpu.unit)
    scale = cpu.matmat(v.abs())
    err = (gpu.matmat(v.cuda()).cpu() - cpu.matmat(v)).abs()
    assert bool((err <= 2 * (cpu.unit + 8 * 2.0**-24) * scale).all())
    a, ra = approximate_spectral_entropy(cpu, t=1, seed=0, settings=ApproxSettings())
    b, rb = approximate_spectral_entropy(gpu, t=1, seed=0, settings=ApproxSettings())
    assert abs(a - b) <= ra["error_estimate_nats"] + rb["error_estimate_nats"]


def test_kernel_factors_count_reduced_precision_matmuls() -> None:
    # TF32 / bfloat16 GEMMs allowed by the user: the entries' bound says so (and the operator leaves float32)
    from dsecli.diffusion.kernels import kernel_factors

    x = torch.as_tensor(_seeded("blobs", 300, 16))
    xc = x - x.mean(dim=0, keepdim=True)
    before = torch.get_float32_matmul_precision()
    try:
        full = kernel_factors(xc, 5.0, dtype=torch.float32).unit
        torch.set_float32_matmul_precision("high")
        tf32 = kernel_factors(xc, 5.0, dtype=torch.float32).unit
        assert KernelRowsOperator(x, 5.0).storage == torch.float64
    finally:
        torch.set_float32_matmul_precision(before)
    assert tf32 == pytest.approx(full * 2.0**13)


def test_rows_operator_evaluates_in_float64_when_float32_would_err_too_much() -> None:
    # a bandwidth far below the data's norms: float32 exponents would carry relative errors past the limit
    from dsecli.diffusion.kernels import resolve_sigma
    from dsecli.diffusion.operators import ROWS_FLOAT32_MAX_UNIT

    x = torch.as_tensor(_seeded("blobs", 400, 64))
    sigma = resolve_sigma("median", x, seed=0).value
    wide = KernelRowsOperator(x, sigma)
    narrow = KernelRowsOperator(x, sigma / 12)
    assert wide.storage == torch.float32 and wide.unit <= ROWS_FLOAT32_MAX_UNIT
    assert narrow.storage == torch.float64 and narrow.unit < 1e-10
    dense = DenseDiffusionOperator(x, sigma / 12)
    v = torch.randn(400, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(narrow.matmat(v), dense.matmat(v), rtol=1e-9, atol=1e-12)
