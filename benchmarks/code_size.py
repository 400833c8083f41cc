"""Lines of code of a package tree, without docstrings, comments and blank lines, and how many
pairs of places repeat six or more alike lines (when the ``duplicates`` command is on PATH).

Usage::

    python benchmarks/code_size.py [TREE ...]     # default: dsecli/ of this checkout

For comparing revisions: ``git worktree add /tmp/old <rev>`` and pass both trees' ``dsecli/``.
"""

from __future__ import annotations

import ast
import io
import shutil
import subprocess
import sys
import tokenize
from pathlib import Path


def code_lines(source: str) -> int:
    """Lines holding code: not blank, not only a comment, not part of a docstring."""
    tree = ast.parse(source)
    doc_lines: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(getattr(body[0], "value", None), ast.Constant) \
                    and isinstance(body[0].value.value, str):
                doc_lines.update(range(body[0].lineno, body[0].end_lineno + 1))
    lines: set[int] = set()
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type in (tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT,
                        tokenize.ENDMARKER):
            continue
        lines.update(range(tok.start[0], tok.end[0] + 1))
    return len(lines - doc_lines)


def tree_size(root: Path) -> tuple[int, int, int]:
    files = sorted(root.rglob("*.py"))
    total = sum(len(p.read_text().splitlines()) for p in files)
    return len(files), total, sum(code_lines(p.read_text()) for p in files)


def repeated_pairs(root: Path) -> str:
    if shutil.which("duplicates") is None:
        return "n/a (no duplicates command)"
    out = subprocess.run(["duplicates", "--repo", str(root), "--most", "200"], capture_output=True, text=True,
                         check=False).stdout.splitlines()
    return out[0] if out else "n/a"


def main(argv: list[str]) -> None:
    roots = [Path(a) for a in argv] or [Path(__file__).resolve().parent.parent / "dsecli"]
    print(f"{'tree':<40} {'files':>6} {'lines':>7} {'code':>7}  repeated blocks")
    for root in roots:
        files, total, code = tree_size(root)
        print(f"{str(root):<40} {files:>6} {total:>7} {code:>7}  {repeated_pairs(root)}")


if __name__ == "__main__":
    main(sys.argv[1:])
