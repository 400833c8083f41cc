"""Read time and peak memory of each input format: the whole file vs a seeded subsample.

Printed, not asserted. One (N, D) float32 array (default 100,000 x 256, ~100 MB) is written
in every format into a temporary folder (deleted afterwards):

- ``npy`` (memory-mapped), ``h5`` (contiguous HDF5 dataset), ``pt`` (one tensor; torch.load
  with ``mmap=True``, so only the rows' pages are read), ``safetensors``;
- ``parquet``: a fixed-size-list column (Hugging Face ``datasets``' layout), row groups of
  ``--group`` rows (default 10,000; pyarrow's own default is 1,048,576 rows: one group here);
- ``feather``: Arrow IPC, uncompressed (memory-mapped) and lz4 (pyarrow's default), record
  batches of ``--group`` rows;
- ``zarr``: chunks of ``--group`` rows x D, zarr's default compressor.

Each read runs in a fresh Python process: ``open_array(spec).read(rows)`` with ``rows`` all
rows or a seeded sorted sample of ``--sample`` rows (what ``max_n`` draws). Time is the
wall-clock of open + read + one pass over the values (their sum, so that a memory map's pages
are really read); peak memory is the peak RSS during the read (Linux ``VmHWM``, reset through
``/proc/self/clear_refs`` just before it) minus the RSS then, so it counts what pyarrow, torch
and the codecs allocate outside Python's heap (tracemalloc would miss it) and the mapped pages
touched. Mapped file pages are page cache the kernel can drop, so a second column, "private",
is the peak growth of anonymous memory alone (``RssAnon``, sampled every millisecond): what
the read really costs. The result itself (98 MiB whole, 10 MiB for the sample) is part of both,
except where the whole read returns a view of a memory map (``npy``, ``pt``). Files were just
written, so reads are from the page cache (warm): the time is decoding and copying, not disk.

Usage::

    python benchmarks/formats.py [--n 100000] [--d 256] [--sample 10000] [--group 10000] [--repeat 3]
                                [--only npy,parquet,...]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

_CHILD = r"""
import json, sys, threading, time
import numpy as np
from dsecli import open_array
spec, n, sample = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
rows = None if sample >= n else np.sort(np.random.default_rng(0).choice(n, size=sample, replace=False))
import torch, h5py  # noqa: F401 - imported before the baseline: their import is not the read's cost
for mod in ("pyarrow", "pyarrow.compute", "pyarrow.parquet", "safetensors", "zarr"):
    try:
        __import__(mod)
    except ImportError:
        pass
def status(field):
    with open("/proc/self/status") as fh:
        return next(int(ln.split()[1]) for ln in fh if ln.startswith(field + ":"))  # kB
with open("/proc/self/clear_refs", "w") as fh:
    fh.write("5")  # resets the peak RSS (VmHWM) to the current RSS: the peak of the read alone
base, anon_base = status("VmRSS"), status("RssAnon")
anon_peak, done = [anon_base], threading.Event()
def poll():  # no high-water mark for private memory alone: sampled every millisecond
    while not done.wait(0.001):
        anon_peak[0] = max(anon_peak[0], status("RssAnon"))
threading.Thread(target=poll, daemon=True).start()
t0 = time.perf_counter()
out = open_array(spec).read(rows)
checksum = float(np.sum(out, dtype=np.float64))  # touches every value: a memory map's pages are read too
seconds = time.perf_counter() - t0
peak = status("VmHWM")
done.set()
anon_peak[0] = max(anon_peak[0], status("RssAnon"))
print(json.dumps({"seconds": seconds, "peak_mib": (peak - base) / 1024,
                  "private_mib": (anon_peak[0] - anon_base) / 1024, "shape": list(out.shape),
                  "checksum": checksum}))
