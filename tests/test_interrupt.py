"""Ctrl-C (SIGINT) and SIGTERM: exit 130/143 with one line, and never a partial or damaged output file.

Each test runs ``dse`` (or the shared ``run_command`` policy) in a subprocess and signals it while it is
computing. A long LAPACK call does not return to Python until it ends, so Python's own signal handler
would wait for it; the watchdog in :mod:`dsecli.cli._app` ends the process anyway, and these tests check
that it does so *during* the native call (the line printed after the call never appears).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")

SENTINEL = b'{"sentinel": "the result of an earlier run"}\n'
CODES = {signal.SIGINT: 130, signal.SIGTERM: 143}
NAMES = {signal.SIGINT: "SIGINT", signal.SIGTERM: "SIGTERM"}


def _default_sigint() -> None:
    # a test runner started in the background inherits SIGINT ignored; dse (rightly) keeps it so
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _start(args: list[str], cwd: Path) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen(args, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
                            preexec_fn=_default_sigint)


def _wait_for_line(proc: subprocess.Popen, text: str, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    assert proc.stderr is not None
    while time.monotonic() < deadline:
        line = proc.stderr.readline().decode()
        if text in line:
            return
        if not line and proc.poll() is not None:
            break
    raise AssertionError(f"the child never printed {text!r} (exit {proc.poll()})")


# A command body stuck in one long native call (a 4000 x 4000 eigendecomposition on one thread, repeated),
# run under the CLI's shared policy and writing its result atomically only at the end.
_STUCK = textwrap.dedent("""
    import sys, torch
    torch.set_num_threads(1)
    from dsecli.cli._app import run_command, emit

    def body():
        a = torch.randn(4000, 4000, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
        a = a + a.T
        print("started", file=sys.stderr, flush=True)
        for _ in range(50):
            torch.linalg.eigvalsh(a)
            print("eig returned", file=sys.stderr, flush=True)
        emit({"done": True}, as_json=False, output=sys.argv[1], render=None)

    try:
        run_command(body)
    except SystemExit as exc:
        raise
    except BaseException as exc:  # typer.Exit
        sys.exit(getattr(exc, "exit_code", 1))
""")


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_signal_during_native_call_exits_promptly(sig: int, tmp_path: Path) -> None:
    out = tmp_path / "result.json"
    out.write_bytes(SENTINEL)
    script = tmp_path / "stuck.py"
    script.write_text(_STUCK)
    proc = _start([sys.executable, str(script), str(out)], tmp_path)
    try:
        _wait_for_line(proc, "started")
        time.sleep(0.3)  # inside eigvalsh now
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    text = err.decode()
    assert proc.returncode == CODES[sig], text
    assert f"error: interrupted ({NAMES[sig]}); no output was written" in text
    assert "eig returned" not in text  # ended inside the native call, by the watchdog
    assert "Traceback" not in text
    assert out.read_bytes() == SENTINEL
    assert sorted(p.name for p in tmp_path.iterdir()) == ["result.json", "stuck.py"]


# The signal arrives while the result is being written: the main thread is inside fsync (made slow here by
# a native call), so the watchdog must remove the temporary file and leave the old result intact.
_STUCK_IN_WRITE = textwrap.dedent("""
    import os, sys, torch
    torch.set_num_threads(1)
    import dsecli.report.writing
    from dsecli.cli._app import run_command, emit

    a = torch.randn(3000, 3000, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    a = a + a.T
    real_fsync = os.fsync

    def slow_fsync(fd):
        print("writing", file=sys.stderr, flush=True)
        for _ in range(50):
            torch.linalg.eigvalsh(a)
        real_fsync(fd)

    dsecli.report.writing.os.fsync = slow_fsync

    def body():
        emit({"done": True}, as_json=False, output=sys.argv[1], render=None)

    try:
        run_command(body)
    except BaseException as exc:
        sys.exit(getattr(exc, "exit_code", 1))
""")


def test_signal_during_write_leaves_old_file_and_no_temporary(tmp_path: Path) -> None:
    out = tmp_path / "result.json"
    out.write_bytes(SENTINEL)
    script = tmp_path / "write.py"
    script.write_text(_STUCK_IN_WRITE)
    proc = _start([sys.executable, str(script), str(out)], tmp_path)
    try:
        _wait_for_line(proc, "writing")
        assert any(p.name.endswith(".tmp") for p in tmp_path.iterdir())  # the temporary file exists now
        time.sleep(0.3)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 143, err.decode()
    assert out.read_bytes() == SENTINEL
    assert sorted(p.name for p in tmp_path.iterdir()) == ["result.json", "write.py"]


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_dse_entropy_interrupted(sig: int, tmp_path: Path) -> None:
    """The real command on a real file: signalled once the input is open (mapped) and the kernel is built."""
    x = np.random.default_rng(0).normal(size=(3000, 8))
    emb = tmp_path / "emb.npy"
    np.save(emb, x)
    out = tmp_path / "result.json"
    out.write_bytes(SENTINEL)
    proc = _start([sys.executable, "-m", "dsecli", "entropy", str(emb), "--max-n", "0", "--sigma", "1",
                   "--device", "cpu", "-o", str(out)], tmp_path)
    try:
        maps = Path(f"/proc/{proc.pid}/maps")
        deadline = time.monotonic() + 120
        # the .npy is memory-mapped when the command opens it: from then on run_command's guard is in place
        while time.monotonic() < deadline and proc.poll() is None:
            if maps.exists() and str(emb) in maps.read_text(errors="replace"):
                break
            time.sleep(0.05)
        time.sleep(1.0)
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    text = err.decode()
    assert proc.returncode == CODES[sig], text
    assert f"error: interrupted ({NAMES[sig]}); no output was written" in text
    assert "Traceback" not in text
    assert out.read_bytes() == SENTINEL
    assert sorted(p.name for p in tmp_path.iterdir()) == ["emb.npy", "result.json"]
