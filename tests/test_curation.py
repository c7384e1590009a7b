"""Curation: validated, atomic, recorded changes; refusals that leave the store untouched; snapshot + restore."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from mkg_small import build_store, double
from pyoxigraph import Literal, NamedNode, Quad

from medsyn.curation import edits as curation
from medsyn.curation.changeset import Candidate
from medsyn.curation.diff import diff_stores
from medsyn.curation.owl import export_owl, import_owl
from medsyn.curation.snapshot import restore, snapshot
from medsyn.errors import InputError, MedsynError, ValidationError
from medsyn.kg.store import OxigraphStore, to_python
from medsyn.kg.vocab import (
    CURATION_GRAPH,
    DCTERMS,
    ID,
    RDF_TYPE,
    association_iri,
    code_iri,
    graph_iri,
    ms,
    normalize_label,
    prov,
    rdfs,
    skos,
    source_iri,
    symptom_iri,
)

PREFIX = (
    "PREFIX ms: <https://w3id.org/medsyn/ontology#> PREFIX prov: <http://www.w3.org/ns/prov#> "
    "PREFIX rdfs: <http://www.w3.org/2000/01/rdf-schema#> "
)


class CountingStore(OxigraphStore):
    """A real in-memory store that counts write requests, to show a change is one update."""

    def __init__(self) -> None:
        super().__init__(None)
        self.writes = 0

    def update(self, sparql: str, **kw: object) -> None:  # type: ignore[override]
        self.writes += 1
        super().update(sparql, **kw)  # type: ignore[arg-type]

    def add_quads(self, quads: object) -> None:  # type: ignore[override]
        self.writes += 1
        super().add_quads(quads)  # type: ignore[arg-type]


@pytest.fixture
def store() -> OxigraphStore:
    return build_store()


def nquads(store: OxigraphStore) -> bytes:
    return store.dump(format="nq")


def weights(store: OxigraphStore, code: str, source: str) -> dict[str, tuple[float, float]]:
    rows = store.query(
        PREFIX + "SELECT ?label ?w ?n WHERE { ?a ms:disease ?d ; ms:source ?s ; ms:symptom/rdfs:label ?label ; "
        "ms:weight ?w ; ms:normalizedWeight ?n }",
        bindings={"d": code_iri(code), "s": source_iri(source)},
    )
    return {r["label"].value: (to_python(r["w"]), to_python(r["n"])) for r in rows}


def test_add_symptom_links_renormalises_and_records(store: OxigraphStore) -> None:
    r = curation.add_symptom(store, "m54.5", "Слабость в ногах", weight=2.0, source="wikimed", by="alice")
    assert r.committed
    assert weights(store, "M54.5", "wikimed") == {
        "боль в пояснице": (1.0, 0.5),
        "Боли в пояснице": (1.0, 0.5),
        "Слабость в ногах": (2.0, 1.0),
    }
    a = association_iri("symptom", "M54.5", normalize_label("Слабость в ногах"), "wikimed")
    assert Quad(a, ms("symptom"), symptom_iri("слабость в ногах"), graph_iri("source", "wikimed")) in store.raw
    # The PROV record: one activity by alice, with times, counts, the exact quads and the nodes it touched.
    rows = store.query(
        PREFIX + "SELECT ?act ?who ?start ?end ?added ?text WHERE { GRAPH ?g { ?act a ms:CurationActivity ; "
        "ms:operation 'add-symptom' ; prov:wasAssociatedWith/rdfs:label ?who ; prov:startedAtTime ?start ; "
        "prov:endedAtTime ?end ; ms:addedTripleCount ?added ; ms:addedStatements ?text ; prov:generated ?a } }",
        bindings={"g": CURATION_GRAPH, "a": a},
    )
    assert len(rows) == 1
    assert rows[0]["act"] == r.activity
    assert rows[0]["who"].value == "alice"
    assert rows[0]["start"].value <= rows[0]["end"].value
    assert to_python(rows[0]["added"]) == len(r.added) > 0
    assert str(a) in rows[0]["text"].value


def test_add_symptom_without_source_creates_the_curator_source(store: OxigraphStore) -> None:
    curation.add_symptom(store, "R51", "пульсирующая боль", weight=1.0, by="bob")
    assert weights(store, "R51", "curation") == {"пульсирующая боль": (1.0, 1.0)}
    assert store.query(PREFIX + "ASK { ?s a ms:KnowledgeSource }", bindings={"s": source_iri("curation")})


def test_existing_link_gets_new_weight(store: OxigraphStore) -> None:
    curation.add_symptom(store, "G43.0", "тошнота", weight=7.0, source="hsdn", by="c")
    assert weights(store, "G43.0", "hsdn") == {"головная боль": (3.5, 0.5), "тошнота": (7.0, 1.0)}
    with pytest.raises(ValidationError, match="already says so"):
        curation.add_symptom(store, "G43.0", "тошнота", weight=7.0, source="hsdn", by="c")


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"code": "M99.9"}, InputError, "unknown ICD-10 code M99.9"),
        ({"code": "not a code"}, InputError, "not an ICD-10 code"),
        ({"weight": 0.0}, InputError, "out of range"),
        ({"weight": -1.0}, InputError, "out of range"),
        ({"weight": math.nan}, InputError, "out of range"),
        ({"weight": math.inf}, InputError, "out of range"),
        ({"source": "nope"}, InputError, "unknown knowledge source 'nope'"),
        ({"label": " ... "}, InputError, "empty symptom label"),
        ({"label": "б" * 10_000_000}, InputError, "symptom label of 10,000,000 characters; at most 1,000"),
        ({"by": " "}, InputError, "by: empty curator name"),
    ],
)
def test_invalid_curation_is_refused_with_nothing_changed(
    store: OxigraphStore, kwargs: dict[str, object], error: type[MedsynError], message: str
) -> None:
    before = nquads(store)
    args = {"code": "M54.5", "label": "новый симптом", "weight": 1.0, "source": "wikimed", "by": "x"} | kwargs
    with pytest.raises(error, match=message):
        curation.add_symptom(store, str(args.pop("code")), str(args.pop("label")), **args)  # type: ignore[arg-type]
    assert nquads(store) == before


def test_shacl_refuses_a_broken_change_and_names_it(store: OxigraphStore) -> None:
    """The shapes guard what the operations do not check themselves: here a link to a non-code, weight 1.5."""
    g = graph_iri("source", "wikimed")
    a = NamedNode(ID + "assoc/symptom/broken")
    c = Candidate(store, [g])
    c.add(
        [
            Quad(a, RDF_TYPE, ms("SymptomAssociation"), g),
            Quad(a, ms("disease"), symptom_iri("тошнота"), g),
            Quad(a, ms("symptom"), symptom_iri("тошнота"), g),
            Quad(a, ms("weight"), double(1.0), g),
            Quad(a, ms("normalizedWeight"), double(1.5), g),
            Quad(a, ms("source"), source_iri("wikimed"), g),
        ]
    )
    problems = " | ".join(c.problems())
    assert "exactly one ICD-10 code" in problems
    assert "[0, 1]" in problems
    with pytest.raises(ValidationError, match="change refused, nothing was written"):
        c.validate()


def test_sparql_checks_guard_changes_too(store: OxigraphStore) -> None:
    """A group whose largest normalised weight is not 1 passes the shapes but fails sparql/checks."""
    g = graph_iri("source", "wikimed")
    c = Candidate(store, [g])
    for q in list(c.after.raw.quads_for_pattern(None, ms("normalizedWeight"), None, g)):
        c.remove([q])
        c.add([Quad(q.subject, q.predicate, double(0.5), g)])  # type: ignore[arg-type]
    assert c._shacl_problems() == []
    assert any("weight_not_normalised" in p for p in c.problems())


def test_problems_already_in_the_graph_do_not_block_curators(store: OxigraphStore) -> None:
    # A pre-existing defect elsewhere (a symptom without a label) is not the curator's doing.
    g = graph_iri("source", "wikimed")
    store.remove_quads(store.raw.quads_for_pattern(symptom_iri("светобоязнь"), rdfs("label"), None, g))
    curation.add_symptom(store, "G43.0", "светобоязнь", weight=2.0, source="wikimed", by="x")


def test_change_is_one_write() -> None:
    s = CountingStore()
    s.add_quads(build_store().raw.quads_for_pattern(None, None, None, None))
    s.writes = 0
    curation.merge_symptoms(s, "головная боль", "головные боли", by="x")
    curation.add_symptom(s, "M54.4", "прострел", weight=1.0, by="x")
    assert s.writes == 2


def test_dry_run_validates_and_writes_nothing(store: OxigraphStore) -> None:
    before = nquads(store)
    r = curation.add_symptom(store, "M54.4", "прострел", weight=1.0, by="x", dry_run=True)
    assert not r.committed and r.added
    assert nquads(store) == before


def test_merge_moves_links_keeps_larger_weight_and_labels(store: OxigraphStore) -> None:
    wikimed = graph_iri("source", "wikimed")
    # Make the duplicate carry a larger weight on the shared code M54.5, so the merge has to keep it.
    curation.add_symptom(store, "M54.5", "Боли в пояснице", weight=4.0, source="wikimed", by="x")
    r = curation.merge_symptoms(store, "боль в пояснице", "Боли в пояснице", by="bob")
    a, b = symptom_iri("боль в пояснице"), symptom_iri("Боли в пояснице")
    assert [q.graph_name for q in store.raw.quads_for_pattern(b, None, None, None)] == [CURATION_GRAPH]
    assert not store.query(PREFIX + "ASK { ?x ms:symptom ?b }", bindings={"b": b})
    assert weights(store, "M54.5", "wikimed") == {"боль в пояснице": (4.0, 1.0)}
    assert weights(store, "M54.4", "wikimed")["боль в пояснице"] == (1.0, 1.0)
    assert Quad(a, skos("altLabel"), Literal("Боли в пояснице", language="ru"), wikimed) in store.raw
    replaced = Quad(b, NamedNode(DCTERMS + "isReplacedBy"), a, CURATION_GRAPH)
    assert replaced in store.raw
    assert Quad(r.activity, prov("invalidated"), b, CURATION_GRAPH) in store.raw


def test_merge_moves_links_the_kept_symptom_lacks(store: OxigraphStore) -> None:
    curation.merge_symptoms(store, "головная боль", "головные боли", by="x")
    # G43 had only "головные боли": the link now points at "головная боль", under the new label's IRI.
    assert weights(store, "G43", "wikimed") == {"головная боль": (1.0, 1.0)}
    moved = association_iri("symptom", "G43", "головная боль", "wikimed")
    assert Quad(moved, ms("symptom"), symptom_iri("головная боль"), graph_iri("source", "wikimed")) in store.raw


def test_merge_refusals(store: OxigraphStore) -> None:
    before = nquads(store)
    with pytest.raises(InputError, match="same symptom"):
        curation.merge_symptoms(store, "тошнота", " Тошнота. ")
    with pytest.raises(InputError, match="no symptom 'рвота'"):
        curation.merge_symptoms(store, "тошнота", "рвота")
    assert nquads(store) == before


def test_relabel_symptom_moves_to_new_iri(store: OxigraphStore) -> None:
    old, new = symptom_iri("светобоязнь"), symptom_iri("фотофобия")
    curation.relabel(store, "светобоязнь", "фотофобия", by="x")
    assert weights(store, "G43.0", "wikimed")["фотофобия"] == (1.0, 1.0)
    assert not list(store.raw.quads_for_pattern(old, None, None, graph_iri("source", "wikimed")))
    labels = {q.object.value for q in store.raw.quads_for_pattern(new, skos("altLabel"), None, None)}
    assert labels == {"светобоязнь"}
    with pytest.raises(InputError, match="merge-symptoms"):
        curation.relabel(store, "фотофобия", "тошнота", by="x")


def test_relabel_code_keeps_iri(store: OxigraphStore) -> None:
    curation.relabel(store, "M54.5", "Боль в нижней части спины", by="x")
    labels = [q.object for q in store.raw.quads_for_pattern(code_iri("M54.5"), rdfs("label"), None, None)]
    assert labels == [Literal("Боль в нижней части спины", language="ru")]


def test_remove_link_and_orphaned_symptom(store: OxigraphStore) -> None:
    curation.remove_symptom(store, "тошнота", code="G43.0", source="hsdn", by="x")
    assert weights(store, "G43.0", "hsdn") == {"головная боль": (3.5, 1.0)}
    assert "тошнота" in weights(store, "G43.0", "wikimed")
    r = curation.remove_symptom(store, "онемение ноги", by="x")
    assert not list(store.raw.quads_for_pattern(symptom_iri("онемение ноги"), None, None, None))
    assert symptom_iri("онемение ноги") in {q.object for q in store.raw.quads_for_pattern(r.activity, None, None, None)}
    with pytest.raises(InputError, match="no link"):
        curation.remove_symptom(store, "онемение ноги", by="x")


def test_remove_renormalises_remaining_links(store: OxigraphStore) -> None:
    curation.remove_symptom(store, "головная боль", code="G43.0", source="hsdn", by="x")
    assert weights(store, "G43.0", "hsdn") == {"тошнота": (1.2, 1.0)}


def test_changes_are_undone_by_restoring_a_snapshot(store: OxigraphStore, tmp_path: Path) -> None:
    reference = OxigraphStore.in_memory()
    reference.load(nquads(store), format="nq")
    snap = tmp_path / "before.nq"
    snapshot(store, snap)
    curation.add_symptom(store, "M54.4", "прострел", weight=2.0, source="wikimed", by="x")
    curation.merge_symptoms(store, "головная боль", "головные боли", by="x")
    curation.relabel(store, "M54", "Дорсалгия (боль в спине)", by="x")
    d = diff_stores(reference, store)
    assert [(x["code"], x["label"]) for x in d.added_links] == [("G43", "головная боль"), ("M54.4", "прострел")]
    assert [(x["code"], x["label"]) for x in d.removed_links] == [("G43", "головные боли")]
    assert [s["labels"] for s in d.removed_symptoms] == [["головные боли@ru"]]
    assert [(c["code"], c["field"]) for c in d.changed_codes] == [("M54", "labels")]
    assert d.changed_weights == []
    r = restore(store, snap, by="x")
    assert r.added and r.removed
    assert diff_stores(reference, store).empty
    # History is kept: three changes and the restore itself.
    ops = [q.object.value for q in store.raw.quads_for_pattern(None, ms("operation"), None, CURATION_GRAPH)]
    assert sorted(ops) == ["add-symptom", "merge-symptoms", "relabel", "restore"]


def test_restore_refuses_a_missing_file(store: OxigraphStore, tmp_path: Path) -> None:
    with pytest.raises(InputError, match="snapshot file not found"):
        restore(store, tmp_path / "nope.nq")


def test_owl_round_trip_through_owlready2(store: OxigraphStore, tmp_path: Path) -> None:
    import owlready2

    reference = OxigraphStore.in_memory()
    reference.load(nquads(store), format="nq")
    exported = tmp_path / "medsyn.owl"
    export_owl(store, exported)
    world = owlready2.World()
    onto = world.get_ontology(exported.as_uri()).load()
    ms_ns = onto.get_namespace("https://w3id.org/medsyn/ontology#")
    icd = onto.get_namespace(ID + "icd10/")
    assert icd["M54.5"].is_a == [ms_ns.ICD10Subcode]
    with onto:
        new = ms_ns.ICD10Subcode("M54.9", namespace=icd)
        new.label = [owlready2.locstr("Дорсалгия неуточненная", lang="ru")]
        new.parent = icd["M54"]
        new.category = icd["M54"]
        new.notation = ["M54.9"]
    edited = tmp_path / "edited.owl"
    onto.save(str(edited), format="rdfxml")
    r = import_owl(store, edited, by="owl-user")
    assert r.committed and r.removed == 0
    d = diff_stores(reference, store)
    assert d.added_codes == ["M54.9"]
    assert d.counts()["added_codes"] == 1 and sum(d.counts().values()) == 1
    # Importing the unedited export again changes nothing.
    export_owl(store, exported)
    assert import_owl(store, exported, by="x").added == 0


def test_import_owl_refuses_invalid_hierarchy(store: OxigraphStore, tmp_path: Path) -> None:
    exported = tmp_path / "medsyn.owl"
    export_owl(store, exported)
    text = exported.read_text(encoding="utf-8")
    # Point a sub-code's parent at a node that is not in the hierarchy.
    broken = text.replace('rdf:resource="https://w3id.org/medsyn/id/icd10/M54"/>', 'rdf:resource="urn:nowhere"/>', 1)
    assert broken != text
    bad = tmp_path / "broken.owl"
    bad.write_text(broken, encoding="utf-8")
    before = nquads(store)
    with pytest.raises(ValidationError, match="change refused"):
        import_owl(store, bad, by="x")
    assert nquads(store) == before
