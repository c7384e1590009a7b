"""Namespaces, named graphs and the minting of stable IRIs.

IRIs are a pure function of codes and normalised labels, so the same input always builds the same triple set.

>>> str(symptom_iri("  Головная   БОЛЬ ")) == str(symptom_iri("головная боль"))
True
>>> graph_iri("source", "hsdn").value
'https://w3id.org/medsyn/graph/source/hsdn'
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from urllib.parse import quote

from pyoxigraph import NamedNode

BASE = "https://w3id.org/medsyn/"
MS = BASE + "ontology#"
ID = BASE + "id/"
GRAPH = BASE + "graph/"

RDF = "http://www.w3.org/1999/02/22-rdf-syntax-ns#"
RDFS = "http://www.w3.org/2000/01/rdf-schema#"
OWL = "http://www.w3.org/2002/07/owl#"
XSD = "http://www.w3.org/2001/XMLSchema#"
SKOS = "http://www.w3.org/2004/02/skos/core#"
PROV = "http://www.w3.org/ns/prov#"
DCTERMS = "http://purl.org/dc/terms/"

PREFIXES = {
    "ms": MS,
    "msid": ID,
    "rdf": RDF,
    "rdfs": RDFS,
    "owl": OWL,
    "xsd": XSD,
    "skos": SKOS,
    "prov": PROV,
    "dcterms": DCTERMS,
}


def ms(local: str) -> NamedNode:
    """A term of the MedSyn ontology, e.g. ``ms("Symptom")``."""
    return NamedNode(MS + local)


def rdf(local: str) -> NamedNode:
    return NamedNode(RDF + local)


def rdfs(local: str) -> NamedNode:
    return NamedNode(RDFS + local)


def skos(local: str) -> NamedNode:
    return NamedNode(SKOS + local)


def prov(local: str) -> NamedNode:
    return NamedNode(PROV + local)


def xsd(local: str) -> NamedNode:
    return NamedNode(XSD + local)


RDF_TYPE = rdf("type")

# Named graphs: the TBox, the ICD-10 hierarchy, one per knowledge source, build metadata, curation, one per run.
ONTOLOGY_GRAPH = NamedNode(GRAPH + "ontology")
ICD10_GRAPH = NamedNode(GRAPH + "icd10")
META_GRAPH = NamedNode(GRAPH + "meta")
CURATION_GRAPH = NamedNode(GRAPH + "curation")


def graph_iri(kind: str, name: str) -> NamedNode:
    """A named graph, e.g. ``graph_iri("source", "hsdn")`` or ``graph_iri("run", run_id)``."""
    return NamedNode(f"{GRAPH}{kind}/{_segment(name)}")


_CODE_RE = re.compile(r"^[A-Z][0-9][0-9A-Z](\.[0-9A-Z]{1,2})?$|^[A-Z][0-9]{2}-[A-Z][0-9]{2}$|^[IVXL]+$")


def normalize_code(code: str) -> str:
    """Canonical ICD-10 spelling: upper case, no spaces, Latin letters, trailing '.' dropped."""
    c = code.strip().upper().replace(" ", "")
    # Russian registers sometimes type Cyrillic look-alikes of Latin code letters.
    c = c.translate(str.maketrans("АВСЕНКМОРТХ", "ABCEHKMOPTX"))
    return c.rstrip(".")


def is_valid_code(code: str) -> bool:
    """True for chapters (roman), blocks (A00-A09), categories (A00) and sub-codes (A00.1, M54.16)."""
    return bool(_CODE_RE.match(code))


def code_iri(code: str) -> NamedNode:
    """IRI of an ICD-10 chapter, block, category or sub-code."""
    return NamedNode(ID + "icd10/" + _segment(normalize_code(code)))


def normalize_label(label: str) -> str:
    """Label normal form used for identity: NFKC, lower case, 'ё'->'е', single spaces, no edge punctuation."""
    s = unicodedata.normalize("NFKC", label).lower().replace("ё", "е")
    s = re.sub(r"\s+", " ", s)
    return s.strip(" \t.,;:!?-–—\"'«»()")


def _hash(text: str, n: int = 16) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:n]


def symptom_iri(label: str) -> NamedNode:
    """Symptoms are identified by their normalised label (any language)."""
    return NamedNode(ID + "symptom/" + _hash(normalize_label(label)))


def drug_iri(drugbank_id: str) -> NamedNode:
    return NamedNode(ID + "drug/" + _segment(drugbank_id.strip()))


def side_effect_iri(umls_cui: str) -> NamedNode:
    return NamedNode(ID + "side-effect/" + _segment(umls_cui.strip()))


def source_iri(name: str) -> NamedNode:
    return NamedNode(ID + "source/" + _segment(name))


def example_note_iri(note_id: str) -> NamedNode:
    return NamedNode(ID + "note/real/" + _segment(note_id))


def association_iri(kind: str, *parts: str) -> NamedNode:
    """An n-ary association node, stable for the same (kind, parts), e.g. ``("symptom", code, label, src)``."""
    return NamedNode(ID + f"assoc/{kind}/" + _hash("\x1f".join(parts), 24))


def synthetic_note_iri(note_id: str) -> NamedNode:
    return NamedNode(ID + "note/synthetic/" + _segment(note_id))


def run_iri(run_id: str) -> NamedNode:
    return NamedNode(ID + "run/" + _segment(run_id))


def build_iri(version: str) -> NamedNode:
    """The graph build a graph version names: ``id/build/<first 16 hex of the build hash>`` (the node ``kg build``
    records in graph/meta); a curated version ``<hash>+curated:<n>:<digest>`` is a revision of that build,
    ``id/build/<16 hex>/curated/<n>-<digest>``.

    >>> build_iri("sha256:0123456789abcdef0123").value.rsplit("/", 1)[-1]
    '0123456789abcdef'
    >>> build_iri("sha256:0123456789abcdef+curated:2:ff").value.split("/id/")[1]
    'build/0123456789abcdef/curated/2-ff'
    """
    base, _, curated = version.partition("+curated:")
    node = ID + "build/" + _segment(base.removeprefix("sha256:")[:16])
    if curated:
        node += "/curated/" + _segment(curated.replace(":", "-"))
    return NamedNode(node)


def _segment(text: str) -> str:
    return quote(text, safe="-._~")


def is_knowledge_graph(g: NamedNode) -> bool:
    """Graphs a restore replaces: everything but run provenance and the curation record."""
    return not g.value.startswith(GRAPH + "run/") and g != CURATION_GRAPH
