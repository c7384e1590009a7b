"""A proposed change to the knowledge graph, tried on an in-memory copy and validated before it may commit.

The copy holds the graphs the change touches plus context (TBox, ICD-10 hierarchy, build metadata, every
knowledge-source declaration). Validation reports only problems the change *introduces*: the same checks run on
an untouched copy of the same graphs, and what already failed there is not the curator's doing.

>>> from medsyn.kg.store import OxigraphStore
>>> from pyoxigraph import NamedNode, Quad, Literal
>>> c = Candidate(OxigraphStore.in_memory(), [])
>>> q = Quad(NamedNode("urn:a"), NamedNode("urn:p"), Literal("x"), NamedNode("urn:g"))
>>> c.add([q]); c.remove([q]); (c.added, c.removed)
([], [])
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from pyoxigraph import BlankNode, DefaultGraph, Literal, NamedNode, Quad

from medsyn.errors import ValidationError
from medsyn.kg.queries import run_named
from medsyn.kg.store import OxigraphStore, Store
from medsyn.kg.validate import run_checks, shapes_graph
from medsyn.kg.vocab import ICD10_GRAPH, ID, META_GRAPH, ONTOLOGY_GRAPH, RDF_TYPE

CONTEXT_GRAPHS = (ONTOLOGY_GRAPH, ICD10_GRAPH, META_GRAPH)


class Candidate:
    """Copies of the relevant graphs (``before`` untouched, ``after`` edited) and the net delta between them."""

    def __init__(self, base: Store, graphs: Iterable[NamedNode]) -> None:
        self.base = base
        self.before = OxigraphStore.in_memory()
        self.after = OxigraphStore.in_memory()
        self._copied: set[NamedNode] = set()
        self._added: dict[Quad, None] = {}
        self._removed: dict[Quad, None] = {}
        for g in (*CONTEXT_GRAPHS, *graphs):
            self.ensure_graph(g)
        # Associations name their source: the source nodes must be visible even when their graph is not copied.
        declared = [
            Quad(r["s"], r["p"], r["o"], r["g"])  # type: ignore[arg-type]
            for r in run_named(base, "curation/knowledge_sources")
        ]
        self.before.add_quads(declared)
        self.after.add_quads(declared)

    def ensure_graph(self, graph: NamedNode) -> None:
        """Copy ``graph`` from the base store (once, and always before the first edit to it)."""
        if graph in self._copied:
            return
        self._copied.add(graph)
        if isinstance(self.base, OxigraphStore):  # in-process: copy quads directly, no serialisation round trip
            quads = list(self.base.raw.quads_for_pattern(None, None, None, graph))
            self.before.raw.extend(quads)
            self.after.raw.extend(quads)
            return
        data = self.base.dump(format="nt", graph=graph)
        if data:
            self.before.load(data, format="nt", graph=graph)
            self.after.load(data, format="nt", graph=graph)

    @property
    def added(self) -> list[Quad]:
        return list(self._added)

    @property
    def removed(self) -> list[Quad]:
        return list(self._removed)

    @property
    def graphs(self) -> set[NamedNode]:
        return {q.graph_name for q in (*self._added, *self._removed) if isinstance(q.graph_name, NamedNode)}

    def add(self, quads: Iterable[Quad]) -> None:
        quads = list(quads)
        self._ensure_graphs(quads)
        for q in quads:
            if q in self._removed:
                del self._removed[q]
            elif q not in self.after.raw:
                self._added[q] = None
        self.after.add_quads(quads)

    def remove(self, quads: Iterable[Quad]) -> None:
        quads = list(quads)
        self._ensure_graphs(quads)
        for q in quads:
            if q in self._added:
                del self._added[q]
            elif q in self.after.raw:
                self._removed[q] = None
        for q in quads:
            self.after.raw.remove(q)

    def _ensure_graphs(self, quads: list[Quad]) -> None:
        for q in quads:
            if isinstance(q.graph_name, DefaultGraph):
                raise ValueError("curation writes named graphs only")
            self.ensure_graph(q.graph_name)

    def query(self, name: str, **params: Any) -> Any:
        """Run ``sparql/<name>.rq`` on the edited copy."""
        return run_named(self.after, name, **params)

    # ------------------------------------------------------------------------------------------------ validation

    def problems(self) -> list[str]:
        """What the change breaks: new SHACL violations on the nodes it touches, new rows of sparql/checks/."""
        return self._shacl_problems() + self._check_problems()

    def validate(self) -> None:
        """Raise ValidationError naming the first problems when the change breaks the graph."""
        found = self.problems()
        if found:
            more = f" (and {len(found) - 3} more)" if len(found) > 3 else ""
            raise ValidationError("change refused, nothing was written: " + "; ".join(found[:3]) + more)

    def focus_nodes(self) -> set[NamedNode | BlankNode]:
        """Nodes the change touches, plus nodes that point at a node losing a type (an association whose
        symptom vanished): only a lost type can break a neighbour's sh:class constraint."""
        nodes: set[NamedNode | BlankNode] = set()
        untyped: set[NamedNode | BlankNode] = set()
        for q in (*self._added, *self._removed):
            nodes.add(q.subject)  # type: ignore[arg-type]
            if q.predicate != RDF_TYPE and _instance(q.object):
                nodes.add(q.object)  # type: ignore[arg-type]
        for q in self._removed:
            if q.predicate == RDF_TYPE and _instance(q.subject):
                untyped.add(q.subject)  # type: ignore[arg-type]
        for n in untyped:
            nodes.update(
                q.subject  # type: ignore[misc]
                for q in self.after.raw.quads_for_pattern(None, None, n, None)
                if q.predicate != RDF_TYPE
            )
        return nodes

    def _shacl_problems(self) -> list[str]:
        focus = self.focus_nodes()
        if not focus:
            return []
        keys = {str(n) for n in focus}
        old = _shacl_results(_neighbourhood(self.before, focus), keys)
        new = _shacl_results(_neighbourhood(self.after, focus), keys)
        return [msg for key, msg in new.items() if key not in old]

    def _check_problems(self) -> list[str]:
        old = {name: {_row_key(r) for r in rows} for name, rows in run_checks(self.before).items()}
        out = []
        for name, rows in run_checks(self.after).items():
            fresh = [r for r in rows if _row_key(r) not in old.get(name, set())]
            if fresh:
                out.append(f"check {name}: {len(fresh)} new offending row(s), e.g. {_row_text(fresh[0])}")
        return out