"""


def write_all(folder: Path, x: np.ndarray, group: int) -> dict[str, str]:
    """Write ``x`` in every format that can be written here; name -> spec."""
    specs: dict[str, str] = {}
    np.save(folder / "x.npy", x)
    specs["npy"] = str(folder / "x.npy")
    import h5py
    import torch

    with h5py.File(folder / "x.h5", "w") as f:
        f["x"] = x
    specs["h5"] = f"{folder / 'x.h5'}:/x"
    torch.save({"x": torch.from_numpy(x)}, folder / "x.pt")
    specs["pt"] = f"{folder / 'x.pt'}:x"
    try:
        from safetensors.numpy import save_file

        save_file({"x": x}, str(folder / "x.safetensors"))
        specs["safetensors"] = f"{folder / 'x.safetensors'}:x"
    except ImportError:
        print("safetensors not installed: skipped")
    try:
        import pyarrow as pa
        import pyarrow.feather as feather
        import pyarrow.parquet as pq

        table = pa.table({"x": pa.FixedSizeListArray.from_arrays(pa.array(x.ravel()), x.shape[1])})
        pq.write_table(table, folder / "x.parquet", row_group_size=group)
        specs["parquet"] = f"{folder / 'x.parquet'}:x"
        feather.write_feather(table, str(folder / "x.feather"), compression="uncompressed", chunksize=group)
        specs["feather"] = f"{folder / 'x.feather'}:x"
        feather.write_feather(table, str(folder / "lz4.feather"), compression="lz4", chunksize=group)
        specs["feather-lz4"] = f"{folder / 'lz4.feather'}:x"
    except ImportError:
        print("pyarrow not installed: parquet and feather skipped")
    try:
        import zarr

        if int(zarr.__version__.split(".")[0]) >= 3:
            z = zarr.create_array(str(folder / "x.zarr"), shape=x.shape, chunks=(group, x.shape[1]), dtype=x.dtype)
        else:
            z = zarr.open_array(str(folder / "x.zarr"), mode="w", shape=x.shape, chunks=(group, x.shape[1]),
                                dtype=x.dtype)
        z[...] = x
        specs["zarr"] = str(folder / "x.zarr")
    except ImportError:
        print("zarr not installed: skipped")
    return specs


def measure(spec: str, n: int, sample: int, repeat: int) -> dict[str, float]:
    """The best time and the largest peak of ``repeat`` fresh processes."""
    runs = []
    for _ in range(repeat):
        res = subprocess.run([sys.executable, "-c", _CHILD, spec, str(n), str(sample)], capture_output=True,
                             text=True, check=True, env=os.environ.copy())
        runs.append(json.loads(res.stdout.strip().splitlines()[-1]))
    return {"seconds": min(r["seconds"] for r in runs), "peak_mib": max(r["peak_mib"] for r in runs),
            "private_mib": max(r["private_mib"] for r in runs),
            "checksum": runs[0]["checksum"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--d", type=int, default=256)
    ap.add_argument("--sample", type=int, default=10_000)
    ap.add_argument("--group", type=int, default=10_000, help="rows per Parquet row group / IPC batch / zarr chunk")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--only", default="", help="comma-separated format names (default: all)")
    args = ap.parse_args()
    x = np.random.default_rng(0).standard_normal((args.n, args.d)).astype(np.float32)
    with tempfile.TemporaryDirectory(prefix="dse-formats-") as tmp:
        specs = write_all(Path(tmp), x, args.group)
        del x
        print(f"{args.n:,} x {args.d} float32 ({args.n * args.d * 4 / 2**20:.0f} MiB); subsample {args.sample:,} "
              f"rows; groups/chunks of {args.group:,} rows; best of {args.repeat} fresh processes\n")
        print(f"{'':<22} {'whole file':^29} {'subsample':^29}")
        print(f"{'format':<12} {'file MiB':>9} {'s':>9} {'peak MiB':>9} {'private':>9} {'s':>9} {'peak MiB':>9} "
              f"{'private':>9}")
        sums = {}
        for name, spec in specs.items():
            if args.only and name not in args.only.split(","):
                continue
            path = spec.split(":")[0]
            size = sum(p.stat().st_size for p in Path(path).rglob("*") if p.is_file()) if os.path.isdir(path) \
                else os.path.getsize(path)
            whole = measure(spec, args.n, args.n, args.repeat)
            part = measure(spec, args.n, args.sample, args.repeat)
            sums[name] = (whole["checksum"], part["checksum"])
            print(f"{name:<12} {size / 2**20:>9.0f} {whole['seconds']:>9.3f} {whole['peak_mib']:>9.0f} "
                  f"{whole['private_mib']:>9.0f} {part['seconds']:>9.3f} {part['peak_mib']:>9.0f} "
                  f"{part['private_mib']:>9.0f}", flush=True)
        same = len(set(sums.values())) == 1
        print(f"\nevery format read the same values (checksums of whole and sample): {same}")


if __name__ == "__main__":
    main()
