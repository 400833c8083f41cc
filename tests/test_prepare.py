"""Validate once: the Prepared rows value, one device resolution, and warnings that reach every result."""

from __future__ import annotations

import json
import re
import sys
import warnings
from collections import Counter
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner

from dsecli.errors import CollectWarnings, DseWarning, InputError
from dsecli.estimators import (
    binned_shannon_entropy,
    binned_shannon_mutual_information,
    kozachenko_leonenko_entropy,
    ksg_mutual_information,
    mine_mutual_information,
)
from dsecli.inputs.prepare import Prepared, prepare_rows
from dsecli.measures.dse import diffusion_spectral_entropy, diffusion_spectral_mutual_information
from dsecli.measures.variants import adjacency_spectral_entropy, matrix_entry_entropy
from dsecli.methods import estimate_entropy, estimate_mutual_information

N = 61  # the last row holds a NaN (dropped with drop_nonfinite), 60 rows remain
TINY_MINE = {"epochs": 2, "batch_size": 16, "patience": 0, "hidden_units": 8}


def _data() -> tuple[np.ndarray, np.ndarray]:
    """Rows with one constant column (2), one repeated row (10 repeats 3), one NaN row (60);
    labels 0..5 with one class (9) of a single row (59)."""
    x = np.random.default_rng(0).normal(size=(N, 3))
    x[:, 2] = 1.5
    x[10] = x[3]
    x[60, 0] = np.nan
    y = np.repeat(np.arange(6), 10)
    y = np.append(y, 0)
    y[59] = 9
    return x, y


# the messages each finding must produce, from the construction above
CONSTANT = "1 of 3 columns is constant (column 2)"
DUPLICATE = "1 of 60 rows repeats an earlier row (59 distinct; e.g. row 10 repeats row 3)"
DROPPED = "dropped 1 row(s) holding NaN or Inf (--drop-nonfinite): rows 60; 60 rows remain"
SINGLE = "reference class 9 has a single row"

ENTROPY: dict[str, tuple[Callable[..., Any], dict[str, Any]]] = {
    "dse": (diffusion_spectral_entropy, {"device": "cpu"}),
    "knn": (kozachenko_leonenko_entropy, {"device": "cpu"}),
    "cse": (binned_shannon_entropy, {}),
}
MI: dict[str, tuple[Callable[..., Any], dict[str, Any]]] = {
    "dsmi": (diffusion_spectral_mutual_information, {"device": "cpu"}),
    "csmi": (binned_shannon_mutual_information, {}),
    "ksg": (ksg_mutual_information, {"device": "cpu"}),
    "mine": (mine_mutual_information, {"device": "cpu", **TINY_MINE}),
}


def _emitted(fn: Callable[[], Any]) -> tuple[Any, list[str]]:
    with warnings.catch_warnings(record=True) as log:
        warnings.simplefilter("always")
        out = fn()
    return out, [str(w.message) for w in log if issubclass(w.category, DseWarning)]


def _one(messages: list[str] | tuple[str, ...], text: str) -> bool:
    return sum(text in m for m in messages) == 1


# ---- warnings: every one shown is in the result, each shown once ----------------------------------------


@pytest.mark.parametrize("route", ["direct", "registry"])
@pytest.mark.parametrize("name", [*ENTROPY, *MI])
def test_preparation_warnings_reach_result_and_are_shown_once(name: str, route: str) -> None:
    x, y = _data()
    mi = name in MI
    fn, kw = (MI if mi else ENTROPY)[name]
    if route == "direct":
        call = (lambda: fn(x, y, max_n=0, drop_nonfinite=True, **kw)) if mi else \
            (lambda: fn(x, max_n=0, drop_nonfinite=True, **kw))
    elif mi:
        call = lambda: estimate_mutual_information(x, y, methods=[name], max_n=0, drop_nonfinite=True, **kw)[0]  # noqa: E731
    else:
        call = lambda: estimate_entropy(x, methods=[name], max_n=0, drop_nonfinite=True, **kw)[0]  # noqa: E731
    result, shown = _emitted(call)
    expected = [CONSTANT, DUPLICATE, DROPPED] + ([SINGLE] if mi else [])
    for text in expected:
        assert _one(result.warnings, text), (text, result.warnings)
        assert _one(shown, text), (text, shown)
    # what was shown is exactly what the result lists: nothing missing, nothing shown twice
    assert Counter(shown) == Counter(result.warnings)


