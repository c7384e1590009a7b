"""No function in medsyn/ is over 80 lines (the project's rule): a long function is split where it does two things."""

from __future__ import annotations

import ast
from pathlib import Path

import medsyn

LIMIT = 80
PACKAGE = Path(medsyn.__file__).parent

ALLOWED: dict[str, str] = {}
"""``path:function`` of the functions still over the limit, each with why; the list may only shrink."""


def long_functions(root: Path = PACKAGE, limit: int = LIMIT) -> dict[str, int]:
    """``{path:qualified name: lines}`` of the functions over ``limit`` lines (signature and body)."""
    out: dict[str, int] = {}
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root.parent).as_posix()
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=rel)
        stack: list[tuple[ast.AST, str]] = [(tree, "")]
        while stack:
            node, prefix = stack.pop()
            for child in ast.iter_child_nodes(node):
                name = f"{prefix}{getattr(child, 'name', '')}"
                if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef):
                    lines = (child.end_lineno or child.lineno) - child.lineno + 1
                    if lines > limit:
                        out[f"{rel}:{name}"] = lines
                    stack.append((child, name + "."))
                elif isinstance(child, ast.ClassDef):
                    stack.append((child, name + "."))
                else:
                    stack.append((child, prefix))
    return out


def test_no_function_is_over_80_lines() -> None:
    over = {k: v for k, v in long_functions().items() if k not in ALLOWED}
    assert not over, f"functions over {LIMIT} lines (split them): {over}"


def test_the_allow_list_names_only_functions_still_over_the_limit() -> None:
    stale = sorted(set(ALLOWED) - set(long_functions()))
    assert not stale, f"no longer over {LIMIT} lines, remove from ALLOWED: {stale}"


def test_the_check_finds_a_long_function(tmp_path: Path) -> None:
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    body = "\n".join(f"    x{i} = {i}" for i in range(LIMIT))
    (pkg / "m.py").write_text(f"class C:\n    def short(self):\n        pass\n\n\ndef long():\n{body}\n")
    assert long_functions(pkg) == {"pkg/m.py:long": LIMIT + 1}
