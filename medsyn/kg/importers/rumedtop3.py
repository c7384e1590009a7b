"""Real example notes: RuMedTop3 train split (RuMedBench; anonymised RuMedPrime complaints).

Only ``train_v1.jsonl`` enters the graph; dev and test must stay unseen by generation.
``ms:wordCount`` counts whitespace-separated tokens (the paper keeps examples with at least 30).
"""

from __future__ import annotations

import re

from pyoxigraph import Literal, Quad

from medsyn.errors import InputError
from medsyn.kg.importers._common import BuildContext, file_hash, integer, read_jsonl, rel, source_graph, source_quads
from medsyn.kg.vocab import RDF_TYPE, code_iri, example_note_iri, ms, normalize_code, source_iri

NAME = "rumedtop3"
FILE = "rumedbench/RuMedTop3/train_v1.jsonl"
_CATEGORY = re.compile(r"^[A-Z][0-9][0-9A-Z]$")


def load(ctx: BuildContext) -> list[Quad]:
    path = ctx.data / FILE
    g, src = source_graph(NAME), source_iri(NAME)
    quads: list[Quad] = []
    seen: dict[str, int] = {}
    for line, obj in read_jsonl(path):
        for f in ("idx", "symptoms", "code"):
            if not isinstance(obj.get(f), str) or not obj[f].strip():
                raise InputError(f"field {f!r} missing or not a non-empty string", path=path, line=line)
        idx, note, code = obj["idx"].strip(), obj["symptoms"], normalize_code(obj["code"])
        if idx in seen:
            raise InputError(
                f"field 'idx': duplicate note id {idx!r} (first on line {seen[idx]})", path=path, line=line
            )
        seen[idx] = line
        if not _CATEGORY.match(code) or code not in ctx.codes:
            raise InputError(
                f"field 'code': {obj['code']!r} is not a known 3-character ICD-10 category", path=path, line=line
            )
        n = example_note_iri(idx)
        quads += [
            Quad(n, RDF_TYPE, ms("ExampleNote"), g),
            Quad(n, ms("noteId"), Literal(idx), g),
            Quad(n, ms("text"), Literal(note), g),
            Quad(n, ms("code"), code_iri(code), g),
            Quad(n, ms("wordCount"), integer(len(note.split())), g),
            Quad(n, ms("split"), Literal("train"), g),
            Quad(n, ms("source"), src, g),
        ]
    quads += source_quads(
        NAME,
        label="RuMedTop3 train split (RuMedBench)",
        files=[rel(path, ctx.data)],
        file_digest=file_hash([path]),
    )
    return quads
