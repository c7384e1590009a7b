"""The real notes of the graph (``ms:ExampleNote``, RuMedTop3 train): what generation and export check copies
against."""

from __future__ import annotations

from medsyn.kg.queries import run_named
from medsyn.kg.store import Store


def real_notes(store: Store) -> list[tuple[str, str]]:
    """(id, text) of every real note of the graph (``ms:ExampleNote``)."""
    rows = run_named(store, "sampling/example_notes")
    return [(str(r["noteId"].value), str(r["text"].value)) for r in rows]
