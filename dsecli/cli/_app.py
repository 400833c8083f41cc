"""The Typer application object and the behaviour every command shares.

- :func:`run_command` is the one place where a :class:`~dsecli.errors.DseError` becomes one
  line on stderr and an exit code (:class:`~dsecli.errors.ExitStatus`); ``--traceback``
  re-raises instead. SIGINT exits 130 and SIGTERM 143, and neither leaves a partial output
  (outputs are written atomically, only after the computation).
- Warnings from the library are printed on stderr as ``warning: ...`` lines.
- ``--json`` prints exactly one strict JSON object on stdout; ``--output FILE`` writes it by the
  output policy of :mod:`dsecli.report.writing` (atomically, never over an input, directly to a
  device or FIFO); otherwise a table is printed.
"""

from __future__ import annotations

import math
import os
import re
import signal
import sys
import threading
import warnings
from collections.abc import Callable
from typing import Annotated, Any

import typer
from typer.core import TyperGroup

try:  # typer >= 0.20 ships its own copy of Click; its exceptions are not the click package's
    from typer import _click as _clicklib
except ImportError:  # pragma: no cover - older typer runs on the click package
    import click as _clicklib

from dsecli import __version__
from dsecli.errors import DseError, ExitStatus, InputError
from dsecli.report.console import PIPE_WIDTH, stderr_console, stdout_console  # noqa: F401 - re-exported


def usage_error_line(exc: Any) -> str:
    """A Click/Typer usage error (bad option value, unknown option, missing argument) as one ``error:`` line.

    Click's own rendering is a usage block plus a hint over three lines; dsecli errors are one
    line, so the command path and the help hint go on that line.
    """
    text = " ".join(exc.format_message().split()).rstrip(".")
    # Click versions spell a missing argument 'emb' or 'EMB'; --help shows EMB, so say that
    text = re.sub(r"^(Missing argument) '([^']+)'", lambda m: f"{m.group(1)} '{m.group(2).upper()}'", text)
    got = _rejected_value(exc)
    if got is not None and repr(got) not in text:
        text += f"; got {got!r}"
    ctx = getattr(exc, "ctx", None)
    where = f"{ctx.command_path}: " if ctx is not None else ""
    hint = f" (see '{ctx.command_path} --help')" if ctx is not None else ""
    return f"error: {where}{text[:1].lower()}{text[1:]}{hint}"


def _rejected_value(exc: BaseException) -> Any:
    """The value a Typer parameter conversion refused, when its cause records it (pydantic's errors)."""
    errors = getattr(exc.__cause__, "errors", None)
    try:
        return errors()[0].get("input") if callable(errors) else None
    except Exception:  # noqa: BLE001 - only a detail of the message
        return None


# Click >= 8.2 raises this for a group called without arguments (``no_args_is_help``)
_NO_ARGS_IS_HELP = getattr(_clicklib.exceptions, "NoArgsIsHelpError", ())


class _OneLineErrorsGroup(TyperGroup):
    """The ``dse`` group: Click's usage errors become one ``error:`` line on stderr and exit 2.

    Everything else keeps Click's standalone behaviour (``--help``, ``typer.Exit`` codes, no
    arguments printing the help).
    """

    def main(self, args: Any = None, prog_name: str | None = None, complete_var: str | None = None,
             standalone_mode: bool = True, **extra: Any) -> Any:
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        try:
            rv = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except _NO_ARGS_IS_HELP as exc:
            exc.show()  # plain `dse`: the help text, as Click prints it
            sys.exit(exc.exit_code)
        except _clicklib.exceptions.ClickException as exc:
            sys.stderr.write(usage_error_line(exc) + "\n")
            usage = isinstance(exc, _clicklib.exceptions.UsageError)
            sys.exit(int(ExitStatus.USAGE_OR_INPUT) if usage else exc.exit_code)
        except typer.Abort:
            sys.stderr.write("error: aborted\n")
            sys.exit(int(ExitStatus.INTERRUPTED))
        # standalone_mode=False returns the exit code of typer.Exit, or the command's return value
        sys.exit(rv if isinstance(rv, int) else 0)


app = typer.Typer(
    name="dse",
    cls=_OneLineErrorsGroup,
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
JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON object on stdout instead of a table "
                                      "(the same as --format json).")]
FormatOpt = Annotated[str | None, typer.Option(
    "--format", help="Standard output: table (default), json (the report), jsonl, csv or tsv (one line per result "
    "row; nested fields as dotted columns).", show_default=False)]
