"""What a new user trips on: one regression test per item (messages, advice, hints, pipelines,
hostile stored rows, figures, the approximate solver's accuracy)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from dsecli.cli import app

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