def test_one_preparation_for_several_methods_shows_its_warnings_once() -> None:
    x, y = _data()
    results, shown = _emitted(lambda: estimate_entropy(x, methods="dse,cse,knn", max_n=0, drop_nonfinite=True,
                                                       device="cpu"))
    for text in (CONSTANT, DUPLICATE, DROPPED):
        assert _one(shown, text)
        assert all(_one(r.warnings, text) for r in results)
    results, shown = _emitted(lambda: estimate_mutual_information(
        x, y, methods="dsmi,csmi,ksg,mine", max_n=0, drop_nonfinite=True, device="cpu", **TINY_MINE))
    for text in (CONSTANT, DUPLICATE, DROPPED):
        assert _one(shown, text)
        assert all(_one(r.warnings, text) for r in results)
    # the reference is read once for every method: its single-row class is shown once and listed by each
    assert sum(SINGLE in m for m in shown) == 1 and all(_one(r.warnings, SINGLE) for r in results)


def test_batch_rows_carry_the_preparation_warnings(tmp_path) -> None:
    from dsecli.batch.run import run_batch

    x, y = _data()
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "y.npy", y)
    out = tmp_path / "rows.jsonl"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        run_batch(str(tmp_path / "x.npy"), reference=str(tmp_path / "y.npy"), methods="dse,csmi", output=out,
                  max_n=0, drop_nonfinite=True, device="cpu")
    rows = [json.loads(line) for line in out.read_text().splitlines() if line.strip().startswith("{")]
    assert [r["method"] for r in rows] == ["dse", "csmi"]
    for r in rows:
        for text in (CONSTANT, DUPLICATE, DROPPED) + ((SINGLE,) if r["method"] == "csmi" else ()):
            assert _one(r["warnings"], text), (text, r["warnings"])


def test_cli_json_lists_and_stderr_shows_each_warning_once(tmp_path) -> None:
    from dsecli.cli import app

    x, _ = _data()
    np.save(tmp_path / "x.npy", x)
    res = CliRunner().invoke(app, ["entropy", str(tmp_path / "x.npy"), "--method", "dse,cse,knn", "--max-n", "0",
                                   "--drop-nonfinite", "--device", "cpu", "--json"])
    assert res.exit_code == 0, res.output
    report = json.loads(res.stdout)
    for text in (CONSTANT, DUPLICATE, DROPPED):
        assert all(_one(r["warnings"], text) for r in report["results"])
        assert sum(text in line for line in res.stderr.splitlines() if line.startswith("warning:")) == 1


@pytest.mark.parametrize("cached", [False, True])
def test_spectrum_lists_the_preparation_warnings_once(cached: bool, tmp_path) -> None:
    from dsecli.measures.spectrum_scan import diffusion_spectrum

    x, _ = _data()
    cache = str(tmp_path / "cache") if cached else False
    if cached:  # the second call reads the spectrum from the cache
        _emitted(lambda: diffusion_spectrum(x, max_n=0, drop_nonfinite=True, device="cpu", cache=cache))
    spec, shown = _emitted(lambda: diffusion_spectrum(x, max_n=0, drop_nonfinite=True, device="cpu", cache=cache))
    assert spec.cache["hit"] is cached
    for text in (CONSTANT, DUPLICATE, DROPPED):
        assert _one(spec.warnings, text) and _one(shown, text)
    assert Counter(shown) == Counter(spec.warnings)


def test_collector_keeps_carried_messages_without_showing_them_again() -> None:
    with warnings.catch_warnings(record=True) as log:
        warnings.simplefilter("always")
        with CollectWarnings(("shown earlier",)) as notes:
            warnings.warn("raised here", DseWarning, stacklevel=1)
    assert notes == ["shown earlier", "raised here"]
    assert [str(w.message) for w in log] == ["raised here"]


# ---- validated once ----------------------------------------------------------------------------------------


def _count_calls(monkeypatch: pytest.MonkeyPatch, module: str, name: str) -> list[int]:
    calls: list[int] = []
    original = getattr(sys.modules[module], name)

    def counting(*a: Any, **k: Any) -> Any:
        calls.append(1)
        return original(*a, **k)

    monkeypatch.setattr(f"{module}.{name}", counting)
    return calls


