"""Progress of long solves: a spinner with elapsed and expected time on a terminal, nothing on pipes or with --quiet."""

from __future__ import annotations

import io
import json
import time

import numpy as np
import pytest
from rich.console import Console
from typer.testing import CliRunner

import dsecli.cli._app as cli_app
import dsecli.diffusion.calibration as calibration
from dsecli.cli import app
from dsecli.report.progress import MIN_SECONDS, format_seconds, show_progress, solve_spinner

runner = CliRunner()


def _terminal() -> tuple[Console, io.StringIO]:
    buf = io.StringIO()
    return Console(file=buf, force_terminal=True, width=120, highlight=False), buf


def test_when_progress_is_shown() -> None:
    assert show_progress(MIN_SECONDS, quiet=False, is_terminal=True)
    assert not show_progress(MIN_SECONDS - 0.01, quiet=False, is_terminal=True)
    assert not show_progress(100.0, quiet=True, is_terminal=True)
    assert not show_progress(100.0, quiet=False, is_terminal=False)
    assert not show_progress(None, quiet=False, is_terminal=True)
    assert [format_seconds(s) for s in (42.4, 210, 4 * 3600)] == ["42 s", "3.5 min", "4.0 h"]


def test_spinner_shows_label_elapsed_and_expected_on_a_terminal() -> None:
    console, buf = _terminal()
    with solve_spinner("dse: N = 7,000, exact solver", 40.0, console=console):
        time.sleep(0.3)
    text = buf.getvalue()
    assert "dse: N = 7,000, exact solver" in text and "~40 s expected" in text and "0:00:00" in text
    for expected, quiet in ((1.0, False), (40.0, True)):
        console, buf = _terminal()
        with solve_spinner("x", expected, quiet=quiet, console=console):
            pass
        assert buf.getvalue() == ""


@pytest.fixture()
def slow_machine(tmp_path, monkeypatch):
    """A stored calibration whose eigvalsh is slow enough that N = 200 is planned at 8 s; stderr a terminal."""
    monkeypatch.setenv("DSECLI_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(calibration, "probe_rates", lambda device="cpu": {
        "gemm": {"float64": 1e10, "float32": 1e10}, "eig": {"float64": 1e-6, "float32": 1e-6}, "elem": 1e8})
    calibration.calibrate("cpu")
    console, buf = _terminal()
    monkeypatch.setattr(cli_app, "stderr_console", lambda: console)
    path = tmp_path / "x.npy"
    np.save(path, np.random.default_rng(0).normal(size=(200, 3)))
    return path, buf


def test_cli_shows_the_spinner_on_a_terminal(slow_machine) -> None:
    path, buf = slow_machine
    res = runner.invoke(app, ["entropy", str(path), "--device", "cpu", "--json"])
    assert res.exit_code == 0, res.output
    assert "dse: N = 200, exact solver" in buf.getvalue() and "~8 s expected" in buf.getvalue()
    assert json.loads(res.stdout)["results"][0]["method"] == "dse"  # stdout untouched


def test_cli_quiet_or_fast_shows_nothing(slow_machine) -> None:
    path, buf = slow_machine
    assert runner.invoke(app, ["entropy", str(path), "--device", "cpu", "-q"]).exit_code == 0
    assert runner.invoke(app, ["entropy", str(path), "--device", "cpu", "-m", "cse"]).exit_code == 0  # no solve
    assert buf.getvalue() == ""


def test_cli_on_a_pipe_shows_nothing(tmp_path) -> None:
    path = tmp_path / "x.npy"
    np.save(path, np.random.default_rng(0).normal(size=(100, 3)))
    res = runner.invoke(app, ["entropy", str(path), "--device", "cpu", "--sigma", "median"])
    assert res.exit_code == 0 and res.stderr == ""


def test_cli_mi_spinner_counts_the_dses(slow_machine, tmp_path) -> None:
    path, buf = slow_machine
    np.save(tmp_path / "y.npy", np.repeat(np.arange(2), 100))
    res = runner.invoke(app, ["mi", str(path), str(tmp_path / "y.npy"), "--device", "cpu", "--json"])
    assert res.exit_code == 0, res.output
    assert "dsmi: N = 200, 12 DSEs" in buf.getvalue()  # 2 classes x (1 + 5 repetitions)


def test_cli_spectrum_spinner(slow_machine) -> None:
    path, buf = slow_machine
    res = runner.invoke(app, ["spectrum", str(path), "--device", "cpu", "--no-cache", "--json"])
    assert res.exit_code == 0, res.output
    assert "spectrum: N = 200, all eigenvalues" in buf.getvalue() and "~8 s expected" in buf.getvalue()
