"""The public edge of every method: one decorator does, once per call, what every estimator needs.

:func:`public_method` turns a *kernel* — ``kernel(rows, call, **options) -> Measured``, from
prepared rows to a value, its parameters and details — into the public function users call, as
SciPy's ``_axis_nan_policy_factory`` does for ``scipy.stats``. The public function:

1. rejects options the method does not take (one line naming the method and its options);
2. checks the row selection and the logarithm base (:func:`check_call`);
3. prepares the rows (and reads the reference rows for mutual information) once,
   :func:`dsecli.inputs.prepare.prepare_rows`; a :class:`~dsecli.inputs.prepare.Prepared` is
   trusted as it is;
4. runs the kernel inside the one warnings channel (:class:`dsecli.errors.CollectWarnings`), times
   it, and builds the frozen :class:`~dsecli.results.EntropyResult` or
   :class:`~dsecli.results.MIResult` with the selection recorded in ``params``.

:func:`dsecli.methods.estimate_entropy` and :func:`~dsecli.methods.estimate_mutual_information`
check and prepare once for several methods and call :func:`measure` for each.
"""

from __future__ import annotations

import functools
import inspect
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from dsecli.errors import CollectWarnings, InputError, check_choice, check_positive, check_positive_int, quiet
from dsecli.inputs.prepare import Prepared, prepare_pair, prepare_rows
from dsecli.inputs.sampling import DEFAULT_MAX_N, SAMPLERS
from dsecli.results import EntropyResult, MIResult, units_for_base

__all__ = ["Call", "Measured", "check_call", "check_base", "public_method", "measure"]


@dataclass(frozen=True)
class Call:
    """The checked selection of one call: what every kernel of the call shares."""

    base: float
    seed: int
    max_n: int | None
    sampler: str

    @property
    def units(self) -> str:
        return units_for_base(self.base)

    def from_nats(self, nats: float) -> float:
        """A value in nats expressed in this call's units."""
        return float(nats) / math.log(self.base)


@dataclass(frozen=True)
class Measured:
    """What a kernel returns: the value in the call's units, the parameters it used, its details."""

    value: float
    params: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)
    eigenvalues: np.ndarray | None = None
    method: str | None = None  # a kernel serving several names (ase-*) says which ran


def check_base(base: Any) -> float:
    """The logarithm base: a finite number > 0 and != 1."""
    base = check_positive(base, "base")
    if base == 1:
        raise InputError("`base` must be > 0 and != 1; got 1")
    return base


def check_call(*, base: Any = 2.0, seed: Any = 0, max_n: Any = DEFAULT_MAX_N, sampler: Any = "numpy") -> Call:
    """Check the options every method shares, once per call."""
    if max_n is not None:
        check_positive_int(max_n, "max_n", minimum=0)
    return Call(base=check_base(base), seed=check_positive_int(seed, "seed", minimum=0), max_n=max_n,
                sampler=check_choice(sampler, "sampler", SAMPLERS))


def measure(name: str, kernel: Callable[..., Measured], rows: Prepared, call: Call, options: dict[str, Any], *,
            quantity: str, start: float | None = None,
            resample: Callable[..., dict[str, Any]] | None = None) -> EntropyResult | MIResult:
    """Run ``kernel`` on prepared rows inside the warnings channel and build its result.

    ``resample(value, again, known)``, when given, adds to ``extra`` what re-evaluations on
    other rows give (bootstrap, permutations): ``again(rows)`` is this measurement on ``rows``
    (its warnings kept in its own result), ``known`` the warnings raised so far.
    """
    start = time.perf_counter() if start is None else start
    with CollectWarnings(rows.warnings) as notes:
        got = kernel(rows, call, **options)
        extra = dict(got.extra)
        if resample is not None:
            def again(other: Prepared) -> EntropyResult | MIResult:
                try:
                    with quiet():
                        return measure(name, kernel, other, call, options, quantity=quantity)
                finally:
                    other.end_call()

            extra.update(resample(got.value, again, tuple(notes)))
    params = {**got.params, "max_n": call.max_n, "seed": call.seed, "sampler": call.sampler}
    common = {"method": got.method or name, "value": float(got.value), "units": call.units, "base": call.base,
              "n_used": rows.n_used, "n_total": rows.n_total, "params": params,
              "elapsed_s": time.perf_counter() - start, "warnings": tuple(notes), "extra": extra}
    if quantity == "entropy":
        return EntropyResult(**common, eigenvalues=got.eigenvalues)
    return MIResult(**common)


