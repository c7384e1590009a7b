"""A small knowledge graph and one generation run, written exactly as docs/data-model.md lays them out.

Used by the curation, diff and audit tests until (and besides) the real built graph: small enough to reason
about every triple, with the real data's quirks (near-duplicate symptom strings, a code without symptoms).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from pyoxigraph import Literal, NamedNode, Quad

from medsyn.kg.store import OxigraphStore
from medsyn.kg.vocab import (
    ICD10_GRAPH,
    ID,
    META_GRAPH,
    ONTOLOGY_GRAPH,
    RDF_TYPE,
    association_iri,
    code_iri,
    example_note_iri,
    graph_iri,
    ms,
    normalize_label,
    prov,
    rdfs,
    run_iri,
    skos,
    source_iri,
    symptom_iri,
    synthetic_note_iri,
    xsd,
)
from medsyn.paths import ONTOLOGY_DIR

CODES = {
    # code: (kind, parent, category, ru label)
    "XIII": ("ICD10Chapter", None, None, "Болезни костно-мышечной системы"),
    "M50-M54": ("ICD10Block", "XIII", None, "Другие дорсопатии"),
    "M54": ("ICD10Category", "M50-M54", "M54", "Дорсалгия"),
    "M54.4": ("ICD10Subcode", "M54", "M54", "Люмбаго с ишиасом"),
    "M54.5": ("ICD10Subcode", "M54", "M54", "Боль внизу спины"),
    "VI": ("ICD10Chapter", None, None, "Болезни нервной системы"),
    "G40-G47": ("ICD10Block", "VI", None, "Эпизодические и пароксизмальные расстройства"),
    "G43": ("ICD10Category", "G40-G47", "G43", "Мигрень"),
    "G43.0": ("ICD10Subcode", "G43", "G43", "Мигрень без ауры"),
    "XVIII": ("ICD10Chapter", None, None, "Симптомы и признаки"),
    "R50-R69": ("ICD10Block", "XVIII", None, "Общие симптомы и признаки"),
    "R51": ("ICD10Category", "R50-R69", "R51", "Головная боль"),
}

# (source, code, symptom label, weight)
LINKS = [
    ("wikimed", "M54.5", "боль в пояснице", 1.0),
    ("wikimed", "M54.5", "Боли в пояснице", 1.0),
    ("wikimed", "M54.4", "боль в пояснице", 1.0),
    ("wikimed", "M54.4", "онемение ноги", 1.0),
    ("wikimed", "G43.0", "головная боль", 1.0),
    ("wikimed", "G43.0", "тошнота", 1.0),
    ("wikimed", "G43.0", "светобоязнь", 1.0),
    ("wikimed", "G43", "головные боли", 1.0),
    ("hsdn", "G43.0", "головная боль", 3.5),
    ("hsdn", "G43.0", "тошнота", 1.2),
]

EXAMPLES = [("q1", "M54", "Боль в пояснице после подъёма тяжести."), ("q2", "G43", "Приступы головной боли.")]
EXAMPLES += [("q3", "R51", "Головная боль по вечерам.")]

RUN_ID = "run-test-1"
NOTES = [
    # note id, code sampled, symptoms, example id, response
    ("n1", "M54.5", ["боль в пояснице", "Боли в пояснице"], "q1", "Жалобы на боль в пояснице, усиливается к вечеру."),
    ("n2", "G43.0", ["головная боль", "тошнота"], "q2", "Жалобы на головную боль и тошноту."),
    ("n3", "G43.0", ["светобоязнь"], "q2", "Беспокоит светобоязнь во время приступа."),
]


def double(v: float) -> Literal:
    return Literal(repr(float(v)), datatype=xsd("double"))


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def kg_quads() -> list[Quad]:
    """The knowledge graphs: hierarchy, three sources with their declarations, example notes, build metadata."""
    q: list[Quad] = []
    for code, (kind, parent, category, label) in CODES.items():
        c = code_iri(code)
        q += [
            Quad(c, RDF_TYPE, ms(kind), ICD10_GRAPH),
            Quad(c, skos("notation"), Literal(code), ICD10_GRAPH),
            Quad(c, rdfs("label"), Literal(label, language="ru"), ICD10_GRAPH),
        ]
        if parent:
            q.append(Quad(c, ms("parent"), code_iri(parent), ICD10_GRAPH))
        if category:
            q.append(Quad(c, ms("category"), code_iri(category), ICD10_GRAPH))
    labels = {"icd10-minzdrav": "МКБ-10 Минздрав", "wikimed": "WikiMed symptom map", "hsdn": "HSDN"}
    labels["rumedtop3"] = "RuMedTop3 train"
    for name, label in labels.items():
        g, s = graph_iri("source", name), source_iri(name)
        q += [
            Quad(s, RDF_TYPE, ms("KnowledgeSource"), g),
            Quad(s, rdfs("label"), Literal(label), g),
            Quad(s, ms("nonCommercial"), Literal("false", datatype=xsd("boolean")), g),
        ]
    q.append(
        Quad(ICD10_GRAPH, prov("wasDerivedFrom"), source_iri("icd10-minzdrav"), graph_iri("source", "icd10-minzdrav"))
    )
    top: dict[tuple[str, str], float] = {}
    for src, code, _, w in LINKS:
        top[(src, code)] = max(top.get((src, code), 0.0), w)
    for src, code, label, w in LINKS:
        g, sym = graph_iri("source", src), symptom_iri(label)
        a = association_iri("symptom", code, normalize_label(label), src)
        q += [
            Quad(sym, RDF_TYPE, ms("Symptom"), g),
            Quad(sym, rdfs("label"), Literal(label, language="ru"), g),
            Quad(a, RDF_TYPE, ms("SymptomAssociation"), g),
            Quad(a, ms("disease"), code_iri(code), g),
            Quad(a, ms("symptom"), sym, g),
            Quad(a, ms("weight"), double(w), g),
            Quad(a, ms("normalizedWeight"), double(w / top[(src, code)]), g),
            Quad(a, ms("source"), source_iri(src), g),
        ]
    g = graph_iri("source", "rumedtop3")
    for nid, code, text in EXAMPLES:
        n = example_note_iri(nid)
        q += [
            Quad(n, RDF_TYPE, ms("ExampleNote"), g),
            Quad(n, ms("noteId"), Literal(nid), g),
            Quad(n, ms("text"), Literal(text), g),
            Quad(n, ms("code"), code_iri(code), g),
            Quad(n, ms("split"), Literal("train"), g),
            Quad(n, ms("source"), source_iri("rumedtop3"), g),
        ]
    build = NamedNode(ID + "build/test")
    q += [
        Quad(build, RDF_TYPE, ms("KnowledgeGraphBuild"), META_GRAPH),
        Quad(build, ms("contentHash"), Literal("sha256:graph-v1"), META_GRAPH),
    ]
    return q


def run_quads(run_id: str = RUN_ID, notes: list[tuple[str, str, list[str], str, str]] = NOTES) -> list[Quad]:
    """The provenance graph of one run, as the generation engine writes it."""
    g, run = graph_iri("run", run_id), run_iri(run_id)
    agent = NamedNode(ID + "agent/" + sha256("openai\x1fgpt-4\x1f")[:16])
    template = NamedNode(ID + "template/" + sha256("template")[:16])
    t0, t1 = "2024-05-01T10:00:00Z", "2024-05-01T10:05:00Z"
    dt = xsd("dateTime")
    q = [
        Quad(run, RDF_TYPE, ms("GenerationRun"), g),
        Quad(run, RDF_TYPE, prov("Activity"), g),
        Quad(run, prov("startedAtTime"), Literal(t0, datatype=dt), g),
        Quad(run, prov("endedAtTime"), Literal(t1, datatype=dt), g),
        Quad(run, ms("seed"), Literal("42", datatype=xsd("integer")), g),
        Quad(run, ms("parameters"), Literal('{"n": 3}'), g),
        Quad(run, prov("wasAssociatedWith"), agent, g),
        Quad(run, ms("graphVersion"), Literal("sha256:graph-v1"), g),
        Quad(run, ms("costUsd"), double(0.12), g),
        Quad(agent, RDF_TYPE, ms("ModelAgent"), g),
        Quad(agent, RDF_TYPE, prov("SoftwareAgent"), g),
        Quad(agent, ms("backend"), Literal("openai"), g),
        Quad(agent, ms("modelName"), Literal("gpt-4"), g),
        Quad(template, RDF_TYPE, ms("PromptTemplate"), g),
        Quad(template, RDF_TYPE, prov("Plan"), g),
        Quad(template, rdfs("label"), Literal("paper_ru"), g),
        Quad(template, ms("contentHash"), Literal(sha256("template")), g),
    ]
    for i, (nid, code, symptoms, example, text) in enumerate(notes):
        note, gen = synthetic_note_iri(nid), NamedNode(ID + "generation/" + nid)
        q += [
            Quad(note, RDF_TYPE, ms("SyntheticNote"), g),
            Quad(note, RDF_TYPE, prov("Entity"), g),
            Quad(note, ms("noteId"), Literal(nid), g),
            Quad(note, ms("contentHash"), Literal(sha256(text)), g),
            Quad(note, ms("code"), code_iri(code.split(".")[0]), g),
            Quad(note, ms("sampleId"), Literal(f"s{i}"), g),
            Quad(note, ms("accepted"), Literal("true" if i < 2 else "false", datatype=xsd("boolean")), g),
            Quad(note, ms("scores"), Literal('{"recall": 1.0}'), g),
            Quad(note, prov("wasGeneratedBy"), gen, g),
            Quad(note, prov("wasAttributedTo"), agent, g),
            Quad(note, prov("generatedAtTime"), Literal(t1, datatype=dt), g),
            Quad(gen, RDF_TYPE, ms("NoteGeneration"), g),
            Quad(gen, RDF_TYPE, prov("Activity"), g),
            Quad(gen, prov("startedAtTime"), Literal(t0, datatype=dt), g),
            Quad(gen, prov("endedAtTime"), Literal(t1, datatype=dt), g),
            Quad(gen, prov("wasInformedBy"), run, g),
            Quad(gen, prov("wasAssociatedWith"), agent, g),
            Quad(gen, ms("usedTemplate"), template, g),
            Quad(gen, ms("usedCode"), code_iri(code), g),
            Quad(gen, ms("exampleNote"), example_note_iri(example), g),
            Quad(gen, ms("seed"), Literal("42", datatype=xsd("integer")), g),
            Quad(gen, ms("graphVersion"), Literal("sha256:graph-v1"), g),
        ]
        # A symptom is given by label (IRI minted as the importers do) or by IRI.
        q += [Quad(gen, ms("usedSymptom"), NamedNode(s) if s.startswith(ID) else symptom_iri(s), g) for s in symptoms]
    return q


def build_store(path: Path | None = None, *, with_run: bool = True) -> OxigraphStore:
    """The small graph (TBox included) in a new store, on disk at ``path`` or in memory."""
    store = OxigraphStore(path) if path is not None else OxigraphStore.in_memory()
    store.load(ONTOLOGY_DIR / "medsyn.ttl", format="ttl", graph=ONTOLOGY_GRAPH)
    store.add_quads(kg_quads() + (run_quads() if with_run else []))
    return store


def write_notes(folder: Path, notes: list[tuple[str, str, list[str], str, str]] = NOTES) -> Path:
    """DIR/notes.jsonl as the generation engine writes it."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "notes.jsonl"
    with path.open("w", encoding="utf-8") as fh:
        for nid, code, symptoms, example, text in notes:
            row = {"id": nid, "code": code, "model": "gpt-4", "prompt": "...", "symptoms": symptoms}
            row |= {"example_id": example, "response": text, "scores": {"recall": 1.0}, "accepted": True}
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
    return path
