"""MedSyn's symptom map (WikiMed clinical manifestations + RuMedPrime): {ICD-10 code: [Russian symptom, ...]}.

The paper samples symptoms from this map; it carries no weights, so every link has weight 1.0.
Two keys, ``K29.6.0`` and ``K29.6.1``, are not ICD-10 spellings; they become 5-character sub-codes ``K29.60`` and
``K29.61`` under ``K29.6`` (``ms:sourceNotation`` keeps the original key).
"""

from __future__ import annotations

import json
import re

from pyoxigraph import Quad

from medsyn.errors import InputError
from medsyn.kg.importers._common import BuildContext, file_hash, read_text, rel, source_graph, source_quads
from medsyn.kg.importers._symptoms import SymptomLinks

NAME = "wikimed"
FILE = "medsyn/mkg/rumedtop3_wikimed_symptoms_equipped_with_rumedprime.json"
_DOTTED5 = re.compile(r"^([A-Z][0-9]{2})\.([0-9])\.([0-9])$")


def source_code(key: str) -> str:
    """``K29.6.0`` -> ``K29.60``; other keys unchanged.

    >>> source_code("K29.6.0"), source_code("M54.5")
    ('K29.60', 'M54.5')
    """
    m = _DOTTED5.match(key.strip())
    return f"{m.group(1)}.{m.group(2)}{m.group(3)}" if m else key


def _line_of(body: str, key: str) -> int:
    pos = body.find(json.dumps(key, ensure_ascii=False))
    return body.count("\n", 0, pos) + 1 if pos >= 0 else 1


def load(ctx: BuildContext) -> list[Quad]:
    path = ctx.data / FILE
    body = read_text(path)

    def pairs(items: list[tuple[str, object]]) -> dict[str, object]:
        out: dict[str, object] = {}
        for k, v in items:
            if k in out:
                raise InputError(f"duplicate key {k!r}", path=path, line=_line_of(body, k))
            out[k] = v
        return out

    try:
        doc = json.loads(body, object_pairs_hook=pairs)
    except json.JSONDecodeError as exc:
        raise InputError(f"invalid JSON ({exc.msg}, column {exc.colno})", path=path, line=exc.lineno) from None
    if not isinstance(doc, dict):
        raise InputError("expected a JSON object {code: [symptom, ...]}", path=path, line=1)
    g = source_graph(NAME)
    links = SymptomLinks(NAME, g)
    quads: list[Quad] = []
    for key in sorted(doc, key=lambda k: (len(source_code(k)), k)):
        symptoms = doc[key]
        line = _line_of(body, key)
        if not isinstance(symptoms, list) or not all(isinstance(s, str) for s in symptoms):
            raise InputError(f"code {key!r}: expected a list of strings", path=path, line=line)
        code = source_code(key)
        iri, added = ctx.ensure_code(code, g, source_notation=key, where=(path, line))
        quads += added
        for s in symptoms:
            links.add(code, iri, s, 1.0)
    quads += links.quads()
    quads += source_quads(
        NAME,
        label="MedSyn symptom map (WikiMed clinical manifestations + RuMedPrime)",
        files=[rel(path, ctx.data)],
        file_digest=file_hash([path]),
    )
    return quads
