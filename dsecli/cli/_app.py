"""The Typer application object and the behaviour every command shares.

- :func:`run_command` is the one place where a :class:`~dsecli.errors.DseError` becomes one
  line on stderr and an exit code (:class:`~dsecli.errors.ExitStatus`); ``--traceback``
  re-raises instead. SIGINT exits 130 and SIGTERM 143, and neither leaves a partial output
  (outputs are written atomically, only after the computation).
- Warnings from the library are printed on stderr as ``warning: ...`` lines.
- ``--json`` prints exactly one strict JSON object on stdout; ``--output FILE`` writes it
  atomically; otherwise a table is printed.
"""

from __future__ import annotations

import math
import os
import signal
import sys
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Annotated, Any

import typer

from .. import __version__
from ..errors import DseError, ExitStatus, InputError

app = typer.Typer(
    name="dse",
    help="Diffusion spectral entropy (DSE) and mutual information (DSMI) of embeddings, with classic baselines.\n\n"
    "Values are in bits unless --base says otherwise. Exit codes: 0 success, 1 computation failed, "
    "2 usage or input error, 130/143 interrupted.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"dse (dsecli) {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")] = False,
) -> None:
    """Diffusion spectral entropy and mutual information of embeddings."""


# Options shared by commands (Annotated aliases keep the command signatures short).
JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON object on stdout instead of a table.")]
OutputOpt = Annotated[
    str | None, typer.Option("--output", "-o", help="Also write the JSON report to this file (atomically).")
]
TracebackOpt = Annotated[bool, typer.Option("--traceback", help="Show the Python traceback on errors.")]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="No warnings or progress on stderr.")]
DeviceOpt = Annotated[str, typer.Option("--device", help="auto (CUDA when present, or $DSECLI_DEVICE), cpu, cuda, cuda:N.")]
DtypeOpt = Annotated[str, typer.Option("--dtype", help="Working precision: float64 (default) or float32.")]
BaseOpt = Annotated[str, typer.Option("--base", help="Logarithm base: 2 (bits), e (nats), 10, or a number.")]
SeedOpt = Annotated[int, typer.Option("--seed", help="Seed of the local random generator (subsampling, draws).")]
MaxNOpt = Annotated[
    int, typer.Option("--max-n", help="Use at most this many rows (uniform subsample, seeded); 0 uses all rows.")
]
SamplerOpt = Annotated[
    str, typer.Option("--sampler", help="numpy (default) or published (the published package's draws, bit-exact).")
]
FlattenOpt = Annotated[bool, typer.Option("--flatten", help="Flatten arrays with more than 2 dimensions to N x rest.")]
DropNonfiniteOpt = Annotated[
    bool, typer.Option("--drop-nonfinite", help="Drop rows holding NaN/Inf (reported) instead of failing.")
]


def parse_base(text: str) -> float:
    """``"2"`` -> 2.0, ``"e"`` -> math.e, ``"10"`` -> 10.0; anything else must be a number > 0 and != 1."""
    spec = text.strip().lower()
    if spec in ("e", "nat", "nats"):
        return math.e
    if spec in ("bit", "bits"):
        return 2.0
    try:
        base = float(spec)
    except ValueError:
        raise InputError(f"`--base` must be 2, e, 10 or a number > 0; got {text!r}") from None
    if not (math.isfinite(base) and base > 0 and base != 1):
        raise InputError(f"`--base` must be a finite number > 0 and != 1; got {text!r}")
    return base


def stderr_console() -> Any:
    from rich.console import Console

    return Console(stderr=True, highlight=False, soft_wrap=True)


def stdout_console() -> Any:
    from rich.console import Console

    return Console(highlight=False)


class _Terminated(BaseException):
    """Raised from the SIGTERM handler so that cleanup (finally blocks) runs."""


def _on_sigterm(signum: int, frame: Any) -> None:
    raise _Terminated()


@contextmanager
def _signals() -> Iterator[None]:
    previous = signal.getsignal(signal.SIGTERM)
    try:
        signal.signal(signal.SIGTERM, _on_sigterm)
    except ValueError:  # not in the main thread (e.g. some test runners): keep the default
        previous = None
    try:
        yield
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _print_warning(console: Any, message: str, seen: set[str]) -> None:
    if message not in seen:
        seen.add(message)
        console.print(f"warning: {message}", markup=False)


def run_command(body: Callable[[], Any], *, traceback: bool = False, quiet: bool = False) -> Any:
    """Run ``body`` with the shared error, warning and signal policy; exit with the right code."""
    err = stderr_console()
    seen: set[str] = set()

    def show(message: Any, category: Any, filename: str, lineno: int, file: Any = None, line: Any = None) -> None:
        if not quiet:
            _print_warning(err, str(message), seen)

    old_show = warnings.showwarning
    warnings.showwarning = show  # type: ignore[assignment]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("default")
            warnings.showwarning = show  # type: ignore[assignment]
            with _signals():
                return body()
    except typer.Exit:
        raise
    except DseError as exc:
        if traceback:
            raise
        err.print(f"error: {exc}", markup=False)
        raise typer.Exit(int(exc.exit_status)) from None
    except KeyboardInterrupt:
        if traceback:
            raise
        err.print("error: interrupted (SIGINT); no output was written", markup=False)
        raise typer.Exit(int(ExitStatus.INTERRUPTED)) from None
    except _Terminated:
        err.print("error: terminated (SIGTERM); no output was written", markup=False)
        raise typer.Exit(int(ExitStatus.TERMINATED)) from None
    except MemoryError as exc:
        if traceback:
            raise
        err.print(f"error: out of memory ({exc or 'allocation failed'}); use --max-n to subsample or another device",
                  markup=False)
        raise typer.Exit(int(ExitStatus.COMPUTATION_FAILED)) from None
    except Exception as exc:  # noqa: BLE001 - the last line of defence: one line, exit 1
        if traceback:
            raise
        if type(exc).__name__ == "OutOfMemoryError":  # torch.cuda.OutOfMemoryError, without importing torch
            err.print("error: the GPU ran out of memory; use --max-n, --dtype float32 or --device cpu", markup=False)
        else:
            first = (str(exc).strip().splitlines() or [""])[0]
            err.print(f"error: {type(exc).__name__}: {first} (rerun with --traceback for details)", markup=False)
        raise typer.Exit(int(ExitStatus.COMPUTATION_FAILED)) from None
    finally:
        warnings.showwarning = old_show


def emit(report: dict[str, Any], *, as_json: bool, output: str | None, render: Callable[[dict[str, Any]], Any] | None) -> None:
    """Write ``report``: atomically to ``output`` if given; JSON or a table on stdout."""
    from ..output import to_json, write_atomic

    text = to_json(report)
    if output:
        write_atomic(output, text + "\n")
    if as_json:
        sys.stdout.write(to_json(report, indent=None) + "\n")
        sys.stdout.flush()
    elif render is not None:
        stdout_console().print(render(report))


def check_output_early(output: str | None) -> None:
    """Fail before computing when ``--output`` cannot be written."""
    if output:
        from ..output import check_output_path

        check_output_path(output, name="--output")


def env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes")
