"""Eigensolvers and their thread rule (dsecli.diffusion.eigen): right values, and bits that do not depend on load."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from dsecli.diffusion import eigen

ROOT = Path(__file__).resolve().parents[1]
LIMIT = eigen.NUMPY_EIG_MAX_ROWS


def _sym(rng: np.random.Generator, n: int) -> np.ndarray:
    m = rng.normal(size=(n, n))
    return m + m.T


def test_a_batch_straddling_the_threshold_gives_numpys_eigenvalues_in_order(monkeypatch) -> None:
    import torch
    from threadpoolctl import threadpool_info

    monkeypatch.setattr(eigen, "NUMPY_EIG_MAX_ROWS", 100)  # small matrices on both sides: a quick test
    rng = np.random.default_rng(7)
    sizes = [60, 60, 100, 60, 3, 61, 61, 60, 99, 60, 130]
    mats = [_sym(rng, k) for k in sizes]
    built = []

    def build(i):
        built.append((i, torch.get_num_threads()))
        return torch.as_tensor(mats[i])

    threads, blas = torch.get_num_threads(), [i["num_threads"] for i in threadpool_info()]
    got = eigen.symmetric_eigenvalues_many(build, len(mats), sizes=sizes)
    assert torch.get_num_threads() == threads
    assert [i["num_threads"] for i in threadpool_info()] == blas
    assert sorted(i for i, _ in built) == list(range(len(sizes)))  # each built once
    assert {t for _, t in built} == {1}  # every matrix built on one torch thread
    assert [int(v.shape[0]) for v in got] == sizes
    for m, lam in zip(mats, got):
        np.testing.assert_allclose(lam.numpy(), np.linalg.eigvalsh(m), rtol=0, atol=1e-11 * np.abs(m).sum())
    # without sizes: one after another, the same bits; and each problem as it is alone
    again = eigen.symmetric_eigenvalues_many(lambda i: torch.as_tensor(mats[i]), len(mats))
    assert all(torch.equal(a, b) for a, b in zip(got, again))
    for i in (2, 4, 8):
        assert torch.equal(eigen.symmetric_eigenvalues(torch.as_tensor(mats[i])), got[i])
    assert eigen.symmetric_eigenvalues_many(build, 0) == []


@pytest.mark.parametrize("user_threads", [1, 2, 3])
def test_the_rule_is_a_function_of_size_dtype_device_and_the_users_threads_only(monkeypatch, user_threads) -> None:
    # nothing about the machine may enter: not its load, not its cores
    import builtins

    import torch

    def forbidden(*a, **k):
        raise AssertionError("the thread rule looked at the machine")

    eigen._blas_controller()  # threadpoolctl's scan of the loaded libraries, made before the trap is set
    monkeypatch.setattr(torch, "get_num_threads", lambda: user_threads)
    monkeypatch.setattr(builtins, "open", forbidden)
    for name in ("getloadavg", "cpu_count", "sched_getaffinity", "process_cpu_count"):
        monkeypatch.setattr(os, name, forbidden, raising=False)
    cpu, f64, f32 = torch.device("cpu"), torch.float64, torch.float32
    for count in (1, 2, 10):
        assert eigen.eig_schedule(200, count, dtype=f64, device=cpu) == ("numpy", min(count, user_threads), 1)
        assert eigen.eig_schedule(LIMIT - 1, count, dtype=f64, device="cpu") == ("numpy", min(count, user_threads), 1)
        assert eigen.eig_schedule(LIMIT, count, dtype=f64, device=cpu) == ("torch", 1, user_threads)
        assert eigen.eig_schedule(200, count, dtype=f32, device=cpu) == ("torch", 1, user_threads)
        assert eigen.eig_schedule(200, count, dtype=f64, device=torch.device("cuda")) == ("torch", 1, user_threads)
    rng = np.random.default_rng(1)
    mats = [_sym(rng, k) for k in (50, 50, 120)]
    got = eigen.symmetric_eigenvalues_many(lambda i: torch.as_tensor(mats[i]), 3, sizes=[50, 50, 120])
    assert [int(v.shape[0]) for v in got] == [50, 50, 120]
    assert "loadavg" not in Path(eigen.__file__).read_text()


def test_batches_use_the_users_thread_count_for_workers_and_torch_solves(monkeypatch) -> None:
    # a slip such as os.cpu_count() or the idle cores instead of torch.get_num_threads() shows here
    import torch

    from dsecli.device import cpu_threads

    monkeypatch.setattr(eigen, "NUMPY_EIG_MAX_ROWS", 100)
    rng = np.random.default_rng(3)
    mats = [_sym(rng, 40) for _ in range(40)] + [_sym(rng, 120)]
    pools, solves = [], []
    real_pool, real_solve = eigen.ThreadPoolExecutor, torch.linalg.eigvalsh

    def pool(workers, **k):
        pools.append(workers)
        return real_pool(workers, **k)

    def solve(a):
        solves.append((a.shape[-1], torch.get_num_threads()))
        return real_solve(a)

    monkeypatch.setattr(eigen, "ThreadPoolExecutor", pool)
    monkeypatch.setattr(torch.linalg, "eigvalsh", solve)
    for threads in (1, 2, 3):
        pools.clear()
        solves.clear()
        with cpu_threads(threads):
            eigen.symmetric_eigenvalues_many(lambda i: torch.as_tensor(mats[i]), len(mats), sizes=[len(m) for m in mats])
            assert torch.get_num_threads() == threads
        assert pools == ([] if threads == 1 else [threads])
        assert solves == [(120, threads)]


@pytest.mark.parametrize(("library", "message"), [
    ("torch", "linalg.eigvalsh: The algorithm failed to converge"), ("numpy", "Eigenvalues did not converge")])
def test_a_failure_is_a_computation_error_and_threads_are_restored(monkeypatch, library, message) -> None:
    import torch

    from dsecli.errors import ComputationError

    where, error = (torch.linalg, torch.linalg.LinAlgError) if library == "torch" else (np.linalg, np.linalg.LinAlgError)

    def broken(a):
        raise error(message)

    monkeypatch.setattr(where, "eigvalsh", broken)
    dtype = torch.float32 if library == "torch" else torch.float64
    before = torch.get_num_threads()
    with pytest.raises(ComputationError, match=f"eigenvalue solver failed: {message}"):
        eigen.symmetric_eigenvalues_many(lambda i: torch.eye(20, dtype=dtype), 4, sizes=[20] * 4)
    with pytest.raises(ComputationError, match=f"eigenvalue solver failed: {message}"):
        eigen.symmetric_eigenvalues(torch.eye(20, dtype=dtype))
    assert torch.get_num_threads() == before


def test_numpy_calls_keep_equal_sizes_together_and_release_the_gil() -> None:
    sizes = [200] * 6 + [800] * 3 + [200] * 2 + [50]
    calls = eigen._numpy_calls(list(range(1, len(sizes))), sizes)
    assert [i for c in calls for i in c] == list(range(1, len(sizes)))  # every problem once, in order
    assert all(len({sizes[i] for i in c}) == 1 for c in calls)
    assert [len(c) for c in calls] == [5, 1, 1, 1, 2, 1]
    assert all(len(c) * sizes[c[0]] > eigen.NUMPY_GIL_FREE_ROWS for c in calls[:4])


_CHILD = r"""
import json, numpy as np, torch
import dsecli
torch.set_num_threads(2)  # the user's setting, the same in both runs
rng = np.random.default_rng(4)
centres = rng.normal(0.0, 1.5, (10, 16))
labels = rng.integers(0, 10, 2000)[:1800]
x = centres[labels] + rng.normal(size=(2000, 16))[:1800]
out = {}
for n in (1200, 1800):
    r = dsecli.diffusion_spectral_entropy(x[:n], sigma=4.0, t=1, max_n=0, device="cpu", solver="exact")
    out[f"dse_{n}"] = r.value.hex()
