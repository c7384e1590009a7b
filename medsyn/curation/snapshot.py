"""Snapshots of the knowledge graph and restoring one: how a curator undoes changes.

A snapshot is the whole dataset as N-Quads. Restoring replaces the *knowledge* graphs (TBox, ICD-10, sources,
build metadata) with the snapshot's, in one update; generation runs (``graph/run/*``) and the curation record are
history and stay as they are, and the restore itself is recorded as a curation activity.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from pyoxigraph import BlankNode, NamedNode, Quad

from medsyn.atomic import atomic_write_bytes
from medsyn.curation.edits import Plan, activity_quads, curator_name
from medsyn.errors import InputError
from medsyn.kg.store import OxigraphStore, Store, quads_to_sparql_data
from medsyn.kg.vocab import is_knowledge_graph


def snapshot(store: Store, out: str | Path) -> int:
    """Write the whole dataset as N-Quads (atomically); returns the number of bytes written."""
    data = store.dump(format="nq")
    atomic_write_bytes(out, data)
    return len(data)


@dataclass(frozen=True)
class RestoreResult:
    added: int
    removed: int
    graphs: list[str]


def restore(store: Store, path: str | Path, *, by: str | None = None) -> RestoreResult:
    """Make the knowledge graphs equal to those of the snapshot ``path``, as one update.

    Graphs without blank nodes are patched (only differing quads move); a graph with blank nodes (the TBox's
    OWL lists) is replaced whole when it differs, since blank-node labels do not survive a reload.
    """
    p = Path(path)
    if not p.is_file():
        raise InputError("snapshot file not found", path=p)
    snap = OxigraphStore.in_memory()
    snap.load(p, format=p.suffix.lstrip(".") or "nq")
    want = _by_graph(snap.raw.quads_for_pattern(None, None, None, None))
    if not want:
        raise InputError("the snapshot holds no named graphs of the knowledge graph", path=p)
    have = _by_graph(_all_quads(store))
    removed: list[Quad] = []
    added: list[Quad] = []
    dropped: list[NamedNode] = []
    for g in sorted(want.keys() | have.keys(), key=lambda n: n.value):
        old, new = have.get(g, set()), want.get(g, set())
        if _has_blank(old) or _has_blank(new):
            if _shape(old) != _shape(new):
                dropped.append(g)
                removed += old
                added += new
            continue
        removed += old - new
        added += new - old
    digest = hashlib.sha256(p.read_bytes()).hexdigest()
    plan = Plan("restore", f"restore knowledge graphs from snapshot {p.name} (sha256 {digest[:16]})")
    record = activity_quads(plan, curator_name(by), ended=datetime.now(UTC), added=added, removed=removed)
    ops = [f"DROP SILENT GRAPH {g}" for g in dropped]
    ground = [q for q in removed if q.graph_name not in dropped]
    if ground:
        ops.insert(0, "DELETE DATA {\n" + quads_to_sparql_data(ground) + "\n}")
    ops.append("INSERT DATA {\n" + quads_to_sparql_data([*added, *record]) + "\n}")
    store.update(" ;\n".join(ops))
    graphs = sorted({q.graph_name.value for q in (*added, *removed)})  # type: ignore[union-attr]
    return RestoreResult(added=len(added), removed=len(removed), graphs=graphs)


def _all_quads(store: Store) -> list[Quad]:
    if isinstance(store, OxigraphStore):
        return list(store.raw.quads_for_pattern(None, None, None, None))
    snap = OxigraphStore.in_memory()
    snap.load(store.dump(format="nq"), format="nq")
    return list(snap.raw.quads_for_pattern(None, None, None, None))


def _by_graph(quads: object) -> dict[NamedNode, set[Quad]]:
    out: dict[NamedNode, set[Quad]] = {}
    for q in quads:  # type: ignore[attr-defined]
        g = q.graph_name
        if isinstance(g, NamedNode) and is_knowledge_graph(g):
            out.setdefault(g, set()).add(q)
    return out


def _has_blank(quads: set[Quad]) -> bool:
    return any(isinstance(q.subject, BlankNode) or isinstance(q.object, BlankNode) for q in quads)


def _shape(quads: set[Quad]) -> Counter[str]:
    """Quads with blank-node labels erased: equal shapes mean equal graphs for the TBox's simple lists."""

    def t(term: object) -> str:
        return "_:" if isinstance(term, BlankNode) else str(term)

    return Counter(f"{t(q.subject)} {q.predicate} {t(q.object)}" for q in quads)
