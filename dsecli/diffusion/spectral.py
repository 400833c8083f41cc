"""The Shannon entropy of a normalised spectrum.

docs/method.md#dse (and #golden). With eigenvalues lambda_i and integer
diffusion time t:

.. math::

    \\alpha_i = |\\lambda_i|^t / \\sum_j |\\lambda_j|^t, \\qquad
    H = -\\sum_i (\\alpha_i + \\epsilon) \\log_b (\\alpha_i + \\epsilon)

with eps = 2**-52 added to every probability before the logarithm, as the published code
does (its effect is below 1e-9 bits for N <= 1e5); no renormalisation after adding eps.
The eigenvalues themselves come from :mod:`dsecli.diffusion.eigen`.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from dsecli.errors import ComputationError, check_positive_int

if TYPE_CHECKING:  # pragma: no cover
    import torch

__all__ = ["EPS", "entropy_of_probabilities", "spectral_entropy"]

EPS = 2.0**-52


def entropy_of_probabilities(p: np.ndarray, *, base: float = 2.0, eps: float = EPS) -> float:
    """``-sum (p + eps) log_base (p + eps)`` in float64 (docs/method.md#dse)."""
    q = np.asarray(p, dtype=np.float64) + eps
    return float(-(q * np.log(q)).sum() / math.log(base))


def spectral_entropy(eigenvalues: np.ndarray | torch.Tensor, *, t: int = 1, base: float = 2.0) -> float:
    """Entropy of the spectrum powered to ``t``: alpha = |lambda|^t / sum |lambda|^t.

    Parameters
    ----------
    eigenvalues : array, shape (N,)
        Real (or moduli of complex) eigenvalues; computed in float64 here whatever their dtype.
    t : int >= 1
        Diffusion time.
    base : float
        Logarithm base (2 gives bits).

    Notes
    -----
    Powers are taken in log space relative to the largest modulus, so large t cannot overflow
    or underflow the normalisation (eigenvalues far below the largest simply become 0).
    """
    t = check_positive_int(t, "t")
    lam = eigenvalues.detach().double().cpu().numpy() if hasattr(eigenvalues, "detach") else np.asarray(eigenvalues)
    mod = np.abs(np.asarray(lam, dtype=np.float64))
    top = mod.max() if mod.size else 0.0
    if not top > 0 or not np.isfinite(top):
        raise ComputationError("spectrum is zero or not finite; cannot normalise it")
    with np.errstate(divide="ignore", under="ignore"):
        w = (mod / top) ** t
    p = w / w.sum()
    return entropy_of_probabilities(p, base=base)
