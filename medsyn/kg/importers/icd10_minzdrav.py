"""The official Russian ICD-10 register (Minzdrav NSI 1.2.643.5.1.13.13.11.1005): hierarchy and Russian titles.

Kinds follow the code's shape: roman numeral = chapter, ``A00-A09`` = block (blocks may nest: ``C00-C75`` under
``C00-C97``), ``A00`` = category, ``A00.0`` / ``S02.00`` = sub-code. Parents come from ``ID_PARENT``.
"""

from __future__ import annotations

import re
from pathlib import Path

from pyoxigraph import Literal, Quad

from medsyn.errors import InputError
from medsyn.kg.importers._common import (
    FALSE,
    ICD10_GRAPH,
    BuildContext,
    CodeInfo,
    file_hash,
    read_table,
    rel,
    source_quads,
    text,
)
from medsyn.kg.vocab import RDF_TYPE, code_iri, is_valid_code, ms, normalize_code, rdfs, skos

NAME = "icd10-minzdrav"
FOLDER = "mkb10_ru_minzdrav"
FIELDS = ["ID", "REC_CODE", "MKB_CODE", "MKB_NAME", "ID_PARENT", "ADDL_CODE", "ACTUAL", "DATE"]
_KINDS = {"chapter": "ICD10Chapter", "block": "ICD10Block", "category": "ICD10Category", "subcode": "ICD10Subcode"}


def code_kind(code: str) -> str:
    """``"chapter"``, ``"block"``, ``"category"`` or ``"subcode"`` from the shape of a canonical code.

    >>> [code_kind(c) for c in ("XIII", "M50-M54", "M54", "M54.5", "S02.00")]
    ['chapter', 'block', 'category', 'subcode', 'subcode']
    """
    if re.fullmatch(r"[IVXL]+", code):
        return "chapter"
    if "-" in code:
        return "block"
    return "subcode" if "." in code else "category"


def register_file(data: Path) -> Path:
    folder = data / FOLDER
    files = sorted(folder.glob("*.csv"))
    if not files:
        raise InputError(f"no register CSV in {folder}", path=folder)
    return files[-1]


def load(ctx: BuildContext) -> list[Quad]:
    path = register_file(ctx.data)
    g = ICD10_GRAPH
    by_id: dict[str, tuple[str, int]] = {}
    rows: list[tuple[int, dict[str, str], str]] = []
    for line, row in read_table(path, delimiter=";", required=FIELDS):
        raw = row["MKB_CODE"]
        code = normalize_code(raw)
        if not is_valid_code(code):
            raise InputError(f"field MKB_CODE: invalid ICD-10 code {raw!r}", path=path, line=line)
        if not row["MKB_NAME"].strip():
            raise InputError(f"field MKB_NAME is empty for code {code}", path=path, line=line)
        rid = row["ID"].strip()
        if rid in by_id:
            raise InputError(
                f"field ID: duplicate record id {rid} (first on line {by_id[rid][1]})", path=path, line=line
            )
        if code in ctx.codes:
            first = next(ln for ln, r, c in rows if c == code)
            raise InputError(f"field MKB_CODE: duplicate code {code} (first on line {first})", path=path, line=line)
        by_id[rid] = (code, line)
        ctx.codes[code] = CodeInfo(code_kind(code), g)
        rows.append((line, row, code))

    quads: list[Quad] = []
    for line, row, code in rows:
        iri = code_iri(code)
        kind = code_kind(code)
        quads += [
            Quad(iri, RDF_TYPE, ms(_KINDS[kind]), g),
            Quad(iri, skos("notation"), Literal(code), g),
            Quad(iri, rdfs("label"), text(row["MKB_NAME"], "ru"), g),
        ]
        if row["ACTUAL"].strip() == "0":
            quads.append(Quad(iri, ms("actual"), FALSE, g))
        parent_id = row["ID_PARENT"].strip()
        if parent_id:
            if parent_id not in by_id:
                raise InputError(f"field ID_PARENT: unknown parent record {parent_id}", path=path, line=line)
            quads.append(Quad(iri, ms("parent"), code_iri(by_id[parent_id][0]), g))
        elif kind != "chapter":
            raise InputError(f"field ID_PARENT: code {code} has no parent", path=path, line=line)
        if kind in ("category", "subcode"):
            quads.append(Quad(iri, ms("category"), code_iri(code[:3]), g))
    quads += source_quads(
        NAME,
        label="Russian ICD-10 register (Minzdrav NSI 1.2.643.5.1.13.13.11.1005)",
        files=[rel(path, ctx.data)],
        file_digest=file_hash([path]),
        derived_graphs=(g,),
    )
    return quads
