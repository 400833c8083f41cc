"""DSE and DSMI as differentiable losses (dsecli.differentiable): values, gradients, devices, dtypes."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest
from conftest import CUDA

from dsecli.errors import InputError

torch = pytest.importorskip("torch")  # module-level torch imports are banned by the lint rules

import dsecli  # noqa: E402
from dsecli.differentiable import (  # noqa: E402
    DSELoss,
    DSMILoss,
    diffusion_kernel,
    dse_loss,
    dsmi_loss,
    resolve_batch_sigma,
)

gradcheck = torch.autograd.gradcheck


def _data(n: int = 24, d: int = 3, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, d)) * 2.0 + 3.0


def _labels(n: int = 24, seed: int = 1) -> np.ndarray:
    y = np.random.default_rng(seed + 100).integers(0, 3, size=n)
    y[0] = 9  # a class of one row, and labels that are not 0..C-1
    return y


def _leaf(a: np.ndarray, dtype=torch.float64) -> torch.Tensor:
    return torch.tensor(a, dtype=dtype, requires_grad=True)


def _grad(fn, a: np.ndarray) -> torch.Tensor:
    z = _leaf(a)
    fn(z).backward()
    assert z.grad is not None and torch.isfinite(z.grad).all()
    return z.grad


# small inputs for gradcheck: generic rows, duplicate rows (d = 0, a 3-fold eigenvalue 0), and three
# identical far-apart pairs (block-diagonal kernel of equal blocks: every eigenvalue 3-fold)
_RNG = np.random.default_rng(2)
GENERIC = _RNG.normal(size=(8, 2))
DUPLICATES = GENERIC.copy()
DUPLICATES[5] = DUPLICATES[6] = DUPLICATES[1]
_U = np.array([0.3, -0.2, 0.1])
PAIRS = np.concatenate([np.stack([c, c + _U]) for c in (np.zeros(3), np.full(3, 50.0), np.array([0.0, 80.0, -40.0]))])
CASES = {"generic": GENERIC, "duplicates": DUPLICATES, "repeated-eigenvalues": PAIRS}
SMALL_LABELS = np.array([0, 0, 1, 1, 0, 1, 0, 7])  # two classes of 4 and 3 rows, one of 1


# --------------------------------------------------------------------------- values


@pytest.mark.parametrize("t", [1, 3])
@pytest.mark.parametrize("sigma", [0.7, "median"])
def test_dse_equals_the_measurement_api(sigma, t) -> None:
    x = _data()
    ours = dse_loss(torch.tensor(x), sigma=sigma, t=t)
    ref = dsecli.diffusion_spectral_entropy(x, sigma=sigma, t=t, device="cpu", max_n=None)
    assert ours.dtype == torch.float64 and ours.dim() == 0
    assert abs(ours.item() - ref.value) < 1e-10
    assert resolve_batch_sigma(sigma, torch.tensor(x)) == pytest.approx(ref.params["sigma"], rel=1e-12)


@pytest.mark.parametrize("t", [1, 3])
@pytest.mark.parametrize("sigma", [0.7, "median"])
def test_dsmi_equals_the_measurement_api(sigma, t) -> None:
    # same draws: numpy.random.default_rng([seed, class index]), classes in sorted label order
    x, y = _data(), _labels()
    ours = dsmi_loss(torch.tensor(x), y, sigma=sigma, t=t, repetitions=4, seed=3)
    ref = dsecli.diffusion_spectral_mutual_information(x, y, sigma=sigma, t=t, repetitions=4, seed=3, device="cpu",
                                                       max_n=None)
    assert abs(ours.item() - ref.value) < 1e-10
    assert abs(ours.item()) > 1e-3  # not a vacuous agreement of two zeros


def test_base_e_gives_nats() -> None:
    x, y = _data(), _labels()
    z = torch.tensor(x)
    ref = dsecli.diffusion_spectral_entropy(x, sigma="median", device="cpu", max_n=None, base=math.e)
    assert abs(dse_loss(z, base=math.e).item() - ref.value) < 1e-10
    assert dse_loss(z, base=math.e).item() == pytest.approx(dse_loss(z).item() * math.log(2), rel=1e-12)
    mi = dsecli.diffusion_spectral_mutual_information(x, y, device="cpu", max_n=None, base=math.e)
    assert abs(dsmi_loss(z, y, base=math.e).item() - mi.value) < 1e-10


def test_closed_forms() -> None:
    n = 12
    far = torch.tensor(np.arange(n, dtype=np.float64)[:, None] * 100.0)
    # far-apart rows at a tiny sigma: A = I, every alpha = 1/N, DSE = log2 N
    assert abs(dse_loss(far, sigma=1.0).item() - math.log2(n)) < 1e-12
    assert abs(dse_loss(far, sigma=1.0, t=5).item() - math.log2(n)) < 1e-12
    # identical rows: G is all ones, A = 11^T / N with eigenvalues 1, 0, ..., 0, DSE = 0; zero gradient
    same = _leaf(np.full((6, 3), 1.5))
    value = dse_loss(same, sigma=1.0)
    value.backward()
    assert abs(value.item()) < 1e-12
    assert torch.isfinite(same.grad).all() and same.grad.abs().max().item() < 1e-12
    # k far-apart clusters of identical rows: k eigenvalues 1 (repeated), the rest 0, DSE = log2 k
    clusters = np.repeat(np.array([[0.0, 0.0], [60.0, 0.0], [0.0, 90.0]]), [3, 4, 5], axis=0)
    assert abs(dse_loss(torch.tensor(clusters), sigma=2.0).item() - math.log2(3)) < 1e-12


def test_spectral_entropy_takes_the_modulus_first() -> None:
    # docs/method.md#dse: alpha = |lambda|^t / sum |lambda|^t (a rounding-negative eigenvalue counts by its size)
    from dsecli.differentiable import _spectral_entropy

    lam = torch.tensor([1.0, -0.5, 0.5, 0.0], dtype=torch.float64, requires_grad=True)
    assert _spectral_entropy(lam, 1, 2.0).item() == pytest.approx(1.5, abs=1e-12)  # alpha = 1/2, 1/4, 1/4, 0
    h3 = _spectral_entropy(lam, 3, 2.0)  # alpha = 4/5, 1/10, 1/10, 0
    assert h3.item() == pytest.approx(-(0.8 * math.log2(0.8) + 0.2 * math.log2(0.1)), abs=1e-12)
    h3.backward()  # |.| and the power at an eigenvalue of exactly 0: finite
    assert torch.isfinite(lam.grad).all()


def test_dsmi_closed_form_two_point_clusters() -> None:
    # two far-apart clusters of 4 identical rows, labelled by cluster: DSE(class) = 0, and a draw of
    # 4 of the 8 rows has DSE 1 bit if it holds rows of both clusters, else 0 (A: one all-ones block each)
    x = torch.tensor(np.repeat(np.array([[0.0, 0.0], [50.0, 50.0]]), 4, axis=0))
    y = np.repeat([5, 6], 4)
    seed, reps = 11, 7
    expected = 0.0
    for c in range(2):
        rng = np.random.default_rng([seed, c])
        hits = [len(set(rng.choice(8, size=4, replace=False) // 4)) == 2 for _ in range(reps)]
        expected += 0.5 * float(np.mean(hits))
    value = dsmi_loss(x, y, sigma=1.0, repetitions=reps, seed=seed).item()
    assert abs(value - expected) < 1e-12
    assert value <= 1.0  # H(Y) of the batch labels, the ceiling


def test_one_class_gives_zero() -> None:
    x = torch.tensor(_data(10))
    assert dsmi_loss(x, np.zeros(10, dtype=int), sigma=1.0).item() == pytest.approx(0.0, abs=1e-12)


# --------------------------------------------------------------------------- gradients


@pytest.mark.parametrize("t", [1, 3])
@pytest.mark.parametrize("case", list(CASES))
def test_dse_gradcheck(case, t) -> None:
    assert gradcheck(lambda z: dse_loss(z, sigma=0.8, t=t), (_leaf(CASES[case]),))


@pytest.mark.parametrize("t", [1, 3])
@pytest.mark.parametrize("case", ["generic", "duplicates"])
def test_dsmi_gradcheck(case, t) -> None:
    assert gradcheck(lambda z: dsmi_loss(z, SMALL_LABELS, sigma=0.8, t=t, repetitions=3), (_leaf(CASES[case]),))


def test_dsmi_gradcheck_repeated_eigenvalues() -> None:
    y = np.array([0, 0, 1, 1, 2, 2])  # each class one pair: its own 2 x 2 block
    assert gradcheck(lambda z: dsmi_loss(z, y, sigma=0.8, t=3, repetitions=3), (_leaf(PAIRS),))


@pytest.mark.parametrize("t", [1, 3])
@pytest.mark.parametrize("case", ["generic", "duplicates"])
def test_median_sigma_gradient_is_the_fixed_sigma_gradient(case, t) -> None:
    # the median rule's sigma is detached: the gradient is that of DSE at that sigma, held fixed,
    # and that function passes gradcheck
    a = CASES[case]
    s = resolve_batch_sigma("median", torch.tensor(a))
    for fn_median, fn_fixed in [
        (lambda z: dse_loss(z, t=t), lambda z: dse_loss(z, sigma=s, t=t)),
        (lambda z: dsmi_loss(z, SMALL_LABELS, t=t, repetitions=3),
         lambda z: dsmi_loss(z, SMALL_LABELS, sigma=s, t=t, repetitions=3)),
    ]:
        torch.testing.assert_close(_grad(fn_median, a), _grad(fn_fixed, a), rtol=1e-12, atol=1e-14)
        assert gradcheck(fn_fixed, (_leaf(a),))


def _frozen_sigma_dse(a: np.ndarray, sigma_grad: str, t: int):
    """DSE(z) at the sigma of ``sigma_grad`` with every detached quantity frozen at z0 = a: a plain smooth
    function of z, whose gradient at z0 is what ``sigma_grad`` promises."""
    from dsecli import differentiable as dl

    z0 = torch.tensor(a)
    d20 = dl._sq_dists(z0)
    med = dl._median_sq(d20)
    n = a.shape[0]
    if sigma_grad == "scale":
        rms0 = float(d20.sum() / (n * (n - 1)))

        def sigma_of(d2):
            return math.sqrt(med / 2) * (d2.sum() / (n * (n - 1)) / rms0).sqrt()
    else:
        v0 = dl._pairs(d20)
        m = v0.numel()
        iqr = dl._order_statistic(v0, (3 * (m - 1)) // 4) - dl._order_statistic(v0, (m - 1) // 4)
        h = 0.9 * iqr / 1.349 * m**-0.2  # Silverman's (below 65,536 pairs the quartiles are exact)
        assert h == dl._bandwidth(v0)
        w = torch.exp(-0.5 * ((v0 - med) / h) ** 2)

        def sigma_of(d2):
            return ((med + (w * (dl._pairs(d2) - v0)).sum() / w.sum()) / 2).sqrt()

    def fn(z):
        d2 = dl._sq_dists(z)
        st = sigma_of(d2)
        g = torch.exp(d2 * (-1.0 / (2.0 * st * st)))
        return dl._spectral_entropy(torch.linalg.eigvalsh(dl._normalise(g)), t, 2.0)

    return fn


@pytest.mark.parametrize("t", [1, 3])
@pytest.mark.parametrize("sigma_grad", ["scale", "smoothed"])
def test_sigma_grad_options(sigma_grad, t) -> None:
    # same value as the detached median rule; the gradient of the function with the detached parts
    # frozen, which passes gradcheck (duplicates included)
    for a in (GENERIC, DUPLICATES):
        z = torch.tensor(a)
        assert abs(dse_loss(z, t=t, sigma_grad=sigma_grad).item() - dse_loss(z, t=t).item()) < 1e-13
        frozen = _frozen_sigma_dse(a, sigma_grad, t)
        torch.testing.assert_close(_grad(lambda z: dse_loss(z, t=t, sigma_grad=sigma_grad), a), _grad(frozen, a),
                                   rtol=1e-10, atol=1e-12)
        assert gradcheck(frozen, (_leaf(a),))
    assert torch.isfinite(_grad(lambda z: dsmi_loss(z, SMALL_LABELS, t=t, sigma_grad=sigma_grad), DUPLICATES)).all()
    z = torch.tensor(_data())
    assert dsmi_loss(z, _labels(), t=t, sigma_grad=sigma_grad).item() == dsmi_loss(z, _labels(), t=t).item()


def test_scale_gradient_is_scale_invariant() -> None:
    # DSE at the median rule does not change when all rows are scaled: its derivative along z - mean
    # is 0. sigma_grad="scale" has that property; the detached sigma's gradient does not (it shrinks
    # or spreads the rows)
    a = _data(16, 3)
    radial = torch.tensor(a - a.mean(axis=0))
    for sigma_grad, small in (("scale", True), ("detached", False)):
        g = _grad(lambda z, sg=sigma_grad: dse_loss(z, sigma_grad=sg), a)
        ratio = abs(float((g * radial).sum())) / float(g.norm() * radial.norm())
        assert (ratio < 1e-10) == small, (sigma_grad, ratio)


def test_a_step_along_the_gradient_raises_dse() -> None:
    z = _leaf(_data(16, 2))
    before = dse_loss(z, sigma=1.0)
    before.backward()
    with torch.no_grad():
        after = dse_loss(z + 1e-3 * z.grad, sigma=1.0)
    assert after.item() > before.item()


def test_kernel_has_finite_gradient_at_duplicate_rows() -> None:
    z = _leaf(np.array([[1.0, 2.0], [1.0, 2.0], [3.0, -1.0]]))
    g, _ = diffusion_kernel(z, 1.0)
    g.sum().backward()
    assert torch.isfinite(z.grad).all()
    assert g[0, 1].item() == 1.0


# --------------------------------------------------------------------------- dtypes, devices, state


def test_float32_is_close_to_float64() -> None:
    # float32 rounds the kernel and the eigenvalues at ~1e-7 relative (the entropy itself is summed in
    # float64); on these inputs the difference was <= 5e-7 bits (B = 16..200, t = 1 and 3, 120 cases):
    # 1e-5 bits leaves a factor of 20
    for seed in range(3):
        x, y = _data(48, 8, seed), _labels(48, seed)
        z32 = _leaf(x, torch.float32)
        for t in (1, 3):
            v32 = dse_loss(z32, t=t)
            assert v32.dtype == torch.float32
            assert abs(v32.item() - dse_loss(torch.tensor(x), t=t).item()) < 1e-5
            m32 = dsmi_loss(z32, y, t=t)
            assert m32.dtype == torch.float32
            assert abs(m32.item() - dsmi_loss(torch.tensor(x), y, t=t).item()) < 1e-5
            (v32 + m32).backward()
        assert torch.isfinite(z32.grad).all()


@pytest.mark.cuda
@pytest.mark.skipif(not CUDA, reason="no CUDA device")
def test_cuda_follows_the_input() -> None:
    x, y = _data(), _labels()
    for dtype, tol in ((torch.float64, 1e-9), (torch.float32, 1e-5)):
        z = _leaf(x, dtype).detach().to("cuda").requires_grad_(True)
        v, m = dse_loss(z, t=3), dsmi_loss(z, torch.as_tensor(y, device="cuda"), t=3)
        assert v.device.type == "cuda" and v.dtype == dtype and m.device.type == "cuda"
        assert abs(v.item() - dse_loss(torch.tensor(x), t=3).item()) < tol
        assert abs(m.item() - dsmi_loss(torch.tensor(x), y, t=3).item()) < tol
        (v + m).backward()
        assert z.grad.device.type == "cuda" and torch.isfinite(z.grad).all()


def test_global_random_state_is_left_alone() -> None:
    # the legacy numpy global state is read only to check that it is untouched
    torch_state, np_state, py_state = torch.get_rng_state(), np.random.get_state(), random.getstate()  # noqa: NPY002
    z = _leaf(_data())
    (dse_loss(z) + dsmi_loss(z, _labels(), repetitions=3, seed=5) + DSMILoss(seed=2)(z, _labels())).backward()
    assert torch.equal(torch.get_rng_state(), torch_state)
    after = np.random.get_state()  # noqa: NPY002
    assert after[0] == np_state[0] and np.array_equal(after[1], np_state[1]) and after[2:] == np_state[2:]
    assert random.getstate() == py_state


def test_modules_equal_the_functions() -> None:
    x, y = torch.tensor(_data()), _labels()
    dse, dsmi = DSELoss(sigma=0.7, t=2), DSMILoss(t=2, repetitions=3, seed=4, base=math.e)
    assert dse(x).item() == dse_loss(x, sigma=0.7, t=2).item()
    assert dsmi(x, y).item() == dsmi_loss(x, y, t=2, repetitions=3, seed=4, base=math.e).item()
    assert list(dse.parameters()) == [] and "t=2" in repr(dse) and "seed=4" in repr(dsmi)


@pytest.mark.parametrize("call", [
    lambda: dse_loss(np.zeros((4, 2))),
    lambda: dse_loss(torch.zeros(4)),
    lambda: dse_loss(torch.zeros((1, 2))),
    lambda: dse_loss(torch.zeros((4, 2), dtype=torch.int64)),
    lambda: dse_loss(torch.zeros((4, 2))),  # median of identical rows is 0
    lambda: dse_loss(torch.randn(4, 2), sigma=-1.0),
    lambda: dse_loss(torch.randn(4, 2), sigma="widest"),
    lambda: dse_loss(torch.randn(4, 2), sigma=1e-200),
    lambda: dse_loss(torch.randn(4, 2), t=0),
    lambda: dse_loss(torch.randn(4, 2), base=1.0),
    lambda: dsmi_loss(torch.randn(4, 2), [0, 1, 0]),
    lambda: dsmi_loss(torch.randn(4, 2), np.array([0.5, 1.0, 0.0, 1.0])),
    lambda: dsmi_loss(torch.randn(4, 2), [0, 1, 0, 1], repetitions=0),
    lambda: DSELoss(t=1.5),
    lambda: dse_loss(torch.randn(4, 2), sigma_grad="full"),
    lambda: DSMILoss(sigma=1.0, sigma_grad="scale"),
    lambda: DSMILoss(seed=-1),
], ids=lambda _: "")
def test_bad_inputs_raise_input_error(call) -> None:
    with pytest.raises(InputError):
        call()
