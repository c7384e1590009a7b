"""``medsyn kg`` through the real entry point: output formats, and one-line errors with non-zero exits."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from pyoxigraph import RdfFormat, parse

from medsyn.kg.build import build_kg
from medsyn.kg.store import OxigraphStore
from medsyn.testing.commands import MEDSYN

M545 = "<https://w3id.org/medsyn/id/icd10/M54.5>"


def medsyn(*args: str, store: Path | None = None, data: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    if store is not None:
        env["MEDSYN_STORE"] = str(store)
    if data is not None:
        env["MEDSYN_DATA"] = str(data)
    return subprocess.run([*MEDSYN, *args], capture_output=True, text=True, env=env, timeout=300)


def assert_one_line_error(p: subprocess.CompletedProcess[str], *fragments: str, progress: str | None = None) -> None:
    """``progress``: the command's progress line, which a command that ran to its finding shows before it."""
    assert p.returncode != 0
    assert "Traceback" not in p.stderr
    lines = [x for x in p.stderr.strip().splitlines() if progress is None or not x.startswith(progress + " ")]
    assert len(lines) == 1 and lines[0].startswith("error: "), p.stderr
    for f in fragments:
        assert f in lines[0]


def test_stats_and_query_formats(kg_store_dir: Path) -> None:
    p = medsyn("kg", "stats", store=kg_store_dir)
    assert p.returncode == 0 and "ICD10Category" in p.stdout and "2,058" in p.stdout and "version sha256:" in p.stdout
    q = f"SELECT ?l WHERE {{ {M545} <http://www.w3.org/2000/01/rdf-schema#label> ?l }} ORDER BY ?l"
    j = json.loads(medsyn("kg", "query", "-e", q, "--format", "json", store=kg_store_dir).stdout)
    assert j["head"]["vars"] == ["l"]
    assert [(b["l"]["value"], b["l"]["xml:lang"]) for b in j["results"]["bindings"]] == [
        ("Low back pain", "en"),
        ("Боль внизу спины", "ru"),
    ]
    assert medsyn("kg", "query", "-e", q, "-f", "csv", store=kg_store_dir).stdout.splitlines() == [
        "l",
        "Low back pain",
        "Боль внизу спины",
    ]
    tsv = medsyn("kg", "query", "-e", q, "-f", "tsv", store=kg_store_dir).stdout.splitlines()
    assert tsv == ["?l", '"Low back pain"@en', '"Боль внизу спины"@ru']


def test_query_errors_are_one_line(kg_store_dir: Path, tmp_path: Path) -> None:
    assert_one_line_error(medsyn("kg", "query", "-e", "SELEC ?x", store=kg_store_dir), "SPARQL syntax error")
    assert_one_line_error(medsyn("kg", "query", str(tmp_path / "no.rq"), store=kg_store_dir), "no.rq", "not found")
    assert_one_line_error(medsyn("kg", "query", "-e", "ASK {}", "-f", "yaml", store=kg_store_dir), "--format")
    construct = "CONSTRUCT { ?s ?p ?o } WHERE { ?s ?p ?o } LIMIT 1"
    assert_one_line_error(medsyn("kg", "query", "-e", construct, "-f", "csv", store=kg_store_dir), "--format csv")
    assert_one_line_error(medsyn("kg", "stats", store=tmp_path / "none"), "does not exist")


def test_a_query_file_without_its_prefix_names_the_file_and_line(tmp_path: Path) -> None:
    # pyoxigraph's message was a dump of every character class it would have accepted, without the file.
    store = tmp_path / "store"
    OxigraphStore(store).close()
    rq = tmp_path / "codes.rq"
    rq.write_text("# categories\nSELECT ?c WHERE {\n  ?c a ms:ICD10Category .\n}\n", encoding="utf-8")
    p = medsyn("kg", "query", str(rq), store=store)
    assert p.returncode == 2
    assert p.stderr.strip() == (
        f"error: {rq}:3: prefix ms: is not declared; add PREFIX ms: <https://w3id.org/medsyn/ontology#> at the top"
    )
    rq.write_text("# a typo\nSELEC ?c WHERE { ?c ?p ?o }\n", encoding="utf-8")
    assert_one_line_error(medsyn("kg", "query", str(rq), store=store), f"{rq}:2: SPARQL syntax error at column")
    rq.write_text("PREFIX ms: <https://w3id.org/medsyn/ontology#>\nASK { ?c a ms:ICD10Category }\n", encoding="utf-8")
    assert medsyn("kg", "query", str(rq), store=store).returncode == 0


