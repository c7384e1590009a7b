"""The embedded store and parameter binding that every other module relies on."""

from __future__ import annotations

from pathlib import Path

import pytest
from pyoxigraph import Literal, NamedNode, Quad

from medsyn.errors import InputError, StoreError
from medsyn.kg.store import OxigraphStore, bind_query

G = NamedNode("urn:g")
P = NamedNode("urn:p")


def _store() -> OxigraphStore:
    s = OxigraphStore.in_memory()
    s.add_quads([Quad(NamedNode("urn:a"), P, Literal("1"), G), Quad(NamedNode("urn:b"), P, Literal("2"))])
    return s


def test_a_bound_string_cannot_change_the_query() -> None:
    s = _store()
    hostile = '1" } } ; DROP ALL ; SELECT * { ?s ?p "'
    assert s.query("SELECT ?s WHERE { ?s ?p ?o }", bindings={"o": hostile}) == []
    assert len(s) == 2
    rows = s.query("SELECT ?s WHERE { ?s ?p ?o }", bindings={"o": "1"})
    assert [r["s"].value for r in rows] == ["urn:a"]


def test_binding_goes_into_the_where_group_of_construct_and_skips_iris_and_comments() -> None:
    q = "PREFIX x: <urn:x#a> # a { in a comment\nCONSTRUCT { ?s <urn:r#x> ?o } WHERE { ?s <urn:p> ?o }"
    bound = bind_query(q, {"o": "2"})
    assert bound.index("VALUES") > bound.index("WHERE")
    triples = _store().query(q, bindings={"o": "2"})
    assert [(t.subject.value, t.predicate.value) for t in triples] == [("urn:b", "urn:r#x")]


def test_bad_parameter_names_and_queries_without_a_group_are_refused() -> None:
    with pytest.raises(InputError, match="invalid SPARQL parameter name"):
        bind_query("SELECT * { ?s ?p ?o }", {"o} DROP": "x"})
    with pytest.raises(InputError, match="no WHERE group"):
        bind_query("ASK", {"o": "x"})


def test_syntax_errors_are_input_errors() -> None:
    with pytest.raises(InputError, match="SPARQL syntax error"):
        _store().query("SELEC * { ?s ?p ?o }")


def test_dumping_one_graph_as_quads_keeps_its_name(tmp_path: Path) -> None:
    data = _store().dump(format="nq", graph=G)
    copy = OxigraphStore.in_memory()
    copy.load(data, format="nq")
    assert [g.value for g in copy.named_graphs()] == ["urn:g"] and len(copy) == 1


def test_remove_quads_is_one_update() -> None:
    s = _store()
    s.remove_quads([Quad(NamedNode("urn:a"), P, Literal("1"), G), Quad(NamedNode("urn:b"), P, Literal("2"))])
    assert len(s) == 0


def test_read_only_store_closes_and_a_second_writer_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "store"
    with OxigraphStore(path) as s:
        s.add_quads([Quad(NamedNode("urn:a"), P, Literal("1"), G)])
    ro = OxigraphStore(path, read_only=True)
    assert len(ro) == 1
    ro.close()  # no flush on a read-only store
    writer = OxigraphStore(path)
    with pytest.raises(StoreError, match="locked by another process"):
        OxigraphStore(path)
    writer.close()
    with pytest.raises(StoreError, match="does not exist"):
        OxigraphStore(tmp_path / "nope", read_only=True)


def test_samples_file_errors_name_the_line(tmp_path: Path) -> None:
    from medsyn.sampling.samples import Sample, read_samples, write_samples

    s = Sample(
        id="s",
        index=0,
        strategy="paper",
        seed=1,
        code="M54.5",
        category="M54",
        symptoms=["боль"],
        symptom_iris=["urn:x"],
    )
    good = tmp_path / "ok.jsonl"
    write_samples(good, [s])
    assert read_samples(good) == [s]
    cases = [
        (good.read_text(encoding="utf-8") + "[1]\n", ":2: expected a JSON object"),
        ('{"id": "s"}\n', ":1: sample is missing field(s): index"),
        (good.read_text(encoding="utf-8") + "{oops\n", ":2: invalid JSON"),
    ]
    for text, message in cases:
        bad = tmp_path / "bad.jsonl"
        bad.write_text(text, encoding="utf-8")
        with pytest.raises(InputError) as info:
            read_samples(bad)
        assert message in str(info.value)
    (tmp_path / "latin.jsonl").write_bytes(b'{"id": "\xff"}\n')
    with pytest.raises(InputError, match=r"latin\.jsonl:1: not UTF-8 text"):
        read_samples(tmp_path / "latin.jsonl")
