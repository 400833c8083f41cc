"""DSE and DSMI as torchmetrics ``Metric`` objects: :class:`DSEMetric`, :class:`DSMIMetric`.

``update(z[, labels])`` adds a batch of embeddings (and, for DSMI, their labels) to a bounded,
seeded reservoir of at most ``max_n`` rows; ``compute()`` measures the reservoir with
:func:`dsecli.estimate` (under :func:`dsecli.errors.quiet`: the warnings are kept in
:attr:`last_result`); ``reset()`` empties it. Usable in a hand-written loop, as a Lightning
module's attribute (``self.log("dse", self.dse_metric)``) or in a ``MetricCollection``.

The reservoir is bottom-k sampling: each row gets a key drawn from a local generator
(``numpy.random.default_rng([seed, rank])``; no global random state is read or changed) and the
``max_n`` rows of smallest keys are kept, in the order they came. Every row seen has the same
chance to be kept, memory stays bounded at any number of updates, and two reservoirs merge
exactly: where a process group exists (``torch.distributed``), ``compute()`` gathers the rows
and keys of every process (torchmetrics' ``dist_reduce_fx="cat"`` states) and keeps the ``max_n``
smallest keys again, so every rank measures the same rows and gets the same value. While the
total is under ``max_n`` those are all the rows, rank 0's first: the value of one process that
saw every row in that order.

torchmetrics is an optional dependency (``pip install "dsecli[torchmetrics]"``), imported when this
module is.
"""

from __future__ import annotations

from typing import Any

import numpy as np

try:
    import torch
    from torchmetrics import Metric
    from torchmetrics.utilities import dim_zero_cat
except ImportError:  # pragma: no cover - exercised by monkeypatching sys.modules
    raise ImportError('dsecli.monitor.metrics needs torchmetrics, which is not installed; install it with: '
                      'pip install "dsecli[torchmetrics]"') from None

from dsecli.errors import InputError, check_positive_int, quiet

__all__ = ["DSEMetric", "DSMIMetric"]

# keyword arguments of torchmetrics.Metric itself (the others are the method's parameters)
_METRIC_KWARGS = {"compute_on_cpu", "dist_sync_on_step", "process_group", "dist_sync_fn", "distributed_available_fn",
                  "sync_on_compute", "compute_with_cache"}


def _rank() -> int:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return int(torch.distributed.get_rank())
    return 0


def _smallest(keys: Any, k: int) -> Any:
    """Indices of the ``k`` smallest keys, in increasing index order (the rows keep their order)."""
    idx = torch.topk(keys, k, largest=False, sorted=False).indices
    return torch.sort(idx).values


