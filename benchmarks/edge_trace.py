"""How many times each shared decision is made in one command: the trace of the public edge.

Runs ``dse entropy x.h5``, ``dse mi x.npy y.npy --method all`` (y: vectors, so k-means runs) and
``dse batch 'ep_*.npy' --ref y.npy -m dse,dsmi,ksg`` (3 inputs) on small synthetic files, in this
process, and counts the calls of the functions that make each decision:

- validation: ``check_embeddings`` (rows checked and prepared) and ``check_call`` (selection and base);
- the reference: ``read_reference`` (its reading) and ``kmeans`` (clusters of a vector reference);
- ``resolve_device``; ``resolve_sigma``; the plan a measurement follows (``require_*_plan``);
- threads: ``cpu_threads`` called with a thread count (the CLI's ``--threads`` and the eigensolver's
  rule), and ``torch.set_num_threads``.

Usage::

    python benchmarks/edge_trace.py
"""

from __future__ import annotations

import collections
import sys
import tempfile
from pathlib import Path

import numpy as np


def main() -> None:
    import h5py
    from typer.testing import CliRunner

    import dsecli.device
    import dsecli.edge
    import dsecli.inputs.prepare
    import dsecli.inputs.reference
    import dsecli.measures.dse
    import dsecli.methods
    from dsecli.cli import app

    counts: collections.Counter[str] = collections.Counter()
    patches = [
        (dsecli.inputs.prepare, "check_embeddings", "validation (check_embeddings)"),
        (dsecli.methods, "check_call", "validation (check_call)"),
        (dsecli.edge, "check_call", "validation (check_call)"),
        (dsecli.inputs.prepare, "read_reference", "reference reading"),
        (dsecli.inputs.reference, "kmeans", "k-means"),
        (dsecli.device, "resolve_device", "device"),
        (dsecli.measures.dse, "resolve_sigma", "sigma"),
        (dsecli.measures.dse, "require_entropy_plan", "plan (made and enforced)"),
        (dsecli.measures.dse, "require_mi_plan", "plan (made and enforced)"),
    ]
    for module, name, label in patches:
        real = getattr(module, name)

        def spy(*args, _real=real, _label=label, **kwargs):
            counts[_label] += 1
            return _real(*args, **kwargs)

        setattr(module, name, spy)
    real_threads = dsecli.device.cpu_threads

    def threads_spy(threads):
        if threads is not None:
            counts["threads (cpu_threads with a count)"] += 1
        return real_threads(threads)

    dsecli.device.cpu_threads = threads_spy

    rng = np.random.default_rng(0)
    runner = CliRunner()
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        labels = np.arange(600) % 6
        centres = rng.normal(0, 3, (6, 16))
        for e in range(3):
            np.save(d / f"ep_{e}.npy", centres[labels] + rng.normal(0, 1 + e, (600, 16)))
        with h5py.File(d / "x.h5", "w") as f:
            f["emb"] = np.load(d / "ep_0.npy")
        np.save(d / "y.npy", np.eye(6)[labels] @ rng.normal(size=(6, 3)) + rng.normal(0, 0.1, (600, 3)))
        commands = {
            "dse entropy x.h5": ["entropy", str(d / "x.h5"), "--threads", "2", "--json"],
            "dse mi x.npy y.npy --method all": ["mi", str(d / "ep_0.npy"), str(d / "y.npy"), "--method", "all",
                                                "--epochs", "5", "--threads", "2", "--json"],
            "dse batch 'ep_*.npy' --ref y.npy -m dse,dsmi,ksg (3 inputs)":
                ["batch", str(d / "ep_*.npy"), "--ref", str(d / "y.npy"), "-m", "dse,dsmi,ksg", "--threads", "2",
                 "--json"],
        }
        labels_seen = [label for _, _, label in patches] + ["threads (cpu_threads with a count)"]
        order = list(dict.fromkeys(labels_seen))
        print(f"{'decision':<38}" + "".join(f"{k[:34]:>36}" for k in commands))
        table: dict[str, dict[str, int]] = {}
        for title, args in commands.items():
            counts.clear()
            res = runner.invoke(app, args)
            if res.exit_code != 0:
                print(f"{title}: exit {res.exit_code}: {res.output}", file=sys.stderr)
            table[title] = dict(counts)
        for label in order:
            print(f"{label:<38}" + "".join(f"{table[t].get(label, 0):>36}" for t in commands))


if __name__ == "__main__":
    main()
