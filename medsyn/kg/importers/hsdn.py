"""HSDN symptom–disease TF-IDF weights (Zhou et al. 2014, via Hetionet) mapped to ICD-10 in MedSyn's
``main_proc.csv``, with the authors' Russian translations of the MeSH symptom names.

A symptom is identified by its Russian translation (its English MeSH name is a second label), so it merges with the
same symptom from other sources. The raw weight is the TF-IDF score; the normalised weight divides it by the
largest score of the same code.
"""

from __future__ import annotations

from pyoxigraph import Quad

from medsyn.kg.importers import _main_proc
from medsyn.kg.importers._common import BuildContext, file_hash, rel, source_graph, source_quads
from medsyn.kg.importers._symptoms import SymptomLinks

NAME = "hsdn"


def load(ctx: BuildContext) -> list[Quad]:
    rows = _main_proc.read(ctx.data)
    path = _main_proc.path_of(ctx.data)
    g = source_graph(NAME)
    links = SymptomLinks(NAME, g)
    quads: list[Quad] = []
    for r in sorted(rows, key=lambda r: (len(r.code), r.code)):
        if not r.symptoms_en:
            continue
        labels = tuple((t, lang) for t, lang in ((r.name_ru, "ru"), (r.name_en, "en")) if t)
        iri, added = ctx.ensure_code(r.code, g, labels=labels, source_notation=r.raw_code, where=(path, r.line))
        quads += added
        # symptoms_mesh_id is misaligned on a few rows (more ids than names); trust it only when lengths match.
        mesh = r.symptoms_mesh if len(r.symptoms_mesh) == len(r.symptoms_en) else ("",) * len(r.symptoms_en)
        ru = r.symptoms_ru or ("",) * len(r.symptoms_en)
        for en, ru_label, w, m in zip(r.symptoms_en, ru, r.tfidf, mesh, strict=True):
            if ru_label.strip():
                links.add(r.code, iri, ru_label, w, en=en, mesh=m)
            else:
                links.add(r.code, iri, en, w, lang="en", mesh=m)
    quads += links.quads()
    quads += source_quads(
        NAME,
        label="HSDN symptom-disease TF-IDF (Zhou et al. 2014) via MedSyn main_proc.csv",
        files=[rel(path, ctx.data)],
        file_digest=file_hash([path]),
    )
    return quads
