"""The package follows its data path (docs/architecture.md): no import cycle, no import from a lower layer into a
higher one, every subpackage names its API, and importing the graph layer loads no model library."""

from __future__ import annotations

import ast
import importlib
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest

import medsyn

PACKAGE = Path(medsyn.__file__).parent

# Lower layers first. A module may import its own layer and the ones before it, never a later one.
LAYERS = [
    {
        "errors",
        "atomic",
        "jsonl",
        "paths",
        "locks",
        "lazy",
        "textsim",
        "faults",
        "plugins",
        "component_options",
        "seeding",
        "collector",
    },
    {"kg"},
    {"sampling", "curation", "server"},
    {"training"},
    {"generation"},
    {"evaluation"},
    {"sharing"},
    {"audit", "pipeline"},
    {"cli", "testing", "__main__"},
]
RANK = {name: i for i, layer in enumerate(LAYERS) for name in layer}
# The one documented exception: evaluation reads export folders through their format module, which imports
# nothing above medsyn.jsonl (so evaluation never imports the exporter).
ALLOWED_UP = {("medsyn.evaluation.data", "medsyn.sharing.folder")}
SUBPACKAGES = ["kg", "sampling", "generation", "training", "evaluation", "curation", "server", "sharing"]


def _modules() -> dict[str, Path]:
    out = {}
    for p in PACKAGE.rglob("*.py"):
        parts = list(p.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = p
    return out


def _type_checking_lines(tree: ast.Module) -> set[int]:
    lines: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and ast.unparse(node.test) in ("TYPE_CHECKING", "typing.TYPE_CHECKING"):
            for child in node.body:
                lines.update(range(child.lineno, (child.end_lineno or child.lineno) + 1))
    return lines


def _imports(mods: dict[str, Path]) -> dict[str, set[str]]:
    """Runtime imports between medsyn modules, function-level ones included, ``if TYPE_CHECKING`` ones left out."""
    edges: dict[str, set[str]] = {m: set() for m in mods}
    for name, path in mods.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        typing_only = _type_checking_lines(tree)
        for node in ast.walk(tree):
            if getattr(node, "lineno", None) in typing_only:
                continue
            targets: list[str] = []
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                targets.append(node.module)
                targets += [f"{node.module}.{a.name}" for a in node.names]
            elif isinstance(node, ast.Import):
                targets += [a.name for a in node.names]
            edges[name].update(t for t in targets if t in mods and t != name)
    return edges


def _layer(module: str) -> str:
    return module.split(".")[1] if "." in module else "medsyn"


def test_no_import_cycle() -> None:
    edges = _imports(_modules())
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(v: str) -> None:  # Tarjan's strongly connected components
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in edges[v]:
            if w not in index:
                visit(w)
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
            if len(comp) > 1:
                cycles.append(sorted(comp))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    assert cycles == []


def test_no_import_from_a_later_layer() -> None:
    mods = _modules()
    assert {_layer(m) for m in mods} - {"medsyn"} <= set(RANK), "a new top-level module needs a place in LAYERS"
    wrong = []
    for a, targets in _imports(mods).items():
        for b in targets:
            la, lb = _layer(a), _layer(b)
            if lb != "medsyn" and la != "medsyn" and RANK[lb] > RANK[la] and (a, b) not in ALLOWED_UP:
                wrong.append(f"{a} -> {b}")
    assert wrong == []


@pytest.mark.parametrize("name", SUBPACKAGES)
def test_subpackage_names_its_api(name: str) -> None:
    pkg = importlib.import_module(f"medsyn.{name}")
    assert pkg.__all__, f"medsyn.{name} has no __all__"
    submodules = {m.name for m in pkgutil.iter_modules(pkg.__path__)}
    # A public name equal to a submodule's would turn into that module once the submodule is imported.
    assert not set(pkg.__all__) & submodules
    for public in pkg.__all__:
        obj = getattr(pkg, public)
        assert getattr(obj, "__module__", f"medsyn.{name}").startswith(f"medsyn.{name}"), public
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        pkg.nope  # noqa: B018


def test_graph_layer_loads_no_model_library() -> None:
    code = (
        "import sys, medsyn.kg, medsyn.sampling, medsyn.generation, medsyn.kg.store, medsyn.sampling.draw; "
        "print(sorted(m for m in ('torch', 'transformers', 'peft', 'trl', 'SPARQLWrapper') if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    assert done.stdout.strip() == "[]"