def _instance(term: object) -> bool:
    return isinstance(term, BlankNode) or (isinstance(term, NamedNode) and term.value.startswith(ID))


def _neighbourhood(store: OxigraphStore, focus: set[NamedNode | BlankNode]) -> str:
    """N-Triples of the TBox, the focus nodes and their direct neighbours (so sh:class can see their types)."""
    lines: set[str] = set()
    for q in store.raw.quads_for_pattern(None, None, None, ONTOLOGY_GRAPH):
        lines.add(f"{q.subject} {q.predicate} {q.object} .")
    hop: set[NamedNode | BlankNode] = set()
    for n in focus:
        for q in store.raw.quads_for_pattern(n, None, None, None):
            lines.add(f"{q.subject} {q.predicate} {q.object} .")
            if q.predicate != RDF_TYPE and _instance(q.object):
                hop.add(q.object)  # type: ignore[arg-type]
    for n in hop - focus:
        for q in store.raw.quads_for_pattern(n, None, None, None):
            lines.add(f"{q.subject} {q.predicate} {q.object} .")
    return "\n".join(sorted(lines))


def _shacl_results(ntriples: str, focus: set[str]) -> dict[tuple[str, ...], str]:
    """SHACL results on the focus nodes, keyed by (focus, path, constraint, value) -> one-line message."""
    import pyshacl
    import rdflib

    data = rdflib.Graph().parse(data=ntriples, format="nt")
    _, results, _ = pyshacl.validate(data, shacl_graph=shapes_graph(), inference="none", allow_warnings=True)
    sh = rdflib.Namespace("http://www.w3.org/ns/shacl#")
    out: dict[tuple[str, ...], str] = {}
    for r in results.subjects(rdflib.RDF.type, sh.ValidationResult):
        node = results.value(r, sh.focusNode)
        key_node = node.n3() if node is not None else ""
        if key_node not in focus:
            continue
        path, comp, value = (results.value(r, p) for p in (sh.resultPath, sh.sourceConstraintComponent, sh.value))
        msg = results.value(r, sh.resultMessage)
        key = (key_node, str(path), str(comp), str(value))
        short = str(comp).rsplit("#", 1)[-1] if comp is not None else "constraint"
        out[key] = f"{key_node}: {msg or short}" + (f" (value {value.n3()})" if value is not None else "")
    return out


def _row_key(row: Any) -> tuple[tuple[str, str], ...]:
    """A check row comparable across the two copies: blank-node labels differ between copies, so drop them."""
    if isinstance(row, dict):
        items = row.items()
    elif isinstance(row, list | tuple):
        items = enumerate(row)  # type: ignore[assignment]
    else:
        return (("", str(row)),)
    return tuple(sorted((str(k), "_:b" if isinstance(v, BlankNode) else str(v)) for k, v in items))


def _row_text(row: Any) -> str:
    if isinstance(row, dict):
        return ", ".join(f"{k}={v.value if isinstance(v, NamedNode | Literal) else v}" for k, v in row.items())
    return str(row)
