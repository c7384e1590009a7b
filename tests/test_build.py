"""The full build on the real data: counts, stable IRIs, determinism, atomic replacement, refusals."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from kg_helpers import data_with, read_only
from pyoxigraph import BlankNode, RdfFormat, parse

from medsyn.errors import InputError, StoreError
from medsyn.kg.build import build_kg, content_hash
from medsyn.kg.export import export_bytes
from medsyn.kg.stats import build_info, class_counts, graph_counts
from medsyn.kg.store import OxigraphStore
from medsyn.kg.version import graph_version
from medsyn.kg.vocab import GRAPH, association_iri, code_iri, symptom_iri

SMALL = ["wikimed"]  # + the register, always included: a ~3 s build


@pytest.fixture(scope="module")
def kg(kg_store_dir: Path) -> Iterator[OxigraphStore]:
    with read_only(kg_store_dir) as s:
        yield s


def test_full_build_counts(kg: OxigraphStore) -> None:
    counts = class_counts(kg)
    assert counts["ICD10Chapter"] == 22 and counts["ICD10Category"] == 2058
    assert counts["ExampleNote"] == 4690 and counts["Drug"] == 601
    assert counts["KnowledgeSource"] == 8 and "SideEffectAssociation" not in counts  # sider4 is opt-in
    graphs = {g.removeprefix(GRAPH) for g in graph_counts(kg)}
    assert {"ontology", "icd10", "meta", "source/wikimed", "source/hsdn", "source/rumedtop3"} <= graphs
    info = build_info(kg)
    assert info is not None and info["hash"] == graph_version(kg) and len(info["sources"]) == 8


def test_iris_are_stable(kg: OxigraphStore) -> None:
    # Literal IRIs: a change of minting breaks every stored provenance record, so it must fail a test.
    assert code_iri("M54.5").value == "https://w3id.org/medsyn/id/icd10/M54.5"
    assert symptom_iri("Головная  боль.").value == "https://w3id.org/medsyn/id/symptom/2958d7a863a4b680"
    a = association_iri("symptom", "G35", "головная боль", "wikimed")
    assert a.value == "https://w3id.org/medsyn/id/assoc/symptom/8c2a1c7776aa7f74f194706b"
    assert kg.query("ASK { ?a ?p ?o }", bindings={"a": a})
    assert kg.query(
        "ASK { ?c <http://www.w3.org/2004/02/skos/core#notation> 'K29.60' }", bindings={"c": code_iri("K29.60")}
    )


def test_same_input_same_triple_set(tmp_path: Path, shared_data: Path) -> None:
    r1 = build_kg(tmp_path / "a", data=shared_data, sources=SMALL, progress=False)
    r2 = build_kg(tmp_path / "b", data=shared_data, sources=SMALL, progress=False)
    assert r1.version == r2.version and r1.triples == r2.triples
    dumps = []
    for p in (tmp_path / "a", tmp_path / "b"):
        with read_only(p) as s:
            # Blank nodes (TBox axioms) get fresh labels per load; everything else must match exactly.
            dumps.append(
                {
                    str(q)
                    for q in parse(s.dump(format="nq"), format=RdfFormat.N_QUADS)
                    if q.graph_name.value != GRAPH + "meta"
                    and not isinstance(q.subject, BlankNode)
                    and not isinstance(q.object, BlankNode)
                }
            )
    assert dumps[0] == dumps[1]


def test_export_import_round_trip(kg: OxigraphStore) -> None:
    nq = export_bytes(kg, "nq")
    copy = OxigraphStore.in_memory()
    copy.load(nq, format="nq")
    assert len(copy) == len(kg)
    assert graph_counts(copy) == graph_counts(kg)
    assert content_hash(copy.raw.quads_for_pattern(None, None, None, None)) == graph_version(kg)


def test_failed_build_keeps_previous_store(tmp_path: Path, shared_data: Path) -> None:
    target = tmp_path / "store"
    good = build_kg(target, data=shared_data, sources=SMALL, progress=False)
    rel = "rumedbench/RuMedTop3/train_v1.jsonl"
    broken = data_with(shared_data, tmp_path, rel, b'{"idx": "a", "symptoms": "x", "code": "M54"}\nnot json\n')
    # rumedtop3 runs last: the failure comes after every other source was written to the new store.
    with pytest.raises(InputError, match=r"train_v1\.jsonl:2: invalid JSON"):
        build_kg(target, data=broken, sources=[*SMALL, "rumedtop3", "hsdn"], progress=False)
    with read_only(target) as s:
        assert graph_version(s) == good.version
        assert "ExampleNote" not in class_counts(s)
    # no temp or set-aside folders left; the lock file stays (deleting a lock file others may hold breaks flock)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data", "store", "store.lock"]


def test_locked_store_is_refused(tmp_path: Path, shared_data: Path) -> None:
    target = tmp_path / "store"
    holder = OxigraphStore(target)
    try:
        with pytest.raises(StoreError, match="is locked by another process"):
            build_kg(target, data=shared_data, sources=SMALL, progress=False)
    finally:
        holder.close()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["store", "store.lock"]


def test_unwritable_or_foreign_target(tmp_path: Path, shared_data: Path) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(StoreError, match="cannot create"):
        build_kg(tmp_path / "file" / "store", data=shared_data, sources=SMALL, progress=False)
    foreign = tmp_path / "notes"
    foreign.mkdir()
    (foreign / "keep.txt").write_text("mine")
    with pytest.raises(StoreError, match="not an Oxigraph store"):
        build_kg(foreign, data=shared_data, sources=SMALL, progress=False)
    assert (foreign / "keep.txt").read_text() == "mine"


def test_missing_data_folder(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="data folder not found"):
        build_kg(tmp_path / "s", data=tmp_path / "nowhere", progress=False)


def test_graph_version_changes_with_each_curation_activity() -> None:
    from medsyn.kg.store import OxigraphStore
    from medsyn.kg.version import graph_version

    s = OxigraphStore.in_memory()
    assert graph_version(s) is None
    s.update(
        "PREFIX ms: <https://w3id.org/medsyn/ontology#> INSERT DATA { GRAPH <https://w3id.org/medsyn/graph/meta> "
        '{ <urn:build> a ms:KnowledgeGraphBuild ; ms:contentHash "sha256:abc" } }'
    )
    assert graph_version(s) == "sha256:abc"
    versions = set()
    for i in range(2):
        s.update(
            "PREFIX ms: <https://w3id.org/medsyn/ontology#> INSERT DATA { GRAPH "
            f"<https://w3id.org/medsyn/graph/curation> {{ <urn:act{i}> a ms:CurationActivity }} }}"
        )
        v = graph_version(s)
        assert v is not None and v.startswith("sha256:abc+curated:")
        versions.add(v)
    assert len(versions) == 2
