"""Shared pieces of the importers: term helpers, file reading with file:line errors, the build context.

Importers never touch a store: each returns a list of quads, so a failing source cannot leave a half-written graph.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pyoxigraph import Literal, NamedNode, Quad

from medsyn import jsonl
from medsyn.errors import InputError
from medsyn.kg.vocab import (
    DCTERMS,
    ICD10_GRAPH,
    RDF_TYPE,
    code_iri,
    graph_iri,
    is_valid_code,
    ms,
    normalize_code,
    prov,
    rdfs,
    skos,
    source_iri,
    xsd,
)

XSD_DOUBLE = xsd("double")
XSD_INTEGER = xsd("integer")
XSD_BOOLEAN = xsd("boolean")
TRUE = Literal("true", datatype=XSD_BOOLEAN)
FALSE = Literal("false", datatype=XSD_BOOLEAN)

# csv's default field limit (128 KiB) is below some main_proc.csv description cells.
csv.field_size_limit(64 * 1024 * 1024)


def double(value: float) -> Literal:
    """An ``xsd:double`` with a fixed lexical form (``repr``), so the same number always gives the same triple."""
    return Literal(repr(float(value)), datatype=XSD_DOUBLE)


def integer(value: int) -> Literal:
    return Literal(str(int(value)), datatype=XSD_INTEGER)


def text(value: str, lang: str | None = None) -> Literal:
    """A literal with whitespace collapsed (source files mix tabs, double spaces and trailing blanks)."""
    clean = " ".join(value.split())
    return Literal(clean, language=lang) if lang else Literal(clean)


def source_graph(name: str) -> NamedNode:
    return graph_iri("source", name)


# ------------------------------------------------------------------------------------------------ file reading


def rel(path: Path, data: Path) -> str:
    """Path of a data file relative to the data folder, as recorded in ``ms:sourceFile``."""
    try:
        return path.relative_to(data).as_posix()
    except ValueError:
        return path.as_posix()


def require_file(path: Path) -> Path:
    if not path.is_file():
        raise InputError("source file not found", path=path)
    return path


def read_text(path: Path) -> str:
    """UTF-8 text (gzip-transparent); a decoding error names the file and line."""
    raw = require_file(path).read_bytes()
    if path.suffix == ".gz":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError) as exc:
            raise InputError(f"not a valid gzip file ({exc})", path=path) from None
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        bad = raw[exc.start : exc.start + 1]
        raise InputError(f"not UTF-8 text (byte {exc.start}: {bad!r})", path=path, line=line) from None


def read_table(
    path: Path, *, delimiter: str, required: list[str], header: bool = True, columns: int | None = None
) -> Iterator[tuple[int, dict[str, str]]]:
    """Rows of a CSV/TSV file as ``(line number, {column: value})``.

    A missing header field or a row with the wrong number of cells raises InputError naming ``file:line``.
    Files without a header pass ``header=False`` and the column names in ``required``.
    """
    body = read_text(path)
    reader = csv.reader(io.StringIO(body, newline=""), delimiter=delimiter)
    if header:
        try:
            names = next(reader)
        except StopIteration:
            raise InputError("empty file, expected a header line", path=path, line=1) from None
        missing = [c for c in required if c not in names]
        if missing:
            raise InputError(f"header lacks field(s) {', '.join(missing)}", path=path, line=1)
    else:
        names = required
    width = columns or len(names)
    for row in reader:
        line = reader.line_num
        if not row or (len(row) == 1 and not row[0].strip()):
            continue
        if len(row) != width:
            raise InputError(f"expected {width} fields, found {len(row)}", path=path, line=line)
        yield line, dict(zip(names, row, strict=True))


def read_jsonl(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """A source's JSONL lines (see :func:`medsyn.jsonl.read_jsonl`); a missing file is a missing source."""
    return jsonl.read_jsonl(require_file(path))


def file_hash(paths: list[Path]) -> str:
    h = hashlib.sha256()
    for p in sorted(paths):
        h.update(p.name.encode("utf-8") + b"\0")
        h.update(p.read_bytes())
    return "sha256:" + h.hexdigest()


# ------------------------------------------------------------------------------------------------ knowledge sources


