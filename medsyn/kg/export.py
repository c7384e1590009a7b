"""Serialise the knowledge graph: N-Quads of the dataset, Turtle/N-Triples of one graph or the union. (The RDF/XML
``owl`` file that owlready2 and Protégé open is the curators' round trip: :func:`medsyn.curation.owl.owl_bytes`.)

Works through the :class:`~medsyn.kg.store.Store` interface only, so it serves remote endpoints too.
"""

from __future__ import annotations

from pyoxigraph import NamedNode, RdfFormat, Triple, parse, serialize

from medsyn.errors import InputError
from medsyn.kg.store import Store
from medsyn.kg.vocab import PREFIXES

EXPORT_FORMATS = ("ttl", "nt", "nq")


def export_bytes(store: Store, fmt: str, *, graph: str | None = None) -> bytes:
    """The graph in ``fmt`` (ttl | nt | nq); ``graph`` limits it to one named graph.

    Triple formats without ``graph`` give the union of all named graphs (graph names are dropped).
    """
    fmt = fmt.lower()
    if fmt not in EXPORT_FORMATS:
        raise InputError(f"--format: {fmt!r} is not one of {', '.join(EXPORT_FORMATS)}")
    g = _graph(store, graph) if graph else None
    if fmt == "nq":
        return store.dump(format="nq", graph=g)
    if g is not None:
        return store.dump(format=fmt, graph=g) if fmt == "nt" else _serialize(_triples(store, [g]), RdfFormat.TURTLE)
    triples = _triples(store, store.named_graphs())
    return _serialize(triples, RdfFormat.TURTLE if fmt == "ttl" else RdfFormat.N_TRIPLES)


def _graph(store: Store, iri: str) -> NamedNode:
    try:
        g = NamedNode(iri)
    except ValueError:
        raise InputError(f"--graph: not an IRI: {iri!r}") from None
    if g not in store.named_graphs():
        raise InputError(f"--graph: no named graph {iri} in the store")
    return g


def _triples(store: Store, graphs: list[NamedNode]) -> list[Triple]:
    seen: set[Triple] = set()
    for g in graphs:
        for q in parse(store.dump(format="nt", graph=g), format=RdfFormat.N_TRIPLES):
            seen.add(q.triple)
    return sorted(seen, key=str)


def _serialize(triples: list[Triple], fmt: RdfFormat) -> bytes:
    prefixes = PREFIXES if fmt in (RdfFormat.TURTLE, RdfFormat.RDF_XML) else None
    out = serialize(triples, format=fmt, prefixes=prefixes) if prefixes else serialize(triples, format=fmt)
    return out if isinstance(out, bytes) else b""
