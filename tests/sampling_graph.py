"""Small knowledge graphs that follow docs/data-model.md, for the sampling tests and benchmark.

``GraphBuilder`` writes exactly the nodes the sampling queries read, minted with ``medsyn.kg.vocab``; ``real_graph``
fills one from the real WikiMed symptom map and RuMedTop3 train notes, so tests see the real category structure
without depending on the full build.
"""

from __future__ import annotations

import json
from pathlib import Path

from pyoxigraph import Literal, NamedNode, Quad

from medsyn.kg.store import OxigraphStore
from medsyn.kg.vocab import (
    ICD10_GRAPH,
    META_GRAPH,
    RDF_TYPE,
    association_iri,
    code_iri,
    drug_iri,
    example_note_iri,
    graph_iri,
    ms,
    normalize_label,
    rdfs,
    side_effect_iri,
    skos,
    source_iri,
    symptom_iri,
    xsd,
)

DOUBLE = xsd("double")
INTEGER = xsd("integer")


def _d(x: float) -> Literal:
    return Literal(repr(float(x)), datatype=DOUBLE)


def _i(x: int) -> Literal:
    return Literal(str(int(x)), datatype=INTEGER)


class GraphBuilder:
    """Collects quads in the data model's named graphs; ``into(store)`` inserts them in one transaction."""

    def __init__(self) -> None:
        self.quads: list[Quad] = []
        self._codes: set[str] = set()

    def _q(self, s: NamedNode, p: NamedNode, o: NamedNode | Literal, g: NamedNode) -> None:
        self.quads.append(Quad(s, p, o, g))

    def code(self, notation: str, *, label: str | None = None, sex: str | None = None) -> NamedNode:
        """A category (``M54``) or sub-code (``M54.5``) with its category link."""
        iri = code_iri(notation)
        if notation in self._codes:
            return iri
        self._codes.add(notation)
        cat = notation[:3]
        kind = "ICD10Category" if notation == cat else "ICD10Subcode"
        if notation != cat:
            self.code(cat)
            self._q(iri, ms("parent"), code_iri(cat), ICD10_GRAPH)
        self._q(iri, RDF_TYPE, ms(kind), ICD10_GRAPH)
        self._q(iri, skos("notation"), Literal(notation), ICD10_GRAPH)
        self._q(iri, ms("category"), code_iri(cat), ICD10_GRAPH)
        if label:
            self._q(iri, rdfs("label"), Literal(label, language="ru"), ICD10_GRAPH)
        if sex:
            self._q(iri, ms("sexRestriction"), Literal(sex), graph_iri("source", "sex-restrictions"))
        return iri

    def symptom(self, code: str, label: str, *, source: str = "wikimed", weight: float = 1.0, lang: str = "ru") -> None:
        self.code(code)
        g = graph_iri("source", source)
        s = symptom_iri(label)
        a = association_iri("symptom", code, normalize_label(label), source)
        self._q(s, RDF_TYPE, ms("Symptom"), g)
        self._q(s, rdfs("label"), Literal(label, language=lang), g)
        self._q(a, RDF_TYPE, ms("SymptomAssociation"), g)
        self._q(a, ms("disease"), code_iri(code), g)
        self._q(a, ms("symptom"), s, g)
        self._q(a, ms("weight"), _d(weight), g)
        self._q(a, ms("normalizedWeight"), _d(1.0), g)
        self._q(a, ms("source"), source_iri(source), g)

    def note(self, note_id: str, category: str, *, words: int, text: str | None = None) -> None:
        self.code(category)
        g = graph_iri("source", "rumedtop3")
        n = example_note_iri(note_id)
        body = text if text is not None else " ".join(f"w{i}" for i in range(words))
        self._q(n, RDF_TYPE, ms("ExampleNote"), g)
        self._q(n, ms("noteId"), Literal(note_id), g)
        self._q(n, ms("text"), Literal(body), g)
        self._q(n, ms("code"), code_iri(category), g)
        self._q(n, ms("wordCount"), _i(words), g)
        self._q(n, ms("split"), Literal("train"), g)
        self._q(n, ms("source"), source_iri("rumedtop3"), g)

    def drug(self, drugbank_id: str, name: str, disease: str, *, kind: str = "DM") -> None:
        g = graph_iri("source", "pharmacotherapydb")
        d = drug_iri(drugbank_id)
        a = association_iri("indication", drugbank_id, disease)
        self._q(d, RDF_TYPE, ms("Drug"), g)
        self._q(d, rdfs("label"), Literal(name, language="en"), g)
        self._q(a, RDF_TYPE, ms("Indication"), g)
        self._q(a, ms("drug"), d, g)
        self._q(a, ms("disease"), code_iri(disease), g)
        self._q(a, ms("indicationCategory"), Literal(kind), g)

    def side_effect(self, drugbank_id: str, cui: str, name: str, frequency: float) -> None:
        g = graph_iri("source", "sider4")
        se = side_effect_iri(cui)
        a = association_iri("side-effect", drugbank_id, cui)
        self._q(se, RDF_TYPE, ms("SideEffect"), g)
        self._q(se, rdfs("label"), Literal(name, language="en"), g)
        self._q(a, RDF_TYPE, ms("SideEffectAssociation"), g)
        self._q(a, ms("drug"), drug_iri(drugbank_id), g)
        self._q(a, ms("sideEffect"), se, g)
        self._q(a, ms("frequency"), _d(frequency), g)

    def version(self, content_hash: str) -> None:
        b = NamedNode("https://w3id.org/medsyn/id/build/test")
        self._q(b, RDF_TYPE, ms("KnowledgeGraphBuild"), META_GRAPH)
        self._q(b, ms("contentHash"), Literal(content_hash), META_GRAPH)

    def into(self, store: OxigraphStore) -> OxigraphStore:
        store.add_quads(self.quads)
        return store

    def store(self) -> OxigraphStore:
        return self.into(OxigraphStore.in_memory())


def real_graph(data: Path, *, version: str | None = "real-test") -> GraphBuilder:
    """WikiMed symptoms (258 codes, 105 categories) and the 4,690 RuMedTop3 train notes as data-model triples."""
    b = GraphBuilder()
    symptoms = json.loads((data / "medsyn/mkg/rumedtop3_wikimed_symptoms_equipped_with_rumedprime.json").read_text())
    for key, labels in sorted(symptoms.items()):
        code = key if key.count(".") < 2 else key[:5] + key[6:]  # K29.6.0 -> K29.60, as the wikimed importer
        for label in labels:
            b.symptom(code, label)
    with (data / "rumedbench/RuMedTop3/train_v1.jsonl").open(encoding="utf-8") as fh:
        for line in fh:
            row = json.loads(line)
            b.note(row["idx"], row["code"], words=len(row["symptoms"].split()), text=row["symptoms"])
    if version:
        b.version(version)
    return b
