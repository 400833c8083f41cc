"""One memory model and one Gaussian kernel for every dense path.

The memory guard (:func:`dsecli.diffusion.plan.check_dense_memory`) and the plans of DSE and DSMI
use the same rule: the bytes needed must be at most ``int(available * MEMORY_FRACTION)``. Tested
at the boundary: exactly the budget passes, one byte less memory fails. The kernel rows of the
matrix-free operator are the rows of the full kernel, and both equal the closed form
exp(-||x_i - x_j||^2 / (2 sigma^2)) computed independently with numpy.
"""

from __future__ import annotations

import math
import re

import numpy as np
import pytest

from dsecli.diffusion.kernels import gaussian_kernel, gaussian_kernel_rows
from dsecli.diffusion.plan import (
    MEMORY_FRACTION,
    check_dense_memory,
    dense_matrix_bytes,
    memory_budget,
    plan_entropy,
)
from dsecli.errors import MemoryLimitError

CPU = "cpu"


def _available_for(need: int) -> int:
    """The smallest available memory whose budget holds ``need`` bytes."""
    have = math.ceil(need / MEMORY_FRACTION)
    while memory_budget(have - 1) >= need:
        have -= 1
    return have


def test_dense_matrix_bytes_counts_the_matrices() -> None:
    assert dense_matrix_bytes(1000, "float64") == 2 * 1000 * 1000 * 8
    assert dense_matrix_bytes(1000, "float32", copies=1) == 1000 * 1000 * 4


def test_memory_guard_boundary_exactly_the_budget_and_one_byte_less() -> None:
    n = 300
    need = dense_matrix_bytes(n, "float64")
    have = _available_for(need)
    assert memory_budget(have) >= need > memory_budget(have - 1)
    assert check_dense_memory(n, device=CPU, dtype="float64", memory_bytes=have) == need
    message = (f"N = {n} needs about {need / 2**30:.1f} GiB for 2 N x N float64 matrices but cpu has "
               f"{(have - 1) / 2**30:.1f} GiB available (at most 85% of it is used); use --max-n to subsample, "
               "--dtype float32, or another device")
    with pytest.raises(MemoryLimitError, match=re.escape(message)):
        check_dense_memory(n, device=CPU, dtype="float64", memory_bytes=have - 1)


def test_exact_plan_uses_the_same_rule() -> None:
    # plan_entropy's exact solver: the two N x N matrices plus the rows and a few N-vectors
    n, d = 500, 4
    need = dense_matrix_bytes(n, "float64") + n * d * 8 * 2 + 8 * n * 4
    have = _available_for(need)
    at = plan_entropy(n, d, solver="exact", device="cpu", memory_bytes=have)
    below = plan_entropy(n, d, solver="exact", device="cpu", memory_bytes=have - 1)
    assert at["memory_bytes"] == need and at["fits"] is True
    assert below["fits"] is False


def _closed_form(x: np.ndarray, sigma: float) -> np.ndarray:
    xc = x - x.mean(axis=0)
    d2 = ((xc[:, None, :] - xc[None, :, :]) ** 2).sum(axis=-1)
    return np.exp(-d2 / (2 * sigma * sigma))


@pytest.mark.parametrize("sigma", [0.7, 3.0])
def test_full_kernel_and_kernel_rows_are_the_one_gaussian(sigma: float) -> None:
    x = np.random.default_rng(5).normal(size=(70, 6)) * 2 + 10
    expected = _closed_form(x, sigma)
    import torch

    xt = torch.as_tensor(x)
    full = gaussian_kernel(xt, sigma).numpy()
    np.testing.assert_allclose(full, expected, rtol=1e-12, atol=1e-15)
    assert np.all(np.diag(full) == 1.0)
    xc = xt - xt.mean(dim=0, keepdim=True)
    xn = (xc * xc).sum(dim=1)
    rows = torch.cat([gaussian_kernel_rows(xc, xn, s, min(70, s + 16), sigma) for s in range(0, 70, 16)]).numpy()
    np.testing.assert_allclose(rows, expected, rtol=1e-12, atol=1e-15)
    assert np.all(np.diag(rows) == 1.0)


@pytest.mark.parametrize("sigma", [0.7, 3.0])
def test_a_subset_kernel_cut_out_of_the_distances_is_the_subset_own_kernel(sigma: float) -> None:
    # DSMI's class and draw kernels where the distances of all rows are at hand (the median rule's):
    # their block of those distances, against the kernel of the subset's own rows (centred on its own mean)
    import torch

    from dsecli.diffusion.kernels import centred_sq_dists, gaussian_kernel_block

    x = np.random.default_rng(6).normal(size=(90, 40)) * 2 + 10
    xt = torch.as_tensor(x)
    d2 = centred_sq_dists(xt)
    before = d2.clone()
    for idx in (np.arange(0, 90, 3), np.sort(np.random.default_rng(7).choice(90, 25, replace=False))):
        ti = torch.as_tensor(idx)
        block = gaussian_kernel_block(d2, ti, sigma).numpy()
        np.testing.assert_allclose(block, gaussian_kernel(xt[ti], sigma).numpy(), rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose(block, _closed_form(x[idx], sigma), rtol=1e-12, atol=1e-15)
        assert np.all(np.diag(block) == 1.0)
    # the kernels made from given distances leave them as they were; the full one has the same bits
    assert torch.equal(gaussian_kernel(xt, sigma, sq_dists=d2), gaussian_kernel(xt, sigma))
    assert torch.equal(d2, before)


def test_mine_network_that_cannot_fit_stops_before_it_is_built(monkeypatch: pytest.MonkeyPatch) -> None:
    # 2**40 hidden layers used to loop for ever building the network; now the one rule stops it
    import dsecli.diffusion.plan
    from dsecli import mine_mutual_information

    monkeypatch.setattr(dsecli.diffusion.plan, "available_memory_bytes", lambda device: 2**30)
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(40, 2)), np.arange(40) % 2
    layers = 2**40
    # 2 + 2 inputs (x and the one-hot y), 100 units: (4 + 1) * 100 + (L - 1) * 101 * 100 + 101 parameters
    params = 5 * 100 + (layers - 1) * 101 * 100 + 101
    need = (4 * params + 2 * 3 * 32 * 100 * layers) * 4
    message = (f"MINE's network needs about {need / 2**30:.1f} GiB ({params:,} parameters: hidden_units = 100, "
               f"hidden_layers = {layers}) but cpu has 1.0 GiB available (at most 85% of it is used); use a smaller "
               "--hidden-units or --hidden-layers")
    with pytest.raises(MemoryLimitError, match=re.escape(message)):
        mine_mutual_information(x, y, hidden_layers=layers, batch_size=32, device="cpu")
