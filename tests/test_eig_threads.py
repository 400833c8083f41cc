"""The thread rule of small CPU eigenproblems (dsecli.diffusion.spectrum.SINGLE_THREAD_EIG_ROWS)."""

from __future__ import annotations

import numpy as np
import pytest

from dsecli.diffusion import spectrum
from dsecli.diffusion.spectrum import SINGLE_THREAD_EIG_ROWS, symmetric_eigenvalues


@pytest.mark.parametrize(("n", "policy", "threads", "expected"), [
    (SINGLE_THREAD_EIG_ROWS - 1, "PASSIVE", 2, 1),
    (SINGLE_THREAD_EIG_ROWS, "PASSIVE", 2, None),  # the boundary belongs to the multi-threaded side
    (50, "passive", 2, 1),
    (50, "ACTIVE", 2, None),
    (50, "", 2, None),
    (50, "PASSIVE", 1, None),
])
def test_the_rule(monkeypatch, n, policy, threads, expected) -> None:
    import torch

    monkeypatch.setenv("OMP_WAIT_POLICY", policy)
    monkeypatch.setattr(torch, "get_num_threads", lambda: threads)
    assert spectrum._eig_threads(torch.zeros(n, n, dtype=torch.float64)) == expected


def test_eigenvalues_unchanged_and_thread_count_restored(monkeypatch) -> None:
    import torch

    monkeypatch.setenv("OMP_WAIT_POLICY", "PASSIVE")
    rng = np.random.default_rng(0)
    m = rng.normal(size=(300, 300))
    a = m @ m.T
    before = torch.get_num_threads()
    seen = []
    real = torch.linalg.eigvalsh

    def spy(x):
        seen.append(torch.get_num_threads())
        return real(x)

    monkeypatch.setattr(torch.linalg, "eigvalsh", spy)
    got = symmetric_eigenvalues(torch.as_tensor(a)).numpy()
    np.testing.assert_allclose(got, np.linalg.eigvalsh(a), rtol=1e-10, atol=1e-8)
    assert seen == [1 if before > 1 else before]
    assert torch.get_num_threads() == before


@pytest.mark.parametrize("n", [40, 300, spectrum.CONCURRENT_EIG_MAX_ROWS + 1])
def test_many_eigenproblems_equal_one_by_one_and_threads_restored(monkeypatch, n) -> None:
    # concurrent (small) or sequential (large): the same eigenvalues as numpy, in order
    import torch

    monkeypatch.setattr(spectrum, "idle_cores", lambda: 2.0)  # concurrent where the size allows, loaded or not
    if n > 1000:  # a large first matrix sends all to the sequential path; keep the test cheap
        monkeypatch.setattr(spectrum, "CONCURRENT_EIG_MAX_ROWS", 100)
        n = 150
    rng = np.random.default_rng(n)
    mats = [rng.normal(size=(n, n)) for _ in range(5)]
    mats = [m + m.T for m in mats]
    built = []

    def build(i):
        built.append(i)
        return torch.as_tensor(mats[i])

    before = torch.get_num_threads()
    got = spectrum.symmetric_eigenvalues_many(build, len(mats))
    assert sorted(built) == list(range(5))
    assert torch.get_num_threads() == before
    for m, lam in zip(mats, got):
        np.testing.assert_allclose(lam.numpy(), np.linalg.eigvalsh(m), rtol=0, atol=1e-10 * np.abs(m).sum())
    assert spectrum.symmetric_eigenvalues_many(build, 0) == []


def test_many_eigenproblems_report_a_failure_as_computation_error(monkeypatch) -> None:
    import torch

    from dsecli.errors import ComputationError

    def broken(a):
        raise torch.linalg.LinAlgError("linalg.eigvalsh: The algorithm failed to converge")

    monkeypatch.setattr(torch.linalg, "eigvalsh", broken)
    before = torch.get_num_threads()
    with pytest.raises(ComputationError, match="eigenvalue solver failed: linalg.eigvalsh: The algorithm failed"):
        spectrum.symmetric_eigenvalues_many(lambda i: torch.eye(20, dtype=torch.float64), 4)
    assert torch.get_num_threads() == before


@pytest.mark.parametrize(("running", "cores", "idle"), [("1/80", 2, 2.0), ("2/80", 2, 1.0), ("5/80", 2, 0.0),
                                                         ("3/99", 8, 6.0)])
def test_idle_cores_reads_the_running_count(monkeypatch, running, cores, idle) -> None:
    import builtins
    import io

    real_open = builtins.open

    def fake_open(path, *a, **k):
        if str(path) == "/proc/loadavg":
            return io.StringIO(f"1.00 0.50 0.25 {running} 12345\n")
        return real_open(path, *a, **k)

    monkeypatch.setattr(builtins, "open", fake_open)
    monkeypatch.setattr(spectrum.os, "sched_getaffinity", lambda pid: set(range(cores)), raising=False)
    assert spectrum.idle_cores() == idle


def test_busy_machine_solves_one_after_another(monkeypatch) -> None:
    # one idle core: no worker pool (two workers would share the core)
    import concurrent.futures

    import torch

    monkeypatch.setattr(spectrum, "idle_cores", lambda: 1.0)

    def no_pool(*a, **k):
        raise AssertionError("a worker pool was started on a busy machine")

    monkeypatch.setattr(concurrent.futures, "ThreadPoolExecutor", no_pool)
    got = spectrum.symmetric_eigenvalues_many(lambda i: torch.eye(30, dtype=torch.float64) * (i + 1), 3)
    assert [float(v.max()) for v in got] == [1.0, 2.0, 3.0]
