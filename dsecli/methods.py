"""Methods by name: one call runs several estimators on the same rows.

``ENTROPY_METHODS`` and ``MI_METHODS`` map a method name (as on the command line) to its
function. :func:`estimate_entropy` and :func:`estimate_mutual_information` subsample and
validate once (:func:`dsecli.inputs.prepare.prepare_rows`), then hand every method the same
:class:`~dsecli.inputs.prepare.Prepared` (rows, reference, device and dtype, and the warnings
raised while preparing) and pass each only the keyword parameters its signature accepts (as
SciPy's ``methods`` dictionaries do).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping, Sequence
from functools import partial
from typing import Any

from dsecli.diagnostics.check import swapped_first_rows
from dsecli.edge import Call, check_call, measure
from dsecli.errors import CollectWarnings, DseWarning, InputError
from dsecli.estimators import (
    binned_shannon_entropy,
    binned_shannon_mutual_information,
    kozachenko_leonenko_entropy,
    ksg_mutual_information,
    mine_mutual_information,
)
from dsecli.estimators.kl_weighted import weighted_kl_entropy
from dsecli.estimators.mine import infonce_mutual_information
from dsecli.inputs.prepare import Prepared, prepare_rows, replace_warnings
from dsecli.inputs.sampling import DEFAULT_MAX_N
from dsecli.measures.dse import (
    diffusion_spectral_entropy,
    diffusion_spectral_mutual_information,
)
from dsecli.measures.representation import covariance_von_neumann_entropy, rankme_entropy, renyi_gram_entropy
from dsecli.measures.resampling import bootstrap_interval, check_resampling, permutation_null
from dsecli.measures.variants import adjacency_spectral_entropy, matrix_entry_entropy
from dsecli.results import EntropyResult, MIResult

__all__ = ["estimate", "ENTROPY_METHODS", "MI_METHODS", "METHOD_OPTIONS", "CLASS_BASED", "SELECTION_OPTIONS", "RESAMPLING_OPTIONS", "method_options",
           "parse_methods", "estimate_entropy", "estimate_mutual_information"]

ENTROPY_METHODS: dict[str, Callable[..., EntropyResult]] = {
    "dse": diffusion_spectral_entropy,
    "ase-gaussian": partial(adjacency_spectral_entropy, kernel="gaussian"),
    "ase-normalized": partial(adjacency_spectral_entropy, kernel="normalized"),
    "ase-knn": partial(adjacency_spectral_entropy, kernel="knn"),
    "matrix-entry": matrix_entry_entropy,
    "cse": binned_shannon_entropy,
    "knn": kozachenko_leonenko_entropy,
    "knn-weighted": weighted_kl_entropy,
    "renyi-gram": renyi_gram_entropy,
    "vne-cov": covariance_von_neumann_entropy,
    "rankme": rankme_entropy,
}
MI_METHODS: dict[str, Callable[..., MIResult]] = {
    "dsmi": diffusion_spectral_mutual_information,
    "csmi": binned_shannon_mutual_information,
    "ksg": ksg_mutual_information,
    "mine": mine_mutual_information,
    "infonce": infonce_mutual_information,
}
# "all" expands to these (the published spectral variants are asked for by name)
ENTROPY_ALL: list[str] = ["dse", "cse", "knn"]
MI_ALL: list[str] = ["dsmi", "csmi", "ksg", "mine"]

# The row selection every method takes (validated once, by prepare_rows).
SELECTION_OPTIONS = frozenset({"max_n", "seed", "sampler", "flatten", "drop_nonfinite", "base"})
_SPECTRAL = ("sigma", "t", "return_eigenvalues")
_NEURAL = ("hidden_units", "hidden_layers", "epochs", "batch_size", "learning_rate", "patience", "holdout_fraction",
           "average_last", "ref_kind", "cpu_threads", "device", "dtype")
# Each method's own options, declared: a call that gives an option none of its methods takes is an
# error naming the methods (tests/test_methods.py checks these against the functions' signatures).
METHOD_OPTIONS: dict[str, frozenset[str]] = {name: frozenset(opts) for name, opts in {
    "dse": (*_SPECTRAL, "solver", "tol_bits", "max_seconds", "device", "dtype"),
    "ase-gaussian": (*_SPECTRAL, "k", "device", "dtype"),
    "ase-normalized": (*_SPECTRAL, "k", "device", "dtype"),
    "ase-knn": (*_SPECTRAL, "k", "device", "dtype"),
    "matrix-entry": ("sigma", "device", "dtype"),
    "cse": ("bins",),
    "knn": ("k", "metric", "neighbor_method", "device", "dtype"),
    "knn-weighted": ("k", "n_constraints", "metric", "neighbor_method", "device", "dtype"),
    "renyi-gram": ("alpha", "sigma", "return_eigenvalues", "device", "dtype"),
    "vne-cov": ("return_eigenvalues", "device", "dtype"),
    "rankme": ("centre", "eps", "return_eigenvalues", "device", "dtype"),
    "dsmi": ("sigma", "t", "ref_kind", "n_clusters", "repetitions", "solver", "tol_bits", "max_seconds", "device",
             "dtype"),
    "csmi": ("bins", "ref_kind", "n_clusters", "repetitions"),
    "ksg": ("k", "metric", "metric_y", "standardize", "neighbor_method", "jitter", "ref_kind", "device", "dtype"),
    "mine": (*_NEURAL, "ma_rate", "eval_shuffles"),
    "infonce": (*_NEURAL, "embed_dim", "eval_batch"),
}.items()}
# What estimate_entropy / estimate_mutual_information add around every method
RESAMPLING_OPTIONS = frozenset({"bootstrap", "permutations", "confidence", "bootstrap_scheme"})
# MI methods that partition the reference into classes (bins or k-means for a continuous Y)
CLASS_BASED = frozenset({"dsmi", "csmi"})


def _own(options: dict[str, Any]) -> dict[str, Any]:
    # a method's own options: the selection (checked once, in the Call) and the placement (in the rows) left out
    return {k: v for k, v in options.items() if k not in SELECTION_OPTIONS and k not in ("device", "dtype")}


def method_options(names: Sequence[str], params: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Each method's share of ``params``: the options it declares (:data:`METHOD_OPTIONS`), None values left out.

    ``device`` and ``dtype`` are accepted by every call and go to the methods that compute with torch.

    Raises
    ------
    InputError
        An option that none of ``names`` takes, naming the option and what each method takes.
    """
    given = {k: v for k, v in params.items() if v is not None}
    # device and dtype place the rows: methods that compute without torch (cse, csmi) run on the CPU
    taken = set().union(*(METHOD_OPTIONS[n] for n in names)) | {"device", "dtype"} | SELECTION_OPTIONS
    for key in given:
        if key not in taken:
            what = "; ".join(f"{n} takes {', '.join(sorted(METHOD_OPTIONS[n])) or 'none'}" for n in names)
            raise InputError(f"`{key}` is not an option of {', '.join(names)} ({what})")
    return {n: {k: v for k, v in given.items() if k in METHOD_OPTIONS[n] | SELECTION_OPTIONS} for n in names}


