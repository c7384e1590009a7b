"""The one OWL export: `kg export -f owl` and `onto export-owl` write the same file, it declares every ICD-10 code
of the graph (sub-codes that knowledge sources add included), and owlready2 counts them."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from pyoxigraph import RdfFormat, parse

from medsyn.curation.owl import export_owl, import_owl
from medsyn.kg.build import build_kg
from medsyn.kg.store import OxigraphStore
from medsyn.kg.vocab import MS
from medsyn.testing.commands import MEDSYN

KINDS = ("ICD10Chapter", "ICD10Block", "ICD10Category", "ICD10Subcode")
CODES_PER_KIND = f"""PREFIX ms: <{MS}>
SELECT ?kind (COUNT(DISTINCT ?c) AS ?n) WHERE {{
  VALUES ?kind {{ ms:ICD10Chapter ms:ICD10Block ms:ICD10Category ms:ICD10Subcode }} ?c a ?kind }} GROUP BY ?kind"""
LINKED_CODES = f"PREFIX ms: <{MS}> SELECT DISTINCT ?c WHERE {{ ?a a ms:SymptomAssociation ; ms:disease ?c }}"


def medsyn(*args: str) -> None:
    done = subprocess.run([*MEDSYN, *args], capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stderr[-2000:]


@pytest.fixture(scope="module")
def exports(kg_store_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("owl")
    files = {"kg": out / "kg.owl", "onto": out / "onto.owl", "symptoms": out / "symptoms.owl"}
    medsyn("kg", "export", "-f", "owl", "-o", str(files["kg"]), "--store", str(kg_store_dir))
    medsyn("onto", "export-owl", "--out", str(files["onto"]), "--store", str(kg_store_dir))
    medsyn("onto", "export-owl", "--with-symptoms", "--out", str(files["symptoms"]), "--store", str(kg_store_dir))
    return files


@pytest.fixture(scope="module")
def graph_codes(kg_store_dir: Path) -> dict[str, int]:
    with OxigraphStore(kg_store_dir, read_only=True) as s:
        return {r["kind"].value.removeprefix(MS): int(r["n"].value) for r in s.query(CODES_PER_KIND)}


def _triples(path: Path) -> set[str]:
    # Blank nodes (the TBox's OWL lists) are relabelled per parse: compare their shape.
    quads = parse(path=str(path), format=RdfFormat.RDF_XML)
    return {" ".join("_:" if str(t).startswith("_:") else str(t) for t in q.triple) for q in quads}


def test_both_commands_write_the_same_file(exports: dict[str, Path]) -> None:
    assert _triples(exports["kg"]) == _triples(exports["onto"])


def test_owlready2_finds_every_code_of_the_graph(exports: dict[str, Path], graph_codes: dict[str, int]) -> None:
    import owlready2

    world = owlready2.World()
    onto = world.get_ontology(exports["onto"].as_uri()).load()
    ms = onto.get_namespace(MS)
    found = {k: len(set(getattr(ms, k).instances(world=world))) for k in KINDS}
    # Source-added sub-codes (medsyn-mkg, pharmacotherapydb) live outside graph/icd10 and must be there too.
    assert graph_codes["ICD10Subcode"] > 14_000 and found == graph_codes


def test_symptom_links_point_at_declared_codes(exports: dict[str, Path], kg_store_dir: Path) -> None:
    doc = OxigraphStore.in_memory()
    doc.load(exports["symptoms"], format="owl")
    linked = {r["c"] for r in doc.query(LINKED_CODES)}
    declared = {
        r["c"]
        for r in doc.query(
            f"PREFIX ms: <{MS}> SELECT ?c WHERE {{ ?c a ?k FILTER(?k IN (ms:ICD10Category, ms:ICD10Subcode)) }}"
        )
    }
    with OxigraphStore(kg_store_dir, read_only=True) as s:
        assert len(linked) == len({r["c"] for r in s.query(LINKED_CODES)}) > 500
    assert linked - declared == set()


def test_re_importing_an_export_with_source_codes_changes_nothing(tmp_path: Path, shared_data: Path) -> None:
    build_kg(tmp_path / "store", data=shared_data, sources=["medsyn-mkg"], progress=False)
    with OxigraphStore(tmp_path / "store") as s:
        before = s.dump(format="nq")
        export_owl(s, tmp_path / "x.owl")
        r = import_owl(s, tmp_path / "x.owl", by="t")
        assert (r.added, r.removed, r.committed) == (0, 0, False)
        assert s.dump(format="nq") == before
