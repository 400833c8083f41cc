"""TrainingMonitor: a tiny MLP trained on scikit-learn's digits, measured every epoch.

Truths: the layer outputs captured independently (model.eval(), no_grad, a plain forward
through the submodules) and given to the public functions; a training run without the monitor
(parameters and gradients bit for bit); the batch store's own reader and ``dse plot``.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

import numpy as np
import pytest

import dsecli
from dsecli.errors import InputError
from dsecli.inputs.clustering import kmeans
from dsecli.inputs.sampling import choose_rows

torch = pytest.importorskip("torch")
sklearn_datasets = pytest.importorskip("sklearn.datasets")

MAX_N = 150
EPOCHS = 3
LAYERS = ["fc1", "fc2"]


def _digits() -> tuple[Any, Any]:
    d = sklearn_datasets.load_digits()
    return torch.tensor(d.data / 16.0, dtype=torch.float32), torch.tensor(d.target)


class MLP(torch.nn.Module):
    """64 -> 32 (batch norm, dropout) -> 16 -> 10: batch norm and dropout make eval mode matter."""

    def __init__(self) -> None:
        super().__init__()
        self.fc1 = torch.nn.Linear(64, 32)
        self.bn = torch.nn.BatchNorm1d(32)
        self.drop = torch.nn.Dropout(0.2)
        self.fc2 = torch.nn.Linear(32, 16)
        self.out = torch.nn.Linear(16, 10)

    def forward(self, x: Any) -> Any:
        h = self.drop(torch.relu(self.bn(self.fc1(x))))
        return self.out(torch.relu(self.fc2(h)))


def _model(seed: int = 0) -> MLP:
    model = MLP()
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.2)
    return model


def _train(monitor_kwargs: dict[str, Any] | None, *, epochs: int = EPOCHS) -> tuple[MLP, Any]:
    """Train with a fixed seed; with ``monitor_kwargs``, a monitor measures after each epoch."""
    x, y = _digits()
    model = _model()
    monitor = dsecli.TrainingMonitor(model, **monitor_kwargs) if monitor_kwargs is not None else None
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    g = torch.Generator().manual_seed(1)
    with torch.random.fork_rng():  # dropout draws from torch's global generator: isolated here
        torch.manual_seed(2)
        for epoch in range(epochs):
            model.train()
            for idx in torch.randperm(x.shape[0], generator=g).split(128):
                opt.zero_grad()
                torch.nn.functional.cross_entropy(model(x[idx]), y[idx]).backward()
                opt.step()
            if monitor is not None:
                monitor.step(epoch)
                assert model.training  # the mode it had during training
    return model, monitor


def _random_states() -> tuple[Any, ...]:
    import random

    return (torch.get_rng_state(), np.random.get_state()[1].copy(), random.getstate(),  # noqa: NPY002
            torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [])


def _assert_same_states(before: tuple[Any, ...]) -> None:
    now = _random_states()
    assert torch.equal(now[0], before[0]), "torch CPU generator"
    assert np.array_equal(now[1], before[1]), "numpy global generator"
    assert now[2] == before[2], "Python random"
    assert len(now[3]) == len(before[3]) and all(torch.equal(a, b) for a, b in zip(now[3], before[3])), "CUDA"


def _read(path: Any) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    out = tmp_path_factory.mktemp("monitor") / "run.jsonl"
    x, y = _digits()
    kwargs = {"layers": LAYERS, "eval_data": x, "labels": y, "methods": ("dse", "dsmi"), "output": out,
              "max_n": MAX_N, "seed": 7, "sigma": "median", "device": "cpu"}
    monitored, monitor = _train(kwargs)
    plain, _ = _train(None)
    return {"out": out, "kwargs": kwargs, "monitored": monitored, "plain": plain, "monitor": monitor}


def test_rows_hold_every_epoch_layer_and_method(trained: dict[str, Any]) -> None:
    rows = _read(trained["out"])
    refs = [None, "labels", "inputs (k-means, k=10)"]
    expected = {(e, layer, m, r) for e in range(EPOCHS) for layer in LAYERS
                for m, r in [("dse", refs[0]), ("dsmi", refs[1]), ("dsmi", refs[2])]}
    got = [(r["checkpoint"], r["series"], r["method"], r["reference"]) for r in rows]
    assert sorted(got, key=str) == sorted(expected, key=str) and len(got) == len(expected)
    for r in rows:
        assert math.isfinite(r["value"])
        assert r["n_used"] == MAX_N and r["n_total"] == 1797 and r["subsampled"] is True
        if r["method"] == "dse":
            assert 0.0 <= r["value"] <= math.log2(MAX_N)
    assert len({r["rows_digest"] for r in rows}) == 1  # the same rows at every epoch
    assert len({r["key"] for r in rows}) == len(rows)
    assert trained["monitor"].rows == rows


def test_values_equal_the_public_functions_on_independently_captured_outputs(trained: dict[str, Any]) -> None:
    model = trained["monitored"]
    x, y = _digits()
    idx = choose_rows(x.shape[0], MAX_N, seed=7)
    model.eval()
    with torch.no_grad():
        h1 = model.fc1(x[idx])
        h2 = model.fc2(model.drop(torch.relu(model.bn(h1))))
    model.train()
    last = {(r["series"], r["method"], r["reference"]): r["value"] for r in _read(trained["out"])
            if r["checkpoint"] == EPOCHS - 1}
    for layer, z in (("fc1", h1), ("fc2", h2)):
        assert last[(layer, "dse", None)] == dsecli.diffusion_spectral_entropy(
            z.numpy(), sigma="median", seed=7, device="cpu").value
        assert last[(layer, "dsmi", "labels")] == dsecli.diffusion_spectral_mutual_information(
            z.numpy(), y.numpy()[idx], sigma="median", seed=7, device="cpu").value
        codes = kmeans(x[idx].numpy().astype(np.float64), 10, seed=7)
        assert last[(layer, "dsmi", "inputs (k-means, k=10)")] == dsecli.diffusion_spectral_mutual_information(
            z.numpy(), codes, sigma="median", seed=7, device="cpu", ref_kind="discrete").value


def test_monitoring_changes_no_parameter_or_gradient(trained: dict[str, Any]) -> None:
    monitored, plain = trained["monitored"], trained["plain"]
    for (name, p), (_, q) in zip(monitored.named_parameters(), plain.named_parameters()):
        assert torch.equal(p, q), name
        assert torch.equal(p.grad, q.grad), name
    for (name, b), (_, c) in zip(monitored.named_buffers(), plain.named_buffers()):
        assert torch.equal(b, c), name  # batch-norm statistics untouched by the eval passes
    assert all(not m._forward_hooks for m in monitored.modules())


def test_rerun_resumes_and_appends_nothing(trained: dict[str, Any]) -> None:
    before = trained["out"].read_bytes()
    run_id = trained["monitor"].run_id
    for how in ({"resume": True}, {"run_id": run_id}, {"resume": run_id}):
        again = dsecli.TrainingMonitor(trained["monitored"], **trained["kwargs"], **how)
        assert again.run_id == run_id
        for epoch in range(EPOCHS):
            with pytest.warns(dsecli.errors.DseWarning, match=rf"step\({epoch}\): 6 of 6 rows of run {run_id} are in"):
                assert again.step(epoch) == []
            assert again.skipped == 6
    assert trained["out"].read_bytes() == before


def test_rows_hold_the_run_id_and_each_run_has_its_own() -> None:
    x, _ = _digits()
    a = dsecli.TrainingMonitor(_model(), layers=["fc2"], eval_data=x[:40], methods=["dse"], sigma=1.0)
    b = dsecli.TrainingMonitor(_model(), layers=["fc2"], eval_data=x[:40], methods=["dse"], sigma=1.0)
    assert re.fullmatch(r"[0-9a-f]{32}", a.run_id) and a.run_id != b.run_id
    model = _model()
    state = _random_states()
    dsecli.TrainingMonitor(model, layers=["fc2"], eval_data=x[:40], methods=["dse"], sigma=1.0)
    _assert_same_states(state)  # the id comes from no random state of the program
    c = dsecli.TrainingMonitor(model, layers=["fc2"], eval_data=x[:40], methods=["dse"], sigma=1.0, run_id="lr-0.1")
    assert c.run_id == "lr-0.1" and c.step(0)[0]["run_id"] == "lr-0.1"
    torch.manual_seed(0)
    d = dsecli.TrainingMonitor(_model(), layers=["fc2"], eval_data=x[:40], methods=["dse"], sigma=1.0)
    torch.manual_seed(0)
    e = dsecli.TrainingMonitor(_model(), layers=["fc2"], eval_data=x[:40], methods=["dse"], sigma=1.0)
    assert d.run_id != e.run_id  # a seeded program still gets two runs


def test_a_second_run_into_the_same_file_is_measured_and_plotted_apart(tmp_path: Any) -> None:
    from dsecli.batch.read import read_result_rows
    from dsecli.batch.series import batch_series
    from dsecli.monitor.monitor import read_runs

    x, y = _digits()
    out = tmp_path / "run.jsonl"
    kwargs = {"layers": ["fc2"], "eval_data": x[:60], "labels": y[:60], "methods": ["dse"], "output": out,
              "sigma": 1.0, "device": "cpu"}
    first = dsecli.TrainingMonitor(_model(0), **kwargs)
    rows1 = first.step(0) + first.step(1)
    second = dsecli.TrainingMonitor(_model(1), **kwargs)  # another training (another seed), the default name
    rows2 = second.step(0) + second.step(1)
    assert len(rows2) == 2 and second.skipped == 0  # measured, not taken for the first run's rows
    assert [r["value"] for r in rows2] != [r["value"] for r in rows1]
    runs = read_runs(out)
    assert list(runs) == [first.run_id, second.run_id]
    assert [r["value"] for r in runs[second.run_id]] == [r["value"] for r in rows2]
    assert list(read_runs(out, second.run_id[:8])) == [second.run_id]  # a prefix selects one run
    with pytest.raises(InputError, match="`run_id`: .* has no run matching 'nope'"):
        read_runs(out, "nope")
    series = batch_series(read_result_rows(out))
    assert len(series) == 2 and sorted(len(s.x) for s in series) == [2, 2]  # one line per run, not one mixed line
    by_run = {s.pattern.split("run=")[1]: s.y for s in series}
    assert by_run[second.run_id] == [r["value"] for r in rows2]
    assert len({s.label for s in series}) == 2  # the labels tell them apart
    third = dsecli.TrainingMonitor(_model(1), **kwargs, resume=True)  # continues the latest run
    assert third.run_id == second.run_id
    with pytest.warns(dsecli.errors.DseWarning, match="1 of 1 rows"):
        assert third.step(1) == []
    assert len(third.step(2)) == 1


def test_stepping_a_measured_epoch_again_warns() -> None:
    x, _ = _digits()
    monitor = dsecli.TrainingMonitor(_model(), layers=["fc2"], eval_data=x[:40], methods=["dse"], sigma=1.0)
    assert len(monitor.step(0)) == 1
    with pytest.warns(dsecli.errors.DseWarning, match=r"step\(0\): epoch 0 was measured already in run"):
        assert monitor.step(0) == []
    assert len(monitor.rows) == 1


def _one_layer_dse_into(out: Any) -> dict[str, Any]:
    """Monitor options: DSE of layer fc2 on 60 digits rows at sigma 1, written to ``out``."""
    x, y = _digits()
    return {"layers": ["fc2"], "eval_data": x, "labels": y, "methods": ["dse"], "output": out, "max_n": 60,
            "sigma": 1.0, "device": "cpu"}


def test_partial_file_gets_only_the_missing_epoch(tmp_path: Any) -> None:
    out = tmp_path / "run.jsonl"
    model, kwargs = _model(), _one_layer_dse_into(out)
    first = dsecli.TrainingMonitor(model, **kwargs)
    assert len(first.step(0)) == 1
    second = dsecli.TrainingMonitor(model, **kwargs, run_id=first.run_id)
    with pytest.warns(dsecli.errors.DseWarning, match="1 of 1 rows"):
        assert second.step(0) == []
    new = second.step(1)
    assert [(r["checkpoint"], r["method"]) for r in new] == [(1, "dse")]
    assert [r["checkpoint"] for r in _read(out)] == [0, 1]


def test_a_resumed_run_measures_a_damaged_stored_row_again(tmp_path: Any) -> None:
    import json

    out = tmp_path / "run.jsonl"
    model, kwargs = _model(), _one_layer_dse_into(out)
    first = dsecli.TrainingMonitor(model, **kwargs)
    (row,) = first.step(0)
    damaged = {**row, "value": str(row["value"])}  # edited by hand: the batch rule refuses to reuse it
    out.write_text(json.dumps(damaged) + "\n")
    again = dsecli.TrainingMonitor(model, **kwargs, run_id=first.run_id)
    with pytest.warns(dsecli.errors.DseWarning, match=r"has a 'value' field that is not a number or null \(string "
                                                      r"\"[0-9.]+\"\); it is measured again"):
        (redone,) = again.step(0)
    assert redone["key"] == row["key"] and redone["value"] == row["value"]
    from dsecli.batch.read import read_result_rows

    assert len(_read(out)) == 2  # appended, never rewritten; the readers take the later row of the key
    assert [r["value"] for r in read_result_rows(out)] == [row["value"]]


def test_dse_plot_draws_one_line_per_layer_and_reference(trained: dict[str, Any], tmp_path: Any) -> None:
    pytest.importorskip("matplotlib")
    from typer.testing import CliRunner

    from dsecli.batch.read import read_result_rows
    from dsecli.batch.series import batch_series
    from dsecli.cli import app

    series = batch_series(read_result_rows(trained["out"]))
    run = trained["monitor"].run_id
    assert all(s.pattern.endswith(f":run={run}") for s in series)
    assert sorted((s.method, s.pattern.split(":")[0], s.sigma_policy, s.other.split(" ")[0]) for s in series) == sorted(
        [("dse", layer, "median per input", "t=1") for layer in LAYERS]
        + [("dsmi", layer, "median per input", "ref=labels,") for layer in LAYERS]
        + [("dsmi", layer, "median per input", "ref=inputs") for layer in LAYERS]  # split at the space in "inputs (k-means..."
    )
    assert all(s.x == [0.0, 1.0, 2.0] and s.x_kind == "epoch" for s in series)
    png = tmp_path / "run.png"
    res = CliRunner().invoke(app, ["plot", str(trained["out"]), "-o", str(png)])
    assert res.exit_code == 0, res.output
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_modes_and_hooks_are_restored_even_on_error() -> None:
    model = _model()
    model.eval()
    model.bn.train()  # a mixed state: each module gets its own flag back
    bad = torch.zeros(10, 63)  # one feature short: fc1 raises inside the forward pass
    monitor = dsecli.TrainingMonitor(model, layers=["fc2", "bn"], eval_data=bad, methods=["dse"], device="cpu")
    with pytest.raises(RuntimeError, match="shapes cannot be multiplied"):
        monitor.step(0)
    assert all(not m._forward_hooks for m in model.modules())
    assert not model.training and model.bn.training and not model.fc1.training
    x, _ = _digits()
    ok = dsecli.TrainingMonitor(model, layers=["fc2"], eval_data=x[:40], methods=["dse"], sigma=1.0, device="cpu")
    assert len(ok.step(0)) == 1
    assert not model.training and model.bn.training
    assert all(not m._forward_hooks for m in model.modules())


def test_nothing_enters_the_autograd_graph_or_the_gradients() -> None:
    x, y = _digits()
    model = _model()
    torch.nn.functional.cross_entropy(model(x[:50]), y[:50]).backward()
    grads = [p.grad.clone() for p in model.parameters()]
    dsecli.TrainingMonitor(model, layers=["fc1"], eval_data=x[:60], labels=y[:60], methods=["dse", "dsmi"],
                           sigma=1.0, cluster_inputs=3, device="cpu").step(0)
    assert all(torch.equal(p.grad, g) for p, g in zip(model.parameters(), grads))


def test_a_dataloader_gives_the_rows_of_the_tensor() -> None:
    x, y = _digits()
    model = _model()
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x[:200], y[:200]), batch_size=64)
    common = {"layers": ["fc2"], "methods": ["dse", "dsmi"], "max_n": 80, "sigma": 1.0, "cluster_inputs": False,
              "device": "cpu"}
    from_loader = dsecli.TrainingMonitor(model, eval_data=loader, **common).step(0)
    from_tensor = dsecli.TrainingMonitor(model, eval_data=x[:200], labels=y[:200], **common).step(0)
    from_arrays = dsecli.TrainingMonitor(model, eval_data=x[:200].numpy().astype(np.float64),
                                         labels=y[:200].numpy(), **common).step(0)  # float64 -> the model's float32
    assert [r["value"] for r in from_loader] == [r["value"] for r in from_tensor] == [r["value"] for r in from_arrays]
    assert [r["method"] for r in from_loader] == ["dse", "dsmi"]


def test_unknown_layer_lists_the_model_modules() -> None:
    x, _ = _digits()
    with pytest.raises(InputError, match=re.escape(
            "`layers`: the model has no module named 'fc9'; its modules are: fc1, bn, drop, fc2, out")):
        dsecli.TrainingMonitor(_model(), layers=["fc1", "fc9"], eval_data=x)


def test_mutual_information_without_any_reference_is_refused() -> None:
    x, _ = _digits()
    monitor = dsecli.TrainingMonitor(_model(), layers=["fc1"], eval_data=x[:50], methods=["dsmi"],
                                     cluster_inputs=False, device="cpu")
    with pytest.raises(InputError, match=re.escape("methods dsmi need `labels` (or cluster_inputs=True)")):
        monitor.step(0)


def test_unknown_method_and_bad_epoch_are_refused() -> None:
    x, _ = _digits()
    with pytest.raises(InputError, match=re.escape("`methods` 'dsx' is unknown; choose from dse,")):
        dsecli.TrainingMonitor(_model(), layers=["fc1"], eval_data=x, methods=["dsx"])
    monitor = dsecli.TrainingMonitor(_model(), layers=["fc1"], eval_data=x[:30], methods=["dse"], device="cpu")
    with pytest.raises(InputError, match=re.escape("`epoch` must be")):
        monitor.step(-1)


def test_not_a_results_file_is_refused_and_left_unchanged(tmp_path: Any) -> None:
    x, _ = _digits()
    out = tmp_path / "notes.txt"
    out.write_text("my notes\n")
    monitor = dsecli.TrainingMonitor(_model(), layers=["fc1"], eval_data=x[:30], methods=["dse"], output=out,
                                     device="cpu")
    with pytest.raises(InputError, match=re.escape(f"{out}: not a dse batch results file (line 1 is not JSON)")):
        monitor.step(0)
    assert out.read_text() == "my notes\n"


def test_tensorboard_scalars(tmp_path: Any) -> None:
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    x, y = _digits()
    with dsecli.TrainingMonitor(_model(), layers=["fc2"], eval_data=x[:80], labels=y[:80], methods=["dse", "dsmi"],
                                sigma=1.0, cluster_inputs=False, device="cpu", tensorboard=tmp_path / "tb") as mon:
        rows = mon.step(0) + mon.step(1)
    acc = EventAccumulator(str(tmp_path / "tb"))
    acc.Reload()
    assert sorted(acc.Tags()["scalars"]) == ["dse/fc2", "dsmi/fc2/labels"]
    got = [(e.step, e.value) for e in acc.Scalars("dse/fc2")]
    want = [(r["checkpoint"], r["value"]) for r in rows if r["method"] == "dse"]
    assert [s for s, _ in got] == [s for s, _ in want]
    np.testing.assert_allclose([v for _, v in got], [v for _, v in want], rtol=1e-6)  # stored as float32


def test_lightning_callback_names_the_extra_when_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    for name in ("lightning", "lightning.pytorch", "pytorch_lightning"):
        monkeypatch.setitem(sys.modules, name, None)  # import fails as if not installed
    x, _ = _digits()
    monitor = dsecli.TrainingMonitor(_model(), layers=["fc1"], eval_data=x[:30], methods=["dse"])
    with pytest.raises(InputError, match=re.escape(
            'the Lightning callback needs Lightning, which is not installed; install it with: '
            'pip install "dsecli[lightning]"')):
        monitor.lightning_callback()


def _lightning_module(pl: Any) -> Any:
    """The test network as a LightningModule (cross-entropy, SGD)."""

    class Module(pl.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.net = _model()

        def forward(self, v: Any) -> Any:
            return self.net(v)

        def training_step(self, batch: Any, _i: int) -> Any:
            return torch.nn.functional.cross_entropy(self.net(batch[0]), batch[1])

        def configure_optimizers(self) -> Any:
            return torch.optim.SGD(self.parameters(), lr=0.1)

    return Module()


@pytest.mark.filterwarnings("ignore::FutureWarning", "ignore::UserWarning")  # Lightning's own (workers, deprecations)
def test_lightning_callback_steps_each_epoch(tmp_path: Any) -> None:
    pl = pytest.importorskip("lightning.pytorch")
    x, y = _digits()

    module = _lightning_module(pl)
    monitor = dsecli.TrainingMonitor(module, layers=["net.fc2"], eval_data=x[:80], methods=["dse"], sigma=1.0,
                                     output=tmp_path / "run.jsonl", device="cpu")
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=256)
    trainer = pl.Trainer(max_epochs=2, callbacks=[monitor.lightning_callback()], logger=False,
                         enable_checkpointing=False, enable_progress_bar=False, accelerator="cpu")
    trainer.fit(module, loader)
    assert [r["checkpoint"] for r in _read(tmp_path / "run.jsonl")] == [0, 1]


# ---------------------------------------------------------------- every set-up: values or one clear error


class _DictData(torch.utils.data.Dataset):  # type: ignore[misc]
    def __init__(self, x: Any, y: Any, keys: tuple[str, str] = ("image", "label")) -> None:
        self.x, self.y, self.keys = x, y, keys

    def __len__(self) -> int:
        return int(self.x.shape[0])

    def __getitem__(self, i: int) -> dict[str, Any]:
        return {self.keys[0]: self.x[i], self.keys[1]: self.y[i], "index": i}


def test_dict_batches_give_the_rows_of_the_tensor() -> None:
    x, y = _digits()
    kw = {"layers": ["fc2"], "methods": ["dse", "dsmi"], "sigma": 1.0, "cluster_inputs": False, "device": "cpu"}
    want = dsecli.TrainingMonitor(_model(), eval_data=x[:100], labels=y[:100], **kw).step(0)
    loader = torch.utils.data.DataLoader(_DictData(x[:100], y[:100]), batch_size=32)
    got = dsecli.TrainingMonitor(_model(), eval_data=loader, **kw).step(0)  # "image" and "label" found
    assert [r["value"] for r in got] == [r["value"] for r in want]
    odd = torch.utils.data.DataLoader(_DictData(x[:100], y[:100], ("pixels", "digit")), batch_size=32)
    with pytest.raises(InputError, match=r"dict batches with keys 'pixels', 'digit', 'index', none of them one of "
                                         r"x, input, .*; pass input_key="):
        dsecli.TrainingMonitor(_model(), eval_data=odd, **kw).step(0)
    with pytest.raises(InputError, match=r"`input_key`: an `eval_data` batch has no key 'pix'; its keys are: 'pixels'"):
        dsecli.TrainingMonitor(_model(), eval_data=odd, input_key="pix", **kw).step(0)
    named = dsecli.TrainingMonitor(_model(), eval_data=odd, input_key="pixels", label_key="digit", **kw).step(0)
    assert [r["value"] for r in named] == [r["value"] for r in want]


def test_tensorboard_under_a_regular_file_is_one_input_error_before_training(tmp_path: Any) -> None:
    pytest.importorskip("tensorboard")
    x, _ = _digits()
    (tmp_path / "notes.txt").write_text("a file")
    target = tmp_path / "notes.txt" / "tb"
    with pytest.raises(InputError, match=r"`tensorboard`: the log directory .*notes.txt/tb cannot be made: "
                                         r".*notes.txt is a file"):
        dsecli.TrainingMonitor(_model(), layers=["fc2"], eval_data=x[:40], methods=["dse"], tensorboard=target)
    assert (tmp_path / "notes.txt").read_text() == "a file"


def test_step_inside_bfloat16_autocast_gives_the_float32_values() -> None:
    x, y = _digits()
    kw = {"layers": ["fc1", "fc2"], "eval_data": x[:120], "labels": y[:120], "methods": ["dse", "dsmi"],
          "sigma": "median", "cluster_inputs": False, "device": "cpu"}
    model = _model()
    want = dsecli.TrainingMonitor(model, **kw).step(0)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = dsecli.TrainingMonitor(model, **kw).step(0)
    assert len(got) == len(want) == 4
    np.testing.assert_allclose([r["value"] for r in got], [r["value"] for r in want], rtol=1e-5, atol=1e-6)
    half = _model().to(torch.bfloat16)  # a bfloat16 model: measured in float32
    rows = dsecli.TrainingMonitor(half, **{**kw, "eval_data": x[:120].to(torch.bfloat16)}).step(0)
    assert all(math.isfinite(r["value"]) for r in rows)


def test_a_meta_device_model_is_refused_naming_model() -> None:
    x, _ = _digits()
    with torch.device("meta"):
        model = MLP()
    with pytest.raises(InputError, match=r"`model`: its parameters are on the 'meta' device and hold no data"):
        dsecli.TrainingMonitor(model, layers=["fc2"], eval_data=x[:40], methods=["dse"])


def test_nan_activations_name_the_layer_and_epoch_and_the_api_option() -> None:
    x, _ = _digits()
    model = _model()
    with torch.no_grad():
        model.fc2.weight[0, 0] = float("nan")  # a diverged run
    kw = {"layers": ["fc1", "fc2"], "eval_data": x[:50], "methods": ["dse"], "sigma": 1.0, "device": "cpu"}
    monitor = dsecli.TrainingMonitor(model, **kw)
    with pytest.raises(InputError, match=r"layer 'fc2' at epoch 3: 50 of 50 evaluation rows have NaN or infinite "
                                         r"activations \(has the training diverged.*drop_nonfinite=True") as err:
        monitor.step(3)
    assert "--drop-nonfinite" not in str(err.value)
    x2 = x[:50].clone()
    x2[:5, 5] = float("inf")  # five rows overflow
    rows = dsecli.TrainingMonitor(_model(), **{**kw, "eval_data": x2}, drop_nonfinite=True).step(0)
    fc1 = next(r for r in rows if r["series"] == "fc1")
    assert fc1["n_used"] == 45 and math.isfinite(fc1["value"]) and any("5 rows" in w for w in fc1["warnings"])


def test_step_leaves_modes_flags_random_states_and_threads_as_they_were() -> None:
    import random

    x, y = _digits()
    model = _model()
    model.train()
    model.drop.eval()
    model.fc1.weight.requires_grad_(False)  # a frozen layer stays frozen, the others trainable
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x[:300], y[:300]), batch_size=64, shuffle=True)
    monitor = dsecli.TrainingMonitor(model, layers=["fc1", "fc2"], eval_data=loader, methods=["dse", "dsmi"],
                                     max_n=200, sigma=1.0, device="cpu")
    torch.manual_seed(11)
    np.random.seed(12)  # noqa: NPY002
    random.seed(13)
    threads = torch.get_num_threads()
    before = _random_states()
    flags = [(n, p.requires_grad) for n, p in model.named_parameters()]
    modes = [(n, m.training) for n, m in model.named_modules()]
    assert len(monitor.step(0)) == 6  # reads the shuffling loader, subsamples, clusters, computes
    _assert_same_states(before)
    assert [(n, p.requires_grad) for n, p in model.named_parameters()] == flags
    assert [(n, m.training) for n, m in model.named_modules()] == modes
    assert torch.get_num_threads() == threads
    monitor.step(1)
    _assert_same_states(before)


# ---------------------------------------------------------------- logging where trainers look


def _fit_with_logger(tmp_path: Any, logger_kind: str) -> tuple[Any, list[dict[str, Any]]]:
    pl = pytest.importorskip("lightning.pytorch")
    x, y = _digits()

    module = _lightning_module(pl)
    monitor = dsecli.TrainingMonitor(module, layers=["net.fc2"], eval_data=x[:80], labels=y[:80],
                                     methods=["dse", "dsmi"], sigma=1.0, cluster_inputs=False, device="cpu")
    if logger_kind == "csv":
        logger = pl.loggers.CSVLogger(tmp_path, name="csv")
    else:
        pytest.importorskip("tensorboard")
        logger = pl.loggers.TensorBoardLogger(tmp_path, name="tb")
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x[:256], y[:256]), batch_size=128)
    trainer = pl.Trainer(max_epochs=2, callbacks=[monitor.lightning_callback()], logger=logger,
                         enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                         accelerator="cpu", log_every_n_steps=1)
    trainer.fit(module, loader)
    return logger, monitor.rows


@pytest.mark.filterwarnings("ignore::FutureWarning", "ignore::UserWarning")
def test_lightning_callback_logs_to_the_csv_logger(tmp_path: Any) -> None:
    import csv

    logger, rows = _fit_with_logger(tmp_path, "csv")
    with open(f"{logger.log_dir}/metrics.csv") as fh:
        table = list(csv.DictReader(fh))
    for name, method in (("dse/net.fc2", "dse"), ("dsmi/net.fc2", "dsmi")):
        logged = [(int(r["epoch"]), float(r[name])) for r in table if r.get(name)]
        want = [(r["checkpoint"], r["value"]) for r in rows if r["method"] == method]
        assert [e for e, _ in logged] == [0, 1] == [e for e, _ in want]
        np.testing.assert_allclose([v for _, v in logged], [v for _, v in want], rtol=1e-6)


@pytest.mark.filterwarnings("ignore::FutureWarning", "ignore::UserWarning")
def test_lightning_callback_logs_to_the_tensorboard_logger(tmp_path: Any) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    logger, rows = _fit_with_logger(tmp_path, "tb")
    acc = EventAccumulator(logger.log_dir)
    acc.Reload()
    assert {"dse/net.fc2", "dsmi/net.fc2"} <= set(acc.Tags()["scalars"])
    got = [e.value for e in acc.Scalars("dse/net.fc2")]
    np.testing.assert_allclose(got, [r["value"] for r in rows if r["method"] == "dse"], rtol=1e-6)


def test_lightning_logging_falls_back_to_the_loggers_where_log_is_refused() -> None:
    from dsecli.monitor.sinks import _log

    class Refusing:
        def log(self, *_a: Any, **_k: Any) -> None:
            raise RuntimeError("You can't `self.log()` in this hook")

    class Logger:
        def __init__(self) -> None:
            self.got: list[Any] = []

        def log_metrics(self, metrics: dict[str, float], step: int) -> None:
            self.got.append((metrics, step))

    logger = Logger()
    trainer = type("T", (), {"loggers": [logger], "logger": logger, "current_epoch": 4})()
    rows = [{"method": "dse", "series": "fc2", "reference": None, "value": 1.5},
            {"method": "dsmi", "series": "fc2", "reference": "inputs (k-means, k=10)", "value": 0.5}]
    _log(trainer, Refusing(), rows)
    assert logger.got == [({"dse/fc2": 1.5, "dsmi/fc2/inputs": 0.5}, 4)]


def test_tensorboard_names_the_extra_when_missing(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)
    x, _ = _digits()
    with pytest.raises(InputError, match=re.escape('install it with: pip install "dsecli[tensorboard]"')):
        dsecli.TrainingMonitor(_model(), layers=["fc2"], eval_data=x[:30], methods=["dse"], tensorboard=tmp_path)


def test_resume_values_are_checked(tmp_path: Any) -> None:
    x, _ = _digits()
    kw = {"layers": ["fc2"], "eval_data": x[:30], "methods": ["dse"]}
    with pytest.raises(InputError, match="`resume=True` continues the latest run in `output`; no `output` was given"):
        dsecli.TrainingMonitor(_model(), **kw, resume=True)
    with pytest.raises(InputError, match="`resume`: 'a' names another run than run_id='b'"):
        dsecli.TrainingMonitor(_model(), **kw, resume="a", run_id="b")
    with pytest.raises(InputError, match="`run_id` must be a non-empty string without spaces"):
        dsecli.TrainingMonitor(_model(), **kw, run_id="two words")
    fresh = dsecli.TrainingMonitor(_model(), **kw, output=tmp_path / "none.jsonl", resume=True)
    assert re.fullmatch(r"[0-9a-f]{32}", fresh.run_id)  # nothing to continue: a new run


def test_each_step_reads_only_the_rows_appended_since_the_last_and_syncs_once(tmp_path: Any,
                                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    import dsecli.batch.store as store_module

    x, y = _digits()
    out = tmp_path / "run.jsonl"
    monitor = dsecli.TrainingMonitor(_model(), layers=["fc1", "fc2"], eval_data=x, labels=y, methods=["dse"],
                                     output=out, max_n=60, sigma=1.0, device="cpu")
    read: list[int] = []
    real_recognise = store_module.recognise
    monkeypatch.setattr(store_module, "recognise",
                        lambda data, path, **kw: (read.append(len(data)), real_recognise(data, path, **kw))[1])
    syncs: list[int] = []
    real_fsync = os.fsync
    monkeypatch.setattr(store_module.os, "fsync", lambda fd: (syncs.append(fd), real_fsync(fd))[1])
    for epoch in range(3):
        assert len(monitor.step(epoch)) == 2
    assert read == [0, 0, 0] and len(syncs) == 3  # the monitor's own rows are never read back
    # a row appended by someone else between two steps is read (and only it), and counts as done
    other = dsecli.TrainingMonitor(_model(), layers=["fc2"], eval_data=x, labels=y, methods=["dse"], output=out,
                                   max_n=60, sigma=1.0, device="cpu", run_id=monitor.run_id)
    before = out.stat().st_size
    assert [r["dataset"] for r in other.step(3)] == ["epoch_3/fc2"]
    appended = out.stat().st_size - before
    read.clear()
    with pytest.warns(dsecli.errors.DseWarning, match="1 of 2 rows"):
        new = monitor.step(3)
    assert [r["dataset"] for r in new] == ["epoch_3/fc1"]
    assert read == [appended]