def parse_methods(
    spec: str | Sequence[str],
    table: Mapping[str, Any] | Sequence[str] | None = None,
    all_names: Sequence[str] | None = None,
    *,
    what: str = "method",
    unknown: str = "is unknown",
) -> list[str]:
    """``"dse,cse"`` or ``["dse", "cse"]`` or ``"all"`` -> validated list of names, order kept, no repeats.

    The one method-list parser: ``--method`` of every command (entropy, mi, batch, plot,
    validate) goes through it. Names are stripped and lower-cased; empty items are skipped.

    Parameters
    ----------
    spec : str or sequence of str
        Comma-separated names, or a list of names; ``all`` stands for ``all_names``.
    table : mapping or sequence of str, optional
        The names allowed; default every entropy and mutual-information method.
    all_names : sequence of str, optional
        What ``all`` expands to; default :data:`ENTROPY_ALL` + :data:`MI_ALL` when ``table`` is
        not given, else every name of ``table``.
    what, unknown :
        The parameter name and the phrase for an unknown name, in messages.

    Returns
    -------
    list of str
        The method names, lower case, in the order given, each once.
    """
    if table is None:
        table, all_names = [*ENTROPY_METHODS, *MI_METHODS], all_names or [*ENTROPY_ALL, *MI_ALL]
    known = list(table)
    everything = list(all_names) if all_names is not None else known
    items = spec.split(",") if isinstance(spec, str) else list(spec)
    out: list[str] = []
    for raw in items:
        name = str(raw).strip().lower()
        if not name:
            continue
        for n in everything if name == "all" else [name]:
            if n not in known:
                raise InputError(f"`{what}` {n!r} {unknown}; choose from {', '.join(known)} or all")
            if n not in out:
                out.append(n)
    if not out:
        raise InputError(f"`{what}` is empty; choose from {', '.join(known)} or all")
    return out