def test_estimate_entropy_prepares_once_for_three_methods(monkeypatch: pytest.MonkeyPatch) -> None:
    checks = _count_calls(monkeypatch, "dsecli.inputs.prepare", "check_embeddings")
    quality = _count_calls(monkeypatch, "dsecli.inputs.prepare", "data_quality_warnings")
    x = np.random.default_rng(1).normal(size=(50, 3))
    estimate_entropy(x, methods="dse,cse,knn", device="cpu")
    assert (len(checks), len(quality)) == (1, 1)
    checks.clear()
    estimate_mutual_information(x, np.repeat(np.arange(5), 10), methods="dsmi,csmi,ksg", device="cpu")
    assert len(checks) == 1


def test_a_prepared_value_is_trusted_not_checked_again(monkeypatch: pytest.MonkeyPatch) -> None:
    x = np.random.default_rng(1).normal(size=(50, 3))
    rows = prepare_rows(x, max_n=0, seed=0)
    checks = _count_calls(monkeypatch, "dsecli.inputs.prepare", "check_embeddings")
    diffusion_spectral_entropy(rows, device="cpu")
    kozachenko_leonenko_entropy(rows, device="cpu")
    binned_shannon_mutual_information(rows, np.repeat(np.arange(5), 10))
    assert checks == []


def _count_everywhere(monkeypatch: pytest.MonkeyPatch, name: str, counted: Callable[[Any], bool]) -> list[Any]:
    """Replace ``dsecli.device.<name>`` in every dsecli module that bound it; record the counted calls."""
    import dsecli.device

    original = getattr(dsecli.device, name)
    calls: list[Any] = []

    def counting(arg: Any = None, *a: Any, **k: Any) -> Any:
        if counted(arg):
            calls.append(arg)
        return original(arg, *a, **k) if arg is not None else original(*a, **k)

    for module in list(sys.modules.values()):
        if getattr(module, "__name__", "").startswith("dsecli") and getattr(module, name, None) is original:
            monkeypatch.setattr(module, name, counting)
    return calls


def test_device_and_dtype_are_resolved_once_per_call(monkeypatch: pytest.MonkeyPatch) -> None:
    import dsecli.diffusion.plan  # noqa: F401 - imported so that its binding is replaced too
    import dsecli.estimators.neighbors  # noqa: F401

    devices = _count_everywhere(monkeypatch, "resolve_device", lambda arg: True)
    dtypes = _count_everywhere(monkeypatch, "resolve_dtype", lambda arg: isinstance(arg, str))
    x = np.random.default_rng(1).normal(size=(40, 3))
    y = np.repeat(np.arange(4), 10)
    estimate_entropy(x, methods="dse,ase-gaussian,knn,cse", device="cpu", dtype="float64")
    assert devices == ["cpu"] and dtypes == ["float64"]
    devices.clear()
    dtypes.clear()
    estimate_mutual_information(x, y, methods="dsmi,ksg,mine", device="cpu", dtype="float64", **TINY_MINE)
    assert devices == ["cpu"] and dtypes == ["float64"]
    devices.clear()
    dtypes.clear()
    diffusion_spectral_mutual_information(x, y, device="cpu")
    assert devices == ["cpu"] and dtypes == ["float64"]


# ---- the same numbers from a Prepared as from raw data --------------------------------------------------


@pytest.mark.parametrize("name", ["dse", "ase-gaussian", "ase-knn", "matrix-entry", "knn", "cse"])
def test_prepared_gives_the_raw_data_result(name: str) -> None:
    fn, kw = {"ase-gaussian": (adjacency_spectral_entropy, {"kernel": "gaussian", "device": "cpu"}),
              "ase-knn": (adjacency_spectral_entropy, {"kernel": "knn", "device": "cpu"}),
              "matrix-entry": (matrix_entry_entropy, {"device": "cpu"})}.get(name) or ENTROPY[name]
    x = np.random.default_rng(2).normal(size=(80, 4))
    raw = fn(x, max_n=50, seed=3, **kw)
    prepared = fn(prepare_rows(x, max_n=50, seed=3), max_n=50, seed=3, **kw)
    assert prepared.value == raw.value
    assert (prepared.n_used, prepared.n_total) == (raw.n_used, raw.n_total) == (50, 80)
    assert prepared.params == raw.params


