"""Counts that describe a built graph: instances per class, triples per named graph, the recorded build.

>>> from medsyn.kg.store import OxigraphStore
>>> s = OxigraphStore.in_memory()
>>> s.update('INSERT DATA { GRAPH <urn:g> { <urn:x> a <https://w3id.org/medsyn/ontology#Symptom> } }')
>>> class_counts(s), graph_counts(s)
({'Symptom': 1}, {'urn:g': 1})
"""

from __future__ import annotations

from typing import Any

from medsyn.kg.queries import run_named
from medsyn.kg.store import Store, to_python
from medsyn.kg.vocab import MS


def class_counts(store: Store) -> dict[str, int]:
    """Instances per ``ms:`` class, keyed by the class's local name."""
    return {r["class"].value.removeprefix(MS): int(r["n"].value) for r in run_named(store, "kg/class_counts")}


def graph_counts(store: Store) -> dict[str, int]:
    """Triples per named graph IRI."""
    return {r["g"].value: int(r["n"].value) for r in run_named(store, "kg/graph_counts")}


def build_info(store: Store) -> dict[str, Any] | None:
    """The recorded build: ``{"build", "hash", "triples", "time", "sources"}``, or None if the graph has none."""
    rows = run_named(store, "kg/build_info")
    if not rows or "hash" not in rows[0]:
        return None
    info = {k: to_python(v) for k, v in rows[0].items()}
    info["sources"] = [s for s in str(info.get("sources") or "").split(",") if s]
    return info
