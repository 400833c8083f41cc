"""Which DSE solver and operator a run will use, how much memory it needs and roughly how long it takes.

:func:`plan_entropy` answers without touching the data (``dse entropy --dry-run``);
:func:`diffusion_spectral_entropy` calls the same function, so the plan is what runs. Memory
figures count what the code allocates:

- exact: the N x N kernel (built in place: distances, exp, normalisation) plus the copy that
  ``torch.linalg.eigvalsh`` factorises: 2 N^2 numbers in the working dtype, plus the data.
- approx, dense operator: one N x N array in the storage dtype (float32 storage when float64
  does not fit), one block of kernel rows in the working dtype, the Krylov basis and its
  image (2 N k float64, k = block x depth) and the Lanczos vectors (about 5 N m float64).
- approx, kernel-rows operator (matrix-free): the data and its centred copy, one block of
  kernel rows (32 Mi numbers) with its temporaries, and the same Krylov / Lanczos vectors.

Times are a model, ``flops / rate``, with rates measured on a 2-core AVX-512 CPU (float64 GEMM
~40 GFLOP/s per thread, float32 ~80; eigvalsh ~2.0e-11 N^3 s at float64 on 2 threads) scaled by
the number of torch threads, and nominal figures for CUDA. They are estimates to a factor of
about two, meant to tell minutes from hours.
"""

from __future__ import annotations

from typing import Any

from dsecli.device import available_memory_bytes, dtype_name, resolve_device, resolve_dtype
from dsecli.errors import InputError, check_choice, check_positive_int

__all__ = ["SOLVERS", "AUTO_EXACT_MAX_N", "plan_entropy", "plan_mutual_information", "format_plan", "solver_settings"]

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
# Kernel rows per block of the matrix-free operator (numbers), and of the dense builder.
ROWS_BLOCK_ELEMENTS = 32 * 1024 * 1024
DENSE_BLOCK_ELEMENTS = 8 * 1024 * 1024


def solver_settings(n: int, operator: str) -> dict[str, int]:
    """Deflation block/depth, probes and Lanczos steps the approximate solver starts with."""
    from dsecli.diffusion.slq import ApproxSettings

    s = ApproxSettings().resolved(n, operator)
    return {"block": s.block, "depth": s.depth, "probes": s.probes, "steps": s.steps, "max_probes": s.max_probes}


