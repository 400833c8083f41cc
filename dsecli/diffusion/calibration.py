"""Calibrating the plan's time model on the machine it runs on.

The time model of :mod:`dsecli.diffusion.plan` is ``flops / rate``. Its default rates were
measured on one 2-core CPU; another machine may be several times faster or slower (a 40 s
solve was once planned as 7 s). :func:`calibrate` measures, in well under a second:

- ``gemm``: float64 and float32 matrix-product rate (flop/s) of a 512 x 512 x 512 product;
- ``elem``: kernel entries per second (the exp and row normalisation of an N x N kernel, N = 800);
- ``tile``: the matrix-free operator's two float32 rates on one tile of kernel rows
  (:class:`~dsecli.diffusion.operators.KernelRowsOperator`): ``gemm``, flop/s of a
  (1,024 x 258) x (258 x 4,096) product, and ``exp``, in-place exponentials per second on it;
- ``eig``: the eigvalsh constant c in ``time = c N^3`` (float64 and float32), from a symmetric
  N x N matrix at N = 400 and 800; the constant of the larger size is kept (it is closer to
  the sizes worth planning), both are stored.

Each figure is the best of a few repetitions (the least disturbed by other processes). The result
is cached as JSON under ``<cache dir>/calibration/<key>.json`` (the cache directory of
:func:`dsecli.diffusion.cache.default_cache_dir`), keyed by the machine: CPU model, torch threads,
torch version and device. Written atomically by the output policy
(:func:`dsecli.report.writing.write_atomic`); an unreadable entry is ignored and a cache that cannot
be written only costs a new probe next time.
"""

from __future__ import annotations

import datetime as _dt
import functools
import hashlib
import json
import os
import platform
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = ["CALIBRATION_FORMAT", "machine_key", "calibration_path", "load_calibration", "calibrate", "probe_rates"]

CALIBRATION_FORMAT = 2
TILE_SHAPE = (1024, 4096, 258)
GEMM_SIZE = 512
ELEM_SIZE = 800
EIG_SIZES = (400, 800)
_REPEATS = 2
# calibrations read this process (path -> (mtime, data)): a DSMI plan asks once per class size
_MEMO: dict[str, tuple[float, dict[str, Any] | None]] = {}


@functools.lru_cache(maxsize=1)
def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def machine_key(device: Any = "cpu") -> dict[str, Any]:
    """What a calibration is valid for: CPU model, torch threads, torch version and device (with its name).

    Returns
    -------
    dict
        ``cpu``, ``threads``, ``torch``, ``device`` (and ``device_name`` on CUDA).
    """
    import torch

    from dsecli.device import as_device

    dev = as_device(device)
    key: dict[str, Any] = {"cpu": _cpu_model(), "threads": int(torch.get_num_threads()), "torch": torch.__version__,
                           "device": dev.type}
    if dev.type == "cuda":
        key["device_name"] = torch.cuda.get_device_name(dev)
    return key


def calibration_path(key: dict[str, Any], cache_dir: str | os.PathLike[str] | None = None) -> Path:
    """``<cache dir>/calibration/<sha256 of the key>.json``.

    Returns
    -------
    pathlib.Path
        Where the calibration of ``key`` is stored.
    """
    from dsecli.diffusion.cache import default_cache_dir

    base = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    digest = hashlib.sha256(json.dumps({"format": CALIBRATION_FORMAT, **key}, sort_keys=True).encode()).hexdigest()
    return base / "calibration" / f"{digest[:32]}.json"


def _best(fn: Callable[[], Any], sync: Callable[[], None]) -> float:
    fn()
    sync()  # warm-up: allocation, kernels loaded, threads started
    best = float("inf")
    for _ in range(_REPEATS):
        start = time.perf_counter()
        fn()
        sync()
        best = min(best, time.perf_counter() - start)
    return max(best, 1e-9)


