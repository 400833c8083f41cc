"""The package's import structure: no cycles, a documented public API, and a CLI that uses only it.

Import graph. Built from the AST of every module under ``dsecli/``: an edge A -> B for every
``import B`` / ``from B import ...`` in A, at module level AND inside functions (a function-level
import runs as soon as the function is called, so a circle through one is a circle all the
same; hiding an import in a function is not a fix). Imports under ``if TYPE_CHECKING:`` never
run and do not count. ``from P import name`` counts as an edge to ``P.name`` when that is a
module. A package's own ``__init__`` that Python runs before a submodule is not an edge (every
module would otherwise depend on ``dsecli/__init__``); an explicit ``from dsecli import x`` is,
and so is every lazy export of ``dsecli/__init__`` (imported by name on first use).
The graph must be acyclic; a failure names every cycle found.

Public API. Every name in ``dsecli.__all__`` resolves; functions and classes have a docstring,
and functions a numpydoc ``Returns`` section; the data constants are named in the package
docstring. The modules of ``dsecli/cli/`` import from ``dsecli`` only names in ``__all__``, and
otherwise only ``dsecli.errors``, the rendering layer ``dsecli.report.*`` and each other, and
never a private (underscore) name; they never import rich (every table is drawn in ``dsecli.report``).

Private names. No module imports an underscore name from another dsecli module (``from
dsecli.x import _y``), except those on :data:`PRIVATE_IMPORTS_TO_FIX`, which is to shrink.
"""

from __future__ import annotations

import ast
import inspect
import subprocess
import sys
from pathlib import Path

import pytest

import dsecli

PACKAGE = Path(dsecli.__file__).resolve().parent


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _is_type_checking(node: ast.If) -> bool:
    return "TYPE_CHECKING" in ast.unparse(node.test)