def estimate_entropy(x: Any, *, methods: str | Sequence[str] = ("dse",), **options: Any) -> list[EntropyResult]:
    """Run each entropy method in ``methods`` on the same subsample of ``x``: :func:`estimate` with entropy
    methods only (the same keywords: ``max_n``, ``seed``, ``sampler``, ``flatten``, ``drop_nonfinite``,
    ``bootstrap``, ``confidence``, ``bootstrap_scheme`` and the methods' options).

    ``x`` is prepared once (:func:`dsecli.inputs.prepare.prepare_rows`; a
    :class:`~dsecli.inputs.prepare.Prepared` is used as it is), with ``device`` and ``dtype``
    resolved once for all methods. The other options (sigma, t, k, bins, base, ...) go to the
    methods that take them (:data:`METHOD_OPTIONS`). Every result lists the warnings raised while
    preparing as well as its own.

    ``bootstrap`` = B >= 2 adds a seeded interval at ``confidence`` for every method, in
    ``extra["bootstrap"]`` (``low``, ``high``, ``std``, ``B``, ``confidence``, ``scheme``,
    ``seed``, the B values): B re-evaluations on rows resampled from the prepared subsample
    (which stays fixed), with replacement for the binned entropy (cse) and as half-size
    subsamples without replacement for the others, whose estimates duplicate rows would bias
    (``bootstrap_scheme`` overrides the choice; details and formulas:
    :mod:`dsecli.measures.resampling`). 0 (default) computes nothing extra.

    Returns
    -------
    list of EntropyResult
        One per method, in the order of ``methods``.
    """
    names = parse_methods(methods, ENTROPY_METHODS, ENTROPY_ALL)
    if options.pop("permutations", 0):
        raise InputError("`permutations` applies to mutual information (estimate_mutual_information, dse mi): "
                         "an entropy has no reference to permute")
    return estimate(x, methods=names, **options)


def estimate_mutual_information(x: Any, y: Any = None, *, methods: str | Sequence[str] = ("dsmi",),
                                **options: Any) -> list[MIResult]:
    """Run each mutual-information method in ``methods`` on the same rows of ``x`` and ``y``: :func:`estimate`
    with mutual-information methods only (the same keywords, ``permutations`` among them).

    Prepared once as in :func:`estimate_entropy`, reference included: ``y`` may be None when
    ``x`` is a :class:`~dsecli.inputs.prepare.Prepared` that holds its reference.

    ``bootstrap``, ``confidence`` and ``bootstrap_scheme`` as in :func:`estimate_entropy` (X
    and Y rows resampled together). ``permutations`` = P >= 1 adds the permutation null of
    every method in ``extra["permutation"]``: P re-evaluations with the reference rows
    permuted (seeded, X fixed), ``p_value`` = (#{null >= value} + 1) / (P + 1), ``null_mean``,
    ``null_std`` and the P values (:func:`dsecli.measures.resampling.permutation_null`).

    Returns
    -------
    list of MIResult
        One per method, in the order of ``methods``.
    """
    names = parse_methods(methods, MI_METHODS, MI_ALL)
    if y is None and not (isinstance(x, Prepared) and x.reference is not None):
        raise InputError("`y` (the reference) is missing: pass it, or rows prepared with one "
                         "(prepare_rows(..., reference=y))")
    return estimate(x, y, methods=names, **options)


