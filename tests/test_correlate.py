"""``dsecli.correlate`` and ``dse correlate``: the join of results with an outcomes table, and the command end
to end on a dse batch results file of the bundled sample."""

from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path

import numpy as np
import pytest
from scipy import stats
from typer.testing import CliRunner

import dsecli
from dsecli.batch.correlate import read_outcomes
from dsecli.cli import app
from dsecli.errors import ComparabilityWarning, DseWarning, InputError

runner = CliRunner()
SAMPLE = Path(__file__).resolve().parents[1] / "sample_data" / "digits_trajectory.h5"
EPOCHS = (0, 1, 2, 3, 5, 8, 13, 21)


def _results(path: Path, values: dict[str, list[float]], policy: dict | None = None) -> Path:
    rows = []
    for pattern, ys in values.items():
        for e, v in zip(EPOCHS, ys):
            rows.append({"file": "run.h5", "dataset": f"/{pattern}/epoch_{e:03d}/emb",
                         "input": f"run.h5:/{pattern}/epoch_{e:03d}/emb", "method": "dse", "quantity": "entropy",
                         "units": "bits", "value": v,
                         "params": {**(policy or {"sigma": 1.0, "sigma_rule": "median"}), "t": 1}})
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


TRUE = [5.0, 3.1, 2.9, 3.3, 3.6, 3.5, 4.0, 4.2]
SHUFFLED = [5.0, 4.8, 4.9, 4.1, 4.4, 4.0, 3.9, 3.2]
ACC = [0.10, 0.40, 0.55, 0.62, 0.70, 0.74, 0.80, 0.81]
LOSS = [2.3, 1.6, 1.2, 1.0, 0.9, 0.8, 0.75, 0.74]


def _outcomes(path: Path, epochs=EPOCHS, acc=ACC, loss=LOSS, key="epoch") -> Path:
    path.write_text(f"{key},accuracy,loss\n" + "".join(f"{e},{a},{lo}\n" for e, a, lo in zip(epochs, acc, loss)))
    return path


def test_each_series_and_outcome_is_the_rank_correlation_of_the_joined_pairs(tmp_path: Path) -> None:
    res = _results(tmp_path / "r.jsonl", {"true": TRUE, "shuffled": SHUFFLED})
    out = _outcomes(tmp_path / "o.csv")
    c = dsecli.correlate(res, out, on="epoch", bootstrap=200, seed=1)
    assert c.matched_by == "checkpoint" and c.unmatched_keys == () and c.warnings == ()
    got = {(e.pattern, e.outcome): e for e in c.entries}
    assert set(got) == {(f"run.h5:/{p}/epoch_*/emb", o) for p in ("true", "shuffled") for o in ("accuracy", "loss")}
    for (pattern, outcome), e in got.items():
        ys = TRUE if "/true/" in pattern else SHUFFLED
        zs = ACC if outcome == "accuracy" else LOSS
        assert (e.n, e.n_rows, e.sigma_policy) == (8, 8, "median per input")
        assert e.correlation.spearman == pytest.approx(stats.spearmanr(ys, zs).statistic, rel=1e-12)
        assert e.correlation.kendall == pytest.approx(stats.kendalltau(ys, zs).statistic, rel=1e-12)
        assert e.correlation == dsecli.rank_correlation(ys, zs, bootstrap=200, seed=1)
    assert got[("run.h5:/shuffled/epoch_*/emb", "loss")].correlation.spearman > 0.9
    report = c.to_dict()
    assert json.loads(json.dumps(report, allow_nan=False)) == report and len(report["rows"]) == 4


