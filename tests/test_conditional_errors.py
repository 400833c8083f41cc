"""The error bound of the size-matched scheme: systematic parts linearly, independent noise in quadrature."""

from __future__ import annotations

import numpy as np
import pytest

from dsecli.inputs.reference import Classes
from dsecli.measures.conditional import size_matched_mutual_information


def _classes() -> Classes:
    # two classes of equal size (the published sampler gives them the same draws), one of one row
    codes = np.array([0] * 5 + [1] * 5 + [2] * 7 + [3])
    return Classes(np.random.default_rng(0).permutation(codes), ["a", "b", "c", "d"], "labels", {})


def _run(sampler: str, nudge: tuple[int, float] | None = None) -> tuple[float, dict, list[np.ndarray]]:
    seen: list[np.ndarray] = []

    def entropies(sets):
        seen.extend(sets)
        out = []
        for k, idx in enumerate(sets):
            h = float(np.log2(len(idx)) + 0.01 * idx.sum())
            if nudge is not None and nudge[0] == k:
                h += nudge[1]
            out.append((h, 0.001 * (k + 1), 0.003 * (len(sets) - k)))
        return out

    mi, details = size_matched_mutual_information(entropies, _classes(), repetitions=3, seed=4, sampler=sampler,
                                                  with_errors=True)
    return mi, details, seen


@pytest.mark.parametrize("sampler", ["published", "numpy"])
def test_bound_is_weighted_bias_plus_root_sum_square_of_noise_with_weights_found_by_perturbation(sampler) -> None:
    base, details, sets = _run(sampler)
    # each set's weight in the MI, measured through the function: MI(H_k + d) - MI(H_k) = w_k d
    d = 1e-3
    weights = np.array([abs(_run(sampler, (k, d))[0] - base) / d for k in range(len(sets))])
    bias = np.array([0.001 * (k + 1) for k in range(len(sets))])
    noise = np.array([0.003 * (len(sets) - k) for k in range(len(sets))])
    assert details["error_bias"] == pytest.approx(float(weights @ bias), rel=1e-6)
    assert details["error_noise"] == pytest.approx(float(np.sqrt(((weights * noise) ** 2).sum())), rel=1e-6)
    assert details["error_estimate"] == pytest.approx(details["error_bias"] + details["error_noise"], rel=1e-12)
    # the weights of a class and of its draws: p_y and p_y / R (a draw shared by two classes counts for both)
    assert weights.sum() == pytest.approx(2 * 17 / 18, rel=1e-6)  # the one-row class has no sets
    own = [5 / 18, 5 / 18, 7 / 18]
    if sampler == "published":  # classes a and b share their three draws: each counts for both
        expected = own + [2 * 5 / 18 / 3] * 3 + [7 / 18 / 3] * 3
    else:
        expected = own + [5 / 18 / 3] * 6 + [7 / 18 / 3] * 3
    np.testing.assert_allclose(np.sort(weights), np.sort(expected), rtol=1e-6)


def test_noise_in_quadrature_is_below_its_linear_sum_and_equal_for_one_set() -> None:
    def one(sets):
        return [(1.0, 0.0, 0.01) for _ in sets]

    classes = Classes(np.array([0, 0, 1, 1]), [0, 1], "labels", {})
    _, details = size_matched_mutual_information(one, classes, repetitions=1, seed=0, sampler="numpy",
                                                 with_errors=True)
    # four sets of weight 1/2: linear 0.02, in quadrature 0.01
    assert details["error_noise"] == pytest.approx(0.01, rel=1e-12)
    assert details["error_bias"] == 0.0
