"""dsecli: diffusion spectral entropy and mutual information of embeddings, with baselines.

Library first; the ``dse`` command is a thin layer over these functions (each command makes
its public call from here). Every function takes the data first and keyword-only parameters,
and returns a frozen result whose ``to_dict()`` is JSON-safe. Units are bits unless ``base``
says otherwise.

- Measures: :func:`diffusion_spectral_entropy`, :func:`diffusion_spectral_mutual_information`,
  the published variants :func:`adjacency_spectral_entropy` and :func:`matrix_entry_entropy`,
  and the baselines :func:`binned_shannon_entropy`, :func:`binned_shannon_mutual_information`,
  :func:`kozachenko_leonenko_entropy`, :func:`ksg_mutual_information`, :func:`mine_mutual_information`.
- Several methods on the same rows (``dse entropy``/``dse mi``/``dse batch``): :func:`estimate`
  (entropy and mutual-information methods together), :func:`estimate_entropy`,
  :func:`estimate_mutual_information`, :func:`parse_methods`; ``ENTROPY_METHODS`` and
  ``MI_METHODS`` map each method name to its function, ``METHOD_OPTIONS`` to the options it takes.
- Inputs (``dse info``): :func:`open_array`, :func:`list_arrays`, :func:`split_spec`.
- Plans without computing (``--dry-run``): :func:`dry_run_entropy`, :func:`dry_run_mutual_information`,
  :func:`plan_entropy`, :func:`plan_mutual_information`, :func:`format_plan`; the plan a computation
  follows, as it starts (a progress display): :func:`on_plan`.
- ``dse spectrum``: :func:`spectrum_scan` (its defaults ``DEFAULT_T``, the diffusion times reported,
  and ``DEFAULT_T_MAX``, the end of the automatic t search); ``dse batch``: :func:`run_batch`, :func:`expand_inputs`;
  a results file as a table: :func:`read_results`; ``dse correlate``: :func:`correlate` (each series of
  a results file against outcomes such as accuracy), on :func:`rank_correlation` (Spearman and Kendall with
  bootstrap intervals); the σ policy of a row in words: :func:`sigma_policy`; the direction of a series:
  :func:`trend_direction`; ``dse check``: :func:`sanity_report`; ``dse validate``: :func:`run_validation`.
- Before computing: :func:`swapped_inputs` (embeddings and reference passed in the wrong order),
  :func:`check_resampling` (``bootstrap``/``permutations``/``confidence``, the counts against memory).
- CPU threads for a block of work: :func:`cpu_threads`.
- Inside a training loop: :class:`TrainingMonitor` (DSE/DSMI of named layers at each epoch).
- Results and errors: :class:`EntropyResult`, :class:`MIResult`, :class:`DseError` and its
  subclasses. ``__version__`` is the package version.

Every name but the errors and ``__version__`` is imported on first use (module
``__getattr__``), so ``import dsecli`` stays light.
"""

from dsecli.errors import ComputationError, DeviceError, DseError, InputError, MemoryLimitError
from dsecli.version import __version__

# Everything else: name -> module, imported when the name is first used (``import dsecli`` and
# ``dse --help`` stay light; numpy, torch and the estimators load with the first call).
_LAZY = {
    **dict.fromkeys(("EntropyResult", "MIResult"), "dsecli.results"),
    **dict.fromkeys(("diffusion_spectral_entropy", "diffusion_spectral_mutual_information"), "dsecli.measures.dse"),
    **dict.fromkeys(("adjacency_spectral_entropy", "matrix_entry_entropy"), "dsecli.measures.variants"),
    **dict.fromkeys(("binned_shannon_entropy", "binned_shannon_mutual_information", "kozachenko_leonenko_entropy",
                     "ksg_mutual_information", "mine_mutual_information"), "dsecli.estimators"),
    **dict.fromkeys(("ENTROPY_METHODS", "MI_METHODS", "METHOD_OPTIONS", "estimate", "estimate_entropy",
                     "estimate_mutual_information", "parse_methods"), "dsecli.methods"),
    **dict.fromkeys(("open_array", "list_arrays", "split_spec"), "dsecli.inputs.readers"),
    "weighted_kl_entropy": "dsecli.estimators.kl_weighted",
    "infonce_mutual_information": "dsecli.estimators.mine",
    **dict.fromkeys(("renyi_gram_entropy", "covariance_von_neumann_entropy", "rankme_entropy"),
                    "dsecli.measures.representation"),
    **dict.fromkeys(("spectrum_scan", "DEFAULT_T", "DEFAULT_T_MAX"), "dsecli.measures.spectrum_scan"),
    **dict.fromkeys(("run_batch", "expand_inputs"), "dsecli.batch.run"),
    "read_results": "dsecli.batch.read",
    **dict.fromkeys(("rank_correlation", "trend_direction"), "dsecli.correlation"),
    "correlate": "dsecli.batch.correlate",
    "sigma_policy": "dsecli.batch.series",
    **dict.fromkeys(("sanity_report", "swapped_inputs"), "dsecli.diagnostics.check"),
    "check_resampling": "dsecli.measures.resampling",
    "run_validation": "dsecli.diagnostics.known_answers",
    **dict.fromkeys(("plan_entropy", "plan_mutual_information", "format_plan", "on_plan"), "dsecli.diffusion.plan"),
    **dict.fromkeys(("dry_run_entropy", "dry_run_mutual_information"), "dsecli.measures.dry_run"),
    "cpu_threads": "dsecli.device",
    "TrainingMonitor": "dsecli.monitor.monitor",
}


def __getattr__(name: str) -> object:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'dsecli' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups do not come back here
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


__all__ = [
    "__version__",
    "EntropyResult",
    "MIResult",
    "diffusion_spectral_entropy",
    "diffusion_spectral_mutual_information",
    "adjacency_spectral_entropy",
    "matrix_entry_entropy",
    "binned_shannon_entropy",
    "binned_shannon_mutual_information",
    "kozachenko_leonenko_entropy",
    "ksg_mutual_information",
    "mine_mutual_information",
    "infonce_mutual_information",
    "weighted_kl_entropy",
    "renyi_gram_entropy",
    "covariance_von_neumann_entropy",
    "rankme_entropy",
    "estimate_entropy",
    "estimate_mutual_information",
    "parse_methods",
    "ENTROPY_METHODS",
    "METHOD_OPTIONS",
    "estimate",
    "MI_METHODS",
    "open_array",
    "list_arrays",
    "split_spec",
    "spectrum_scan",
    "DEFAULT_T",
    "DEFAULT_T_MAX",
    "run_batch",
    "expand_inputs",
    "read_results",
    "correlate",
    "rank_correlation",
    "trend_direction",
    "sigma_policy",
    "sanity_report",
    "swapped_inputs",
    "check_resampling",
    "run_validation",
    "plan_entropy",
    "plan_mutual_information",
    "dry_run_entropy",
    "dry_run_mutual_information",
    "on_plan",
    "format_plan",
    "cpu_threads",
    "TrainingMonitor",
    "DseError",
    "InputError",
    "ComputationError",
    "DeviceError",
    "MemoryLimitError",
]