OutputOpt = Annotated[
    str | None, typer.Option("--output", "-o", help="Also write the JSON report to this file (atomically; never over "
                             "an input; a device or FIFO is written to, not replaced).")
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


class _Terminated(BaseException):
    """Raised from the SIGINT/SIGTERM handler so that cleanup (finally blocks) runs.

    Not KeyboardInterrupt: CPython remembers a KeyboardInterrupt that passes through code run by
    ``PyRun_*`` (torch runs some while it is imported) and then ends the process by SIGINT
    instead of with our exit status, even though the exception was handled.
    """

    def __init__(self, signum: int = signal.SIGTERM) -> None:
        super().__init__(signum)
        self.signum = signum


# Seconds the main thread gets to react to SIGINT/SIGTERM before the watchdog ends the process.
# Python runs signal handlers only between bytecodes, so a long LAPACK call (torch.linalg.eigvalsh
# on a large N) would otherwise delay Ctrl-C until it returns.
SIGNAL_GRACE_S = 2.0
_SIGNALS = {
    signal.SIGINT: (ExitStatus.INTERRUPTED, "SIGINT"),
    signal.SIGTERM: (ExitStatus.TERMINATED, "SIGTERM"),
}
# outputs written by the command now running (for an honest message on interruption)
_WRITTEN: list[str] = []


def note_written(text: str) -> None:
    """Record an output the running command has written, for the message if it is interrupted."""
    _WRITTEN.append(text)


def _interrupted_message(name: str) -> str:
    if _WRITTEN:
        return f"error: interrupted ({name}) after writing {', '.join(_WRITTEN)}"
    return f"error: interrupted ({name}); no output was written"


class _SignalGuard:
    """SIGINT and SIGTERM -> :class:`_Terminated` in the main thread, plus a watchdog.

    The C-level signal handler writes the signal number to a pipe (``signal.set_wakeup_fd``)
    even while the main thread is inside native code. A daemon thread reads that pipe; if the
    main thread has not run the Python handler within :data:`SIGNAL_GRACE_S` (or a second
    signal comes), the thread removes temporary output files, prints the usual message and ends
    the process with 130/143. No output is ever half-written: results are written only after
    the computation, through a temporary file and a rename. A signal that was ignored when
    ``dse`` started (``nohup``, background jobs of a non-interactive shell) stays ignored.
    """

    def __init__(self) -> None:
        self.active = False
        self.handled = threading.Event()
        self.installed: dict[int, Any] = {}

    def __enter__(self) -> _SignalGuard:
        if threading.current_thread() is not threading.main_thread():
            return self  # signals can only be handled in the main thread: keep the defaults
        for sig in _SIGNALS:
            current = signal.getsignal(sig)
            if current == signal.SIG_IGN:
                continue
            self.installed[sig] = current
            signal.signal(sig, self._handler)
        self._r, self._w = os.pipe()
        os.set_blocking(self._w, False)
        try:
            self._old_fd = signal.set_wakeup_fd(self._w, warn_on_full_buffer=False)
        except ValueError:  # pragma: no cover - main thread checked above
            self._old_fd = -1
        self.active = True
        threading.Thread(target=self._watch, name="dse-signal-watchdog", daemon=True).start()
        return self

    def _handler(self, signum: int, frame: Any) -> None:
        self.handled.set()
        raise _Terminated(signum)

    def _watch(self) -> None:
        seen = 0
        try:
            while True:
                data = os.read(self._r, 64)
                if not data:
                    return  # the guard was closed
                for signum in data:
                    if signum not in self.installed:
                        continue
                    seen += 1
                    if seen > 1 or not self.handled.wait(SIGNAL_GRACE_S):
                        self._hard_exit(signum)
        except OSError:  # pragma: no cover
            return
        finally:
            os.close(self._r)

    def _hard_exit(self, signum: int) -> None:
        from dsecli.report.writing import remove_pending_files

        remove_pending_files()
        code, name = _SIGNALS.get(signum, (ExitStatus.INTERRUPTED, str(signum)))
        try:
            sys.stdout.flush()
        except Exception:  # noqa: BLE001 - best effort while the main thread is busy
            pass
        os.write(2, (_interrupted_message(name) + "\n").encode())
        os._exit(int(code))

    def __exit__(self, *exc: object) -> None:
        if not self.active:
            return
        signal.set_wakeup_fd(self._old_fd)
        for sig, previous in self.installed.items():
            signal.signal(sig, previous)
        os.close(self._w)  # the watchdog reads EOF and ends
        self.active = False


def _print_warning(console: Any, message: str, seen: set[str]) -> None:
    if message not in seen:
        seen.add(message)
        console.print(f"warning: {message}", markup=False)


_LIBRARY_HINT = re.compile(r" \((?:\w+=True)\)")


def cli_message(message: str) -> str:
    """A library message as the CLI shows it: hints such as "(flatten=True)" that only make sense in Python are dropped.

    Parameter names stay as the library spells them (```max_n``` for ``--max-n``): the
    mapping is one to one, and messages read the same from Python and from the shell.
    """
    return _LIBRARY_HINT.sub("", message)


def _error(err: Any, message: str) -> None:
    err.print(f"error: {message}", markup=False)


def run_command(body: Callable[[], Any], *, traceback: bool = False, quiet: bool = False) -> Any:
    """Run ``body`` with the shared error, warning and signal policy; exit with the right code.

    Exit codes (:class:`~dsecli.errors.ExitStatus`): 0 success; 1 the computation failed
    (including memory limits and write failures); 2 usage or input error; 130 SIGINT; 143
    SIGTERM. Errors are one line on stderr (``--traceback`` re-raises instead); library
    warnings are ``warning: ...`` lines on stderr (``--quiet`` hides them).
    """
    err = stderr_console()
    seen: set[str] = set()
    _WRITTEN.clear()

    def show(message: Any, category: Any, filename: str, lineno: int, file: Any = None, line: Any = None) -> None:
        if not quiet:
            _print_warning(err, cli_message(str(message)), seen)

    old_show = warnings.showwarning
    warnings.showwarning = show  # type: ignore[assignment]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("default")
            warnings.showwarning = show  # type: ignore[assignment]
            with _SignalGuard():
                return body()
    except typer.Exit:
        raise
    except DseError as exc:
        if traceback:
            raise
        _error(err, cli_message(str(exc)))
        raise typer.Exit(int(exc.exit_status)) from None
    except KeyboardInterrupt:
        if traceback:
            raise
        err.print(_interrupted_message("SIGINT"), markup=False)
        raise typer.Exit(int(ExitStatus.INTERRUPTED)) from None
    except _Terminated as exc:
        if traceback and exc.signum == signal.SIGINT:
            raise KeyboardInterrupt from None
        code, name = _SIGNALS.get(exc.signum, (ExitStatus.TERMINATED, "SIGTERM"))
        err.print(_interrupted_message(name), markup=False)
        raise typer.Exit(int(code)) from None
    except BrokenPipeError:
        # the reader of stdout went away (e.g. `| head`): no traceback, and no second error at exit
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        _error(err, "standard output was closed before the report was written (broken pipe)")
        raise typer.Exit(int(ExitStatus.COMPUTATION_FAILED)) from None
    except MemoryError as exc:
        if traceback:
            raise
        _error(err, f"out of memory ({exc or 'allocation failed'}); use --max-n to subsample, --solver approx, "
               "--dtype float32 or another device")
        raise typer.Exit(int(ExitStatus.COMPUTATION_FAILED)) from None
    except Exception as exc:  # noqa: BLE001 - the last line of defence: one line, exit 1
        if traceback:
            raise
        if type(exc).__name__ == "OutOfMemoryError":  # torch.cuda.OutOfMemoryError, without importing torch
            _error(err, "the GPU ran out of memory; use --max-n, --solver approx, --dtype float32 or --device cpu")
        else:
            first = (str(exc).strip().splitlines() or [""])[0]
            _error(err, f"{type(exc).__name__}: {first} (rerun with --traceback for details)")
        raise typer.Exit(int(ExitStatus.COMPUTATION_FAILED)) from None
    finally:
        warnings.showwarning = old_show


def emit(report: dict[str, Any], *, as_json: bool, output: str | None, render: Callable[[dict[str, Any]], Any] | None,
         inputs: tuple[str | None, ...] = (), fmt: str | None = None,
         rows: list[dict[str, Any]] | None = None, soft_wrap: bool = False) -> None:
    """Write ``report``: to ``output`` if given (by the output policy, never over one of ``inputs``); on stdout
    in ``fmt`` (:func:`dsecli.report.rows.check_format`: table, json, jsonl, csv or tsv; ``--json`` is json).

    jsonl, csv and tsv print ``rows`` (default: :func:`dsecli.report.rows.report_rows` of ``report``); a
    table is ``render(report)``, printed unless ``render`` is None (``soft_wrap``: lines outside tables are
    not wrapped to the terminal)."""
    from dsecli.report.rows import check_format, report_rows, rows_text
    from dsecli.report.writing import to_json

    fmt = check_format(fmt, as_json=as_json)
    if output is not None:
        from dsecli.report.writing import write_atomic

        write_atomic(output, to_json(report) + "\n", name="--output", inputs=inputs)
        note_written(output)
    if fmt == "json":
        sys.stdout.write(to_json(report, indent=None) + "\n")
        sys.stdout.flush()
    elif fmt != "table":
        sys.stdout.write(rows_text(report_rows(report) if rows is None else rows, fmt))
        sys.stdout.flush()
    elif render is not None:
        stdout_console().print(render(report), soft_wrap=soft_wrap)


def check_output_early(output: str | None, *, inputs: tuple[str | None, ...] = (), name: str = "--output") -> None:
    """Fail before computing when ``output`` breaks the output policy (:mod:`dsecli.report.writing`): empty,
    a directory, one of ``inputs`` (by any path or link), or not writable. ``None`` means not given."""
    if output is not None:
        from dsecli.report.writing import check_output_path

        check_output_path(output, name=name, inputs=inputs)


HeaderOpt = Annotated[bool | None, typer.Option(
    "--header/--no-header", help="Text tables: the first line is a header / is data (default: a header only when it "
    "is not numbers and every later line is, in those columns).")]


def given_options(**values: Any) -> dict[str, Any]:
    """The method options among ``values`` that the user gave (command line or environment).

    Options left at their default are not passed on, so the library's defaults apply and an option
    that none of the chosen methods takes is reported only when the user gave it.
    """
    from importlib import import_module

    clicklib = _clicklib.__name__
    ctx = import_module(f"{clicklib}.globals").get_current_context()
    default = import_module(f"{clicklib}.core").ParameterSource.DEFAULT
    return {k: v for k, v in values.items() if ctx.get_parameter_source(k) not in (default, None)}