def probe_rates(device: Any = "cpu") -> dict[str, Any]:
    """Measure the time model's rates on ``device`` now (about half a second on a 2-core CPU).

    Returns
    -------
    dict
        ``gemm`` and ``eig`` (each ``{"float64": ..., "float32": ...}``: flop/s and s / N^3),
        ``elem`` (kernel entries/s), ``tile`` (``{"gemm": flop/s, "exp": 1/s}`` in float32 on a tile
        of kernel rows), ``eig_by_size`` (the constant at each probe size) and ``probe_seconds``.
    """
    import torch

    from dsecli.device import as_device

    dev = as_device(device)
    sync = (lambda: torch.cuda.synchronize(dev)) if dev.type == "cuda" else (lambda: None)
    gen = torch.Generator(device="cpu").manual_seed(0)
    start = time.perf_counter()
    out: dict[str, Any] = {"gemm": {}, "eig": {}, "eig_by_size": {}}
    for dt in (torch.float64, torch.float32):
        name = str(dt).replace("torch.", "")
        a = torch.randn(GEMM_SIZE, GEMM_SIZE, generator=gen, dtype=dt).to(dev)
        secs = _best(lambda a=a: a @ a, sync)
        out["gemm"][name] = 2.0 * GEMM_SIZE**3 / secs
        by_size = {}
        for n in EIG_SIZES:
            m = torch.randn(n, n, generator=gen, dtype=dt).to(dev)
            m = m + m.T
            by_size[str(n)] = _best(lambda m=m: torch.linalg.eigvalsh(m), sync) / n**3
        out["eig_by_size"][name] = by_size
        out["eig"][name] = by_size[str(max(EIG_SIZES))]
    k = torch.rand(ELEM_SIZE, ELEM_SIZE, generator=gen, dtype=torch.float64).to(dev)

    def kernel() -> Any:
        e = torch.exp(-k)
        return e / e.sum(dim=1, keepdim=True)

    out["elem"] = ELEM_SIZE**2 / _best(kernel, sync)
    rows, cols, depth = TILE_SHAPE
    left = torch.randn(rows, depth, generator=gen, dtype=torch.float32).to(dev) * 0.05
    right = torch.randn(cols, depth, generator=gen, dtype=torch.float32).to(dev) * 0.05
    tile = torch.empty((rows, cols), dtype=torch.float32, device=dev)
    gemm_s = _best(lambda: torch.matmul(left, right.T, out=tile), sync)
    out["tile"] = {"gemm": 2.0 * rows * cols * depth / gemm_s, "exp": rows * cols / _best(lambda: tile.exp_(), sync)}
    out["probe_seconds"] = time.perf_counter() - start
    return out


def _read(path: Path) -> dict[str, Any] | None:
    try:
        mtime = path.stat().st_mtime
    except OSError:
        return None
    memo = _MEMO.get(str(path))
    if memo is not None and memo[0] == mtime:
        return memo[1]
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        ok = (isinstance(data, dict) and data.get("format") == CALIBRATION_FORMAT and isinstance(data.get("rates"), dict)
              and {"gemm", "eig", "elem"} <= set(data["rates"]))
    except (OSError, ValueError):
        ok, data = False, None
    result = data if ok else None
    _MEMO[str(path)] = (mtime, result)
    return result


def load_calibration(device: Any = "cpu", *, cache_dir: str | os.PathLike[str] | None = None) -> dict[str, Any] | None:
    """The stored calibration of this machine and device, or None (never probes).

    Returns
    -------
    dict or None
        ``{"format", "key", "rates", "created"}`` (``created``: UTC ISO date-time), or None.
    """
    key = machine_key(device)
    data = _read(calibration_path(key, cache_dir))
    return data if data is not None and data.get("key") == key else None


def calibrate(device: Any = "cpu", *, cache_dir: str | os.PathLike[str] | None = None,
              refresh: bool = False) -> dict[str, Any]:
    """The calibration of this machine and device: the stored one, else a new probe, stored.

    Returns
    -------
    dict
        As :func:`load_calibration`; ``stored`` says whether it is (now) on disk.
    """
    if not refresh:
        cached = load_calibration(device, cache_dir=cache_dir)
        if cached is not None:
            return {**cached, "stored": True}
    key = machine_key(device)
    data = {"format": CALIBRATION_FORMAT, "key": key, "rates": probe_rates(device),
            "created": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")}
    path = calibration_path(key, cache_dir)
    try:
        from dsecli.report.writing import write_atomic

        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(path, json.dumps(data, sort_keys=True, indent=1) + "\n", name="calibration")
        stored = True
    except Exception:  # noqa: BLE001 - a calibration that cannot be stored is probed again next time
        stored = False
    return {**data, "stored": stored}
