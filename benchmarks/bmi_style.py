"""Mutual-information tasks in the style of the bmi benchmark, with closed-form truths (nats).

Czyz, Grabowski, Vogt, Beerenwinkel, Marx, "Beyond Normal: On the Evaluation of Mutual Information
Estimators", NeurIPS 2023. The samplers here are our own (NumPy only, so that bmi's own venv can
import this module too); they follow the task definitions of the paper:

- ``normal-1-1``: bivariate normal, correlation 0.75; I = -1/2 log(1 - 0.75^2);
- ``dense-d-d``: N(0, S) on R^(2d), S = 0.5 I + 0.5 11^T (every pair correlated 0.5);
  I = 1/2 log(det S_x det S_y / det S);
- ``2pair-d-d``: x_i = 2 z_i + e_i, y_i = 2 z_i + f_i for i < 2, the other coordinates independent
  noise (bmi's sparse latent-variable model, strength 2; correlation 0.8 per pair);
  I = -log(1 - 0.64);
- ``student-d-d-nu``: multivariate t with identity dispersion and nu degrees of freedom
  (dependence only through the shared scale); I = H_t(d) + H_t(d) - H_t(2d);
- transformations applied per variable, all injective, so I is unchanged: ``cdf`` (standard normal
  CDF per coordinate: uniform marginals), ``halfcube`` (x |x|^(1/2)), ``asinh``, ``wiggly``
  (x + 0.4 sin 2x, y + 0.3 sin(3y + 1): monotone), ``spiral`` (rotation of coordinates 0, 1 of X and
  1, 2 of Y by an angle ||v||^2 / dim, which the rotation leaves unchanged, hence invertible),
  ``swissroll`` (the uniform X of ``cdf`` mapped onto a Swiss-roll curve in R^2).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy.special import digamma, gammaln, ndtr

__all__ = ["Task", "TASKS", "task_by_name", "gaussian_mi", "student_identity_mi"]


@dataclass(frozen=True)
class Task:
    """A sampler ``sample(n, rng) -> (x, y)`` and the true mutual information in nats."""

    name: str
    dim_x: int
    dim_y: int
    truth_nats: float
    sample: Callable[[int, np.random.Generator], tuple[np.ndarray, np.ndarray]]


def gaussian_mi(cov: np.ndarray, dim_x: int) -> float:
    """-1/2 log(det S / (det S_xx det S_yy)), nats."""
    ld = np.linalg.slogdet
    return 0.5 * (ld(cov[:dim_x, :dim_x])[1] + ld(cov[dim_x:, dim_x:])[1] - ld(cov)[1])


def _t_entropy(d: int, nu: float) -> float:
    # multivariate t, identity dispersion (nats)
    return float(0.5 * d * math.log(nu * math.pi) + gammaln(nu / 2) - gammaln((nu + d) / 2)
                 + 0.5 * (nu + d) * (digamma((nu + d) / 2) - digamma(nu / 2)))


def student_identity_mi(dim_x: int, dim_y: int, nu: float) -> float:
    return _t_entropy(dim_x, nu) + _t_entropy(dim_y, nu) - _t_entropy(dim_x + dim_y, nu)


def _normal(cov: np.ndarray, dim_x: int) -> Callable[[int, np.random.Generator], tuple[np.ndarray, np.ndarray]]:
    chol = np.linalg.cholesky(cov)

    def sample(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        z = rng.standard_normal((n, cov.shape[0])) @ chol.T
        return z[:, :dim_x], z[:, dim_x:]

    return sample


def _dense(d: int) -> tuple[np.ndarray, float]:
    cov = 0.5 * np.eye(2 * d) + 0.5
    return cov, gaussian_mi(cov, d)


def _two_pair(d: int) -> tuple[np.ndarray, float]:
    cov = np.eye(2 * d)
    for i in range(2):
        cov[i, d + i] = cov[d + i, i] = 0.8
    return cov, gaussian_mi(cov, d)


def _student(dim_x: int, dim_y: int, nu: float) -> Callable[[int, np.random.Generator], tuple[np.ndarray, np.ndarray]]:
    def sample(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        z = rng.standard_normal((n, dim_x + dim_y)) / np.sqrt(rng.chisquare(nu, size=(n, 1)) / nu)
        return z[:, :dim_x], z[:, dim_x:]

    return sample


def _rotate(v: np.ndarray, i: int, j: int) -> np.ndarray:
    angle = (v**2).sum(axis=1) / v.shape[1]
    c, s = np.cos(angle), np.sin(angle)
    out = v.copy()
    out[:, i], out[:, j] = c * v[:, i] - s * v[:, j], s * v[:, i] + c * v[:, j]
    return out


def _swissroll(u: np.ndarray) -> np.ndarray:
    t = 1.5 * math.pi * (1 + 2 * u[:, 0])
    return np.stack([t * np.cos(t), t * np.sin(t)], axis=1) / 10


TRANSFORMS: dict[str, Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]] = {
    "cdf": lambda x, y: (ndtr(x), ndtr(y)),
    "halfcube": lambda x, y: (x * np.sqrt(np.abs(x)), y * np.sqrt(np.abs(y))),
    "asinh": lambda x, y: (np.arcsinh(x), np.arcsinh(y)),
    "wiggly": lambda x, y: (x + 0.4 * np.sin(2 * x), y + 0.3 * np.sin(3 * y + 1)),
    "spiral": lambda x, y: (_rotate(x, 0, 1), _rotate(y, 1, 2)),
    "swissroll": lambda x, y: (_swissroll(ndtr(x)), ndtr(y)),
}


def _transformed(name: str, base: Task) -> Task:
    f = TRANSFORMS[name]

    def sample(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        return f(*base.sample(n, rng))

    dim_x = 2 if name == "swissroll" else base.dim_x
    return Task(f"{name}@{base.name}", dim_x, base.dim_y, base.truth_nats, sample)


def _build() -> list[Task]:
    tasks: list[Task] = []
    rho = 0.75
    binormal = np.array([[1.0, rho], [rho, 1.0]])
    normal11 = Task("normal-1-1", 1, 1, -0.5 * math.log(1 - rho**2), _normal(binormal, 1))
    tasks.append(normal11)
    for t in ("cdf", "halfcube", "wiggly", "swissroll"):
        tasks.append(_transformed(t, normal11))
    st11 = Task("student-1-1-1", 1, 1, student_identity_mi(1, 1, 1), _student(1, 1, 1))
    tasks += [st11, _transformed("asinh", st11)]
    for d in (2, 3, 5, 25, 50):
        cov, mi = _dense(d)
        tasks.append(Task(f"dense-{d}-{d}", d, d, mi, _normal(cov, d)))
    pairs = {}
    for d in (3, 5, 25):
        cov, mi = _two_pair(d)
        pairs[d] = Task(f"2pair-{d}-{d}", d, d, mi, _normal(cov, d))
        tasks.append(pairs[d])
    for d, nu in ((2, 1), (3, 2), (5, 3)):
        tasks.append(Task(f"student-{d}-{d}-{nu}", d, d, student_identity_mi(d, d, nu), _student(d, d, nu)))
    for t in ("cdf", "halfcube", "spiral"):
        tasks.append(_transformed(t, pairs[5]))
    st33 = Task("student-3-3-2", 3, 3, student_identity_mi(3, 3, 2), _student(3, 3, 2))
    tasks.append(_transformed("asinh", st33))
    return tasks


TASKS: list[Task] = _build()


def task_by_name(name: str) -> Task:
    for t in TASKS:
        if t.name == name:
            return t
    raise KeyError(name)


def _bmi_main(argv: list[str]) -> None:
    # Run inside bmi's own venv: python bmi_style.py IN.npz OUT.json  (bmi's KSG, its defaults)
    import json
    import time

    from bmi.estimators import KSGEnsembleFirstEstimator

    data = np.load(argv[0])
    out = {}
    for key in sorted({k.rsplit("|", 1)[0] for k in data.files}):
        x, y = data[key + "|x"], data[key + "|y"]
        t = time.perf_counter()
        est = KSGEnsembleFirstEstimator(neighborhoods=(5,), standardize=True, n_jobs=1)
        out[key] = {"value": float(est.estimate(x, y)), "seconds": time.perf_counter() - t}
    with open(argv[1], "w") as fh:
        json.dump(out, fh)


if __name__ == "__main__":
    import sys

    _bmi_main(sys.argv[1:])