_SHARED = [
    inspect.Parameter("max_n", inspect.Parameter.KEYWORD_ONLY, default=DEFAULT_MAX_N, annotation="int | None"),
    inspect.Parameter("seed", inspect.Parameter.KEYWORD_ONLY, default=0, annotation="int"),
    inspect.Parameter("sampler", inspect.Parameter.KEYWORD_ONLY, default="numpy", annotation="str"),
    inspect.Parameter("device", inspect.Parameter.KEYWORD_ONLY, default=None, annotation="Any"),
    inspect.Parameter("dtype", inspect.Parameter.KEYWORD_ONLY, default=None, annotation="Any"),
    inspect.Parameter("base", inspect.Parameter.KEYWORD_ONLY, default=2.0, annotation="float"),
    inspect.Parameter("flatten", inspect.Parameter.KEYWORD_ONLY, default=False, annotation="bool"),
    inspect.Parameter("drop_nonfinite", inspect.Parameter.KEYWORD_ONLY, default=False, annotation="bool"),
]


def public_method(name: str, *, quantity: str = "entropy", min_rows: int = 2) -> Callable[[Callable[..., Measured]],
                                                                                          Callable[..., Any]]:
    """Decorate ``kernel(rows, call, *, option=default, ...)`` into the public function of method ``name``.

    The public function takes ``x`` (and ``y`` for ``quantity="mi"``), the shared keywords
    ``max_n, seed, sampler, device, dtype, base, flatten, drop_nonfinite`` and the kernel's own
    keyword options; its signature shows all of them. ``public.kernel`` is the kernel,
    ``public.options`` the kernel's option names.
    """

    def decorate(kernel: Callable[..., Measured]) -> Callable[..., Any]:
        own = [p for p in inspect.signature(kernel).parameters.values() if p.kind is inspect.Parameter.KEYWORD_ONLY]
        options = frozenset(p.name for p in own)
        lead = [inspect.Parameter("x", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation="Any")]
        if quantity == "mi":
            lead.append(inspect.Parameter("y", inspect.Parameter.POSITIONAL_OR_KEYWORD, default=None,
                                          annotation="Any"))

        @functools.wraps(kernel)
        def public(x: Any, y: Any = None, *, max_n: int | None = DEFAULT_MAX_N, seed: int = 0,
                   sampler: str = "numpy", device: Any = None, dtype: Any = None, base: float = 2.0,
                   flatten: bool = False, drop_nonfinite: bool = False, **given: Any) -> Any:
            unknown = sorted(set(given) - options)
            if unknown:
                raise InputError(f"`{unknown[0]}` is not an option of {name} (its options: "
                                 f"{', '.join(sorted(options)) or 'none'}, and the row selection)")
            if quantity != "mi" and y is not None:
                raise InputError(f"{name} takes no reference (`y`): it is an entropy")
            start = time.perf_counter()
            call = check_call(base=base, seed=seed, max_n=max_n, sampler=sampler)
            selection = {"max_n": max_n, "seed": call.seed, "sampler": sampler, "min_rows": min_rows,
                         "flatten": flatten, "drop_nonfinite": drop_nonfinite, "device": device, "dtype": dtype}
            rows = prepare_pair(x, y, **selection) if quantity == "mi" else prepare_rows(x, **selection)
            try:
                return measure(name, kernel, rows, call, given, quantity=quantity, start=start)
            finally:
                rows.end_call()  # what the kernel kept for this call only (the median rule's distances)

        public.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
            [*lead, *_SHARED, *own], return_annotation="MIResult" if quantity == "mi" else "EntropyResult")
        del public.__wrapped__  # help() and inspect show the public signature, not the kernel's
        public.kernel = kernel  # type: ignore[attr-defined]
        public.options = options  # type: ignore[attr-defined]
        public.method_name = name  # type: ignore[attr-defined]
        public.quantity = quantity  # type: ignore[attr-defined]
        public.min_rows = min_rows  # type: ignore[attr-defined]
        return public

    return decorate