@pytest.mark.parametrize("name", list(MI))
def test_prepared_with_reference_gives_the_raw_data_result(name: str) -> None:
    fn, kw = MI[name]
    rng = np.random.default_rng(2)
    y = np.repeat(np.arange(4), 20)
    x = rng.normal(size=(80, 3)) + y[:, None]
    raw = fn(x, y, max_n=60, seed=3, **kw)
    held = fn(prepare_rows(x, max_n=60, seed=3, reference=y), max_n=60, seed=3, **kw)
    given = fn(prepare_rows(x, max_n=60, seed=3), y, max_n=60, seed=3, **kw)
    assert held.value == given.value == raw.value
    assert held.params == raw.params and held.n_used == raw.n_used == 60


def test_registry_result_equals_the_direct_call() -> None:
    x = np.random.default_rng(4).normal(size=(70, 3))
    direct = [diffusion_spectral_entropy(x, max_n=40, seed=1, device="cpu").value,
              kozachenko_leonenko_entropy(x, max_n=40, seed=1, device="cpu").value,
              binned_shannon_entropy(x, max_n=40, seed=1).value]
    assert [r.value for r in estimate_entropy(x, methods="dse,knn,cse", max_n=40, seed=1, device="cpu")] == direct


# ---- what a Prepared carries: row count, reference, device and dtype ------------------------------------


def test_row_count_of_a_prepared_is_checked_as_for_raw_data() -> None:
    x = np.random.default_rng(0).normal(size=(3, 2))
    y = np.array([0, 1, 0])
    message = "`embeddings` must have at least 4 rows; got N = 3"
    with pytest.raises(InputError, match=re.escape(message)):
        mine_mutual_information(x, y, device="cpu")
    with pytest.raises(InputError, match=re.escape(message)):
        mine_mutual_information(prepare_rows(x, max_n=0, seed=0, reference=y), device="cpu")


def test_mutual_information_needs_a_reference() -> None:
    rows = prepare_rows(np.random.default_rng(0).normal(size=(20, 2)), max_n=0, seed=0)
    with pytest.raises(InputError, match=re.escape(
            "`y` (the reference) is missing: pass it, or rows prepared with one (prepare_rows(..., reference=y))")):
        ksg_mutual_information(rows, device="cpu")


def test_device_and_dtype_travel_with_the_rows_and_can_be_replaced() -> None:
    x = np.random.default_rng(5).normal(size=(30, 3))
    rows = prepare_rows(x, max_n=0, seed=0, device="cpu", dtype="float32")
    assert isinstance(rows, Prepared) and str(rows.device) == "cpu"
    assert diffusion_spectral_entropy(rows).params["dtype"] == "float32"
    assert diffusion_spectral_entropy(rows, dtype="float64").params["dtype"] == "float64"
    # a Prepared made without a dtype, given one at the registry (as dse batch does)
    plain = prepare_rows(x, max_n=0, seed=0)
    assert {r.params["dtype"] for r in estimate_entropy(plain, methods="dse,ase-gaussian", device="cpu",
                                                        dtype="float32")} == {"float32"}
    # no dtype asked for: each method keeps its own default (MINE trains in float32)
    y = np.repeat(np.arange(3), 10)
    dsmi, mine = estimate_mutual_information(x, y, methods="dsmi,mine", device="cpu", **TINY_MINE)
    assert (dsmi.params["dtype"], mine.params["dtype"]) == ("float64", "float32")


def test_the_inputs_stage_imports_no_later_stage() -> None:
    """inputs/ (reading, checking, preparing rows) depends on nothing downstream, even inside
    functions: that is what keeps diagnostics -> estimators -> inputs free of a circle."""
    import ast
    from pathlib import Path

    import dsecli.inputs

    later = ("dsecli.diagnostics", "dsecli.estimators", "dsecli.measures", "dsecli.diffusion", "dsecli.batch",
             "dsecli.report", "dsecli.cli", "dsecli.methods")
    found = []
    for path in sorted(Path(dsecli.inputs.__file__).parent.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [node.module or ""] if isinstance(node, ast.ImportFrom) else \
                [a.name for a in node.names] if isinstance(node, ast.Import) else []
            found += [f"{path.name}: {n}" for n in names if n.startswith(later)]
    assert found == []
