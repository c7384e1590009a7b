"""Sex restrictions of ICD-10 codes (WHO ICD-10 Vol. 2, 2019), from MedSyn's ``icd_gender_split.json``.

A restriction listed for a category or 4-character code also applies to its sub-codes, so a sampler can check the
code it drew without walking the tree.
"""

from __future__ import annotations

import json

from pyoxigraph import Literal, Quad

from medsyn.errors import InputError
from medsyn.kg.importers._common import ICD10_GRAPH, BuildContext, file_hash, read_text, rel, source_quads
from medsyn.kg.vocab import code_iri, ms, normalize_code

NAME = "sex-restrictions"
FILE = "medsyn/mkg/icd_gender_split.json"
_KEYS = {
    "female": "List of categories limited to, or more likely to occur in, female persons",
    "male": "List of categories limited to, or more likely to occur in, male persons",
}


def load(ctx: BuildContext) -> list[Quad]:
    path = ctx.data / FILE
    try:
        doc = json.loads(read_text(path))
    except json.JSONDecodeError as exc:
        raise InputError(f"invalid JSON ({exc.msg})", path=path, line=exc.lineno) from None
    listed: dict[str, str] = {}
    for sex, key in _KEYS.items():
        codes = doc.get(key) if isinstance(doc, dict) else None
        if not isinstance(codes, list):
            raise InputError(f"field {key!r} missing or not a list", path=path)
        for raw in codes:
            code = normalize_code(str(raw))
            if listed.get(code, sex) != sex:
                raise InputError(f"field {key!r}: code {code} is listed for both sexes", path=path)
            listed[code] = sex
    restricted: dict[str, str] = {}
    for code in ctx.codes:
        sex = listed.get(code) or listed.get(code[:5]) or listed.get(code[:3]) if "-" not in code else None
        if sex and ctx.codes[code].kind in ("category", "subcode"):
            restricted[code] = sex
    ctx.skip(NAME, sum(1 for c in listed if c not in ctx.codes))
    quads = [Quad(code_iri(c), ms("sexRestriction"), Literal(s), ICD10_GRAPH) for c, s in sorted(restricted.items())]
    quads += source_quads(
        NAME,
        label="WHO ICD-10 Vol. 2 (2019) sex-restricted categories",
        files=[rel(path, ctx.data)],
        file_digest=file_hash([path]),
        derived_graphs=(ICD10_GRAPH,),
    )
    return quads