def test_a_missing_key_leaves_its_row_out_and_an_extra_key_is_counted(tmp_path: Path) -> None:
    res = _results(tmp_path / "r.jsonl", {"true": TRUE})
    keep = [i for i in range(8) if i != 3]
    out = _outcomes(tmp_path / "o.csv", epochs=[EPOCHS[i] for i in keep] + [99], acc=[ACC[i] for i in keep] + [0.9],
                    loss=[LOSS[i] for i in keep] + [0.1])
    with pytest.warns(DseWarning) as record:
        c = dsecli.correlate(res, out, on="epoch", outcome_columns=["accuracy"], bootstrap=0)
    messages = [str(w.message) for w in record]
    assert f"{out}: 1 of 8 keys match no row of {res}: '99'" in messages
    assert f"{res}: 1 result rows have no outcome row in {out} and are left out" in messages
    (e,) = c.entries
    assert (e.n, e.n_rows, c.unmatched_keys) == (7, 8, ("99",))
    ys, zs = [TRUE[i] for i in keep], [ACC[i] for i in keep]
    assert e.correlation.spearman == pytest.approx(stats.spearmanr(ys, zs).statistic, rel=1e-12)


def test_join_errors_name_the_file_and_the_column(tmp_path: Path) -> None:
    res = _results(tmp_path / "r.jsonl", {"true": TRUE})
    dup = tmp_path / "dup.csv"
    dup.write_text("epoch,accuracy\n0,0.1\n1,0.2\n2,0.3\n1,0.4\n")
    with pytest.raises(InputError, match=re.escape(f"{dup}: key '1' of column 'epoch' is given twice (lines 3 and 5)")):
        dsecli.correlate(res, dup, on="epoch")
    out = _outcomes(tmp_path / "o.csv")
    with pytest.raises(InputError, match=re.escape(f"{out}: no key column 'epochs'; did you mean 'epoch'? columns: "
                                                   "epoch, accuracy, loss")):
        dsecli.correlate(res, out, on="epochs")
    with pytest.raises(InputError, match=re.escape(f"{out}: no outcome column 'acuracy'; did you mean 'accuracy'?")):
        dsecli.correlate(res, out, on="epoch", outcome_columns=["acuracy"])
    text = tmp_path / "text.csv"
    text.write_text("epoch,accuracy,note\n0,0.1,a\n1,0.2,b\n2,high,c\n")
    with pytest.raises(InputError, match=re.escape(f"{text}: outcome column 'accuracy' is not numeric: 'high' at "
                                                   "line 4")):
        dsecli.correlate(res, text, on="epoch", outcome_columns=["accuracy"])
    with pytest.raises(InputError, match=re.escape(f"{text}: no numeric outcome column besides the key 'epoch' "
                                                   "(columns: accuracy, note)")):
        dsecli.correlate(res, text, on="epoch")
    none = _outcomes(tmp_path / "none.csv", epochs=[100, 200, 300])
    with pytest.raises(InputError, match=re.escape(f"{none}: no key of column 'epoch' matches a row of {res} (keys "
                                                   "such as '100', '200', '300'; the rows' checkpoints are such as "
                                                   "'0', '1', '2')")):
        dsecli.correlate(res, none, on="epoch")


def test_input_labels_join_models_across_name_patterns(tmp_path: Path) -> None:
    values = [3.0, 1.0, 4.0, 1.5, 5.0, 9.0]
    rows = [{"file": f"/m/model_{c}.npy", "input": f"/m/model_{c}.npy", "method": "dse", "quantity": "entropy",
             "index": i, "value": v, "params": {"sigma": 1.0, "sigma_rule": "median", "t": 1}}
            for i, (c, v) in enumerate(zip("abcdef", values))]
    res = tmp_path / "r.jsonl"
    res.write_text("".join(json.dumps(r) + "\n" for r in rows))
    acc = [0.5, 0.2, 0.6, 0.3, 0.7, 0.65]
    out = tmp_path / "o.json"
    out.write_text(json.dumps([{"model": f"model_{c}.npy", "acc": a} for c, a in zip("abcdef", acc)]))
    c = dsecli.correlate(res, out, on="model", bootstrap=0)
    (e,) = c.entries
    assert c.matched_by == "file" and e.n == 6 and e.pattern is None
    assert e.correlation.spearman == pytest.approx(stats.spearmanr(values, acc).statistic, rel=1e-12)
    # the models were computed under two σ policies: the comparison is flagged, and each policy is its own series
    rows[4]["params"] = rows[5]["params"] = {"sigma": 10.0, "sigma_rule": "given", "t": 1}
    res.write_text("".join(json.dumps(r) + "\n" for r in rows))
    with pytest.warns(ComparabilityWarning, match=re.escape("the dse rows (t=1) of 6 inputs mix σ policies (median "
                                                            "per input: 4, fixed σ = 10: 2)")):
        c = dsecli.correlate(res, out, on="model", bootstrap=0)
    assert [(e.sigma_policy, e.n, e.correlation is None) for e in c.entries] == [
        ("median per input", 4, False), ("fixed σ = 10", 2, True)]
    assert "at least 3 pairs" in c.entries[1].note and any("mix σ policies" in w for w in c.warnings)


