"""Usage errors and out-of-range integers: one ``error:`` line on stderr, exit 2, nothing written.

Two classes, table-driven:

- Click/Typer usage errors (an option value of the wrong type, an unknown option or command, a
  missing argument, an option without its value, a value outside an option's declared range):
  rendered by the ``dse`` group as ``error: <command>: <Click's message> (see '<command> --help')``,
  never Click's usage block. The part of the message that Click words (and that differs between
  Click versions) is matched by a fragment; the rest exactly.
- Integers the library rejects: huge values (beyond 2**63 - 1, where numpy and torch would
  overflow far from the parameter) and negative ones, for every integer parameter of the
  commands. The message names the parameter as the library spells it and is matched exactly.

Every case: exit code 2, exactly one stderr line, starting ``error:``, no traceback and no
``Usage:`` block, and an existing ``--output`` file is left byte-identical with no new file
beside it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from dsecli.cli import app

runner = CliRunner()
SENTINEL = b'{"sentinel": "an earlier result"}\n'
HUGE = str(2**70)  # 1180591620717411303424
LIMIT = 2**63 - 1


@dataclass
class Case:
    id: str
    args: list[str]
    exact: str | None = None  # the whole stderr line
    start: str | None = None  # or: its start, a fragment inside it and its end
    fragments: tuple[str, ...] = ()
    end: str = ""
    output: bool = True  # the command takes --output (a sentinel file must stay unchanged)


def usage(cmd: str, start: str, *fragments: str) -> dict[str, object]:
    return {"start": f"error: {cmd}: {start}", "fragments": fragments, "end": f" (see '{cmd} --help')"}


def too_big(name: str, minimum: int = 1) -> str:
    return f"error: `{name}` must be an integer in {minimum}..{LIMIT}; got {HUGE}"


CASES = [
    # ---- Click / Typer usage errors
    Case("float-for-int-t", ["entropy", "x.npy", "--t", "1.5"], **usage("dse entropy", "invalid value for '--t' / '-t': ",
                                                                          "integer", "'1.5'")),
    Case("text-for-int-max-n", ["entropy", "x.npy", "--max-n", "all"],
         **usage("dse entropy", "invalid value for '--max-n': ", "integer", "'all'")),
    Case("unknown-option", ["entropy", "x.npy", "--no-such-option"],
         **usage("dse entropy", "no such option: --no-such-option")),
    Case("unknown-option-near-a-real-one", ["entropy", "x.npy", "--flatte"],
         **usage("dse entropy", "no such option: --flatte", "--flatten")),
    Case("missing-argument", ["entropy"], **usage("dse entropy", "missing argument 'EMB'")),
    Case("missing-second-argument", ["mi", "x.npy"], **usage("dse mi", "missing argument 'REF'")),
    Case("unknown-command", ["entropie", "x.npy"], output=False, **usage("dse", "no such command 'entropie'")),
    Case("option-without-value", ["entropy", "x.npy", "--output", "out.json", "--method"], output=False,
         start="error: ", fragments=("'--method' requires an argument",)),
    Case("below-declared-range", ["batch", "x.npy", "--workers", "-1"], output=False,
         **usage("dse batch", "invalid value for '--workers': ", "-1")),
    # ---- integers the library rejects: huge
    Case("seed-huge-ksg", ["mi", "x.npy", "y.npy", "-m", "ksg", "--seed", HUGE], too_big("seed", 0)),
    Case("seed-huge-mine", ["mi", "x.npy", "y.npy", "-m", "mine", "--epochs", "1", "--seed", HUGE], too_big("seed", 0)),
    Case("seed-huge-dse", ["entropy", "x.npy", "--seed", HUGE], too_big("seed", 0)),
    Case("seed-huge-check", ["check", "x.npy", "--seed", HUGE], too_big("seed", 0)),
    Case("max-n-huge", ["entropy", "x.npy", "--max-n", HUGE], too_big("max_n", 0)),
    Case("k-huge-knn", ["entropy", "x.npy", "-m", "knn", "--k", HUGE], too_big("k")),
    Case("bins-huge-cse", ["entropy", "x.npy", "-m", "cse", "--bins", HUGE], too_big("bins")),
    Case("bins-huge-check", ["check", "x.npy", "--bins", HUGE], too_big("bins")),
    Case("t-huge", ["entropy", "x.npy", "--t", HUGE], too_big("t")),
    Case("n-clusters-huge", ["mi", "x.npy", "yc.npy", "--n-clusters", HUGE], too_big("n_clusters")),
    Case("repetitions-huge", ["mi", "x.npy", "y.npy", "-r", HUGE], too_big("repetitions")),
    Case("hidden-units-huge", ["mi", "x.npy", "y.npy", "-m", "mine", "--hidden-units", HUGE], too_big("hidden_units")),
    Case("workers-huge", ["batch", "x.npy", "--workers", HUGE], output=False, exact=too_big("workers", 0)),
    Case("threads-huge", ["entropy", "x.npy", "--threads", str(2**32 + 1)],
         "error: `threads` must be an integer in 1..1024; got 4294967297"),
    Case("t-max-huge", ["spectrum", "x.npy", "--t-max", HUGE], too_big("t_max", 3)),
    # ---- integers the library rejects: negative (named as the parameter, not an internal name)
    Case("dry-run-max-n-negative", ["entropy", "x.npy", "--dry-run", "--max-n", "-1"],
         "error: `max_n` must be an integer >= 0; got -1"),
    Case("mi-dry-run-max-n-negative", ["mi", "x.npy", "y.npy", "--dry-run", "--max-n", "-1"],
         "error: `max_n` must be an integer >= 0; got -1"),
    Case("seed-negative", ["entropy", "x.npy", "--seed", "-1"], "error: `seed` must be an integer >= 0; got -1"),
    Case("t-zero", ["entropy", "x.npy", "--t", "0"], "error: `t` must be an integer >= 1; got 0"),
    Case("max-n-negative-check", ["check", "x.npy", "--max-n", "-1"], "error: `max_n` must be an integer >= 0; got -1"),
]


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("usage")
    rng = np.random.default_rng(0)
    np.save(d / "x.npy", rng.normal(size=(30, 3)))
    np.save(d / "y.npy", np.arange(30) % 3)
    np.save(d / "yc.npy", rng.normal(size=30))
    return d


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_one_error_line_exit_2_nothing_written(case: Case, inputs: Path, tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(inputs)
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    out = out_dir / "result.json"
    out.write_bytes(SENTINEL)
    args = [*case.args, "--output", str(out)] if case.output else case.args
    if args[0] in ("entropy", "mi", "spectrum") and "--device" not in args and case.output:
        args = [*args, "--device", "cpu"]
    before = {p.name: p.read_bytes() for p in inputs.iterdir()}
    res = runner.invoke(app, args)
    assert res.exit_code == 2, (res.exit_code, res.stderr, repr(res.exception))
    assert "Traceback" not in res.stdout + res.stderr
    assert "Usage:" not in res.stderr and "Try '" not in res.stderr
    lines = res.stderr.splitlines()
    assert len(lines) == 1, res.stderr
    line = lines[0]
    assert line.startswith("error: ")
    if case.exact is not None:
        assert line == case.exact
    else:
        assert case.start is not None
        assert line.startswith(case.start), line
        assert all(f in line for f in case.fragments), line
        assert line.endswith(case.end), line
    assert out.read_bytes() == SENTINEL
    assert sorted(p.name for p in out_dir.iterdir()) == ["result.json"]
    assert {p.name: p.read_bytes() for p in inputs.iterdir()} == before


def test_help_and_version_still_exit_0() -> None:
    res = runner.invoke(app, ["entropy", "--help"])
    assert res.exit_code == 0 and res.stdout.startswith("Usage: dse entropy")
    res = runner.invoke(app, ["--version"])
    assert res.exit_code == 0 and res.stdout.startswith("dse (dsecli) ")


def test_no_arguments_prints_the_help() -> None:
    res = runner.invoke(app, [])
    assert res.exit_code == 2 and "Commands:" in res.stdout + res.stderr and "error:" not in res.stderr
