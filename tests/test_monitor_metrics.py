"""The torchmetrics Metrics (dsecli.monitor.metrics): a bounded seeded reservoir, the library's values,
reset, the extra named when torchmetrics is missing, and the same value on every rank of a gloo group."""

from __future__ import annotations

import json
import re
import socket
import sys
from typing import Any

import numpy as np
import pytest

import dsecli
from dsecli.errors import InputError

torch = pytest.importorskip("torch")
pytest.importorskip("torchmetrics")

from dsecli.monitor.metrics import DSEMetric, DSMIMetric  # noqa: E402


def _data(n: int = 120, seed: int = 0) -> tuple[Any, Any]:
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 4, (n,), generator=g)
    z = torch.randn(n, 8, generator=g) + y[:, None].float()
    return z, y


@pytest.mark.filterwarnings("ignore:The ``compute`` method of metric:UserWarning")  # torchmetrics' own, after reset
def test_values_are_the_library_s_on_all_rows_under_max_n() -> None:
    z, y = _data()
    dse, dsmi = DSEMetric(max_n=500, sigma=1.0), DSMIMetric(max_n=500, sigma=1.0)
    for part in range(0, 120, 50):
        dse.update(z[part:part + 50])
        dsmi.update(z[part:part + 50], y[part:part + 50])
    want = dsecli.estimate(z.numpy(), y.numpy(), methods=["dse", "dsmi"], max_n=None, seed=0, sigma=1.0)
    assert float(dse.compute()) == pytest.approx(want[0].value, rel=1e-9)
    assert float(dsmi.compute()) == pytest.approx(want[1].value, rel=1e-9)
    assert dsmi.last_result.method == "dsmi"
    dse.reset()
    with pytest.raises(InputError, match=r"DSEMetric.compute\(\): no rows"):
        dse.compute()


def test_the_reservoir_is_bounded_uniform_seeded_and_leaves_global_state_alone() -> None:
    z = torch.arange(6000, dtype=torch.float32)[:, None].repeat(1, 2)
    state = torch.get_rng_state()
    a, b, c = DSEMetric(max_n=300, sigma=1.0), DSEMetric(max_n=300, sigma=1.0), DSEMetric(max_n=300, seed=1, sigma=1.0)
    for part in z.split(64):
        for m in (a, b, c):
            m.update(part)
            assert sum(r.shape[0] for r in m.rows) <= 300  # bounded at every step
    assert torch.equal(torch.get_rng_state(), state)
    kept = torch.cat(a.rows)[:, 0]
    assert kept.shape[0] == 300 and torch.equal(kept, torch.sort(kept).values)  # arrival order kept
    assert torch.equal(kept, torch.cat(b.rows)[:, 0]) and not torch.equal(kept, torch.cat(c.rows)[:, 0])
    counts = np.histogram(kept.numpy(), bins=6, range=(0, 6000))[0]
    assert counts.min() > 25  # every part of the stream is represented (about 50 each)
    a.reset()
    a.update(z[:10])
    assert torch.cat(a.rows).shape[0] == 10


def test_bad_uses_are_refused() -> None:
    z, y = _data()
    with pytest.raises(InputError, match="labels"):
        DSMIMetric().update(z)
    with pytest.raises(InputError, match="one entry per row"):
        DSMIMetric().update(z, y[:5])
    with pytest.raises(InputError):
        DSEMetric(bins=10)  # not an option of dse


def test_missing_torchmetrics_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "torchmetrics", None)
    monkeypatch.delitem(sys.modules, "dsecli.monitor.metrics")
    with pytest.raises(ImportError, match=re.escape('pip install "dsecli[torchmetrics]"')):
        import dsecli.monitor.metrics  # noqa: F401


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _worker(rank: int, port: int, out: str, max_n: int) -> None:
    import torch.distributed as dist

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    try:
        z, y = _data(200)
        mine = slice(0, 90) if rank == 0 else slice(90, 200)  # uneven shares
        dse, dsmi = DSEMetric(max_n=max_n, sigma=1.0), DSMIMetric(max_n=max_n, sigma=1.0)
        for part in range(mine.start, mine.stop, 40):
            end = min(part + 40, mine.stop)
            dse.update(z[part:end])
            dsmi.update(z[part:end], y[part:end])
        values = [float(dse.compute()), float(dsmi.compute())]
        with open(f"{out}/{rank}.json", "w") as fh:
            json.dump(values, fh)
    finally:
        dist.destroy_process_group()


@pytest.mark.parametrize("max_n", [500, 150])
def test_two_gloo_processes_compute_the_value_of_one_process_on_all_rows(tmp_path: Any, max_n: int) -> None:
    import torch.multiprocessing as mp

    mp.spawn(_worker, args=(_free_port(), str(tmp_path), max_n), nprocs=2, join=True)
    got = [json.loads((tmp_path / f"{r}.json").read_text()) for r in (0, 1)]
    assert got[0] == got[1]  # every rank measures the same gathered reservoir
    if max_n == 500:  # under max_n: every row, rank 0's first, as one process fed them in that order
        z, y = _data(200)
        dse, dsmi = DSEMetric(max_n=max_n, sigma=1.0), DSMIMetric(max_n=max_n, sigma=1.0)
        dse.update(z)
        dsmi.update(z, y)
        assert got[0] == pytest.approx([float(dse.compute()), float(dsmi.compute())], rel=1e-9)