def test_outcome_tables_in_every_format_read_the_same(tmp_path: Path) -> None:
    rows = [{"epoch": e, "acc": a} for e, a in zip(EPOCHS, ACC)]
    (tmp_path / "o.json").write_text(json.dumps({"rows": rows}))
    (tmp_path / "o.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (tmp_path / "o.tsv").write_text("epoch\tacc\n" + "".join(f"{r['epoch']}\t{r['acc']}\n" for r in rows))
    res = _results(tmp_path / "r.jsonl", {"true": TRUE})
    got = [dsecli.correlate(res, tmp_path / f"o.{ext}", on="epoch", bootstrap=50).entries[0].correlation
           for ext in ("json", "jsonl", "tsv")]
    assert got[0] == got[1] == got[2]
    assert read_outcomes(tmp_path / "o.tsv").columns == ("epoch", "acc")


def test_dse_correlate_end_to_end_on_a_batch_of_the_sample(tmp_path: Path) -> None:
    results = tmp_path / "r.jsonl"
    spec = f"{SAMPLE}:/true/epoch_*/embeddings"
    res = runner.invoke(app, ["batch", spec, "--max-n", "200", "-m", "dse", "-o", str(results), "-q"])
    assert res.exit_code == 0, res.stderr
    rows = [json.loads(line) for line in results.read_text().splitlines()]
    epochs = [r["checkpoint"] for r in rows]
    acc = [1 - 0.9 / (1 + e) for e in epochs]  # rises with the epoch
    outcomes = tmp_path / "acc.csv"
    outcomes.write_text("epoch,accuracy\n" + "".join(f"{e},{a}\n" for e, a in zip(epochs, acc)))
    res = runner.invoke(app, ["correlate", str(results), str(outcomes), "--on", "epoch", "--bootstrap", "300",
                              "--format", "json"])
    assert res.exit_code == 0, res.stderr
    report = json.loads(res.stdout)
    (row,) = report["rows"]
    values = [r["value"] for r in rows]
    assert row["n"] == len(rows) == 10 and row["sigma_policy"] == "median per input"
    assert row["spearman"] == pytest.approx(stats.spearmanr(values, acc).statistic, rel=1e-12)
    assert row["kendall"] == pytest.approx(stats.kendalltau(values, acc).statistic, rel=1e-12)
    assert row["spearman_ci"][0] <= row["spearman"] <= row["spearman_ci"][1]
    assert (report["bootstrap"], report["confidence"], report["seed"]) == (300, 0.95, 0)
    table = runner.invoke(app, ["correlate", str(results), str(outcomes), "--on", "epoch", "--bootstrap", "300"])
    assert table.exit_code == 0 and "Spearman ρ" in table.stdout and "median per input" in table.stdout
    as_csv = runner.invoke(app, ["correlate", str(results), str(outcomes), "--on", "epoch", "--bootstrap", "300",
                                 "--format", "csv", "-o", str(tmp_path / "c.json")])
    (parsed,) = list(csv.DictReader(io.StringIO(as_csv.stdout)))
    assert float(parsed["spearman"]) == row["spearman"] and parsed["outcome"] == "accuracy"
    assert json.loads((tmp_path / "c.json").read_text())["rows"] == [row]
    bad = runner.invoke(app, ["correlate", str(results), str(outcomes), "--on", "step"])
    assert bad.exit_code == 2
    assert bad.stderr.strip() == f"error: {outcomes}: no key column 'step'; columns: epoch, accuracy"
    assert np.isfinite(row["spearman_p"])
