"""Knowledge-source importers, one module per source, and their registry.

Each importer is ``load(ctx: BuildContext) -> list[Quad]``: it reads its files under ``ctx.data``, raises
:class:`~medsyn.errors.InputError` naming ``file:line`` on malformed input, and returns quads in its own named graph
(``graph/source/<name>``; the hierarchy sources write ``graph/icd10``). Sources run in registry order, so the ICD-10
hierarchy exists before any source links to it.

A new source is one importer module plus one :class:`SourceSpec` line in :data:`SOURCES` (``registry.py``), which
declares its licence and whether it forbids commercial use (the graph records both; exports and cards carry them).
A third-party source is a :class:`SourceSpec` under the entry point group ``medsyn.sources`` (:mod:`medsyn.plugins`);
it runs after the built-in ones and only when named (or with ``all``).

>>> resolve(None)[:2]
['icd10-minzdrav', 'who-icd10']
>>> "sider4" in resolve(None), "sider4" in resolve(["all"])
(False, True)
"""

from medsyn.kg.importers.registry import (
    ENTRY_POINTS,
    REQUIRED,
    SOURCES,
    SourceSpec,
    all_source_names,
    resolve,
    source_spec,
)

__all__ = ["ENTRY_POINTS", "REQUIRED", "SOURCES", "SourceSpec", "all_source_names", "resolve", "source_spec"]