def source_quads(
    name: str,
    *,
    label: str,
    files: list[str],
    file_digest: str,
    derived_graphs: tuple[NamedNode, ...] = (),
) -> list[Quad]:
    """The ``ms:KnowledgeSource`` node of a source, in the source's own graph, with the licence and non-commercial
    flag its registry line declares (:class:`medsyn.kg.importers.SourceSpec`)."""
    from medsyn.kg.importers.registry import source_spec

    spec = source_spec(name)
    license, non_commercial = spec.license, spec.non_commercial
    s, g = source_iri(name), source_graph(name)
    quads = [
        Quad(s, RDF_TYPE, ms("KnowledgeSource"), g),
        Quad(s, rdfs("label"), Literal(label), g),
        Quad(s, NamedNode(DCTERMS + "license"), Literal(license), g),
        Quad(s, ms("fileHash"), Literal(file_digest), g),
        Quad(s, ms("nonCommercial"), TRUE if non_commercial else FALSE, g),
    ]
    quads += [Quad(s, ms("sourceFile"), Literal(f), g) for f in files]
    # Hierarchy facts share graph/icd10; this records which sources that graph was derived from.
    quads += [Quad(dg, prov("wasDerivedFrom"), s, g) for dg in derived_graphs]
    return quads


# ------------------------------------------------------------------------------------------------ the ICD-10 code set


@dataclass
class CodeInfo:
    kind: str  # "chapter" | "block" | "category" | "subcode"
    graph: NamedNode


@dataclass
class BuildContext:
    """What importers share within one build: the data folder and the ICD-10 codes defined so far.

    Codes are added by the hierarchy importers first; later sources may add codes the register lacks
    (see :meth:`ensure_code`).
    """

    data: Path
    codes: dict[str, CodeInfo] = field(default_factory=dict)
    skipped: dict[str, int] = field(default_factory=dict)
    notes: dict[str, list[str]] = field(default_factory=dict)

    def skip(self, source: str, n: int = 1) -> None:
        """Count facts a source had to drop (e.g. a drug's disease with no ICD-10 mapping)."""
        self.skipped[source] = self.skipped.get(source, 0) + n

    def ensure_code(
        self,
        code: str,
        graph: NamedNode,
        *,
        labels: tuple[tuple[str, str], ...] = (),
        source_notation: str | None = None,
        where: tuple[Path, int] | None = None,
    ) -> tuple[NamedNode, list[Quad]]:
        """IRI of a sub-code, adding it (in ``graph``) when the hierarchy lacks it.

        A missing sub-code hangs under its 4-character parent when that exists, else under its 3-character
        category; a code whose category is unknown is an input error (nothing could anchor it in the tree).
        ``labels`` are ``(text, lang)`` pairs given by the source, asserted only on codes the source adds.
        """
        c = normalize_code(code)
        if not is_valid_code(c):
            p, line = where if where else (None, None)
            raise InputError(f"invalid ICD-10 code {code!r}", path=p, line=line)
        iri = code_iri(c)
        if c in self.codes:
            return iri, []
        cat = c[:3]
        if cat not in self.codes or self.codes[cat].kind != "category" or "." not in c:
            p, line = where if where else (None, None)
            raise InputError(
                f"ICD-10 code {code!r} is not in the register and has no known category", path=p, line=line
            )
        parent = c[:5] if len(c) == 6 and c[:5] in self.codes else cat
        quads = [
            Quad(iri, RDF_TYPE, ms("ICD10Subcode"), graph),
            Quad(iri, skos("notation"), Literal(c), graph),
            Quad(iri, ms("parent"), code_iri(parent), graph),
            Quad(iri, ms("category"), code_iri(cat), graph),
            Quad(iri, ms("inRegister"), FALSE, graph),
        ]
        if source_notation and source_notation != c:
            quads.append(Quad(iri, ms("sourceNotation"), Literal(source_notation), graph))
        quads += [Quad(iri, rdfs("label"), text(t, lang), graph) for t, lang in labels if t.strip()]
        self.codes[c] = CodeInfo("subcode", graph)
        return iri, quads


__all__ = [
    "FALSE",
    "ICD10_GRAPH",
    "TRUE",
    "BuildContext",
    "CodeInfo",
    "double",
    "file_hash",
    "integer",
    "read_jsonl",
    "read_table",
    "read_text",
    "rel",
    "require_file",
    "source_graph",
    "source_quads",
    "text",
]
