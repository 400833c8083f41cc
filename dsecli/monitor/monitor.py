"""DSE and DSMI of a model's layers during training, one call per epoch (the paper's use of them).

At each :meth:`TrainingMonitor.step`, the named layers' outputs on one fixed, seeded subsample of
the evaluation set are captured (:func:`dsecli.monitor.hooks.capture_layers`: forward hooks,
``torch.no_grad()``, eval mode, everything restored afterwards) and the chosen methods are
computed on them:

- entropy methods (``"dse"``, ...): H(Z) of each layer's output Z;
- mutual-information methods (``"dsmi"``, ...): I(Z; Y) with the labels, and, with
  ``cluster_inputs``, I(Z; X) with X represented by a k-means clustering of the flattened
  inputs (:func:`dsecli.inputs.clustering.kmeans`), computed once at the first call and kept, as
  in the paper (Liao et al., "Assessing neural network representations during training using
  noise-resilient diffusion spectral entropy", 2023; docs/method.md#dsmi).

The rows are those of ``dse batch`` (:mod:`dsecli.batch.store`), written to ``output`` one line
at a time, so ``dse plot run.jsonl`` draws them (x = epoch, one line per layer, method and
reference) and a rerun resumes: a row whose key (run name, layer, epoch, method, parameters,
reference) is in the file already is not computed again, and an epoch whose rows are all there
skips the forward pass too.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from dsecli.errors import InputError, check_positive_int, quiet
from dsecli.inputs.arrays import host_array, is_tensor
from dsecli.inputs.sampling import Rows, choose_rows

__all__ = ["TrainingMonitor"]

# DSE costs O(N^3) per layer and method at every epoch: a smaller budget than a file's 10,000 rows
DEFAULT_MONITOR_MAX_N = 1000


def _stack(parts: list[Any]) -> Any:
    import torch

    if all(is_tensor(p) for p in parts):
        return torch.cat([p.detach().cpu() for p in parts])
    return np.concatenate([host_array(p) for p in parts])


def _materialize(eval_data: Any) -> tuple[Any, Any]:
    """(inputs, labels from the batches or None) of a tensor/array or an iterable of batches (a DataLoader)."""
    if is_tensor(eval_data) or isinstance(eval_data, np.ndarray):
        return eval_data, None
    if not isinstance(eval_data, Iterable) or isinstance(eval_data, (str, bytes, Mapping)):
        raise InputError(f"`eval_data` must be a tensor, an array or an iterable of batches (a DataLoader); "
                         f"got {type(eval_data).__name__}")
    xs: list[Any] = []
    ys: list[Any] = []
    for batch in eval_data:
        if isinstance(batch, (tuple, list)):
            if not batch:
                raise InputError("`eval_data`: a batch is empty")
            xs.append(batch[0])
            if len(batch) > 1:
                ys.append(batch[1])
        else:
            xs.append(batch)
    if not xs:
        raise InputError("`eval_data` yielded no batches")
    labels = _stack(ys) if len(ys) == len(xs) else None
    return _stack(xs), labels


class TrainingMonitor:
    """Measure DSE/DSMI of named layers at each epoch; rows as ``dse batch`` writes them.

    Parameters
    ----------
    model : torch.nn.Module
        The model being trained. It is run on the evaluation subsample at each :meth:`step`.
    layers : sequence of str
        Module names as ``model.named_modules()`` prints them (``"fc2"``, ``"encoder.layer.3"``).
    eval_data : tensor, array, or iterable of batches
        The evaluation inputs (N, ...), or a DataLoader yielding ``x`` or ``(x, y, ...)``
        batches (read once, at the first call; its labels are used when ``labels`` is None).
    labels : array or tensor (N,), optional
        Y for the mutual-information methods (class labels or values, as ``dse mi`` takes them).
    methods : sequence of str
        Entropy methods (:data:`dsecli.ENTROPY_METHODS`, e.g. ``"dse"``) and mutual-information
        methods (:data:`dsecli.MI_METHODS`, e.g. ``"dsmi"``).
    output : path, optional
        A ``dse batch`` results file (JSON Lines) to append to and resume from; None keeps the
        rows in :attr:`rows` only.
    max_n : int or None
        Rows of the evaluation set used: one subsample drawn with ``seed`` at the first call and
        used at every call (None or 0: all).
    seed : int
        Seeds the subsample, the clustering of the inputs and every method.
    sigma : float or str, optional
        The kernel bandwidth of the diffusion methods (None: each method's default).
    cluster_inputs : bool or int
        Also compute I(Z; X) against a k-means clustering of the flattened inputs into
        ``cluster_inputs`` clusters (True: 10); False: labels only.
    params : mapping, optional
        Further method parameters (``t``, ``k``, ``bins``, ``base``, ...), as
        :func:`dsecli.estimate_entropy` takes them.
    name : str
        The run's name: the rows' ``file`` field, part of every row's key.
    batch_size : int
        Rows per forward pass.
    device, dtype
        Where and in which precision the methods compute (None: CUDA when available, and each
        method's own dtype). The captured outputs stay on the model's device until then.
    tensorboard : path or SummaryWriter, optional
        Also log each value as a TensorBoard scalar (tag ``method/layer[/reference]``, step = epoch).

    Each row's ``warnings`` holds the warnings raised while computing it (duplicate rows, dead
    units): they are recorded there instead of being printed at every epoch.
    """

    def __init__(
        self,
        model: Any,
        *,
        layers: Sequence[str],
        eval_data: Any,
        labels: Any = None,
        methods: Sequence[str] = ("dse", "dsmi"),
        output: str | os.PathLike[str] | None = None,
        max_n: int | None = DEFAULT_MONITOR_MAX_N,
        seed: int = 0,
        sigma: float | str | None = None,
        cluster_inputs: bool | int = True,
        params: Mapping[str, Any] | None = None,
        name: str = "monitor",
        batch_size: int = 512,
        device: Any = None,
        dtype: Any = None,
        tensorboard: Any = None,
    ) -> None:
        from dsecli.methods import ENTROPY_METHODS, MI_METHODS, method_options, parse_methods
        from dsecli.monitor.hooks import find_layers

        self.model = model
        self._layers = find_layers(model, layers)
        names = parse_methods(methods, what="methods")
        self.entropy_methods = [m for m in names if m in ENTROPY_METHODS]
        self.mi_methods = [m for m in names if m in MI_METHODS]
        self.seed = check_positive_int(seed, "seed", minimum=0)
        self.max_n = None if not max_n else check_positive_int(max_n, "max_n", minimum=2)
        self.batch_size = check_positive_int(batch_size, "batch_size")
        if isinstance(cluster_inputs, bool):
            self.n_clusters = 10 if cluster_inputs else 0
        else:
            self.n_clusters = check_positive_int(cluster_inputs, "cluster_inputs", minimum=2)
        self.output = os.fspath(output) if output is not None else None
        self.name = str(name)
        self.params: dict[str, Any] = dict(params or {})
        if sigma is not None:
            self.params["sigma"] = sigma
        # each method's share of the options, checked once: an option none of them takes is an error
        self._options = method_options(names, self.params)
        self.device, self.dtype = device, dtype
        self._eval_data, self._labels_given = eval_data, labels
        self._prepared = False
        self._sink = None
        if tensorboard is not None:
            from dsecli.monitor.sinks import TensorBoardSink

            self._sink = TensorBoardSink(tensorboard)
        self.rows: list[dict[str, Any]] = []
        self.seconds: list[float] = []  # wall-clock seconds of each step that computed something

    # ---------------------------------------------------------------- the fixed evaluation rows

    def _prepare(self) -> None:
        """Read the evaluation set, draw its subsample and cluster its inputs (first call only)."""
        from dsecli.inputs.reference import read_reference
        from dsecli.monitor.hooks import model_device

        x, loader_labels = _materialize(self._eval_data)
        self._eval_data = None  # the subsample is all that is kept
        labels = self._labels_given if self._labels_given is not None else loader_labels
        n = int(x.shape[0])
        if n < 2:
            raise InputError(f"`eval_data` must have at least 2 samples; got {n}")
        idx = choose_rows(n, self.max_n, seed=self.seed)
        self.n_total, self.indices = n, idx
        import torch

        xs = x if idx is None else x[torch.as_tensor(idx) if is_tensor(x) else idx]
        if is_tensor(xs):
            xs = xs.detach()
        else:  # an array (float64 from numpy/scikit-learn) takes the dtype of the model's parameters
            xs = torch.as_tensor(np.ascontiguousarray(xs))
            wanted = next((p.dtype for p in self.model.parameters() if p.is_floating_point()), None)
            if xs.is_floating_point() and wanted is not None:
                xs = xs.to(wanted)
        self._inputs = xs.to(model_device(self.model))
        self._labels = None
        if labels is not None:
            lab = host_array(labels)
            if lab.shape[0] != n:
                raise InputError(f"`labels` must have one entry per evaluation sample; got {lab.shape[0]} labels "
                                 f"for {n} samples")
            self._labels = lab if idx is None else lab[idx]
        if self.mi_methods and self._labels is None and not self.n_clusters:
            raise InputError(f"methods {', '.join(self.mi_methods)} need `labels` (or cluster_inputs=True)")
        self._codes = None
        if self.mi_methods and self.n_clusters:
            flat = host_array(self._inputs, np.float64).reshape(self._inputs.shape[0], -1)
            # the library's reading of a vector reference (k-means), once: the inputs do not change
            self._codes = read_reference(flat, seed=self.seed).classes(self.n_clusters).codes
        self._prepared = True

    # ---------------------------------------------------------------- keys and rows

    def _tasks(self) -> list[tuple[str, str, str | None]]:
        """(kind, method, reference) of each value per layer: reference None, "labels" or "inputs"."""
        tasks: list[tuple[str, str, str | None]] = [("entropy", m, None) for m in self.entropy_methods]
        for m in self.mi_methods:
            if self._labels is not None:
                tasks.append(("mi", m, "labels"))
            if self._codes is not None:
                tasks.append(("mi", m, "inputs"))
        return tasks

    def _reference_label(self, ref: str) -> str:
        return "labels" if ref == "labels" else f"inputs (k-means, k={self.n_clusters})"

    def _key(self, layer: str, epoch: int, kind: str, method: str, ref: str | None) -> str:
        from dsecli.batch.store import request_params, row_key
        from dsecli.methods import ENTROPY_METHODS, MI_METHODS

        fn = ENTROPY_METHODS[method] if kind == "entropy" else MI_METHODS[method]
        given = {"max_n": self.max_n, "seed": self.seed, "dtype": self.dtype, **self.params}
        if ref == "inputs":
            given["n_clusters"] = self.n_clusters
        identity = f"monitor:{self.name}:{layer}:epoch={epoch}"
        return row_key(identity, method, request_params(method, fn, given),
                       None if ref is None else self._reference_label(ref))

    def _compute(self, z: Any, kind: str, method: str, ref: str | None) -> Any:
        from dsecli.methods import estimate_entropy, estimate_mutual_information

        rows = Rows(z, self.n_total, self.indices, None)
        common = {"max_n": None, "seed": self.seed, "device": self.device, "dtype": self.dtype,
                  **self._options[method]}
        if kind == "entropy":
            (result,) = estimate_entropy(rows, methods=[method], **common)
            return result
        if ref == "labels":
            y = Rows(self._labels, self.n_total, self.indices, "labels")
            (result,) = estimate_mutual_information(rows, y, methods=[method], **common)
            return result
        y = Rows(self._codes, self.n_total, self.indices, "inputs")
        (result,) = estimate_mutual_information(rows, y, methods=[method], **{**common, "ref_kind": "discrete"})
        return result

    def _row(self, layer: str, epoch: int, result: Any, key: str, ref: str | None, z_hash: str,
             notes: list[str]) -> dict[str, Any]:
        from dsecli.batch.runners import Reference, results_row, rows_digest
        from dsecli.inputs.specs import BatchInput

        inp = BatchInput(file=self.name, dataset=f"epoch_{epoch}/{layer}", index=epoch, n_total=self.n_total,
                         checkpoint=epoch, series=layer)
        reference = None
        if ref is not None:
            values = self._labels if ref == "labels" else self._codes
            from dsecli.batch.store import data_sha256

            reference = Reference(label=self._reference_label(ref), identity=ref, values=values,
                                  ref_kind="auto" if ref == "labels" else "discrete",
                                  fingerprint={"rows_sha256": data_sha256(values)})
        return results_row(inp, result, key=key, rows_digest=rows_digest(self.indices), ref=reference,
                         input_fingerprint={"rows_sha256": z_hash}, replaces=None, extra_warnings=notes)

    # ---------------------------------------------------------------- the call

    def step(self, epoch: int) -> list[dict[str, Any]]:
        """Measure every layer at ``epoch``; append and return the new rows (those not in ``output`` yet).

        Raises :class:`~dsecli.errors.InputError` for an unusable layer, evaluation set or
        results file (nothing is written then), and the estimators' own errors.

        Returns
        -------
        list of dict
            The rows computed by this call, in the ``dse batch`` format; [] when every row of this
            epoch was in ``output`` already.
        """
        from dsecli.batch.store import ResultsFile, data_sha256
        from dsecli.monitor.hooks import capture_layers

        epoch = check_positive_int(epoch, "epoch", minimum=0)
        if not self._prepared:
            self._prepare()
        start = time.perf_counter()
        store = ResultsFile(self.output) if self.output is not None else None
        new: list[dict[str, Any]] = []
        try:
            if store is not None:
                store.open()
            done = {r.get("key") for r in (store.rows if store is not None else self.rows)}
            todo = [(layer, task, self._key(layer, epoch, *task)) for layer in self._layers
                    for task in self._tasks()]
            todo = [t for t in todo if t[2] not in done]
            if not todo:
                return []
            outputs = capture_layers(self.model, self._inputs, self._layers, batch_size=self.batch_size)
            hashes = {layer: data_sha256(z) for layer, z in outputs.items()}
            for layer, (kind, method, ref), key in todo:
                with quiet():  # each warning is kept in its row (result.warnings), not printed per step
                    result = self._compute(outputs[layer], kind, method, ref)
                row = self._row(layer, epoch, result, key, ref, hashes[layer], [])
                if store is not None:
                    store.append(row)
                self.rows.append(row)
                new.append(row)
                if self._sink is not None:
                    self._sink.write(row, epoch)
        finally:
            if store is not None:
                store.close()
        self.seconds.append(time.perf_counter() - start)
        return new

    __call__ = step

    def lightning_callback(self, *, every_n_epochs: int = 1) -> Any:
        """A Lightning ``Callback`` that calls :meth:`step` at the end of every ``every_n_epochs``-th training epoch.

        Needs the ``lightning`` package (``pip install "dsecli[lightning]"``), imported only here.

        Returns
        -------
        lightning.pytorch.Callback
            Pass it to ``Trainer(callbacks=[...])``.
        """
        from dsecli.monitor.sinks import lightning_callback

        return lightning_callback(self, every_n_epochs=every_n_epochs)

    def close(self) -> None:
        """Flush and close the TensorBoard writer this monitor opened (the results file is closed after each step)."""
        if self._sink is not None:
            self._sink.close()

    def __enter__(self) -> TrainingMonitor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

