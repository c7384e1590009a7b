"""OWL round trip: export the TBox and ICD-10 hierarchy as one RDF/XML ontology, import an edited one back.

The one OWL export (``medsyn kg export -f owl`` and ``medsyn onto export-owl`` both write :func:`owl_bytes`) opens
in Protégé and owlready2: one document, the TBox's ontology header, annotation-property declarations for the
SKOS/PROV/DC terms the data uses (OWL tools otherwise guess their kind), and every ICD-10 code of the graph, including
the sub-codes knowledge sources add in their own graphs. Symptoms and their associations can be added for browsing
(``with_symptoms``); import takes back only the TBox and the hierarchy, because symptom links belong to
knowledge-source graphs and change through ``onto add-symptom`` and friends.

Import replaces ``graph/ontology`` and ``graph/icd10`` in one update, after validating the changed nodes, and
drops what OWL editors add on save but the data model does not use (``owl:NamedIndividual`` declarations and the
export's own property declarations).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from pyoxigraph import BlankNode, DefaultGraph, NamedNode, Quad, Triple

from medsyn.atomic import atomic_write_bytes
from medsyn.curation.changeset import Candidate
from medsyn.curation.edits import Plan, activity_quads, commit, curator_name
from medsyn.errors import InputError, ValidationError
from medsyn.kg.queries import run_named
from medsyn.kg.store import FORMATS, OxigraphStore, Store, quads_to_sparql_data
from medsyn.kg.vocab import DCTERMS, ICD10_GRAPH, ID, MS, ONTOLOGY_GRAPH, OWL, PROV, RDF_TYPE, SKOS

ONTOLOGY_IRI = NamedNode(MS.rstrip("#"))
NAMED_INDIVIDUAL = NamedNode(OWL + "NamedIndividual")
ANNOTATION_PROPERTY = NamedNode(OWL + "AnnotationProperty")
# Properties the data uses without the TBox declaring them; declared in the export only.
EXTERNAL_ANNOTATIONS = [
    NamedNode(SKOS + "notation"),
    NamedNode(SKOS + "altLabel"),
    NamedNode(DCTERMS + "license"),
    NamedNode(PROV + "wasDerivedFrom"),
]


def owl_bytes(store: Store, *, with_symptoms: bool = False) -> tuple[bytes, int]:
    """The ontology, every ICD-10 code (+ symptoms when asked) as RDF/XML, and its number of triples."""
    doc = OxigraphStore.in_memory()
    data = store.dump(format="nt", graph=ONTOLOGY_GRAPH) if ONTOLOGY_GRAPH in store.named_graphs() else b""
    if data:
        doc.load(data, format="nt")
    doc.add_quads(Quad(r["code"], r["p"], r["o"], DefaultGraph()) for r in run_named(store, "owl/codes"))
    if with_symptoms:
        doc.add_quads(Quad(t.subject, t.predicate, t.object, DefaultGraph()) for t in run_named(store, "owl/symptoms"))
    if not any(True for _ in doc.raw.quads_for_pattern(ONTOLOGY_IRI, RDF_TYPE, NamedNode(OWL + "Ontology"), None)):
        raise ValidationError("the store has no ontology header (graph/ontology is empty); build the graph first")
    doc.add_quads(Quad(p, RDF_TYPE, ANNOTATION_PROPERTY, DefaultGraph()) for p in EXTERNAL_ANNOTATIONS)
    return doc.dump(format="owl"), len(doc)


def export_owl(store: Store, out: str | Path, *, with_symptoms: bool = False) -> int:
    """Write :func:`owl_bytes` to ``out`` atomically; returns the number of triples."""
    data, n = owl_bytes(store, with_symptoms=with_symptoms)
    atomic_write_bytes(out, data)
    return n


@dataclass(frozen=True)
class ImportResult:
    added: int
    removed: int
    ignored: int
    committed: bool


def import_owl(store: Store, path: str | Path, *, by: str | None = None, dry_run: bool = False) -> ImportResult:
    """Replace the TBox and the ICD-10 hierarchy with those of an (edited) OWL file, validated, in one update."""
    p = Path(path)
    if not p.is_file():
        raise InputError("OWL file not found", path=p)
    fmt = p.suffix.lower().lstrip(".")
    if fmt not in FORMATS:
        raise InputError(f"cannot tell the RDF format from the suffix .{fmt}", path=p)
    doc = OxigraphStore.in_memory()
    doc.load(p, format=fmt)
    tbox: list[Quad] = []
    icd: list[Quad] = []
    ignored = 0
    declared_here = set(EXTERNAL_ANNOTATIONS)
    for q in doc.raw.quads_for_pattern(None, None, None, None):
        s = q.subject
        if q.predicate == RDF_TYPE and (
            q.object == NAMED_INDIVIDUAL or (q.object == ANNOTATION_PROPERTY and s in declared_here)
        ):
            continue
        if isinstance(s, NamedNode) and s.value.startswith(ID + "icd10/"):
            icd.append(Quad(s, q.predicate, q.object, ICD10_GRAPH))
        elif isinstance(s, BlankNode) or (isinstance(s, NamedNode) and not s.value.startswith(ID)):
            tbox.append(Quad(s, q.predicate, q.object, ONTOLOGY_GRAPH))
        else:
            ignored += 1  # symptoms, associations, sources: edited through the curation commands
    if not any(q.subject == ONTOLOGY_IRI and q.object == NamedNode(OWL + "Ontology") for q in tbox):
        raise ValidationError(f"{p.name} is not a MedSyn ontology export: no <{ONTOLOGY_IRI.value}> owl:Ontology")
    if not icd:
        raise ValidationError(f"{p.name} holds no ICD-10 codes; export with `medsyn onto export-owl` first")
    c = Candidate(store, [])
    # Codes a knowledge source added live in that source's graph (the export includes them): their triples stay
    # there and are not copied into graph/icd10.
    elsewhere = {Triple(r["code"], r["p"], r["o"]) for r in run_named(store, "owl/codes") if r["g"] != ICD10_GRAPH}
    icd = [q for q in icd if q.triple not in elsewhere]
    have_icd = set(c.after.raw.quads_for_pattern(None, None, None, ICD10_GRAPH))
    c.remove(have_icd - set(icd))
    c.add(set(icd) - have_icd)
    # The TBox has blank nodes (OWL lists): it is replaced whole, and validated as a whole via the copy.
    have_tbox = list(c.after.raw.quads_for_pattern(None, None, None, ONTOLOGY_GRAPH))
    tbox_changed = _shape(have_tbox) != _shape(tbox)
    plan = Plan("import-owl", "", c, used={ONTOLOGY_GRAPH, ICD10_GRAPH})
    digest = hashlib.sha256(p.read_bytes()).hexdigest()[:16]
    icd_added, icd_removed = c.added, c.removed
    if tbox_changed:
        c.after.raw.remove_graph(ONTOLOGY_GRAPH)
        c.after.add_quads(tbox)
    if not icd_added and not icd_removed and not tbox_changed:
        return ImportResult(0, 0, ignored, committed=False)
    plan.description = (
        f"import OWL file {p.name} (sha256 {digest}): ICD-10 +{len(icd_added)} -{len(icd_removed)} triples"
        + (", ontology replaced" if tbox_changed else ", ontology unchanged")
    )
    added = [*icd_added, *(tbox if tbox_changed else [])]
    removed = [*icd_removed, *(have_tbox if tbox_changed else [])]
    record = activity_quads(plan, curator_name(by), ended=datetime.now(UTC), added=added, removed=removed)
    c.add(record)
    c.validate()
    if not dry_run:
        if tbox_changed:
            # DROP + INSERT: blank nodes cannot be named in DELETE DATA; one request keeps it one transaction.
            ops = [f"DROP SILENT GRAPH {ONTOLOGY_GRAPH}"]
            if icd_removed:
                ops.append("DELETE DATA {\n" + quads_to_sparql_data(icd_removed) + "\n}")
            ops.append("INSERT DATA {\n" + quads_to_sparql_data([*icd_added, *tbox, *record]) + "\n}")
            store.update(" ;\n".join(ops))
        else:
            commit(store, removed=icd_removed, added=[*icd_added, *record])
    return ImportResult(len(added), len(removed), ignored, committed=not dry_run)


def _shape(quads: list[Quad]) -> list[str]:
    def t(term: object) -> str:
        return "_:" if isinstance(term, BlankNode) else str(term)

    return sorted(f"{t(q.subject)} {q.predicate} {t(q.object)}" for q in quads)


__all__ = ["ImportResult", "export_owl", "import_owl", "owl_bytes"]