m = dsecli.diffusion_spectral_mutual_information(x, labels, sigma=4.0, t=1, max_n=0, device="cpu", solver="exact")
out["dsmi"] = m.value.hex()
print(json.dumps(out))
"""


def _child() -> dict:
    # sleeping OpenMP waits keep the busy run short; the wait policy changes timing, never values
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_WAIT_POLICY": "PASSIVE"}
    proc = subprocess.run([sys.executable, "-c", _CHILD], env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    import json

    return json.loads(proc.stdout.strip().splitlines()[-1])


def _expected_dse() -> dict:
    # what the rule says, done by hand: the kernel on torch's 2 threads, then N = 1,200 by NumPy on one BLAS
    # thread and N = 1,800 by torch on 2 threads. Both runs must give these bits, however loaded the machine
    # (a rule that looked at the load would give other bits on a machine that is busy in both runs).
    import torch
    from threadpoolctl import threadpool_limits

    from dsecli.device import cpu_threads
    from dsecli.diffusion.kernels import gaussian_kernel, symmetric_normalize_
    from dsecli.diffusion.spectral import spectral_entropy

    rng = np.random.default_rng(4)
    centres = rng.normal(0.0, 1.5, (10, 16))
    labels = rng.integers(0, 10, 2000)[:1800]
    x = torch.as_tensor(centres[labels] + rng.normal(size=(2000, 16))[:1800])
    with cpu_threads(2):
        small = symmetric_normalize_(gaussian_kernel(x[:1200], 4.0)).numpy()
        large = symmetric_normalize_(gaussian_kernel(x, 4.0))
        lam_large = torch.linalg.eigvalsh(large)
    with threadpool_limits(1, user_api="blas"):
        lam_small = np.linalg.eigvalsh(small)
    return {"dse_1200": spectral_entropy(lam_small).hex(), "dse_1800": spectral_entropy(lam_large).hex()}


def test_dse_and_dsmi_give_the_same_bits_on_an_idle_and_a_busy_machine() -> None:
    idle = _child()
    burners = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(os.cpu_count() or 1)]
    try:
        time.sleep(0.2)
        busy = _child()
    finally:
        for p in burners:
            p.kill()
            p.wait()
    assert busy == idle
    assert {k: idle[k] for k in ("dse_1200", "dse_1800")} == _expected_dse()


def test_importing_the_library_changes_no_environment_and_the_program_asks_for_sleeping_waits(monkeypatch) -> None:
    code = ("import os, sys; before = dict(os.environ); import dsecli, dsecli.cli, dsecli.methods; "
            "sys.exit(0 if dict(os.environ) == before else 1)")
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    assert subprocess.run([sys.executable, "-c", code], env=env, check=False).returncode == 0
    import dsecli.cli

    ran: list[str | None] = []
    monkeypatch.setattr(dsecli.cli, "app", lambda **kw: ran.append(os.environ.get("OMP_WAIT_POLICY")))
    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    dsecli.cli.main()
    monkeypatch.setenv("OMP_WAIT_POLICY", "ACTIVE")  # the user's choice stands
    dsecli.cli.main()
    assert ran == ["PASSIVE", "ACTIVE"]