def estimate(
    x: Any,
    y: Any = None,
    *,
    methods: str | Sequence[str],
    max_n: int | None = DEFAULT_MAX_N,
    seed: int = 0,
    sampler: str = "numpy",
    flatten: bool = False,
    drop_nonfinite: bool = False,
    bootstrap: int = 0,
    permutations: int = 0,
    confidence: float = 0.95,
    bootstrap_scheme: str = "auto",
    **params: Any,
) -> list[EntropyResult | MIResult]:
    """Entropy and mutual-information methods together, on the same rows: one call, one edge.

    The options and the selection are checked once; the rows are prepared once and, with ``y``,
    the reference rows read once and read by one rule (:mod:`dsecli.inputs.reference`; classes
    made once for the class-based methods); then each method's kernel runs on them
    (:func:`dsecli.edge.measure`). ``permutations`` applies to the mutual-information methods.
    :func:`estimate_entropy` and :func:`estimate_mutual_information` are this call with one kind.

    Returns
    -------
    list of EntropyResult and MIResult
        One per method, in the order of ``methods``.
    """
    names = parse_methods(methods)
    mi = [n for n in names if n in MI_METHODS]
    if mi and y is None and not (isinstance(x, Prepared) and x.reference is not None):
        raise InputError(f"`y` (the reference) is missing: {', '.join(mi)} measure mutual information with it")
    bootstrap, permutations, confidence = check_resampling(bootstrap, permutations, confidence)
    options = method_options(names, params)
    call = check_call(base=params.get("base", 2.0), seed=seed, max_n=max_n, sampler=sampler)
    with CollectWarnings() as notes:
        # embeddings and reference passed in the wrong order: a hint on the error they cause, or a warning
        swap = swapped_first_rows(x, y) if mi and y is not None and not isinstance(x, Prepared) else None
        try:
            rows = prepare_rows(x, max_n=max_n, seed=call.seed, sampler=sampler, flatten=flatten,
                                drop_nonfinite=drop_nonfinite, device=params.get("device"), dtype=params.get("dtype"),
                                reference=y if mi else None)
        except InputError as exc:
            if swap is None:
                raise
            raise type(exc)(f"{exc}; {swap[1]}") from exc
        if swap is not None:
            warnings.warn(swap[1], DseWarning, stacklevel=2)
        if mi:
            # Y read once, by one rule, for every method (and classed once for those that use classes)
            reading = rows.reference_reading(ref_kind=params.get("ref_kind") or "auto", seed=call.seed)
            for n_clusters in {options[n].get("n_clusters", 10) for n in mi if n in CLASS_BASED}:
                reading.classes(n_clusters)
    rows = replace_warnings(rows, [*rows.warnings, *notes])
    resampling = {"bootstrap": bootstrap, "confidence": confidence, "seed": call.seed, "scheme": bootstrap_scheme}
    try:
        return [_run(n, {**ENTROPY_METHODS, **MI_METHODS}[n], rows, call, options[n],
                     {**resampling, "permutations": permutations if n in MI_METHODS else 0}) for n in names]
    finally:
        rows.end_call()  # what the methods shared for this call only (the median rule's distances)


def _run(name: str, fn: Callable[..., Any], rows: Prepared, call: Call, options: dict[str, Any],
         resampling: dict[str, Any]) -> Any:
    """One method on ``rows``, with its bootstrap interval and permutation null when asked for (in ``extra``)."""
    resample = None
    if resampling["bootstrap"] or resampling["permutations"]:
        def resample(value: float, again: Callable[[Prepared], Any], known: tuple[str, ...]) -> dict[str, Any]:
            out: dict[str, Any] = {}
            if resampling["bootstrap"]:
                out["bootstrap"], note = bootstrap_interval(
                    again, rows, value, method=name, resamples=resampling["bootstrap"],
                    confidence=resampling["confidence"], seed=resampling["seed"], scheme=resampling["scheme"],
                    known=known)
                if note is not None:
                    warnings.warn(note, DseWarning, stacklevel=2)
            if resampling["permutations"]:
                out["permutation"], note = permutation_null(
                    again, rows, value, method=name, permutations=resampling["permutations"], seed=resampling["seed"],
                    known=known)
                if note is not None:
                    warnings.warn(note, DseWarning, stacklevel=2)
            return out

    public, fixed = (fn.func, dict(fn.keywords)) if isinstance(fn, partial) else (fn, {})
    kernel = getattr(public, "kernel", None)
    if kernel is None:  # a function registered by hand, without the edge: called as users call it
        if resample is not None:
            raise InputError(f"`bootstrap` and `permutations` need a method behind dsecli.edge; {name} is not")
        return fn(rows, **{"max_n": call.max_n, "seed": call.seed, "sampler": call.sampler, "base": call.base,
                           **options})
    prepare_rows(rows, max_n=None, seed=call.seed, min_rows=public.min_rows)  # its own fewest rows
    return measure(public.method_name, kernel, rows, call, {**fixed, **_own(options)}, quantity=public.quantity,
                   resample=resample)
