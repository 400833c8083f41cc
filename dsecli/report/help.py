"""Help texts of the command line built from the library's own tables, so that they cannot drift:
the input formats (:data:`dsecli.inputs.readers.EXTENSIONS`), what ``--method all`` expands to
(:data:`dsecli.methods.ENTROPY_ALL`, :data:`dsecli.methods.MI_ALL`) and the defaults of the MINE and
InfoNCE options (the functions' signatures)."""

from __future__ import annotations

import inspect
from typing import Any

__all__ = ["INPUT_HELP", "all_methods_help", "input_help", "library_default"]


def input_help(what: str = "Embeddings") -> str:
    """``what``: one of every extension the readers open, ``FILE:KEY`` and ``-`` (stdin)."""
    from dsecli.inputs.readers import EXTENSIONS

    return (f"{what} ({', '.join(EXTENSIONS)}); FILE:KEY picks one array, dataset, tensor or column of a "
            "container; - reads .npy bytes on standard input.")


INPUT_HELP = input_help()


def all_methods_help(kind: str) -> str:
    """What ``all`` expands to for ``kind`` ("entropy", "mi" or "batch"), from the library's lists."""
    from dsecli.methods import ENTROPY_ALL, MI_ALL

    if kind == "entropy":
        return f"all = {', '.join(ENTROPY_ALL)}"
    if kind == "mi":
        return f"all = {', '.join(MI_ALL)}"
    return f"all = {', '.join(ENTROPY_ALL)}, and with --ref {', '.join(MI_ALL)}"


def library_default(parameter: str, *functions: Any) -> str:
    """The default of ``parameter`` in the signatures of ``functions``, as ``--help`` shows it: one
    value when they agree, else ``name value`` for each function."""
    found = []
    for fn in functions:
        param = inspect.signature(fn).parameters[parameter]
        found.append((fn.__name__.split("_")[0], param.default))
    if len({repr(v) for _, v in found}) == 1:
        return str(found[0][1])
    return ", ".join(f"{name} {value}" for name, value in found)
