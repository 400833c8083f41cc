"""Device and dtype: the only module of dsecli that asks torch about CUDA.

Rules (after POT's backend): ``device="auto"`` means CUDA when available, else CPU; the
environment variable ``DSECLI_DEVICE`` overrides ``auto``; new tensors take the device and
dtype of the tensor they are computed from; results leave the device only when a result
object is built.
"""

from __future__ import annotations

import functools
import os
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from dsecli.errors import DeviceError, InputError

if TYPE_CHECKING:  # pragma: no cover
    import torch

__all__ = [
    "DTYPES",
    "import_torch",
    "resolve_device",
    "as_device",
    "resolve_dtype",
    "to_tensor",
    "synchronize",
    "Timer",
    "available_memory_bytes",
    "cpu_threads",
]

DTYPES = ("float64", "float32")


@functools.lru_cache(maxsize=1)
def _torch_numpy_mismatch() -> str | None:
    """The one-line reason why torch cannot run with the installed numpy, or None.

    torch < 2.3 wheels are built against numpy 1.x; with numpy 2 ``import torch`` prints a long
    warning and every tensor <-> array conversion fails. Read from the installed metadata, before
    torch is imported, so the user sees one line instead.
    """
    from importlib.metadata import PackageNotFoundError, version

    try:
        torch_v, numpy_v = version("torch"), version("numpy")
    except PackageNotFoundError:
        return None
    major_minor = tuple(int(p) for p in re.findall(r"\d+", torch_v)[:2])
    if major_minor < (2, 3) and int(re.findall(r"\d+", numpy_v)[0]) >= 2:
        return (f"torch {torch_v} was built against numpy 1.x and cannot run with numpy {numpy_v}; "
                'install numpy 1.x (pip install "numpy<2") or torch >= 2.3')
    return None


def import_torch() -> Any:
    """``import torch``, or one :class:`DeviceError` line when torch cannot run with the installed numpy."""
    mismatch = _torch_numpy_mismatch()
    if mismatch:
        raise DeviceError(mismatch)
    import torch

    return torch


def resolve_device(device: Any = "auto") -> torch.device:
    """Turn ``"auto" | "cpu" | "cuda" | "cuda:i"`` (or a torch.device) into a usable torch.device.

    Raises :class:`DeviceError` when CUDA is requested but not available, or when the installed
    torch cannot run with the installed numpy (torch < 2.3 with numpy 2).
    """
    torch = import_torch()
    if isinstance(device, torch.device):
        spec = str(device)
    else:
        spec = str(device or "auto").strip().lower()
    if spec == "auto":
        env = os.environ.get("DSECLI_DEVICE", "").strip().lower()
        if env and env != "auto":
            return resolve_device(env)
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if spec == "cpu":
        return torch.device("cpu")
    if spec.startswith("cuda"):
        if not torch.cuda.is_available():
            raise DeviceError(
                f"`device` {spec!r} requested but CUDA is not available on this machine; "
                "use --device cpu (or auto)"
            )
        dev = torch.device(spec)
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise DeviceError(
                f"`device` {spec!r}: only {torch.cuda.device_count()} CUDA device(s) present"
            )
        return dev
    raise InputError(f"`device` must be auto, cpu, cuda or cuda:N; got {device!r}")


def as_device(device: Any) -> torch.device:
    """A torch.device as it is, anything else through :func:`resolve_device`.

    For the layers below the public functions: those resolve the user's device once
    (:attr:`dsecli.inputs.prepare.Prepared.device`) and hand the torch.device down, so it is not
    resolved again at every step.
    """
    import torch

    return device if isinstance(device, torch.device) else resolve_device(device)


def resolve_dtype(dtype: Any = "float64") -> torch.dtype:
    """``"float64"`` (default) or ``"float32"`` as a torch dtype."""
    import torch

    if isinstance(dtype, torch.dtype):
        if dtype in (torch.float64, torch.float32):
            return dtype
        raise InputError(f"`dtype` must be float64 or float32; got {dtype}")
    spec = str(dtype or "float64").strip().lower()
    table = {"float64": torch.float64, "double": torch.float64, "float32": torch.float32, "float": torch.float32}
    if spec not in table:
        raise InputError(f"`dtype` must be float64 or float32; got {dtype!r}")
    return table[spec]


def dtype_name(dtype: torch.dtype) -> str:
    """``torch.float64`` -> ``"float64"``."""
    return str(dtype).replace("torch.", "")


def to_tensor(x: Any, *, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """An array-like as a contiguous tensor on ``device`` with ``dtype``, outside the autograd graph.

    A tensor already on ``device`` with ``dtype`` and contiguous is returned as it is (detached,
    which shares its memory): no copy, and a GPU tensor never passes through the host.
    """
    import numpy as np
    import torch

    if isinstance(x, torch.Tensor):
        return x.detach().to(device=device, dtype=dtype).contiguous()
    arr = np.asarray(x)
    if not arr.flags.writeable:  # memory-mapped input: torch wants its own writable copy
        arr = np.array(arr, copy=True)
    return torch.as_tensor(np.ascontiguousarray(arr)).to(device=device, dtype=dtype)


def synchronize(device: torch.device) -> None:
    """Wait for queued GPU work so that wall-clock timings are honest."""
    if device.type == "cuda":
        import torch

        torch.cuda.synchronize(device)


# OpenMP allocates every thread's state up front (2**31 threads asked libgomp for 460 GB), so a
# thread count is capped well above any machine's cores instead of at the integer limit.
MAX_THREADS = max(1024, os.cpu_count() or 1)


@contextmanager
def cpu_threads(threads: int | None) -> Iterator[None]:
    """Run the block with ``threads`` torch CPU threads (None: unchanged), restoring the previous count.

    For shared machines: the eigensolver and GEMMs otherwise take every core. The count is set
    only inside the block (and not at all when it is the current one); nothing else is changed.

    Yields
    ------
    None
        A context manager: ``with cpu_threads(2): ...``.
    """
    if threads is None:
        yield
        return
    from dsecli.errors import check_positive_int

    threads = check_positive_int(threads, "threads", maximum=MAX_THREADS)
    import torch

    previous = torch.get_num_threads()
    if threads == previous:
        yield
        return
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


class Timer:
    """Context manager measuring wall-clock seconds, synchronising CUDA at both ends."""

    def __init__(self, device: torch.device | None = None) -> None:
        self.device = device
        self.elapsed_s = 0.0

    def __enter__(self) -> Timer:
        if self.device is not None:
            synchronize(self.device)
        self._t0 = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.device is not None:
            synchronize(self.device)
        self.elapsed_s = time.perf_counter() - self._t0


def available_memory_bytes(device: torch.device) -> int:
    """Memory that a new allocation can use on ``device`` (bytes).

    CPU: ``MemAvailable`` from /proc/meminfo (falls back to psutil, then to total RAM).
    CUDA: free memory reported by the driver.
    """
    if device.type == "cuda":
        import torch

        free, _total = torch.cuda.mem_get_info(device)
        return int(free)
    try:
        with open("/proc/meminfo", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:  # pragma: no cover - non-Linux
        import psutil

        return int(psutil.virtual_memory().available)
    except ImportError:  # pragma: no cover
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
