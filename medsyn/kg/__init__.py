"""The knowledge graph: build it from the real sources, store it (embedded Oxigraph or a remote SPARQL endpoint),
query it with the files of ``sparql/``, describe, export and validate it.

Step 1 of the data path. ``importers/`` (one module per source) -> :mod:`~medsyn.kg.build` -> :mod:`~medsyn.kg.store`
(:mod:`~medsyn.kg.remote_store` for an endpoint; :func:`open_store` opens either). :func:`graph_version` is the one
version string that sampling, generation, provenance and audit cite.

>>> from medsyn.kg import code_iri
>>> code_iri("A00.1").value
'https://w3id.org/medsyn/id/icd10/A00.1'
"""

from medsyn.lazy import lazy_exports

__all__, __getattr__ = lazy_exports(
    __name__,
    {
        "open_store": "opener",
        "Store": "store",
        "OxigraphStore": "store",
        "RemoteStore": "remote_store",
        "build_kg": "build",
        "BuildReport": "build",
        "graph_version": "version",
        "load_query": "queries",
        "run_named": "queries",
        "run_query": "queries",
        "list_queries": "queries",
        "export_bytes": "export",
        "class_counts": "stats",
        "graph_counts": "stats",
        "build_info": "stats",
        "run_checks": "validate",
        "validate_provenance": "validate",
        "reason": "validate",
        "code_iri": "vocab",
        "normalize_code": "vocab",
        "is_valid_code": "vocab",
    },
)
