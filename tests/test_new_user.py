"""What a new user trips on: one regression test per item (messages, advice, hints, pipelines,
hostile stored rows, figures, the approximate solver's accuracy)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from dsecli.cli import app
from dsecli.errors import InputError

runner = CliRunner()


def _run(args: list[str]):
    res = runner.invoke(app, args)
    assert not isinstance(res.exception, Exception) or isinstance(res.exception, SystemExit), repr(res.exception)
    return res


# 1. messages and tables quote data: no emoji codes, no markup
def test_keys_with_emoji_codes_print_as_written(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    rng = np.random.default_rng(0)
    np.savez("obj.npz", **{":x:": rng.normal(size=(30, 3)), "[b]": rng.normal(size=(30, 2))})
    res = _run(["info", "obj.npz"])
    assert res.exit_code == 0 and ":x:" in res.stdout and "[b]" in res.stdout
    assert "\u274c" not in res.stdout
    res = _run(["entropy", "obj.npz"])
    assert res.exit_code == 2
    assert ":x:" in res.stderr and "[b]" in res.stderr and "\u274c" not in res.stderr


# 2. the error names the true cause
def test_huge_permutations_name_the_option(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    rng = np.random.default_rng(0)
    np.save("x.npy", rng.normal(size=(40, 3)))
    np.save("y.npy", np.arange(40) % 4)
    res = _run(["mi", "x.npy", "y.npy", "--permutations", "1000000000000"])
    assert res.exit_code == 1
    assert "`permutations` = 1,000,000,000,000" in res.stderr and "fewer permutations" in res.stderr
    assert "--max-n" not in res.stderr and "approx" not in res.stderr


def test_swapped_mi_arguments_get_the_hint(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    rng = np.random.default_rng(0)
    np.save("emb.npy", rng.normal(size=(60, 16)))
    np.save("y.npy", np.arange(60) % 4)
    np.save("y2.npy", (np.arange(60) % 4).reshape(-1, 1))
    hint = "EMB and REF look swapped: pass the embeddings first"
    res = _run(["mi", "y.npy", "emb.npy"])  # 1-D labels as EMB: refused, with the hint
    assert res.exit_code == 2 and "reshape" in res.stderr and hint in res.stderr
    res = _run(["mi", "y2.npy", "emb.npy", "--format", "csv"])  # runs, with the hint as a warning
    assert res.exit_code == 0 and f"warning: {hint}" in res.stderr
    res = _run(["mi", "emb.npy", "y.npy", "--format", "csv"])
    assert res.exit_code == 0 and hint not in res.stderr
    res = _run(["check", "y2.npy", "--ref", "emb.npy"])  # the same rule
    assert hint in res.stdout
    res = _run(["mi", "y2.npy", "emb.npy", "--json"])  # the warning is in the result, not only on stderr
    assert any(hint in w for w in json.loads(res.stdout)["results"][0]["warnings"])
    # the library decides it, for every caller: arrays in memory, the same hint and warning
    import dsecli

    (r,) = dsecli.estimate_mutual_information(np.load("y2.npy").astype(float), np.load("emb.npy"))
    assert any(hint in w for w in r.warnings)
    with pytest.raises(InputError, match=hint):
        dsecli.estimate_mutual_information(np.load("y.npy"), np.load("emb.npy"))
    (r,) = dsecli.estimate_mutual_information(np.load("emb.npy"), np.load("y.npy"))
    assert not any(hint in w for w in r.warnings)


def test_knn_zero_distances_give_the_cause(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from dsecli.errors import ComputationError
    from dsecli.estimators.kl import zero_distance_error

    monkeypatch.chdir(tmp_path)
    np.save("tiny.npy", np.random.default_rng(0).normal(size=(40, 2)) * 1e-170)
    for method in ("knn", "knn-weighted"):
        res = _run(["entropy", "tiny.npy", "-m", method, "--dtype", "float64"])
        assert res.exit_code == 1, res.stderr
        line = res.stderr.strip().splitlines()[-1]
        assert line.startswith("error: tiny.npy: 40 of 40 distinct rows have") and "rescale" in line
        assert "float64" in line and "use dtype float64" not in line
    err = zero_distance_error(3, 40, 2, source="a.npy", dtype="float32")
    assert isinstance(err, ComputationError) and "use dtype float64" in str(err)


def test_a_median_of_zero_names_the_file_and_tells_underflow_from_equal_rows(tmp_path: Path,
                                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    rng = np.random.default_rng(0)
    np.save("tiny.npy", rng.normal(size=(40, 3)) * 1e-300)  # 40 distinct rows, every difference underflows
    np.save("small.npy", rng.normal(size=(40, 3)) * 1e-160)  # differences representable, 1/(2 sigma^2) is not
    # 4 rows, 6 pairs, lower median the 3rd smallest: 3 equal rows (3 equal pairs) make it 0, 2 + 2 do not
    np.save("equal.npy", np.array([[0.0, 0.0], [0.0, 0.0], [0.0, 0.0], [1.0, 2.0]]))
    np.save("pairs.npy", np.array([[0.0, 0.0], [0.0, 0.0], [1.0, 2.0], [1.0, 2.0]]))
    for name in ("tiny.npy", "equal.npy", "small.npy"):
        res = _run(["entropy", name])
        assert res.exit_code == 2, res.output
        line = res.stderr.strip().splitlines()[-1]
        assert line.startswith(f"error: {name}: `sigma` median: the median pairwise distance")
        assert ("underflow" in line and "rescale the data" in line) == (name == "tiny.npy")
        assert ("equal rows" in line and "give a numeric --sigma" in line) == (name == "equal.npy")
        assert ("too small for float64" in line and "rescale the data" in line) == (name == "small.npy")
    assert _run(["entropy", "pairs.npy", "--format", "csv"]).exit_code == 0
    res = _run(["check", "tiny.npy"])
    assert "underflow" in res.stdout and "equal rows" not in res.stdout


@pytest.mark.parametrize("d", [8, 64])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_mostly_equal_rows_are_refused_though_rounding_leaves_their_distances_above_0(d: int, dtype: str) -> None:
    from dsecli import diffusion_spectral_entropy

    # 160 equal rows: 12,720 of 19,900 pairs at distance 0, the median among them. The Gram form leaves some
    # equal pairs at a rounding-size distance (which ones depends on the data), so the rounded median may be > 0
    for seed in range(3):
        for offset in (0.0, 5.0):
            rng = np.random.default_rng(seed)
            x = rng.normal(size=(200, d)) + offset
            x[:160] = rng.normal(size=d) + offset
            with pytest.raises(InputError, match=re.escape("the median pairwise distance is 0 (at least half the "
                                                           "pairs of rows are equal rows)")):
                diffusion_spectral_entropy(x, dtype=dtype, device="cpu")
    x[:100] = x[0]
    x[100:160] = rng.normal(size=(60, d))  # 100 equal rows: 4,950 pairs, fewer than half; the rule gives a sigma
    (r,) = [diffusion_spectral_entropy(x, dtype=dtype, device="cpu")]
    assert r.params["sigma"] > 0.1


def test_equal_pairs_reach_the_median_from_the_lower_median_s_rank() -> None:
    import torch

    from dsecli.diffusion import kernels

    def reach(rows) -> bool:
        return kernels._equal_pairs_reach_the_median(torch.tensor(rows, dtype=torch.float64), 0)

    # 4 rows, 6 pairs, lower median the 3rd smallest (rank (6 - 1) // 2 = 2): 3 equal pairs reach it, 2 do not
    assert reach([[0.0], [0.0], [0.0], [1.0]])
    assert not reach([[0.0], [0.0], [1.0], [1.0]])
    # 5 rows, 10 pairs, rank 4: 3 + 2 equal rows give 4 equal pairs (one short), 4 equal rows give 6
    assert not reach([[0.0], [0.0], [0.0], [1.0], [1.0]])
    assert reach([[0.0], [0.0], [0.0], [0.0], [1.0]])


def test_a_vector_reference_with_too_few_distinct_rows_is_named(tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    rng = np.random.default_rng(0)
    np.save("emb.npy", rng.normal(size=(60, 4)))
    np.save("vec.npy", rng.normal(size=(4, 3))[np.arange(60) % 4])  # 4 distinct vectors, not one-hot
    res = _run(["mi", "emb.npy", "vec.npy"])
    assert res.exit_code == 2
    assert res.stderr.strip().splitlines()[-1] == (
        "error: vec.npy: `n_clusters` = 10 exceeds the 4 distinct reference vectors; lower --n-clusters")
    assert _run(["mi", "emb.npy", "vec.npy", "--n-clusters", "4", "--format", "csv"]).exit_code == 0


# 3. hints from the library's own tables
def _help(*command: str) -> str:
    res = _run([*command, "--help"])
    assert res.exit_code == 0, res.output
    return " ".join(res.output.split())


def test_help_lists_every_format_all_and_mine_defaults() -> None:
    import inspect

    from dsecli import mine_mutual_information
    from dsecli.inputs.readers import EXTENSIONS
    from dsecli.methods import ENTROPY_ALL, MI_ALL

    for command in ("entropy", "spectrum", "check", "info", "mi"):
        text = _help(command)
        missing = [ext for ext in EXTENSIONS if f"{ext}," not in text and f"{ext})" not in text]
        assert not missing, (command, missing)
    assert f"all = {', '.join(ENTROPY_ALL)}" in _help("entropy")
    assert f"all = {', '.join(MI_ALL)})" in _help("mi")
    text = _help("mi")
    defaults = inspect.signature(mine_mutual_information).parameters
    for option, name in (("--hidden-units", "hidden_units"), ("--epochs", "epochs"), ("--holdout", "holdout_fraction"),
                         ("--learning-rate", "learning_rate")):
        # typer versions differ in the metavar ("--epochs <int>" or "--epochs INTEGER")
        tail = text[re.search(re.escape(option) + r" [<A-Z]", text).start():]
        assert f"(default {defaults[name].default})" in tail[:200], option


# 4. pipelines
def test_entropy_and_mi_rows_name_their_inputs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import csv
    import io
    import json

    monkeypatch.chdir(tmp_path)
    rng = np.random.default_rng(0)
    np.save("x.npy", rng.normal(size=(40, 3)))
    np.save("y.npy", np.arange(40) % 4)
    res = _run(["entropy", "x.npy", "-q", "--format", "csv"])
    row = next(csv.DictReader(io.StringIO(res.stdout)))
    assert row["input"] == "x.npy" and row["method"] == "dse"
    res = _run(["mi", "x.npy", "y.npy", "-q", "--format", "jsonl"])
    row = json.loads(res.stdout.splitlines()[0])
    assert (row["input"], row["reference"], row["method"]) == ("x.npy", "y.npy", "dsmi")


def _batch_dir(tmp_path: Path) -> Path:
    d = tmp_path / "runs"
    d.mkdir()
    rng = np.random.default_rng(0)
    for epoch in range(2):
        np.save(d / f"epoch_{epoch}.npy", rng.normal(size=(40, 3)))
    np.save(d / "y.npy", np.arange(40) % 4)
    return d


def test_batch_leaves_the_reference_out_of_its_inputs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import json

    from dsecli import expand_inputs

    d = _batch_dir(tmp_path)
    monkeypatch.chdir(tmp_path)
    res = _run(["batch", "runs", "--ref", "runs/y.npy", "-q", "-m", "dse,dsmi"])
    assert res.exit_code == 0, res.stderr
    inputs = {json.loads(line)["input"] for line in res.stdout.splitlines()}
    assert inputs == {"runs/epoch_0.npy", "runs/epoch_1.npy"}
    # named as an input, it stays one; by another path, it is still the reference
    assert [b.file for b in expand_inputs(["runs/y.npy"], reference="runs/y.npy")] == ["runs/y.npy"]
    assert len(expand_inputs([str(d / "*.npy")], reference=str(d / ".." / "runs" / "y.npy"))) == 2


def test_read_results_gives_a_small_table(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pd = pytest.importorskip("pandas")
    from dsecli import read_results
    from dsecli.batch.read import RESULT_COLUMNS

    _batch_dir(tmp_path)
    monkeypatch.chdir(tmp_path)
    res = _run(["batch", "runs", "--ref", "runs/y.npy", "-q", "-m", "dse,dsmi", "-o", "r.jsonl"])
    assert res.exit_code == 0, res.stderr
    df = read_results("r.jsonl")
    assert isinstance(df, pd.DataFrame) and list(df.columns) == list(RESULT_COLUMNS) and len(df) == 4
    dse = df[df.method == "dse"].sort_values("checkpoint")
    assert list(dse.checkpoint) == [0, 1] and (dse.units == "bits").all()
    assert np.allclose(dse.ceiling, np.log2(40)) and (dse.t == 1).all() and dse.sigma.notna().all()
    dsmi = df[df.method == "dsmi"]
    assert (dsmi.reference == "runs/y.npy").all() and dsmi.error.notna().all()
    wide = read_results("r.jsonl", flatten=True)
    assert "params.sigma" in wide.columns and len(wide.columns) > len(df.columns)
    (tmp_path / "bad.jsonl").write_text('{"method": "dse", "value": 1}\n[1, 2]\n')
    with pytest.raises(InputError, match=r"bad.jsonl: line 2 is not a JSON object \(a JSON array\)"):
        read_results("bad.jsonl")


# 5. hostile stored rows
def _edit_row(path: Path, lineno: int, **fields: object) -> None:
    import json

    lines = path.read_text().splitlines()
    row = json.loads(lines[lineno - 1])
    for name, value in fields.items():
        target = row
        *parents, leaf = name.split("__")
        for p in parents:
            target = target[p]
        target[leaf] = value
    lines[lineno - 1] = json.dumps(row, separators=(",", ":"))
    path.write_text("\n".join(lines) + "\n")


def test_resume_recomputes_an_edited_row_and_plot_refuses_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import json

    pytest.importorskip("matplotlib")
    _batch_dir(tmp_path)
    monkeypatch.chdir(tmp_path)
    args = ["batch", "runs", "--ref", "runs/y.npy", "-m", "dse,dsmi", "-o", "r.jsonl", "-q"]
    assert _run(args).exit_code == 0
    results = tmp_path / "r.jsonl"
    dse_line = next(i for i, line in enumerate(results.read_text().splitlines(), 1) if '"method":"dse"' in line)
    _edit_row(results, dse_line, value="3.5")
    bad = tmp_path / "bad.jsonl"
    bad.write_text(results.read_text())
    res = _run(["plot", "bad.jsonl", "-o", "p.png"])
    assert res.exit_code == 2 and f"bad.jsonl: line {dse_line} has a 'value' field" in res.stderr
    assert not (tmp_path / "p.png").exists()
    before = len(results.read_text().splitlines())
    res = _run(args[:-1])  # resume: the edited row is recomputed, with a warning
    assert res.exit_code == 0, res.stderr
    assert "its stored dse row has a 'value' field that is not a number" in res.stderr
    assert "1 recomputed in place of stale or unusable stored rows" in " ".join(res.stdout.split())
    rows = [json.loads(line) for line in results.read_text().splitlines()]
    assert len(rows) == before + 1 and rows[-1]["method"] == "dse" and isinstance(rows[-1]["value"], float)
    assert rows[-1]["replaces"]["reason"].startswith("stored row has a 'value' field")
    assert _run(["plot", "r.jsonl", "-o", "p.png"]).exit_code == 0  # the edited row is superseded
    _edit_row(results, len(rows), params__sigma="wide")
    res = _run(args[:-1])
    assert "params.sigma that is not a number" in res.stderr


# 6. figures
def _rows_of(names: tuple[str, ...], methods: tuple[tuple[str, str], ...]) -> list[dict]:
    rows = []
    for name in names:
        for epoch in range(3):
            for method, quantity in methods:
                inp = f"run.h5:/{name}/epoch_{epoch:03d}/emb"
                extra = {"ceiling": float(np.log2(1000)), "ceiling_rule": "log N_used"} if method == "dse" else {}
                rows.append({"file": "run.h5", "dataset": f"/{name}/epoch_{epoch:03d}/emb", "input": inp,
                             "checkpoint": epoch, "series": f"run.h5:/{name}/epoch_*/emb", "method": method,
                             "quantity": quantity, "value": 1.0 + epoch + len(name) / 10, "units": "bits",
                             "params": {"t": 1}, "extra": extra, "key": inp + method, "n_used": 1000})
    return rows


def test_figure_legend_colours_and_ceiling_label() -> None:
    pytest.importorskip("matplotlib")
    from dsecli.report.plots import batch_figure

    names = ("true", "shuffled", "random")
    fig, _ = batch_figure(_rows_of(names, (("dse", "entropy"), ("knn", "entropy"), ("cse", "entropy"),
                                           ("dsmi", "mutual_information"), ("ksg", "mutual_information"))))
    fig.canvas.draw()
    for ax in fig.axes:  # 9 or 6 series: the legend sits below the panel, clear of the data
        legend = ax.get_legend()
        assert legend.get_window_extent().y1 <= ax.get_window_extent().y0
    colour = {}
    for ax in fig.axes:
        for line in ax.get_lines():
            if line.get_gid() != "ceiling":
                colour.setdefault(line.get_label().split(" · ")[1], set()).add(line.get_color())
    assert all(len(c) == 1 for c in colour.values()) and len({c.pop() for c in colour.values()}) == 3
    fig, _ = batch_figure(_rows_of(("true",), (("dse", "entropy"),)))
    ceiling = next(line for line in fig.axes[0].get_lines() if line.get_gid() == "ceiling")
    assert ceiling.get_label() == f"log2 N = {np.log2(1000):.2f}"
    legend = fig.axes[0].get_legend()  # two entries stay inside
    fig.canvas.draw()
    assert legend.get_window_extent().y0 >= fig.axes[0].get_window_extent().y0


# 7. the approximate solver's unmet accuracy is warned about
def test_approximate_dse_warns_when_tol_bits_is_not_met(monkeypatch: pytest.MonkeyPatch) -> None:
    from dsecli import diffusion_spectral_entropy
    from dsecli.diffusion import slq

    # few probes and Lanczos steps, a narrow deflation block: a tiny target cannot be met
    defaults = dict(zip(("tol_bits", "block", "depth", "ritz_tol", "steps", "probes", "max_probes", "max_steps",
                         "z_score"), slq.ApproxSettings.__init__.__defaults__))
    defaults.update(block=8, depth=1, steps=4, probes=4, max_probes=4, max_steps=4)
    monkeypatch.setattr(slq.ApproxSettings.__init__, "__defaults__", tuple(defaults.values()))
    x = np.random.default_rng(0).normal(size=(300, 5))
    with pytest.warns(UserWarning):
        r = diffusion_spectral_entropy(x, solver="approx", tol_bits=1e-6, max_n=0)
    assert r.extra["converged"] is False and r.extra["error_estimate_bits"] > 1e-6
    (message,) = [w for w in r.warnings if "approximate solver" in w]
    assert "tol_bits = 1e-06" in message and f"{r.extra['error_estimate_bits']:.3g} bits" in message


def test_approximate_dsmi_warns_when_its_bound_is_above_tol_bits() -> None:
    from dsecli import diffusion_spectral_mutual_information

    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(300, 5)), np.arange(300) % 2
    r = diffusion_spectral_mutual_information(x, y, solver="approx", tol_bits=1e-7, max_n=0)
    bound = r.extra["error_estimate_bits"]
    assert bound > 1e-7
    (message,) = [w for w in r.warnings if "approximate solver" in w]
    assert message.startswith("the approximate solver did not reach tol_bits = 1e-07: the MI's error bound is "
                              f"{bound:.3g} bits over {r.extra['approx_runs']} approximate DSE runs")
    # the warning exactly when the bound exceeds tol_bits itself (the bound follows tol_bits: the runs aim at half)
    warned = {}
    for tol in (1e-3, 2e-3, 0.05):
        r = diffusion_spectral_mutual_information(x, y, solver="approx", tol_bits=tol, max_n=0)
        warned[tol] = any("approximate solver" in w for w in r.warnings)
        assert warned[tol] == (r.extra["error_estimate_bits"] > tol), (tol, r.extra["error_estimate_bits"])
    assert warned[1e-3] and not warned[0.05]


# 8. property tests are deterministic
def test_hypothesis_profile_is_derandomized_without_a_database() -> None:
    hypothesis = pytest.importorskip("hypothesis")
    import os

    if os.environ.get("DSECLI_HYPOTHESIS_PROFILE", "dsecli") != "dsecli":
        pytest.skip("a random profile was asked for")
    from tests.test_hypothesis import SETTINGS

    for s in (hypothesis.settings(), SETTINGS):
        assert s.derandomize is True and s.database is None


def test_figure_colour_follows_the_series_name_across_settings() -> None:
    pytest.importorskip("matplotlib")
    from dsecli.report.plots import batch_figure

    rows = _rows_of(("true", "shuffled"), (("dse", "entropy"), ("dsmi", "mutual_information")))
    for row in [r for r in rows if r["method"] == "dsmi"]:  # dsmi with two references: two settings
        rows.append({**row, "reference": "other.npy", "key": row["key"] + "other", "value": row["value"] + 1})
        row["reference"] = "labels.npy"
    fig, _ = batch_figure(rows)
    colour: dict[str, set[str]] = {}
    for ax in fig.axes:
        for line in ax.get_lines():
            if line.get_gid() != "ceiling":
                colour.setdefault(line.get_label().split(" · ")[1].split(" ")[0], set()).add(line.get_color())
    assert colour.keys() == {"true", "shuffled"} and all(len(c) == 1 for c in colour.values())
    assert colour["true"] != colour["shuffled"]
