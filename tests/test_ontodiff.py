"""onto diff (by meaning, between stores and files) and onto check (near-duplicates, codes needing work)."""

from __future__ import annotations

from pathlib import Path

import pytest
from mkg_small import build_store
from pyoxigraph import Literal, Quad

from medsyn.curation import edits as curation
from medsyn.curation.check import check, merge_commands, near_duplicates
from medsyn.curation.diff import diff_paths, diff_stores
from medsyn.curation.owl import export_owl
from medsyn.curation.snapshot import restore, snapshot
from medsyn.errors import InputError
from medsyn.kg.store import OxigraphStore
from medsyn.kg.vocab import ICD10_GRAPH, RDF_TYPE, code_iri, ms, skos


@pytest.fixture
def store() -> OxigraphStore:
    return build_store()


def copy_of(store: OxigraphStore) -> OxigraphStore:
    c = OxigraphStore.in_memory()
    c.load(store.dump(format="nq"), format="nq")
    return c


def test_identical_stores_diff_empty(store: OxigraphStore) -> None:
    d = diff_stores(store, copy_of(store))
    assert d.empty and sum(d.counts().values()) == 0


def test_diff_reports_each_kind_of_change(store: OxigraphStore) -> None:
    old = copy_of(store)
    curation.add_symptom(store, "G43.0", "тошнота", weight=2.4, source="hsdn", by="x")
    curation.add_symptom(store, "M54.4", "прострел", weight=1.0, source="wikimed", by="x")
    curation.remove_symptom(store, "онемение ноги", by="x")
    curation.relabel(store, "R51", "Головная боль неуточнённая", by="x")
    d = diff_stores(old, store)
    assert [(x["code"], x["label"], x["old"], x["new"]) for x in d.changed_weights] == [("G43.0", "тошнота", 1.2, 2.4)]
    assert [(x["code"], x["label"], x["source"]) for x in d.added_links] == [("M54.4", "прострел", "wikimed")]
    assert [(x["code"], x["label"]) for x in d.removed_links] == [("M54.4", "онемение ноги")]
    assert [s["labels"] for s in d.added_symptoms] == [["прострел@ru"]]
    assert [s["labels"] for s in d.removed_symptoms] == [["онемение ноги@ru"]]
    assert d.changed_codes == [
        {"code": "R51", "field": "labels", "old": ["Головная боль@ru"], "new": ["Головная боль неуточнённая@ru"]}
    ]
    assert d.to_json()["counts"]["changed_weights"] == 1


def test_diff_sees_hierarchy_and_class_changes(store: OxigraphStore) -> None:
    old = copy_of(store)
    store.add_quads(
        [
            Quad(code_iri("M54.9"), RDF_TYPE, ms("ICD10Subcode"), ICD10_GRAPH),
            Quad(code_iri("M54.9"), skos("notation"), Literal("M54.9"), ICD10_GRAPH),
        ]
    )
    store.update(
        "DELETE DATA { GRAPH <https://w3id.org/medsyn/graph/ontology> { "
        "<https://w3id.org/medsyn/ontology#Drug> a <http://www.w3.org/2002/07/owl#Class> } }"
    )
    d = diff_stores(old, store)
    assert d.added_codes == ["M54.9"]
    assert d.removed_classes == ["https://w3id.org/medsyn/ontology#Drug"]


def test_diff_between_store_dirs_and_files(store: OxigraphStore, tmp_path: Path) -> None:
    snap = tmp_path / "old.nq"
    snapshot(store, snap)
    disk = OxigraphStore(tmp_path / "store")
    disk.load(snap, format="nq")
    curation.add_symptom(disk, "M54.4", "прострел", weight=1.0, source="wikimed", by="x")
    disk.close()
    d = diff_paths(snap, tmp_path / "store")
    assert [x["label"] for x in d.added_links] == ["прострел"]
    # An OWL export holds the hierarchy but no symptoms: the diff says exactly that.
    owl = tmp_path / "kg.owl"
    export_owl(store, owl)
    d2 = diff_paths(snap, owl)
    assert not d2.added_codes and not d2.removed_codes and not d2.changed_codes
    assert len(d2.removed_symptoms) == 7 and not d2.added_links
    with pytest.raises(InputError, match="no such store directory or RDF file"):
        diff_paths(snap, tmp_path / "nope")
    (tmp_path / "x.csv").write_text("a,b\n", encoding="utf-8")
    with pytest.raises(InputError, match="cannot tell the RDF format"):
        diff_paths(snap, tmp_path / "x.csv")


def test_near_duplicates_and_merge_commands(store: OxigraphStore) -> None:
    groups = near_duplicates(store)
    assert [[s.label for s in g] for g in groups] == [
        ["боль в пояснице", "Боли в пояснице"],
        ["головная боль", "головные боли"],
    ]
    assert merge_commands(groups[0]) == ["medsyn onto merge-symptoms 'боль в пояснице' 'Боли в пояснице'"]
    # Acting on the list empties it.
    for g in groups:
        curation.merge_symptoms(store, g[0].label, g[1].label, by="x")
    assert near_duplicates(store) == []


def test_check_finds_codes_needing_work(store: OxigraphStore) -> None:
    r = check(store)
    assert [c["notation"] for c in r.codes_without_symptoms] == ["R51"]
    assert not r.codes_without_parent and not r.codes_without_label and not r.unmapped_codes
    store.update(
        "DELETE DATA { GRAPH <https://w3id.org/medsyn/graph/icd10> { "
        "<https://w3id.org/medsyn/id/icd10/M54.4> <https://w3id.org/medsyn/ontology#parent> "
        "<https://w3id.org/medsyn/id/icd10/M54> . "
        '<https://w3id.org/medsyn/id/icd10/M54.4> <http://www.w3.org/2000/01/rdf-schema#label> "Люмбаго с ишиасом"@ru '
        "} }"
    )
    curation.add_symptom(store, "R51", "пульсирующая боль", by="x")
    r = check(store)
    assert r.codes_without_symptoms == []
    assert [c["notation"] for c in r.codes_without_parent] == ["M54.4"]
    assert [c["notation"] for c in r.codes_without_label] == ["M54.4"]
    assert r.to_json()["counts"]["near_duplicate_groups"] == 2


def test_on_the_real_graph(kg_store_dir: Path, tmp_path: Path) -> None:
    """The real graph: duplicate symptom strings exist; a change on a copy shows in diff and is undone."""
    real = OxigraphStore(kg_store_dir, read_only=True)
    report = check(real)
    assert report.counts()["near_duplicate_groups"] >= 20
    assert any(g[0].label.lower().startswith("боль в груди") for g in report.duplicate_groups)
    snap = tmp_path / "real.nq"
    snapshot(real, snap)
    real.close()
    work = OxigraphStore(tmp_path / "work")
    work.load(snap, format="nq")
    group = next(g for g in report.duplicate_groups if g[0].label.lower().startswith("боль в груди"))
    curation.merge_symptoms(work, group[0].iri, group[1].iri, by="real-test")
    work.close()
    d = diff_paths(kg_store_dir, tmp_path / "work")
    assert [s["symptom"] for s in d.removed_symptoms] == [group[1].iri]
    work = OxigraphStore(tmp_path / "work")
    restore(work, snap, by="real-test")
    work.close()
    assert diff_paths(kg_store_dir, tmp_path / "work").empty