class _ReservoirMetric(Metric):
    full_state_update = False
    is_differentiable = False
    higher_is_better = None
    method = ""
    with_labels = False

    def __init__(self, *, max_n: int = 1000, seed: int = 0, sigma: float | str | None = None,
                 **kwargs: Any) -> None:
        metric_kwargs = {k: kwargs.pop(k) for k in list(kwargs) if k in _METRIC_KWARGS}
        super().__init__(**metric_kwargs)
        from dsecli.methods import method_options

        self.max_n = check_positive_int(max_n, "max_n", minimum=2)
        self.seed = check_positive_int(seed, "seed", minimum=0)
        self.params: dict[str, Any] = dict(kwargs)
        if sigma is not None:
            self.params["sigma"] = sigma
        method_options([self.method], self.params)  # an option the method does not take is an error now
        self.add_state("rows", default=[], dist_reduce_fx="cat")
        self.add_state("keys", default=[], dist_reduce_fx="cat")
        if self.with_labels:
            self.add_state("labels", default=[], dist_reduce_fx="cat")
        self._rng: np.random.Generator | None = None
        self.last_result: Any = None  # the EntropyResult/MIResult of the last compute(), with its warnings

    def _keys(self, n: int, device: Any) -> Any:
        if self._rng is None:
            self._rng = np.random.default_rng([self.seed, _rank()])
        return torch.from_numpy(self._rng.random(n)).to(device)

    def update(self, z: Any, labels: Any = None) -> None:  # type: ignore[override]
        """Add the rows of ``z`` (B, ...) (flattened per row) and, for DSMI, their ``labels`` (B,)."""
        z = torch.as_tensor(z).detach()
        if z.dim() == 0 or z.shape[0] == 0:
            return
        z = z.reshape(z.shape[0], -1)
        if not z.is_floating_point() or z.dtype in (torch.float16, torch.bfloat16):
            z = z.float()
        parts = [z, self._keys(z.shape[0], z.device)]
        if self.with_labels:
            if labels is None:
                raise InputError(f"{type(self).__name__}.update(z, labels): `labels` are needed for DSMI")
            lab = torch.as_tensor(labels).detach().reshape(-1).to(z.device)
            if lab.shape[0] != z.shape[0]:
                raise InputError(f"{type(self).__name__}.update: `labels` must have one entry per row of `z`; got "
                                 f"{lab.shape[0]} labels for {z.shape[0]} rows")
            parts.append(lab)
        self.rows.append(parts[0])
        self.keys.append(parts[1])
        if self.with_labels:
            self.labels.append(parts[2])
        if sum(int(k.shape[0]) for k in self.keys) > self.max_n:
            self._shrink()

    def _shrink(self) -> None:
        keys = dim_zero_cat(self.keys)
        keep = _smallest(keys, self.max_n)
        self.rows = [dim_zero_cat(self.rows)[keep]]
        self.keys = [keys[keep]]
        if self.with_labels:
            self.labels = [dim_zero_cat(self.labels)[keep]]

    def compute(self) -> Any:
        """The method's value on the reservoir (all processes' rows, at most ``max_n``), a float64 tensor."""
        import dsecli

        if not (isinstance(self.rows, torch.Tensor) or self.rows):
            raise InputError(f"{type(self).__name__}.compute(): no rows; call update() first")
        rows, keys = dim_zero_cat(self.rows), dim_zero_cat(self.keys)
        labels = dim_zero_cat(self.labels) if self.with_labels else None
        if rows.shape[0] > self.max_n:  # gathered from several processes: the same max_n rows on every rank
            keep = _smallest(keys, self.max_n)
            rows = rows[keep]
            labels = labels[keep] if labels is not None else None
        if rows.shape[0] < 2:
            raise InputError(f"{type(self).__name__}.compute(): needs at least 2 rows; got {rows.shape[0]}")
        y = labels.cpu().numpy() if labels is not None else None
        with quiet():
            (result,) = dsecli.estimate(rows.cpu().numpy(), y, methods=[self.method], max_n=None, seed=self.seed,
                                        **self.params)
        self.last_result = result
        return torch.tensor(float(result.value), dtype=torch.float64)

    def reset(self) -> None:
        """Empty the reservoir; the next updates draw the same keys again (the same seed)."""
        super().reset()
        self._rng = None


class DSEMetric(_ReservoirMetric):
    """Diffusion spectral entropy (bits) of the embeddings seen since the last ``reset()``.

    Parameters
    ----------
    max_n : int
        Rows kept (a uniform, seeded reservoir over every row seen; across processes after gathering).
    seed : int
        Seeds the reservoir and the method.
    sigma : float or str, optional
        The kernel bandwidth (None: the method's default).
    **kwargs
        Further method parameters (``t``, ``base``, ...; an unknown one is an error) and
        torchmetrics' own (``sync_on_compute``, ``process_group``, ...).
    """

    method = "dse"


class DSMIMetric(_ReservoirMetric):
    """Diffusion spectral mutual information (bits) of the embeddings with their labels: ``update(z, labels)``.

    Parameters as :class:`DSEMetric`.
    """

    method = "dsmi"
    with_labels = True
