"""Cross-references (DOID, MeSH, UMLS) and Russian/English names of ICD-10 codes from MedSyn's ``main_proc.csv``.

About 1,550 of its 2,505 codes are ICD-10-CM sub-codes the Russian register lacks; they are added under their
category (or 4-character parent) in this source's graph, with the table's names as labels and ``ms:inRegister false``.
"""

from __future__ import annotations

from pyoxigraph import Literal, Quad

from medsyn.kg.importers import _main_proc
from medsyn.kg.importers._common import BuildContext, file_hash, rel, source_graph, source_quads, text
from medsyn.kg.vocab import code_iri, ms, skos

NAME = "medsyn-mkg"


def load(ctx: BuildContext) -> list[Quad]:
    rows = _main_proc.read(ctx.data)
    path = _main_proc.path_of(ctx.data)
    g = source_graph(NAME)
    quads: list[Quad] = []
    # Shorter codes first, so a 5-character code finds its 4-character parent if the table adds that too.
    for r in sorted(rows, key=lambda r: (len(r.code), r.code)):
        labels = tuple((t, lang) for t, lang in ((r.name_ru, "ru"), (r.name_en, "en")) if t)
        _, added = ctx.ensure_code(r.code, g, labels=labels, source_notation=r.raw_code, where=(path, r.line))
        quads += added
    for r in rows:
        iri = code_iri(r.code)
        if r.doid:
            quads.append(Quad(iri, ms("doid"), Literal(r.doid), g))
        quads += [Quad(iri, ms("meshId"), Literal(m), g) for m in r.mesh if m]
        quads += [Quad(iri, ms("umlsCui"), Literal(u), g) for u in r.umls if u]
        # Register codes keep their official title as rdfs:label; the table's names become alternatives.
        if ctx.codes[r.code].graph != g:
            if r.name_ru:
                quads.append(Quad(iri, skos("altLabel"), text(r.name_ru, "ru"), g))
            if r.name_en:
                quads.append(Quad(iri, skos("altLabel"), text(r.name_en, "en"), g))
    quads += source_quads(
        NAME,
        label="MedSyn main_proc.csv (ICD-10 to DOID/MeSH/UMLS, Russian names)",
        files=[rel(path, ctx.data)],
        file_digest=file_hash([path]),
    )
    return quads
