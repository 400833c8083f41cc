"""MINE: Gaussian mutual information (closed form), labels, reproducibility, settings, validation."""

from __future__ import annotations

import json
import math
import re

import numpy as np
import pytest

from dsecli import estimate_mutual_information, mine_mutual_information
from dsecli.errors import InputError


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(not _cuda(), reason="needs CUDA"))]


def _pairs(rho: float, dim: int, n: int, seed: int) -> tuple[np.ndarray, np.ndarray, float]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, dim))
    y = rho * x + math.sqrt(1 - rho**2) * rng.normal(size=(n, dim))
    return x, y, -0.5 * dim * math.log2(1 - rho**2)


FAST = {"epochs": 40, "batch_size": 250}


@pytest.mark.parametrize("device", DEVICES)
def test_mine_on_a_correlated_gaussian_pair(device: str) -> None:
    # a trained lower bound: seen 0.667 bits against 0.737 at N = 1500 (held-out, 40 epochs)
    x, y, true = _pairs(0.8, 1, 1500, seed=0)
    got = mine_mutual_information(x, y, device=device, **FAST)
    assert got.value == pytest.approx(true, abs=0.15)
    assert got.value < true + 0.05  # a lower bound, up to held-out noise
    assert got.extra["std"] < 0.1


def test_mine_at_independence_is_near_zero() -> None:
    rng = np.random.default_rng(1)
    got = mine_mutual_information(rng.normal(size=(1500, 2)), rng.normal(size=(1500, 2)), **FAST)
    assert abs(got.value) < 0.05


def test_mine_with_labels_reaches_label_entropy() -> None:
    rng = np.random.default_rng(2)
    labels = np.repeat([0, 1], 750)
    x = rng.normal(size=(1500, 3)) + 10.0 * labels[:, None]
    got = mine_mutual_information(x, labels, **FAST)
    assert got.params["reference"] == "labels (one-hot)"
    assert got.value == pytest.approx(1.0, abs=0.1)  # H(Y) = 1 bit


def test_mine_is_reproducible_and_leaves_global_state_alone() -> None:
    import torch

    x, y, _ = _pairs(0.6, 2, 600, seed=3)
    torch_state = torch.random.get_rng_state()
    np_state = np.random.get_state()[1].copy()  # noqa: NPY002 - checking the legacy global state is untouched
    threads = torch.get_num_threads()
    a = mine_mutual_information(x, y, epochs=5, seed=7)
    b = mine_mutual_information(x, y, epochs=5, seed=7)
    c = mine_mutual_information(x, y, epochs=5, seed=8)
    assert a.value == b.value
    assert a.extra["history_nats"] == b.extra["history_nats"]
    assert c.value != a.value
    assert torch.equal(torch.random.get_rng_state(), torch_state)
    np.testing.assert_array_equal(np.random.get_state()[1], np_state)  # noqa: NPY002
    assert torch.get_num_threads() == threads


def test_mine_reports_every_setting_and_its_spread() -> None:
    x, y, _ = _pairs(0.6, 2, 500, seed=4)
    got = mine_mutual_information(x, y, epochs=12, patience=3, hidden_units=16, hidden_layers=1, learning_rate=1e-3,
                                  holdout_fraction=0.3, batch_size=100, seed=5, base=math.e)
    p = got.params
    assert (p["hidden_units"], p["hidden_layers"], p["epochs"], p["batch_size"], p["patience"]) == (16, 1, 12, 100, 3)
    assert (p["learning_rate"], p["holdout_fraction"], p["seed"]) == (1e-3, 0.3, 5)
    assert p["n_holdout"] == 150 and p["n_train"] == 350
    assert p["dtype"] == "float32" and p["device"] == "cpu"
    assert got.units == "nats"
    hist = got.extra["history_nats"]
    assert len(hist) == got.extra["epochs_run"] <= 12
    best = got.extra["best_epoch"]
    assert hist[best] == max(hist) == got.extra["best_nats"]
    last = np.asarray(hist[max(0, best + 1 - p["average_last"]) : best + 1])
    np.testing.assert_allclose(got.value, last.mean(), rtol=1e-12)
    np.testing.assert_allclose(got.extra["std"], last.std(ddof=1), rtol=1e-12)
    if got.extra["stopped_early"]:
        assert got.extra["epochs_run"] - 1 - got.extra["best_epoch"] == 3
    json.dumps(got.to_dict(), allow_nan=False)


def test_mine_through_dispatcher_uses_cli_parameter_names() -> None:
    x, y, _ = _pairs(0.6, 1, 400, seed=6)
    (via,) = estimate_mutual_information(x, y, methods="mine", epochs=3, batch_size=64, hidden_units=8,
                                         hidden_layers=1, learning_rate=1e-2, patience=2, holdout_fraction=0.25)
    assert via.method == "mine"
    assert (via.params["epochs"], via.params["hidden_units"], via.params["batch_size"]) == (3, 8, 64)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"holdout_fraction": 1.0}, "`holdout_fraction` must be in (0, 1); got 1.0"),
        ({"learning_rate": 0.0}, "`learning_rate` must be > 0; got 0.0"),
        ({"hidden_units": 0}, "`hidden_units` must be an integer >= 1; got 0"),
        ({"batch_size": 1}, "`batch_size` must be an integer >= 2; got 1"),
        ({"ma_rate": 0.0}, "`ma_rate` must be in (0, 1]; got 0.0"),
    ],
)
def test_mine_bad_arguments(kwargs: dict, message: str) -> None:
    x, y, _ = _pairs(0.5, 1, 50, seed=7)
    with pytest.raises(InputError, match=re.escape(message)):
        mine_mutual_information(x, y, **kwargs)


@pytest.mark.slow
def test_mine_default_settings_on_five_gaussian_pairs() -> None:
    # defaults at N = 5000, D = 5 + 5: seen 0.99 bits against 1.04 in about 4 s (64 epochs, early stop)
    x, y, true = _pairs(0.5, 5, 5000, seed=1)
    got = mine_mutual_information(x, y)
    assert got.value == pytest.approx(true, rel=0.15)
