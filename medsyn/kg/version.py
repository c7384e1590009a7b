"""The graph version: the one string that sampling (its table cache), generation, provenance, audit, ``kg stats``
and the server report for "which graph was this".

It is the build's content hash (``ms:contentHash`` in ``graph/meta``, see :func:`medsyn.kg.build.content_hash`);
once a curator has changed the graph (``medsyn onto ...`` records a ``ms:CurationActivity`` per change) it gains a
suffix naming the set of changes, ``<build hash>+curated:<count>:<digest>``, so a note generated after an edit
never cites the pristine build. Recomputing the full content hash on every edit would cost seconds per change.

>>> from medsyn.kg.store import OxigraphStore
>>> s = OxigraphStore.in_memory()
>>> graph_version(s) is None
True
>>> s.update('PREFIX ms: <https://w3id.org/medsyn/ontology#> INSERT DATA { GRAPH <https://w3id.org/medsyn/graph/meta>'
...          ' { <urn:b> a ms:KnowledgeGraphBuild ; ms:contentHash "sha256:abc" } }')
>>> graph_version(s)
'sha256:abc'
"""

from __future__ import annotations

import hashlib

from medsyn.kg.queries import run_named
from medsyn.kg.store import Store


def graph_version(store: Store) -> str | None:
    """The version of the graph in ``store``, or None when it has no build record (then nothing is cached)."""
    rows = run_named(store, "kg/graph_version")
    if not rows:
        return None
    # One build per store (a build replaces the store); should there be several, the latest counts, as in kg stats.
    latest = max(rows, key=lambda r: (r["time"].value if "time" in r else "", r["hash"].value))
    base = latest["hash"].value
    activities = sorted({r["activity"].value for r in rows if "activity" in r})
    if not activities:
        return base
    digest = hashlib.sha256("\n".join(activities).encode("utf-8")).hexdigest()[:16]
    return f"{base}+curated:{len(activities)}:{digest}"


__all__ = ["graph_version"]
