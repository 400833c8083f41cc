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
at a time, so ``dse plot run.jsonl`` draws them (x = epoch, one line per run, layer, method and
reference).

Every monitor is one *run* with an identity, ``run_id`` (a fresh ``uuid4`` hex unless given),
recorded in every row and part of every row's key (run id, run name, layer, epoch, method,
parameters, reference): a second training (another learning rate, another seed) writing to the
same ``output`` is measured as a run of its own. Resuming continues one run only: ``run_id=`` an
earlier run's id, or ``resume=True`` (the latest run of this ``name`` in ``output``). A row whose key
is in the file already is not computed again; the count of such rows is given by a
:class:`~dsecli.errors.DseWarning` once per step and by :attr:`TrainingMonitor.skipped`, and an epoch
whose rows are all there skips the forward pass too.
"""

from __future__ import annotations

import os
import random
import time
import uuid
import warnings
from collections.abc import Iterable, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np

from dsecli.errors import DseWarning, InputError, check_positive_int, quiet
from dsecli.inputs.arrays import host_array, is_tensor
from dsecli.inputs.sampling import Rows, choose_rows

__all__ = ["TrainingMonitor", "read_runs", "INPUT_KEYS", "LABEL_KEYS"]

# the keys a dict batch's inputs and labels are looked for under, in this order (``input_key``/``label_key``: another)
INPUT_KEYS = ("x", "input", "inputs", "image", "images", "pixel_values", "input_ids", "features", "data")
LABEL_KEYS = ("y", "label", "labels", "target", "targets")

# DSE costs O(N^3) per layer and method at every epoch: a smaller budget than a file's 10,000 rows
DEFAULT_MONITOR_MAX_N = 1000


def _stack(parts: list[Any]) -> Any:
    import torch

    if all(is_tensor(p) for p in parts):
        return torch.cat([p.detach().cpu() for p in parts])
    return np.concatenate([host_array(p) for p in parts])


def _pick(batch: Mapping[Any, Any], key: str | None, candidates: tuple[str, ...], what: str,
          required: bool) -> Any:
    keys = list(batch.keys())
    if key is not None:
        if key not in batch:
            raise InputError(f"`{what}_key`: an `eval_data` batch has no key {key!r}; its keys are: "
                             f"{', '.join(map(repr, keys))}")
        return batch[key]
    for name in candidates:
        if name in batch:
            return batch[name]
    if required:
        raise InputError(f"`eval_data` yields dict batches with keys {', '.join(map(repr, keys))}, none of them one "
                         f"of {', '.join(candidates)}; pass input_key= naming the inputs' key")
    return None


def _materialize(eval_data: Any, input_key: str | None = None,
                 label_key: str | None = None) -> tuple[Any, Any]:
    """(inputs, labels from the batches or None) of a tensor/array or an iterable of batches (a DataLoader).

    A batch is ``x``, ``(x, y, ...)`` or a dict (``input_key``, else the first of :data:`INPUT_KEYS`
    present; labels under ``label_key``, else the first of :data:`LABEL_KEYS` present).
    """
    if is_tensor(eval_data) or isinstance(eval_data, np.ndarray):
        return eval_data, None
    if not isinstance(eval_data, Iterable) or isinstance(eval_data, (str, bytes, Mapping)):
        raise InputError(f"`eval_data` must be a tensor, an array or an iterable of batches (a DataLoader); "
                         f"got {type(eval_data).__name__}")
    xs: list[Any] = []
    ys: list[Any] = []
    for batch in eval_data:
        if isinstance(batch, Mapping):
            xs.append(_pick(batch, input_key, INPUT_KEYS, "input", True))
            label = _pick(batch, label_key, LABEL_KEYS, "label", False)
            if label is not None:
                ys.append(label)
        elif isinstance(batch, (tuple, list)):
            if not batch:
                raise InputError("`eval_data`: a batch is empty")
            xs.append(batch[0])
            if len(batch) > 1:
                ys.append(batch[1])
        else:
            xs.append(batch)
    if not xs:
        raise InputError("`eval_data` yielded no batches")
    for x in xs:
        if not (is_tensor(x) or isinstance(x, np.ndarray)):
            raise InputError(f"`eval_data`: a batch's inputs are {type(x).__name__}, not a tensor or an array"
                             + ("; pass input_key= naming the inputs' key" if input_key is None else ""))
    labels = _stack(ys) if len(ys) == len(xs) else None
    return _stack(xs), labels


@contextmanager
def _left_as_it_was(model: Any) -> Any:
    """Every random state (torch CPU and CUDA, numpy's global, Python's ``random``), torch's thread
    count and the parameters' ``requires_grad`` flags restored on exit (modes: capture_layers)."""
    import torch

    py_state, np_state = random.getstate(), np.random.get_state()  # noqa: NPY002 (restored as found)
    torch_state, threads = torch.get_rng_state(), torch.get_num_threads()
    cuda_states = torch.cuda.get_rng_state_all() if torch.cuda.is_available() and torch.cuda.is_initialized() else None
    flags = [(p, p.requires_grad) for p in model.parameters()]
    try:
        yield
    finally:
        random.setstate(py_state)
        np.random.set_state(np_state)  # noqa: NPY002
        torch.set_rng_state(torch_state)
        if cuda_states is not None:
            torch.cuda.set_rng_state_all(cuda_states)
        if torch.get_num_threads() != threads:
            torch.set_num_threads(threads)
        for p, flag in flags:
            if p.requires_grad != flag:
                p.requires_grad_(flag)


