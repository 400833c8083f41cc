"""The ``dse`` command: a thin Typer layer over the library.

Each command parses options, makes one library call and renders. Command modules in this
package (every module whose name does not start with ``_``) register themselves on
:data:`app` when imported; this file imports them all. torch and h5py are imported only
inside commands, so ``dse --help`` starts fast.
"""

from __future__ import annotations

import importlib
import pkgutil

from dsecli.cli._app import app

for _mod in sorted(m.name for m in pkgutil.iter_modules(__path__) if not m.name.startswith("_")):
    importlib.import_module(f"{__name__}.{_mod}")

__all__ = ["app", "main"]


def main() -> None:
    """The ``dse`` program: the command line, in a process of its own.

    Before torch loads, the program asks OpenMP for sleeping waits (``OMP_WAIT_POLICY=PASSIVE``, unless
    the variable is set already): spinning waits make torch's solvers many times slower whenever
    another process holds a core. This is the program's choice for its own process; importing the
    library changes no environment variable (README.md, "Threads").
    """
    import os

    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    app(prog_name="dse")