def _imports(module: str, path: Path) -> list[tuple[str, list[str], int]]:
    """(imported module, names, line) for every import that can run, at any nesting level."""
    found: list[tuple[str, list[str], int]] = []
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]

    def visit(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _is_type_checking(child):
                for sub in child.orelse:
                    visit(sub)
                continue
            if isinstance(child, ast.Import):
                found.extend((a.name, [], child.lineno) for a in child.names)
            elif isinstance(child, ast.ImportFrom):
                base = child.module or ""
                if child.level:
                    parts = package.split(".")
                    parts = parts[: len(parts) - child.level + 1]
                    base = ".".join(parts + ([base] if base else []))
                found.append((base, [a.name for a in child.names], child.lineno))
            visit(child)

    visit(ast.parse(path.read_text(encoding="utf-8")))
    return found


def _graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {m: set() for m in MODULES}
    # dsecli/__init__ imports its lazy names by module name (importlib), which the AST cannot see
    graph["dsecli"].update(dsecli._LAZY.values())
    for module, path in MODULES.items():
        for target, names, _line in _imports(module, path):
            for t in [target, *(f"{target}.{n}" for n in names)]:
                if t in MODULES and t != module:
                    graph[module].add(t)
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One cycle (as a path A -> ... -> A) per strongly connected component of more than one module."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []
    counter = 0

    def strongconnect(v: str) -> None:
        nonlocal counter
        index[v] = low[v] = counter
        counter += 1
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                strongconnect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1 or v in graph[v]:
                components.append(comp)

    for v in sorted(graph):
        if v not in index:
            strongconnect(v)

    cycles = []
    for comp in components:
        members = set(comp)
        start = min(comp)
        # breadth-first search for the shortest way back to start inside the component
        paths = {start: [start]}
        queue = [start]
        cycle: list[str] | None = None
        while queue and cycle is None:
            v = queue.pop(0)
            for w in sorted(graph[v] & members):
                if w == start:
                    cycle = [*paths[v], start]
                    break
                if w not in paths:
                    paths[w] = [*paths[v], w]
                    queue.append(w)
        cycles.append(cycle or sorted(comp))
    return cycles


def test_the_graph_finds_a_planted_cycle() -> None:
    # the checker itself: a -> b -> c -> a is reported as that path; d -> a is not part of it
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert _cycles(graph) == [["a", "b", "c", "a"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_the_graph_sees_function_level_imports() -> None:
    # these modules import these inside functions only (dry_run_mutual_information, solver_settings)
    graph = _graph()
    assert "dsecli.inputs.reference" in graph["dsecli.measures.dry_run"]
    assert "dsecli.diffusion.slq" in graph["dsecli.diffusion.plan"]
    for module, name in (("dsecli.measures.dry_run", "dsecli.inputs.reference"), ("dsecli.diffusion.plan",
                                                                                  "dsecli.diffusion.slq")):
        assert f"\nfrom {name}" not in MODULES[module].read_text(encoding="utf-8")


def test_import_graph_has_no_cycle() -> None:
    cycles = _cycles(_graph())
    assert not cycles, "import cycles: " + "; ".join(" -> ".join(c) for c in cycles)


# ------------------------------------------------------------------------------------ public API

DATA_NAMES = {"__version__", "ENTROPY_METHODS", "MI_METHODS", "METHOD_OPTIONS", "DEFAULT_T", "DEFAULT_T_MAX"}


@pytest.mark.parametrize("name", dsecli.__all__)
def test_public_name_resolves_and_is_documented(name: str) -> None:
    obj = getattr(dsecli, name)
    if name in DATA_NAMES:
        assert f"``{name}``" in (dsecli.__doc__ or ""), f"{name} is not described in the dsecli docstring"
        return
    doc = inspect.getdoc(obj) or ""
    assert doc.strip(), f"dsecli.{name} has no docstring"
    if inspect.isfunction(obj):
        assert "Returns\n-------" in doc or "Yields\n------" in doc, (
            f"dsecli.{name}'s docstring has no numpydoc Returns section")


def test_every_command_has_its_public_function() -> None:
    # the functions behind the commands (spectrum, batch, check, validate, info, --dry-run)
    for name in ("spectrum_scan", "run_batch", "expand_inputs", "sanity_report", "run_validation", "list_arrays",
                 "open_array", "plan_entropy", "plan_mutual_information", "dry_run_entropy",
                 "dry_run_mutual_information", "format_plan", "estimate_entropy", "estimate_mutual_information"):
        assert name in dsecli.__all__ and callable(getattr(dsecli, name))
    assert set(dsecli.__all__) <= set(dir(dsecli))
    with pytest.raises(AttributeError, match="module 'dsecli' has no attribute 'no_such_name'"):
        dsecli.no_such_name  # noqa: B018


def test_import_dsecli_stays_light() -> None:
    # a fresh interpreter: the lazy names must not pull in torch, typer or rich
    code = ("import sys, dsecli; heavy = [m for m in ('torch', 'typer', 'rich', 'h5py', 'matplotlib') "
            "if m in sys.modules]; print(','.join(heavy))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


ALLOWED_FROM_CLI = ("dsecli.errors", "dsecli.report", "dsecli.cli")


def _cli_import_problems() -> list[str]:
    problems = []
    for module, path in MODULES.items():
        if not module.startswith("dsecli.cli"):
            continue
        for target, names, line in _imports(module, path):
            if not (target == "dsecli" or target.startswith("dsecli.")):
                continue
            where = f"{path.relative_to(PACKAGE.parent)}:{line}"
            private = [n for n in names if n.startswith("_") and n != "__version__"]
            if private:
                problems.append(f"{where} imports private {', '.join(private)} from {target}")
            if target == "dsecli":
                hidden = [n for n in names if n not in dsecli.__all__]
                if hidden:
                    problems.append(f"{where} imports {', '.join(hidden)} from dsecli, not in dsecli.__all__")
            elif not any(target == a or target.startswith(a + ".") for a in ALLOWED_FROM_CLI):
                problems.append(f"{where} imports {target} (the CLI uses only public names from dsecli)")
    return problems


def test_cli_imports_only_public_names() -> None:
    problems = _cli_import_problems()
    assert not problems, "\n".join(problems)


def test_no_cli_module_imports_rich() -> None:
    # the CLI parses, calls the library and hands the report to dsecli.report, which draws it
    problems = [f"{path.relative_to(PACKAGE.parent)}:{line} imports {target}"
                for module, path in MODULES.items() if module == "dsecli.cli" or module.startswith("dsecli.cli.")
                for target, _names, line in _imports(module, path)
                if target == "rich" or target.startswith("rich.")]
    assert not problems, "\n".join(problems)


# (importing module, imported module, name): private names still imported across modules, to be made
# public (or the code moved) by the owners of these modules; remove an entry when it is fixed
PRIVATE_IMPORTS_TO_FIX: set[tuple[str, str, str]] = set()


def _import_froms(module: str, path: Path) -> list[tuple[str, list[str], int]]:
    """(imported module, names, line) of every ``from ... import`` in ``path``, those under
    ``if TYPE_CHECKING:`` included (a private name in an annotation is still a private name)."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1] + ([base] if base else []))
            found.append((base, [a.name for a in node.names], node.lineno))
    return found


def _private_imports(modules: dict[str, Path] = MODULES) -> dict[tuple[str, str, str], str]:
    found = {}
    for module, path in modules.items():
        for target, names, line in _import_froms(module, path):
            if target != "dsecli" and not target.startswith("dsecli.") or target == module:
                continue
            for name in names:
                if name.startswith("_") and name != "__version__":
                    found[(module, target, name)] = f"{path.name}:{line}"
    return found


def test_no_private_names_across_modules() -> None:
    found = _private_imports()
    new = [f"{where} imports private {name} from {target}" for (module, target, name), where in sorted(found.items())
           if (module, target, name) not in PRIVATE_IMPORTS_TO_FIX]
    assert not new, "\n".join(new)
    fixed = sorted(PRIVATE_IMPORTS_TO_FIX - set(found))
    assert not fixed, f"no longer imported, remove from PRIVATE_IMPORTS_TO_FIX: {fixed}"


def test_the_private_name_check_sees_relative_function_level_and_type_checking_imports(tmp_path: Path) -> None:
    # the checker itself, on a planted module (written outside the package)
    path = tmp_path / "planted.py"
    path.write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from dsecli.a import _T\n"
                    "def f():\n    from .other import _hidden, shown\n    from dsecli import __version__\n"
                    "    from ._self import _ok\n", encoding="utf-8")
    found = _private_imports({"dsecli.cli.planted": path})
    assert sorted(found) == [("dsecli.cli.planted", "dsecli.a", "_T"), ("dsecli.cli.planted", "dsecli.cli._self", "_ok"),
                             ("dsecli.cli.planted", "dsecli.cli.other", "_hidden")]