def read_runs(path: str | os.PathLike[str], run_id: str | None = None, *,
              name: str | None = None) -> dict[str, list[dict[str, Any]]]:
    """The monitor rows of a results file, grouped by run: ``{run_id: [rows in file order]}``.

    ``run_id``: only that run (an id or a unique prefix of one); ``name``: only runs of that name
    (the rows' ``file`` field). Rows without a ``run_id`` (an older dsecli) are under ``""``.
    Runs come in the order of their first row.
    """
    from dsecli.batch.read import read_result_rows

    path = os.fspath(path)
    runs: dict[str, list[dict[str, Any]]] = {}
    for row in read_result_rows(path, latest=False):
        if name is None or row.get("file") == name:
            runs.setdefault(str(row.get("run_id") or ""), []).append(row)
    if run_id is not None:
        matches = [r for r in runs if r == run_id] or [r for r in runs if r and r.startswith(str(run_id))]
        if len(matches) != 1:
            known = ", ".join(r or "(no id)" for r in runs) or "none"
            raise InputError(f"`run_id`: {path} has {'no run' if not matches else 'several runs'} matching "
                             f"{run_id!r}; its runs are: {known}")
        return {matches[0]: runs[matches[0]]}
    return runs


def _check_model(model: Any) -> None:
    for kind, tensors in (("parameter", model.parameters()), ("buffer", model.buffers())):
        for t in tensors:
            if t.device.type == "meta":
                raise InputError(f"`model`: its {kind}s are on the 'meta' device and hold no data, so it cannot be "
                                 "run on the evaluation set; load or materialise its weights first "
                                 "(model.to_empty(device=...) and load_state_dict, or build it on a real device)")


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
        The run's name: the rows' ``file`` field, part of every row's key. Runs of one name are
        told apart by their ``run_id``.
    run_id : str, optional
        This run's identity, in every row (``run_id``) and in every row's key. None: a fresh one
        (:attr:`run_id`, ``uuid4().hex``, drawn from the operating system, never from a random state
        of the program). Pass an earlier run's id to continue that run.
    resume : bool or str
        False (default): a new run (or the run ``run_id`` names). True: continue the latest run of
        this ``name`` in ``output`` (a new run when it has none). A string: continue that run
        (the same as ``run_id=``).
    input_key, label_key : str, optional
        For an ``eval_data`` yielding dict batches: the key of the inputs (default: the first of
        ``"x"``, ``"input"``, ``"inputs"``, ``"image"``, ``"images"``, ... present) and of the labels
        (default: the first of ``"y"``, ``"label"``, ``"labels"``, ``"target"``, ``"targets"``).
    drop_nonfinite : bool
        Drop the evaluation rows whose activations hold NaN or infinity (a diverging run) instead
        of raising an error naming the layer and the epoch.
    batch_size : int
        Rows per forward pass.
    device, dtype
        Where and in which precision the methods compute (None: CUDA when available, and each
        method's own dtype). The captured outputs stay on the model's device until then.
    tensorboard : path or SummaryWriter, optional
        Also log each value as a TensorBoard scalar (tag ``method/layer[/reference]``, step = epoch).

    :meth:`step` leaves the model's train/eval modes and ``requires_grad`` flags, every random
    state (torch's CPU and CUDA generators, numpy's global one, Python's ``random``), torch's
    thread count and the autograd graph as they were: reading a shuffling DataLoader, drawing the
    subsample or clustering the inputs changes none of them. The layers are captured with
    autocast disabled (float32 values also inside ``torch.autocast``).

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
        run_id: str | None = None,
        resume: bool | str = False,
        input_key: str | None = None,
        label_key: str | None = None,
        drop_nonfinite: bool = False,
    ) -> None:
        from dsecli.methods import ENTROPY_METHODS, MI_METHODS, method_options, parse_methods
        from dsecli.monitor.hooks import find_layers

        self.model = model
        _check_model(model)
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
        self.input_key, self.label_key = input_key, label_key
        self.drop_nonfinite = bool(drop_nonfinite)
        self.run_id = self._identity(run_id, resume)
        self.skipped = 0  # rows of the last step found in ``output`` already, not computed again
        self._measured: set[int] = set()  # epochs this monitor has measured
        self._prepared = False
        self._sink = None
        if tensorboard is not None:
            from dsecli.monitor.sinks import TensorBoardSink

            self._sink = TensorBoardSink(tensorboard)  # checked (and opened) now, before any training
        self.rows: list[dict[str, Any]] = []
        self.seconds: list[float] = []  # wall-clock seconds of each step that computed something
        # the keys in ``output`` and where it ended at the last step: each step reads only the rows
        # appended since, so a step does not grow with the length of the run
        self._keys_in_output: set[Any] = set()
        self._output_mark: Any = None

    def _identity(self, run_id: str | None, resume: bool | str) -> str:
        if isinstance(resume, str):
            if not resume or (run_id is not None and str(run_id) != resume):
                raise InputError(f"`resume`: {resume!r} names another run than run_id={run_id!r}" if resume
                                 else "`resume` must be True, False or a run id; got ''")
            run_id = resume
        elif not isinstance(resume, bool):
            raise InputError(f"`resume` must be True, False or a run id (a string); got {resume!r}")
        elif resume and run_id is None:
            if self.output is None:
                raise InputError("`resume=True` continues the latest run in `output`; no `output` was given")
            latest = None
            if os.path.isfile(self.output) and os.path.getsize(self.output):
                runs = read_runs(self.output, name=self.name)
                latest = next(reversed([r for r in runs if r]), None)
            run_id = latest
        if run_id is None:
            return uuid.uuid4().hex  # os.urandom: no random state of the program is used or changed
        run_id = str(run_id)
        if not run_id.strip() or any(c.isspace() for c in run_id):
            raise InputError(f"`run_id` must be a non-empty string without spaces; got {run_id!r}")
        return run_id

    # ---------------------------------------------------------------- the fixed evaluation rows

    def _prepare(self) -> None:
        """Read the evaluation set, draw its subsample and cluster its inputs (first call only)."""
        from dsecli.inputs.reference import read_reference
        from dsecli.monitor.hooks import model_device

        x, loader_labels = _materialize(self._eval_data, self.input_key, self.label_key)
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
        identity = f"monitor:{self.name}:run={self.run_id}:{layer}:epoch={epoch}"
        return row_key(identity, method, request_params(method, fn, given),
                       None if ref is None else self._reference_label(ref))

    def _compute(self, z: Any, tasks: list[tuple[str, str, str | None]], keep: Any = None) -> dict[Any, Any]:
        """{(kind, method, ref): result} of one layer's pending tasks: one :func:`dsecli.estimate` call per
        reference (the entropies ride with the labels' call), so the rows are prepared once per call."""
        from dsecli.methods import estimate

        indices = self.indices
        if keep is not None:  # drop_nonfinite: the rows whose activations are finite
            indices = (np.flatnonzero(keep) if indices is None else indices[keep])
            z = z[keep]

        def part(values: Any) -> Any:
            return values if keep is None else values[keep]

        rows = Rows(z, self.n_total, indices, None)
        calls: dict[str | None, list[tuple[str, str, str | None]]] = {}
        for task in tasks:
            kind, _method, ref = task
            group = ref if kind == "mi" else ("labels" if self._labels is not None else None)
            calls.setdefault(group, []).append(task)
        out: dict[Any, Any] = {}
        for group, mine in calls.items():
            options: dict[str, Any] = {}
            for _kind, method, _ref in mine:
                options.update(self._options[method])
            y, extra = None, {}
            if any(kind == "mi" for kind, _m, _r in mine):
                if group == "labels":
                    y = Rows(part(self._labels), self.n_total, indices, "labels")
                else:
                    y, extra = Rows(part(self._codes), self.n_total, indices, "inputs"), {"ref_kind": "discrete"}
            results = estimate(rows, y, methods=[m for _k, m, _r in mine], max_n=None, seed=self.seed,
                               device=self.device, dtype=self.dtype, **{**options, **extra})
            out.update(zip(mine, results))
        return out

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
        row = results_row(inp, result, key=key, rows_digest=rows_digest(self.indices), ref=reference,
                          input_fingerprint={"rows_sha256": z_hash}, replaces=None, extra_warnings=notes)
        row["run_id"] = self.run_id
        return row

    # ---------------------------------------------------------------- the call

    def step(self, epoch: int) -> list[dict[str, Any]]:
        """Measure every layer at ``epoch``; append and return the new rows (those not in ``output`` yet).

        Rows of this run already in ``output`` (a resumed run) are not computed again: their count
        is in :attr:`skipped` and in one :class:`~dsecli.errors.DseWarning` per step. Calling
        ``step`` again with an epoch this monitor has measured already measures nothing: it warns
        (:class:`~dsecli.errors.DseWarning`, "epoch 0 was measured already ...") and returns [],
        so that a loop counting epochs wrongly is told, while the training goes on; the rows keep
        the first measurement.

        Raises :class:`~dsecli.errors.InputError` for an unusable layer, evaluation set or
        results file (nothing is written then), for activations holding NaN or infinity (naming
        the layer and the epoch; see ``drop_nonfinite``), and the estimators' own errors.

        Returns
        -------
        list of dict
            The rows computed by this call, in the ``dse batch`` format; [] when every row of this
            epoch was there already.
        """
        epoch = check_positive_int(epoch, "epoch", minimum=0)
        if epoch in self._measured:
            self.skipped = 0
            warnings.warn(f"TrainingMonitor.step({epoch}): epoch {epoch} was measured already in run {self.run_id}; "
                          "nothing measured again (pass each epoch's own number)", DseWarning, stacklevel=2)
            return []
        with _left_as_it_was(self.model):
            new = self._step(epoch)
        self._measured.add(epoch)
        return new

    def _step(self, epoch: int) -> list[dict[str, Any]]:
        from dsecli.batch.read import stored_row_problem
        from dsecli.batch.store import ResultsFile, data_sha256
        from dsecli.monitor.hooks import capture_layers

        if not self._prepared:
            self._prepare()
        start = time.perf_counter()
        store = ResultsFile(self.output, since=self._output_mark) if self.output is not None else None
        new: list[dict[str, Any]] = []
        try:
            if store is not None:
                store.open()
                if not store.incremental:
                    self._keys_in_output = set()
                for r in store.rows:  # in file order: a later row of a key decides, as the readers read it
                    problem = stored_row_problem(r)
                    if problem is None:
                        self._keys_in_output.add(r.get("key"))
                    elif r.get("key") in self._keys_in_output:
                        self._keys_in_output.discard(r.get("key"))
                    if problem is not None and r.get("run_id") == self.run_id:
                        warnings.warn(f"{self.output}: a stored row of run {self.run_id} {problem}; it is measured "
                                      "again", DseWarning, stacklevel=3)
            done = self._keys_in_output if store is not None else {r.get("key") for r in self.rows}
            todo = [(layer, task, self._key(layer, epoch, *task)) for layer in self._layers
                    for task in self._tasks()]
            pending = [t for t in todo if t[2] not in done]
            self.skipped = len(todo) - len(pending)
            if self.skipped:
                warnings.warn(f"TrainingMonitor.step({epoch}): {self.skipped} of {len(todo)} rows of run {self.run_id} "
                              f"are in {self.output or 'the rows'} already and were not computed again",
                              DseWarning, stacklevel=3)
            if not pending:
                return []
            outputs = capture_layers(self.model, self._inputs, self._layers, batch_size=self.batch_size)
            keep = {layer: self._finite_rows(layer, z, epoch) for layer, z in outputs.items()}
            hashes = {layer: data_sha256(z) for layer, z in outputs.items()}
            results: dict[Any, Any] = {}
            for layer in self._layers:
                tasks = [task for name, task, _key in pending if name == layer]
                if tasks:
                    with quiet():  # each warning is kept in its row (result.warnings), not printed per step
                        results.update({(layer, t): r for t, r in
                                        self._compute(outputs[layer], tasks, keep[layer]).items()})
            for layer, (kind, method, ref), key in pending:
                result = results[(layer, (kind, method, ref))]
                notes = []
                if keep[layer] is not None:
                    notes.append(f"{int((~keep[layer]).sum())} rows with non-finite activations dropped")
                new.append(self._row(layer, epoch, result, key, ref, hashes[layer], notes))
            if store is not None:
                store.append_many(new)  # one fsync per step
                self._keys_in_output.update(row["key"] for row in new)
            self.rows.extend(new)
            if self._sink is not None:
                for row in new:
                    self._sink.write(row, epoch)
        finally:
            if store is not None:
                store.close()
                self._output_mark = store.mark
        self.seconds.append(time.perf_counter() - start)
        return new

    def _finite_rows(self, layer: str, z: Any, epoch: int) -> Any:
        """None when every activation is finite; else the mask of finite rows (drop_nonfinite) or an error."""
        import torch

        finite = torch.isfinite(z).all(dim=1)
        if bool(finite.all()):
            return None
        bad = int((~finite).sum())
        if not self.drop_nonfinite:
            raise InputError(f"layer {layer!r} at epoch {epoch}: {bad} of {z.shape[0]} evaluation rows have NaN or "
                             "infinite activations (has the training diverged? check the loss and the learning "
                             "rate), or pass drop_nonfinite=True to TrainingMonitor to measure the finite rows")
        mask = finite.cpu().numpy()
        if mask.sum() < 2:
            raise InputError(f"layer {layer!r} at epoch {epoch}: fewer than 2 of {z.shape[0]} evaluation rows have "
                             "finite activations; nothing to measure (has the training diverged?)")
        return mask

    __call__ = step

    def lightning_callback(self, *, every_n_epochs: int = 1, log: bool = True) -> Any:
        """A Lightning ``Callback`` that calls :meth:`step` at the end of every ``every_n_epochs``-th training epoch.

        With ``log`` (default), the values go to the trainer's loggers (CSVLogger, TensorBoardLogger,
        ...) through ``pl_module.log`` as ``dse/<layer>``, ``dsmi/<layer>`` (with the labels) and
        ``dsmi/<layer>/inputs``.

        Needs the ``lightning`` package (``pip install "dsecli[lightning]"``), imported only here.

        Returns
        -------
        lightning.pytorch.Callback
            Pass it to ``Trainer(callbacks=[...])``.
        """
        from dsecli.monitor.sinks import lightning_callback

        return lightning_callback(self, every_n_epochs=every_n_epochs, log=log)

    def close(self) -> None:
        """Flush and close the TensorBoard writer this monitor opened (the results file is closed after each step)."""
        if self._sink is not None:
            self._sink.close()

    def __enter__(self) -> TrainingMonitor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

