"""Row subsampling, done once per call so that every method of that call sees the same rows.

Two samplers:

- ``"numpy"`` (default): ``numpy.random.default_rng(seed).choice(N, max_n, replace=False)``;
- ``"published"``: ``random.Random(seed).sample(range(N), max_n)``, the draws of the published
  implementation (CPython's Mersenne Twister), so its subsampled values are reproduced exactly.

Both use a local generator; global random state is never touched. Chosen indices are sorted
(every measure is invariant to row order) so that files can be read with increasing indices.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

import numpy as np

from dsecli.errors import InputError, check_choice, check_positive_int

__all__ = ["SAMPLERS", "Rows", "choose_rows", "take_rows", "subset_draws", "DEFAULT_MAX_N"]

SAMPLERS = ("numpy", "published")
DEFAULT_MAX_N = 10_000


@dataclass(frozen=True)
class Rows:
    """Rows selected from a larger input.

    data : array (n_used, ...) ; n_total : rows in the input ; indices : selected row numbers
    (sorted) or None when every row is used ; source : a label for the input (file:key).
    """

    data: Any
    n_total: int
    indices: np.ndarray | None = None
    source: str | None = None

    @property
    def n_used(self) -> int:
        return int(self.data.shape[0])

    @property
    def label(self) -> str | None:
        """The input's label for messages (``file:key``), as lazy file sources have."""
        return self.source

    @property
    def subsampled(self) -> bool:
        return self.n_used < self.n_total


def choose_rows(n_total: int, max_n: int | None, *, seed: int = 0, sampler: str = "numpy") -> np.ndarray | None:
    """Indices of at most ``max_n`` of ``n_total`` rows (sorted), or None for all rows.

    ``max_n`` of None or 0 means all rows.
    """
    check_choice(sampler, "sampler", SAMPLERS)
    if max_n is None or max_n == 0:
        return None
    max_n = check_positive_int(max_n, "max_n", minimum=0)
    if n_total <= max_n:
        return None
    if sampler == "published":
        idx = np.asarray(random.Random(seed).sample(range(n_total), k=max_n), dtype=np.int64)
    else:
        idx = np.random.default_rng(seed).choice(n_total, size=max_n, replace=False).astype(np.int64)
    return np.sort(idx)


def take_rows(x: Any, *, max_n: int | None = DEFAULT_MAX_N, seed: int = 0, sampler: str = "numpy") -> Rows:
    """Select rows of ``x`` (array, tensor, :class:`Rows` or a lazy file source).

    A :class:`Rows` is returned unchanged (it has been subsampled already). A lazy source
    (anything with ``shape`` and ``read(rows)``, see :mod:`dsecli.inputs.readers`) reads only the
    selected rows from disk.
    """
    if isinstance(x, Rows):
        return x
    if hasattr(x, "read") and hasattr(x, "shape"):
        n_total = int(x.shape[0])
        idx = choose_rows(n_total, max_n, seed=seed, sampler=sampler)
        return Rows(x.read(idx), n_total, idx, getattr(x, "label", None))
    if not hasattr(x, "shape"):
        x = np.asarray(x)
    if len(x.shape) == 0:
        raise InputError("input must be an array with one row per sample; got a scalar")
    n_total = int(x.shape[0])
    idx = choose_rows(n_total, max_n, seed=seed, sampler=sampler)
    if idx is None:
        return Rows(x, n_total, None)
    if hasattr(x, "detach"):  # torch tensor
        import torch

        return Rows(x[torch.as_tensor(idx, device=x.device)], n_total, idx)
    return Rows(x[idx], n_total, idx)


def subset_draws(n_total: int, size: int, repetitions: int, *, seed: int, sampler: str, stream: int = 0) -> list[np.ndarray]:
    """``repetitions`` uniform draws of ``size`` of ``n_total`` rows, without replacement.

    ``"published"`` reseeds CPython's generator with ``seed`` for each call (as the published
    DSMI does for each class, so classes of equal size get identical subsets); ``"numpy"``
    derives an independent stream per ``stream`` number (the class index) from ``seed``.
    """
    if sampler == "published":
        gen = random.Random(seed)
        return [np.asarray(gen.sample(range(n_total), k=size), dtype=np.int64) for _ in range(repetitions)]
    rng = np.random.default_rng([seed, stream])
    return [rng.choice(n_total, size=size, replace=False).astype(np.int64) for _ in range(repetitions)]