def _rates(device_type: str, dtype: str, threads: int) -> dict[str, float]:
    """Throughputs of the time model: GEMM flop/s, kernel entries/s (distance bookkeeping, exp,
    copies), memory bandwidth (bytes/s; products with a few dozen vectors are memory-bound) and
    the eigvalsh constant (s / N^3)."""
    if device_type == "cuda":
        return {"gemm": 3.0e13 if dtype == "float32" else 2.5e13, "elem": 5e10, "bw": 2.5e12,
                "eig": 1.5e-12 if dtype == "float32" else 2.5e-12}
    per = 80e9 if dtype == "float32" else 40e9
    eig2 = 1.25e-11 if dtype == "float32" else 2.0e-11  # seconds per N^3 on 2 threads
    # eigvalsh is half memory-bound (tridiagonalisation): it scales sub-linearly with threads
    return {"gemm": per * threads, "elem": 5e7 * threads, "bw": 5e9, "eig": eig2 * (2.0 / threads) ** 0.7}


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

    Returns
    -------
    dict
        ``solver`` (resolved), ``operator`` ("eigvalsh", "dense" or "rows"), ``storage_dtype``,
        ``memory_bytes`` (peak estimate), ``memory_available``, ``fits``, ``expected_seconds``,
        ``reason`` (why this choice), and the inputs.
    """
    n = check_positive_int(n_rows, "n_rows")
    d = check_positive_int(n_features, "n_features")
    t = check_positive_int(t, "t")
    check_choice(solver, "solver", SOLVERS)
    dev = resolve_device(device)
    dt = dtype_name(resolve_dtype(dtype))
    item = 4 if dt == "float32" else 8
    have = int(memory_bytes) if memory_bytes is not None else available_memory_bytes(dev)
    budget = int(have * MEMORY_FRACTION)
    rates = _rates(dev.type, dt, _threads() if dev.type == "cpu" else 1)
    data = n * d * 8 * 2  # the float64 rows handed over plus the tensor / centred copy

    exact_mem = 2 * n * n * item + data + 8 * n * 4
    exact_time = 2.0 * n * n * d / rates["gemm"] + n * n / rates["elem"] + rates["eig"] * n**3

    s = solver_settings(n, "dense")
    sr = solver_settings(n, "rows")
    threads = _threads() if dev.type == "cpu" else 1
    gemm64 = _rates(dev.type, "float64", threads)["gemm"]

    def vecs(st: dict[str, int]) -> int:  # Krylov basis and its image, Lanczos vectors (float64)
        return 8 * n * (2 * st["block"] * st["depth"] + 5 * st["probes"] + 2 * st["block"])

    def krylov(st: dict[str, int]) -> float:  # block orthogonalisation and Rayleigh-Ritz
        k = st["block"] * st["depth"]
        return (4.0 * n * k * st["block"] * st["depth"] + 6.0 * n * k * k) / gemm64

    build = 2.0 * n * n * d / rates["gemm"] + 2 * n * n / rates["elem"]

    def product(width: int, store: str) -> float:
        r = rates if store == dt else _rates(dev.type, store, threads)
        return max(2.0 * n * n * width / r["gemm"], n * n * (4 if store == "float32" else 8) / r["bw"])

    def dense_mem(store_item: int) -> int:
        # one block of kernel rows in the working dtype while building
        return n * n * store_item + vecs(s) + data + min(n * n, DENSE_BLOCK_ELEMENTS) * 8

    def dense_time(store: str) -> float:
        return (build + s["depth"] * product(s["block"], store) + s["steps"] * product(s["probes"], store)
                + krylov(s))

    # kernel-rows operator: every product recomputes the kernel (distance GEMM + exp) block by block
    rows_mem = vecs(sr) + data + 3 * min(n * n, ROWS_BLOCK_ELEMENTS) * item
    passes = 1 + sr["depth"] + sr["steps"]
    columns = sr["block"] * sr["depth"] + sr["probes"] * sr["steps"]
    rows_time = ((passes * 2.0 * n * n * d + 2.0 * n * n * columns) / rates["gemm"] + passes * n * n / rates["elem"]
                 + krylov(sr))

    out: dict[str, Any] = {
        "n_rows": n, "n_features": d, "t": t, "device": str(dev), "dtype": dt, "solver_requested": solver,
        "memory_available": have, "memory_budget": budget,
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
        out.update(solver="approx", operator="rows", storage_dtype=dt, memory_bytes=rows_mem, fits=rows_mem <= budget,
                   expected_seconds=rows_time,
                   reason=f"{why}; an N x N operator needs {n * n * 4 / 2**30:.0f} GiB even in float32: kernel rows "
                          f"are recomputed at every product (about {passes} passes over the kernel)",
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
) -> dict[str, Any]:
    """Plan DSMI (docs/method.md#dsmi) from its class sizes, without computing anything.

    Every DSE of DSMI is taken at a class size n_y (the class itself and ``repetitions``
    size-matched subsets of all rows), so each distinct size gets its own
    :func:`plan_entropy`. The subsets are cut out of one shared N x N kernel when every size
    is solved exactly and two N x N matrices fit; otherwise each subset's kernel is computed
    from its rows.

    Returns
    -------
    dict
        ``n_rows`` (N), ``n_features``, ``solver_requested``, ``sizes`` (size -> DSE plan, keys as
        strings), ``dse_count``, ``shared_kernel``, ``memory_bytes`` (peak estimate),
        ``memory_available``, ``fits``, ``expected_seconds`` (all DSEs), ``device``, ``dtype``.
    """
    counts = [int(c) for c in class_sizes]
    n = check_positive_int(sum(counts), "n_rows")
    d = check_positive_int(n_features, "n_features")
    repetitions = check_positive_int(repetitions, "repetitions")
    check_choice(solver, "solver", SOLVERS)
    dev = resolve_device(device)
    dt = dtype_name(resolve_dtype(dtype))
    have = int(memory_bytes) if memory_bytes is not None else available_memory_bytes(dev)
    sizes = sorted({c for c in counts if c > 1})
    plans = {m: plan_entropy(m, d, solver=solver, device=dev, dtype=dt, t=t, memory_bytes=have) for m in sizes}
    item = 4 if dt == "float32" else 8
    shared_bytes = 2 * n * n * item + n * d * 8 * 2
    shared = all(p["solver"] == "exact" for p in plans.values()) and shared_bytes <= have * MEMORY_FRACTION
    largest = max((p["memory_bytes"] for p in plans.values()), default=0)
    return {
        "n_rows": n, "n_features": d, "t": t, "device": str(dev), "dtype": dt, "solver_requested": solver,
        "repetitions": repetitions, "sizes": {str(m): p for m, p in plans.items()},
        "dse_count": sum(1 + repetitions for c in counts if c > 1),
        "shared_kernel": shared,
        "memory_bytes": shared_bytes if shared else largest,
        "memory_available": have,
        "fits": all(p["fits"] for p in plans.values()),
        "expected_seconds": sum((1 + repetitions) * plans[c]["expected_seconds"] for c in counts if c > 1),
    }


def format_plan(plan: dict[str, Any]) -> str:
    """One line for messages: solver, operator, memory and time."""
    secs = float(plan["expected_seconds"])
    when = f"{secs:.0f} s" if secs < 120 else (f"{secs / 60:.0f} min" if secs < 7200 else f"{secs / 3600:.1f} h")
    return (f"solver {plan['solver']} ({plan['operator']}, {plan['storage_dtype']}), "
            f"~{plan['memory_bytes'] / 2**30:.2f} GiB of {plan['memory_available'] / 2**30:.1f} GiB available, "
            f"~{when} expected on {plan['device']}")