def test_export_owl_and_turtle(kg_store_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "mkg.owl"
    p = medsyn("kg", "export", "--format", "owl", "--out", str(out), store=kg_store_dir)
    assert p.returncode == 0, p.stderr
    triples = list(parse(path=str(out), format=RdfFormat.RDF_XML))
    categories = {
        t.subject for t in triples if t.predicate.value.endswith("#type") and t.object.value.endswith("#ICD10Category")
    }
    assert len(categories) == 2058
    assert any(t.subject.value.endswith("#ICD10Category") for t in triples)  # the TBox is in it too
    p = medsyn(
        "kg", "export", "-f", "ttl", "--graph", "https://w3id.org/medsyn/graph/source/wikimed", store=kg_store_dir
    )
    assert p.returncode == 0 and "ms:SymptomAssociation" in p.stdout
    assert_one_line_error(medsyn("kg", "export", "-f", "ttl", "--graph", "urn:x", store=kg_store_dir), "no named graph")


@pytest.fixture(scope="module")
def small_store(tmp_path_factory: pytest.TempPathFactory, shared_data: Path) -> Path:
    path = tmp_path_factory.mktemp("small") / "store"
    build_kg(path, data=shared_data, sources=["wikimed"], progress=False)
    return path


def test_validate_lists_offending_rows(small_store: Path) -> None:
    ok = medsyn("kg", "validate", "--no-reasoner", store=small_store)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    with OxigraphStore(small_store) as s:
        s.update(
            "INSERT DATA { GRAPH <https://w3id.org/medsyn/graph/source/test> {"
            " <https://w3id.org/medsyn/id/assoc/symptom/bad> a <https://w3id.org/medsyn/ontology#SymptomAssociation> ;"
            " <https://w3id.org/medsyn/ontology#normalizedWeight> 2.0 } }"
        )
    bad = medsyn("kg", "validate", "--no-reasoner", store=small_store)
    assert bad.returncode == 1
    assert "assoc/symptom/bad" in bad.stdout and "value=2" in bad.stdout
    assert_one_line_error(bad, "weight_out_of_range", "orphan_association", progress="kg validate")


def test_build_refuses_locked_store_and_bad_data(small_store: Path, tmp_path: Path, shared_data: Path) -> None:
    holder = OxigraphStore(small_store)
    try:
        assert_one_line_error(medsyn("kg", "build", "-q", store=small_store, data=shared_data), "locked")
    finally:
        holder.close()
    empty = tmp_path / "data"
    empty.mkdir()
    p = medsyn("kg", "build", "-q", store=small_store, data=empty)
    assert_one_line_error(p, "mkb10_ru_minzdrav")
    assert_one_line_error(medsyn("kg", "build", "--sources", "nope", store=small_store), "unknown source 'nope'")
    # A bad endpoint is refused before the build runs (the empty data folder would fail the build first).
    assert_one_line_error(
        medsyn("kg", "build", "-q", "--endpoint", "ftp://example.org/sparql", data=empty), "http(s) URL"
    )


def test_query_json_writes_triple_terms_as_sparql_results() -> None:
    from medsyn.cli.kg import format_result

    rows = OxigraphStore.in_memory().results("SELECT ?t WHERE { BIND(<<( <urn:a> <urn:b> <urn:c> )>> AS ?t) }")
    term = json.loads(format_result(rows, "json"))["results"]["bindings"][0]["t"]
    assert term == {
        "type": "triple",
        "value": {
            "subject": {"type": "uri", "value": "urn:a"},
            "predicate": {"type": "uri", "value": "urn:b"},
            "object": {"type": "uri", "value": "urn:c"},
        },
    }
