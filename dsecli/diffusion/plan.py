"""Which DSE solver and operator a run will use, how much memory it needs and roughly how long it takes.

:func:`plan_entropy` answers without touching the data (``dse entropy --dry-run``);
:func:`diffusion_spectral_entropy` calls the same function, so the plan is what runs. Memory
figures count what the code allocates:

- exact: the N x N kernel (built in place: distances, exp, normalisation) plus the copy that
  ``torch.linalg.eigvalsh`` factorises: 2 N^2 numbers in the working dtype, plus the data.
- approx, dense operator: one N x N array in the storage dtype (float32 storage when float64
  does not fit), one block of kernel rows in the working dtype, the Krylov basis and its
  image (2 N k float64, k = block x depth) and the Lanczos vectors (about 5 N m float64).
- approx, kernel-rows operator (matrix-free): the data, its two float32 kernel factors
  (N x (D + 2) each), one tile of kernel rows (256-512 rows x 8,192 columns, float32),
  and the same Krylov / Lanczos vectors.

Times are a model, ``flops / rate``. The rates are this machine's when it has been calibrated
(:mod:`dsecli.diffusion.calibration`: a half-second probe of GEMM, kernel-entry and eigvalsh rates,
cached per CPU model, thread count, torch version and device; ``--dry-run`` calibrates when no
calibration is stored); otherwise default rates measured on a 2-core AVX-512 CPU (float64 GEMM
~40 GFLOP/s per thread, float32 ~80; eigvalsh ~2.0e-11 N^3 s at float64 on 2 threads) scaled by
the number of torch threads, and nominal figures for CUDA. Every plan says which
(``calibration``). The exact solver's time is ``2 N^2 D / gemm + N^2 / elem + c N^3`` with ``c``
the eigvalsh constant; benchmarks/dry_run_error.py measures the model's error.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Callable, Iterator
from typing import Any

from dsecli.device import as_device, available_memory_bytes, dtype_name, resolve_dtype
from dsecli.diffusion.kernels import median_rule_reads_all_rows
from dsecli.diffusion.operators import DENSE_BLOCK_ELEMENTS, ROWS_TILE_COLUMNS, rows_tile_rows
from dsecli.errors import ComputationError, InputError, MemoryLimitError, check_choice, check_positive_int

__all__ = [
    "SOLVERS",
    "AUTO_EXACT_MAX_N",
    "plan_entropy",
    "plan_mutual_information",
    "format_plan",
    "calibration_note",
    "solver_settings",
    "dense_matrix_bytes",
    "memory_budget",
    "check_memory",
    "check_dense_memory",
    "require_entropy_plan",
    "on_plan",
    "require_mi_plan",
    "keeps_distances",
]

SOLVERS = ("exact", "approx", "auto")
# "auto" uses the exact solver up to this many rows (the published cap: default runs reproduce
# the published values to rounding); above it the approximate solver is faster by 3x or more.
AUTO_EXACT_MAX_N = {"cpu": 10_000, "cuda": 20_000}
# Fraction of the free memory a plan may use (the rest is headroom for the allocator and the OS).
MEMORY_FRACTION = 0.85
# The approximate solver stores the N x N operator in float64 only while that takes at most this
# fraction of the free memory; above it, float32 storage (half the memory, twice the GEMM speed,
# rounding 6e-8 per entry) leaves room for the rest of the process and the machine.
FLOAT64_STORAGE_FRACTION = 0.5


def dense_matrix_bytes(n: int, dtype: Any = "float64", *, copies: int = 2) -> int:
    """Bytes of ``copies`` N x N matrices in ``dtype`` (the kernel and the eigensolver's working copy)."""
    # a size rule, not a check: the dtype (a resolved torch dtype or its name) was validated by the caller
    name = dtype if isinstance(dtype, str) else dtype_name(dtype)
    itemsize = 4 if name == "float32" else 8
    return int(copies) * int(n) * int(n) * itemsize


def _data_bytes(n: int, d: int) -> int:
    # the float64 rows handed over plus the tensor / centred copy
    return n * d * 8 * 2


def memory_budget(available: int) -> int:
    """The bytes a computation may plan to use out of ``available``: :data:`MEMORY_FRACTION` of it."""
    return int(available * MEMORY_FRACTION)


def check_memory(need: int, *, what: str, device: Any, hint: str, detail: str = "",
                 memory_bytes: int | None = None) -> int:
    """Raise :class:`~dsecli.errors.MemoryLimitError` unless ``need`` bytes fit the budget of ``device``.

    The rule of every plan here: the bytes needed must be at most :func:`memory_budget` of the
    memory available (``memory_bytes``, default what the device has free now). Checked before
    the allocation, so a run that cannot fit stops with figures instead of being killed by the
    operating system. The message: "<what> needs about X GiB<detail> but <device> has Y GiB
    available ...; <hint>".

    Returns
    -------
    int
        ``need``.
    """
    from dsecli.errors import MemoryLimitError

    dev = as_device(device)
    have = int(memory_bytes) if memory_bytes is not None else available_memory_bytes(dev)
    if need > memory_budget(have):
        raise MemoryLimitError(
            f"{what} needs about {need / 2**30:.1f} GiB{detail} but {dev.type} has {have / 2**30:.1f} GiB available (at most "
            f"{MEMORY_FRACTION:.0%} of it is used); {hint}"
        )
    return int(need)


def check_dense_memory(n: int, *, device: Any, dtype: Any, copies: int = 2, memory_bytes: int | None = None) -> int:
    """:func:`check_memory` for ``copies`` N x N matrices in ``dtype``, before any is allocated.

    Returns
    -------
    int
        The bytes needed (:func:`dense_matrix_bytes`).
    """
    return check_memory(dense_matrix_bytes(n, dtype, copies=copies),
                        what=f"N = {n}", detail=f" for {copies} N x N {dtype_name(resolve_dtype(dtype))} matrices",
                        device=device,
                        hint="use --max-n to subsample, --dtype float32, or another device", memory_bytes=memory_bytes)


def keeps_distances(n: int, d: int, *, sigma: Any, device: Any, dtype: Any, memory_bytes: int | None = None) -> bool:
    """Whether a call keeps the N x N squared distances of its rows once its bandwidth is decided.

    Where the median rule forms the distances of all rows anyway (``sigma`` "median", N up to
    :data:`dsecli.diffusion.kernels.MEDIAN_MAX_ROWS`), a dense DSE's kernel and DSMI's subset kernels
    are made from them instead of from the rows again, for the rest of the call. They are kept only
    where three N x N matrices (them, a dense DSE's kernel and the eigensolver's copy of it; the plans
    count two) and the rows fit the budget of ``memory_bytes`` (default: what ``device`` has free now).
    """
    if not median_rule_reads_all_rows(sigma, n):
        return False
    dev = as_device(device)
    have = int(memory_bytes) if memory_bytes is not None else available_memory_bytes(dev)
    return dense_matrix_bytes(n, dtype, copies=3) + _data_bytes(n, d) <= memory_budget(have)


def solver_settings(n: int, operator: str) -> dict[str, int]:
    """Deflation block/depth, probes and Lanczos steps the approximate solver starts with."""
    from dsecli.diffusion.slq import ApproxSettings

    s = ApproxSettings().resolved(n, operator)
    return {"block": s.block, "depth": s.depth, "probes": s.probes, "steps": s.steps, "max_probes": s.max_probes}


def _rates(device_type: str, dtype: str, threads: int, calibration: dict[str, Any] | None = None) -> dict[str, float]:
    """Throughputs of the time model: GEMM flop/s, kernel entries/s (distance bookkeeping, exp,
    copies), memory bandwidth (bytes/s; products with a few dozen vectors are memory-bound) and
    the eigvalsh constant (s / N^3). A calibration (:mod:`dsecli.diffusion.calibration`) replaces
    the GEMM, kernel-entry and eigvalsh figures by those measured on this machine."""
    if device_type == "cuda":
        out = {"gemm": 3.0e13 if dtype == "float32" else 2.5e13, "elem": 5e10, "bw": 2.5e12,
               "eig": 1.5e-12 if dtype == "float32" else 2.5e-12}
    else:
        per = 80e9 if dtype == "float32" else 40e9
        eig2 = 1.25e-11 if dtype == "float32" else 2.0e-11  # seconds per N^3 on 2 threads
        # eigvalsh is half memory-bound (tridiagonalisation): it scales sub-linearly with threads
        out = {"gemm": per * threads, "elem": 5e7 * threads, "bw": 5e9, "eig": eig2 * (2.0 / threads) ** 0.7}
    # float32 kernel tiles of the matrix-free operator: GEMM of depth D + 2 and in-place exp
    out["tile_gemm"], out["tile_exp"] = (2.5e13, 1e11) if device_type == "cuda" else (80e9 * threads, 1e9 * threads)
    if calibration is not None:
        measured = calibration["rates"]
        out.update(gemm=float(measured["gemm"][dtype]), eig=float(measured["eig"][dtype]), elem=float(measured["elem"]))
        if isinstance(measured.get("tile"), dict):
            out.update(tile_gemm=float(measured["tile"]["gemm"]), tile_exp=float(measured["tile"]["exp"]))
    return out


def _calibration(device: Any, calibration: Any) -> dict[str, Any] | None:
    """None -> the stored calibration of this machine, if any (never probes); False -> none; a dict -> itself."""
    if calibration is False:
        return None
    if calibration is None or calibration is True:
        from dsecli.diffusion.calibration import calibrate, load_calibration

        return calibrate(device) if calibration is True else load_calibration(device)
    return dict(calibration)


def calibration_note(calibration: dict[str, Any] | None) -> dict[str, Any]:
    """What a plan says about its time model: ``calibrated`` (bool), ``created`` and a ``note`` for people.

    Returns
    -------
    dict
        ``{"calibrated": bool, "created": str or None, "note": str}``.
    """
    if calibration is None:
        return {"calibrated": False, "created": None,
                "note": "uncalibrated: default rates (measured on a 2-core AVX-512 CPU)"}
    created = calibration.get("created")
    return {"calibrated": True, "created": created, "note": f"calibrated on this machine at {created}"}


def _threads() -> int:
    try:
        import torch

        return max(1, int(torch.get_num_threads()))
    except Exception:  # pragma: no cover - torch always present in practice
        import os

        return os.cpu_count() or 1


def plan_entropy(
    n_rows: int,
    n_features: int,
    *,
    solver: str = "auto",
    device: Any = "auto",
    dtype: Any = "float64",
    t: int = 1,
    memory_bytes: int | None = None,
    return_eigenvalues: bool = False,
    calibration: Any = None,
) -> dict[str, Any]:
    """Plan a DSE computation on an (N, D) input without computing anything.

    Parameters
    ----------
    n_rows, n_features : int
        N rows (after any subsampling) and D features.
    solver : {"auto", "exact", "approx"}
        "auto" picks exact up to :data:`AUTO_EXACT_MAX_N` rows (10,000 on CPU, 20,000 on CUDA)
        when its memory fits, else approx.
    device, dtype :
        As for :func:`dsecli.measures.dse.diffusion_spectral_entropy`.
    t : int
        Diffusion time (recorded; the cost does not depend on it).
    memory_bytes : int, optional
        Memory to plan for; default: what the device has available now.
    return_eigenvalues : bool
        All eigenvalues are wanted: only the exact solver gives them.
    calibration : None, bool or dict
        Rates of the time model: None uses this machine's stored calibration when there is one
        (:func:`dsecli.diffusion.calibration.load_calibration`; never probes), True probes when
        none is stored (:func:`~dsecli.diffusion.calibration.calibrate`), False uses the default
        rates, a dict is a calibration to use.

    Returns
    -------
    dict
        ``solver`` (resolved), ``operator`` ("eigvalsh", "dense" or "rows"), ``storage_dtype``,
        ``memory_bytes`` (peak estimate), ``memory_available``, ``fits``, ``expected_seconds``,
        ``reason`` (why this choice), ``calibration`` (:func:`calibration_note`), and the inputs.
    """
    n = check_positive_int(n_rows, "n_rows")
    d = check_positive_int(n_features, "n_features")
    t = check_positive_int(t, "t")
    check_choice(solver, "solver", SOLVERS)
    dev = as_device(device)
    dt = dtype_name(resolve_dtype(dtype))
    item = 4 if dt == "float32" else 8
    have = int(memory_bytes) if memory_bytes is not None else available_memory_bytes(dev)
    budget = memory_budget(have)
    cal = _calibration(dev, calibration)
    rates = _rates(dev.type, dt, _threads() if dev.type == "cpu" else 1, cal)
    data = _data_bytes(n, d)

    exact_mem = dense_matrix_bytes(n, dt, copies=2) + data + 8 * n * 4
    exact_time = 2.0 * n * n * d / rates["gemm"] + n * n / rates["elem"] + rates["eig"] * n**3

    s = solver_settings(n, "dense")
    sr = solver_settings(n, "rows")
    threads = _threads() if dev.type == "cpu" else 1
    gemm64 = _rates(dev.type, "float64", threads, cal)["gemm"]

    def vecs(st: dict[str, int]) -> int:  # Krylov basis and its image, Lanczos vectors (float64)
        return 8 * n * (2 * st["block"] * st["depth"] + 5 * st["probes"] + 2 * st["block"])

    def krylov(st: dict[str, int]) -> float:  # block orthogonalisation and Rayleigh-Ritz
        k = st["block"] * st["depth"]
        return (4.0 * n * k * st["block"] * st["depth"] + 6.0 * n * k * k) / gemm64

    build = 2.0 * n * n * d / rates["gemm"] + 2 * n * n / rates["elem"]

    def product(width: int, store: str) -> float:
        r = rates if store == dt else _rates(dev.type, store, threads, cal)
        return max(2.0 * n * n * width / r["gemm"], n * n * (4 if store == "float32" else 8) / r["bw"])

    def dense_mem(store_item: int) -> int:
        # one block of kernel rows in the working dtype while building
        return n * n * store_item + vecs(s) + data + min(n * n, DENSE_BLOCK_ELEMENTS) * 8

    def dense_time(store: str) -> float:
        return (build + s["depth"] * product(s["block"], store) + s["steps"] * product(s["probes"], store)
                + krylov(s))

    # kernel-rows operator: every product recomputes one triangle of the kernel in float32 (one GEMM of
    # depth D + 2 and N^2 / 2 exponentials) and applies it both ways (2 N^2 b flops)
    tile = rows_tile_rows(n) * min(n, ROWS_TILE_COLUMNS)
    rows_mem = vecs(sr) + 2 * n * (d + 2) * 4 + data + 2 * tile * 4 + 3 * n * sr["probes"] * 4
    passes = 1 + sr["depth"] + sr["steps"]
    columns = 1 + sr["block"] * sr["depth"] + sr["probes"] * sr["steps"]
    lanczos = 4.0 * n * sr["block"] * sr["probes"] * sr["steps"] / gemm64  # projections against kept pairs
    rows_time = ((passes * n * n * (d + 2) + 2.0 * n * n * columns) / rates["tile_gemm"]
                 + passes * n * n / (2.0 * rates["tile_exp"]) + krylov(sr) + lanczos)

    out: dict[str, Any] = {
        "n_rows": n, "n_features": d, "t": t, "device": str(dev), "dtype": dt, "solver_requested": solver,
        "memory_available": have, "memory_budget": budget, "calibration": calibration_note(cal),
    }
    exact_fits = exact_mem <= budget
    if solver == "exact" or (solver == "auto" and (return_eigenvalues or (
            n <= AUTO_EXACT_MAX_N.get(dev.type, AUTO_EXACT_MAX_N["cpu"]) and exact_fits))):
        reason = "requested" if solver == "exact" else (
            "all eigenvalues requested" if return_eigenvalues else
            f"N = {n} <= {AUTO_EXACT_MAX_N.get(dev.type, 10_000)}: exact eigenvalues are affordable")
        out.update(solver="exact", operator="eigvalsh", storage_dtype=dt, memory_bytes=exact_mem, fits=exact_fits,
                   expected_seconds=exact_time, reason=reason)
        return out
    if return_eigenvalues:
        raise InputError("`return_eigenvalues` needs solver 'exact' (the approximate solver computes spectral sums, "
                         "not all N eigenvalues); got solver 'approx'")
    why = "requested" if solver == "approx" else f"N = {n} above the exact range or its memory ({exact_mem / 2**30:.1f} GiB)"
    out.update(exact_seconds=exact_time, exact_memory_bytes=exact_mem)
    if dense_mem(item) <= (budget if item == 4 else min(budget, int(have * FLOAT64_STORAGE_FRACTION))):
        out.update(solver="approx", operator="dense", storage_dtype=dt, memory_bytes=dense_mem(item), fits=True,
                   expected_seconds=dense_time(dt), reason=f"{why}; the N x N operator fits in {dt}",
                   approx_settings=s)
    elif item == 8 and dense_mem(4) <= budget:  # float64 would crowd the memory (or not fit)
        out.update(solver="approx", operator="dense", storage_dtype="float32", memory_bytes=dense_mem(4), fits=True,
                   expected_seconds=dense_time("float32"),
                   reason=f"{why}; the N x N operator is stored in float32 (in float64 it would take more than "
                          f"{FLOAT64_STORAGE_FRACTION:.0%} of the free memory); kernel computed in float64",
                   approx_settings=s)
    else:
        out.update(solver="approx", operator="rows", storage_dtype="float32", memory_bytes=rows_mem,
                   fits=rows_mem <= budget,
                   expected_seconds=rows_time,
                   reason=f"{why}; an N x N operator needs {n * n * 4 / 2**30:.0f} GiB even in float32: kernel rows "
                          f"are recomputed in float32 at every product (about {passes} passes over one triangle "
                          "of the kernel)",
                   approx_settings=sr)
    out["speedup_vs_exact"] = exact_time / out["expected_seconds"]
    return out


def plan_mutual_information(
    class_sizes: Any,
    n_features: int,
    *,
    solver: str = "exact",
    repetitions: int = 5,
    device: Any = "auto",
    dtype: Any = "float64",
    t: int = 1,
    memory_bytes: int | None = None,
    calibration: Any = None,
    sigma: Any = "median",
) -> dict[str, Any]:
    """Plan DSMI (docs/method.md#dsmi) from its class sizes, without computing anything.

    Every DSE of DSMI is taken at a class size n_y (the class itself and ``repetitions``
    size-matched subsets of all rows), so each distinct size gets its own
    :func:`plan_entropy`. The subsets' kernels are cut out of the N x N squared distances of all
    rows when every size is solved exactly, two N x N matrices fit, and that is cheaper than
    computing each set's kernel from its rows: where the call keeps the distances the median
    rule formed (:func:`keeps_distances`; ``sigma`` as DSMI takes it), whenever gathering an
    entry costs less than computing it (D above about 64); else where computing the N^2
    distances once pays (many features and few, large classes: with 10 classes it never does).
    Otherwise each set's kernel is computed from its rows (the same values up to rounding).

    Returns
    -------
    dict
        ``n_rows`` (N), ``n_features``, ``solver_requested``, ``sizes`` (size -> DSE plan, keys as
        strings), ``dse_count``, ``shared_kernel`` (subsets cut out of the distances of all rows),
        ``kept_distances`` (those distances are the median rule's), ``memory_bytes`` (peak estimate),
        ``memory_available``, ``fits``, ``expected_seconds`` (all DSEs), ``device``, ``dtype``,
        ``calibration`` (as :func:`plan_entropy`'s, whose ``calibration`` parameter this takes).
    """
    counts = [int(c) for c in class_sizes]
    n = check_positive_int(sum(counts), "n_rows")
    d = check_positive_int(n_features, "n_features")
    repetitions = check_positive_int(repetitions, "repetitions")
    check_choice(solver, "solver", SOLVERS)
    dev = as_device(device)
    dtype = resolve_dtype(dtype)
    dt = dtype_name(dtype)
    have = int(memory_bytes) if memory_bytes is not None else available_memory_bytes(dev)
    sizes = sorted({c for c in counts if c > 1})
    cal = _calibration(dev, calibration)
    plans = {m: plan_entropy(m, d, solver=solver, device=dev, dtype=dtype, t=t, memory_bytes=have,
                             calibration=cal if cal is not None else False) for m in sizes}
    shared_bytes = dense_matrix_bytes(n, dt, copies=2) + _data_bytes(n, d)
    kept = keeps_distances(n, d, sigma=sigma, device=dev, dtype=dtype, memory_bytes=have)
    # entries of all the sets' kernels; cutting them from the N x N distances pays only when computing
    # N^2 entries once (nothing where the median rule's are kept) and gathering these costs less than
    # computing these from their rows: N^2 (2 D + 20) < area (2 D - 128) in flop-equivalents (an exp
    # ~ 20 flops; one gathered entry cost as much as one computed at D = 64: 3.6 vs 2.9 ms for 800^2,
    # benchmarks/speed.py's DSMI)
    area = sum((1 + repetitions) * c * c for c in counts if c > 1)
    cheaper = (0.0 if kept else n * n * (2.0 * d + 20.0)) < area * (2.0 * d - 128.0)
    shared = (all(p["solver"] == "exact" for p in plans.values()) and shared_bytes <= memory_budget(have)
              and cheaper)
    largest = max((p["memory_bytes"] for p in plans.values()), default=0)
    return {
        "n_rows": n, "n_features": d, "t": t, "device": str(dev), "dtype": dt, "solver_requested": solver,
        "repetitions": repetitions, "sizes": {str(m): p for m, p in plans.items()},
        "dse_count": sum(1 + repetitions for c in counts if c > 1),
        "shared_kernel": shared,
        "kept_distances": kept,
        "memory_bytes": shared_bytes if shared else largest,
        "memory_available": have,
        "fits": all(p["fits"] for p in plans.values()),
        "expected_seconds": sum((1 + repetitions) * plans[c]["expected_seconds"] for c in counts if c > 1),
        "calibration": calibration_note(cal),
    }


def format_plan(plan: dict[str, Any]) -> str:
    """One line for messages: solver, operator, memory and time.

    Returns
    -------
    str
        E.g. ``"solver exact (eigvalsh, float64), ~0.01 GiB of 12.0 GiB available, ~0 s expected on cpu"``.
    """
    secs = float(plan["expected_seconds"])
    when = f"{secs:.0f} s" if secs < 120 else (f"{secs / 60:.0f} min" if secs < 7200 else f"{secs / 3600:.1f} h")
    return (f"solver {plan['solver']} ({plan['operator']}, {plan['storage_dtype']}), "
            f"~{plan['memory_bytes'] / 2**30:.2f} GiB of {plan['memory_available'] / 2**30:.1f} GiB available, "
            f"~{when} expected on {plan['device']}")


# Who hears of the plan a computation is about to follow (the CLI's spinner): set by on_plan()
_LISTENER: contextvars.ContextVar[Callable[[str, float], None] | None] = contextvars.ContextVar(
    "dsecli_plan_listener", default=None)


@contextlib.contextmanager
def on_plan(listener: Callable[[str, float], None]) -> Iterator[None]:
    """Inside the block, ``listener(label, expected_seconds)`` is called with each plan a computation
    enforces (:func:`require_entropy_plan`, :func:`require_mi_plan`) just before it computes: the plan
    that runs is the plan shown, made once.

    Yields
    ------
    None
        A context manager: ``with on_plan(show): estimate_entropy(...)``.
    """
    token = _LISTENER.set(listener)
    try:
        yield
    finally:
        _LISTENER.reset(token)


def _announce(label: str, plan: dict[str, Any]) -> None:
    listener = _LISTENER.get()
    if listener is not None:
        listener(label, float(plan["expected_seconds"]))


def require_entropy_plan(n: int, xt: Any, *, solver: str, t: int, return_eigenvalues: bool = False,
                         max_seconds: float | None = None) -> dict[str, Any]:
    """:func:`plan_entropy` for the N rows of ``xt`` (already on its device), enforced: raises
    :class:`~dsecli.errors.MemoryLimitError` when it does not fit and
    :class:`~dsecli.errors.ComputationError` when its expected time exceeds ``max_seconds``; announced
    to :func:`on_plan`'s listener."""
    # the rows are already on the device: count them as available again
    plan = plan_entropy(n, int(xt.shape[1]), solver=solver, device=xt.device, dtype=xt.dtype, t=t,
                        return_eigenvalues=return_eigenvalues,
                        memory_bytes=available_memory_bytes(xt.device) + xt.numel() * xt.element_size())
    if not plan["fits"]:
        hint = "--solver approx, " if plan["solver"] == "exact" else ""
        raise MemoryLimitError(
            f"N = {n} does not fit: {format_plan(plan)}; use --max-n to subsample, {hint}--dtype float32, "
            "or another device"
        )
    if max_seconds is not None and plan["expected_seconds"] > max_seconds:
        raise ComputationError(
            f"N = {n}: {format_plan(plan)}, more than `max_seconds` = {max_seconds:g}; use --max-n to subsample, "
            "another solver or device, or a larger limit"
        )
    what = "all eigenvalues" if return_eigenvalues else f"{plan['solver']} solver"
    _announce(f"{'spectrum' if return_eigenvalues else 'dse'}: N = {n:,}, {what}", plan)
    return plan


def require_mi_plan(n: int, xt: Any, counts: Any, *, solver: str, t: int, repetitions: int,
                    max_seconds: float | None = None, sigma: Any = "median") -> tuple[dict[int, dict[str, Any]], bool]:
    """:func:`plan_mutual_information` (one DSE plan per class size, and whether the subsets are cut
    out of the N x N distances of all rows), enforced as :func:`require_entropy_plan` is, for every
    size and the expected total."""

    plan = plan_mutual_information(counts, int(xt.shape[1]), solver=solver, repetitions=repetitions,
                                   device=xt.device, dtype=xt.dtype, t=t, sigma=sigma,
                                   memory_bytes=available_memory_bytes(xt.device) + xt.numel() * xt.element_size())
    sizes = {int(m): p for m, p in plan["sizes"].items()}
    for m, p in sorted(sizes.items(), reverse=True):
        if not p["fits"]:
            hint = "--solver approx, " if p["solver"] == "exact" else ""
            raise MemoryLimitError(
                f"N = {n}: DSMI takes DSEs of classes of up to {max(sizes)} rows and N = {m} does not fit: "
                f"{format_plan(p)}; use --max-n to subsample, {hint}--dtype float32, or another device"
            )
    if max_seconds is not None and plan["expected_seconds"] > max_seconds:
        raise ComputationError(
            f"N = {n}: about {plan['expected_seconds']:.0f} s expected for {plan['dse_count']} DSEs (largest class of "
            f"{max(sizes)} rows: {format_plan(sizes[max(sizes)])}), more than `max_seconds` = {max_seconds:g}; "
            "use --max-n to subsample, --solver approx or auto, or a larger limit"
        )
    _announce(f"dsmi: N = {n:,}, {plan['dse_count']} DSEs", plan)
    return sizes, plan["shared_kernel"]
