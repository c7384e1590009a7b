"""Validation: the real graph passes every check and is OWL-consistent; each kind of damage is caught."""

from __future__ import annotations

from pathlib import Path

import pytest
from kg_helpers import read_only

from medsyn.kg.store import OxigraphStore
from medsyn.kg.validate import check_names, reason, run_checks
from medsyn.kg.vocab import GRAPH, ICD10_GRAPH, ONTOLOGY_GRAPH, graph_iri
from medsyn.paths import ONTOLOGY_DIR

MS = "https://w3id.org/medsyn/ontology#"
ID = "https://w3id.org/medsyn/id/"


@pytest.fixture(scope="module")
def copy(kg_store_dir: Path) -> OxigraphStore:
    """An in-memory copy of the real ICD-10 and wikimed graphs that tests may damage (function-scoped below)."""
    graphs = [ICD10_GRAPH, graph_iri("source", "wikimed")]
    mem = OxigraphStore.in_memory()
    with read_only(kg_store_dir) as s:
        for g in graphs:
            mem.load(s.dump(format="nt", graph=g), format="nt", graph=g)
    return mem


@pytest.fixture()
def damaged(copy: OxigraphStore) -> OxigraphStore:
    mem = OxigraphStore.in_memory()
    mem.load(copy.dump(format="nq"), format="nq")
    return mem


def test_real_graph_passes_every_check(kg_store_dir: Path) -> None:
    with read_only(kg_store_dir) as s:
        results = run_checks(s)
    assert set(results) == set(check_names()) and len(results) >= 10
    assert {n: len(r) for n, r in results.items() if r} == {}


def test_real_hierarchy_is_consistent(kg_store_dir: Path) -> None:
    with read_only(kg_store_dir) as s:
        result = reason(s)
    assert result.consistent, result.summary()
    assert result.axioms > 80_000  # the whole hierarchy was loaded, not just the TBox


def test_code_without_parent(damaged: OxigraphStore) -> None:
    damaged.update(f"DELETE WHERE {{ GRAPH ?g {{ <{ID}icd10/M54.5> <{MS}parent> ?p }} }}")
    rows = run_checks(damaged)["code_without_parent"]
    assert [r["notation"].value for r in rows] == ["M54.5"]


def test_weight_outside_unit_interval(damaged: OxigraphStore) -> None:
    damaged.update(
        f"DELETE {{ GRAPH ?g {{ ?a <{MS}normalizedWeight> ?w }} }}"
        f" INSERT {{ GRAPH ?g {{ ?a <{MS}normalizedWeight> 1.5 }} }}"
        f" WHERE {{ GRAPH ?g {{ ?a <{MS}disease> <{ID}icd10/G35> ; <{MS}normalizedWeight> ?w }} }}"
    )
    results = run_checks(damaged, ["weight_out_of_range", "weight_not_normalised"])
    assert len(results["weight_out_of_range"]) > 50  # every G35 symptom link
    rows = results["weight_not_normalised"]
    assert {r["disease"].value for r in rows} == {f"{ID}icd10/G35"}
    # One row per link whose normalised weight is not raw / max, and one for the group whose maximum is not 1.
    assert len([r for r in rows if "assoc" in r]) == len(results["weight_out_of_range"])
    assert [float(r["max"].value) for r in rows if "max" in r] == [1.5]


def test_orphan_association_and_symptom_without_label(damaged: OxigraphStore) -> None:
    damaged.update(
        f"INSERT DATA {{ GRAPH <{GRAPH}source/test> {{"
        f" <{ID}assoc/symptom/x> a <{MS}SymptomAssociation> ; <{MS}disease> <{ID}icd10/G35> ."
        f" <{ID}symptom/y> a <{MS}Symptom> . }} }}"
    )
    results = run_checks(damaged)
    assert [(r["assoc"].value, r["problem"].value) for r in results["orphan_association"]] == [
        (f"{ID}assoc/symptom/x", "no symptom")
    ]
    assert [r["symptom"].value for r in results["symptom_without_label"]] == [f"{ID}symptom/y"]


def test_dangling_parent_and_wrong_kind(damaged: OxigraphStore) -> None:
    damaged.update(
        f"INSERT DATA {{ GRAPH <{GRAPH}icd10> {{ <{ID}icd10/M54.5> <{MS}parent> <{ID}icd10/XIII> ."
        f" <{ID}icd10/M54.4> <{MS}category> <{ID}icd10/NOPE> . }} }}"
    )
    results = run_checks(damaged)
    assert {r["code"].value for r in results["code_multiple_parents"]} == {f"{ID}icd10/M54.5", f"{ID}icd10/M54.4"}
    assert {r["code"].value for r in results["code_parent_kind"]} == {f"{ID}icd10/M54.5"}
    assert {r["target"].value for r in results["code_parent_missing"]} == {f"{ID}icd10/NOPE"}


def test_reasoner_finds_disjoint_kinds(tmp_path: Path) -> None:
    # A code typed both category and sub-code violates the TBox's AllDisjointClasses axiom.
    bad = tmp_path / "bad.nt"
    bad.write_text(
        f"<{ID}icd10/M54> <http://www.w3.org/1999/02/22-rdf-syntax-ns#type> <{MS}ICD10Category> .\n"
        f"<{ID}icd10/M54> <http://www.w3.org/1999/02/22-rdf-syntax-ns#type> <{MS}ICD10Subcode> .\n"
    )
    onto = tmp_path / "onto.nt"
    s = OxigraphStore.in_memory()
    s.load(ONTOLOGY_DIR / "medsyn.ttl", format="ttl", graph=ONTOLOGY_GRAPH)
    onto.write_bytes(s.dump(format="nt", graph=ONTOLOGY_GRAPH))
    assert not reason([onto, bad]).consistent
    assert reason([onto]).consistent
