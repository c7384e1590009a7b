"""`medsyn serve`'s workers write JSON solutions with pyoxigraph's own writer (issue 23: the sampling table spent a
sixth of its time in Python writers) and still never send more rows than --max-rows: the rows are counted in what
pyoxigraph wrote, and a result that may be over the cap is evaluated again through the capped writers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pyoxigraph import BlankNode, Literal, NamedNode, Quad, QueryResultsFormat, QuerySolutions, Store

from medsyn.kg.protocol import TRUNCATED_HEADER
from medsyn.kg.queries import load_query
from medsyn.kg.store import bind_query
from medsyn.kg.vocab import code_iri, source_iri
from medsyn.server import results
from medsyn.server.messages import QueryRequest
from medsyn.server.querying import evaluate

JSON = "application/sparql-results+json"
P = NamedNode("urn:p")
# Strings that look like row boundaries to a careless counter: braces, quotes, escapes, a key-like text.
TRICKY = ['a},{"s":{"type":"', "{}", "{},{}", '\\"},{', "}}]}}", "строка {с} скобками", 'x"y', "\\"]


def _tricky_store() -> Store:
    s = Store()
    for i, text in enumerate(TRICKY):
        subject = NamedNode(f"urn:s{i}")
        s.add(Quad(subject, P, Literal(text, language="ru")))
        s.add(Quad(subject, NamedNode("urn:q"), Literal(str(i), datatype=NamedNode("urn:t"))))
    s.add(Quad(BlankNode("b1"), P, Literal("{}")))
    return s


def _names(solutions: QuerySolutions) -> list[str]:
    return [v.value for v in solutions.variables]


def _python_json(store: Store, sparql: str, *, union: bool = False) -> dict[str, object]:
    """The answer as the Python writers give it."""
    result = store.query(sparql, use_default_graph_as_union=union)
    names = _names(result)
    return dict(json.loads(results.write_solutions(names, [tuple(r) for r in result], JSON)))


CASES = [
    "SELECT * WHERE { ?s ?p ?o }",
    "SELECT ?s ?o ?missing WHERE { ?s <urn:p> ?o OPTIONAL { ?s <urn:none> ?missing } }",
    "SELECT * WHERE { VALUES ?x { UNDEF UNDEF 1 UNDEF } }",  # rows that bind nothing
    "SELECT * WHERE { }",
    "SELECT ?x WHERE { ?x <urn:none> ?y }",  # no rows
    "SELECT ?симптом ?o WHERE { ?симптом <urn:p> ?o }",  # a variable name outside ASCII
]


@pytest.mark.parametrize("sparql", CASES)
def test_native_json_says_what_the_python_writer_says(sparql: str) -> None:
    store = _tricky_store()
    solutions = store.query(sparql)
    body = results.native_json(solutions, _names(solutions), 1000)
    assert body is not None
    assert json.loads(body) == _python_json(store, sparql)


@pytest.mark.parametrize("sparql", CASES)
def test_the_row_bound_is_never_below_the_rows_and_exact_without_braces_in_strings(sparql: str) -> None:
    store = _tricky_store()
    solutions = store.query(sparql)
    body = solutions.serialize(format=QueryResultsFormat.JSON)
    assert body is not None
    rows = len(json.loads(body)["results"]["bindings"])
    bound = results.json_rows_at_most(body, _names(solutions))
    assert bound >= rows
    plain = Store()
    for i in range(7):
        plain.add(Quad(NamedNode(f"urn:s{i}"), P, Literal(f"value {i}", language="ru")))
    solutions = plain.query(sparql)
    body = solutions.serialize(format=QueryResultsFormat.JSON)
    assert body is not None
    assert results.json_rows_at_most(body, _names(solutions)) == len(json.loads(body)["results"]["bindings"])


@pytest.mark.parametrize("cap", [1, 3, len(TRICKY), len(TRICKY) + 1, 100])
def test_answers_keep_the_row_cap_whichever_writer_wrote_them(cap: int) -> None:
    store = _tricky_store()
    sparql = "SELECT ?s ?o WHERE { ?s <urn:p> ?o }"
    total = len(TRICKY) + 1
    answer = evaluate(store, QueryRequest(sparql=sparql, accept=JSON, union=False), cap)
    assert answer.status == 200
    assert isinstance(answer.body, bytes)
    got = json.loads(answer.body)["results"]["bindings"]
    assert len(got) == min(cap, total)
    assert (TRUNCATED_HEADER in answer.headers) == (total > cap)
    if total <= cap:
        assert got == _python_json(store, sparql)["results"]["bindings"]  # type: ignore[index]


def test_a_result_past_the_byte_budget_goes_to_the_capped_writers(monkeypatch: pytest.MonkeyPatch) -> None:
    store = _tricky_store()
    monkeypatch.setattr(results, "ROW_BYTES", 1)  # every row is larger than that
    solutions = store.query("SELECT * WHERE { ?s ?p ?o }")
    assert results.native_json(solutions, _names(solutions), 100) is None
    answer = evaluate(store, QueryRequest(sparql="SELECT * WHERE { ?s ?p ?o }", accept=JSON, union=False), 100)
    assert answer.status == 200 and isinstance(answer.body, bytes)
    assert json.loads(answer.body) == _python_json(store, "SELECT * WHERE { ?s ?p ?o }")


def test_the_sampling_tables_come_back_as_the_python_writer_wrote_them(kg_store_dir: Path) -> None:
    store = Store.read_only(str(kg_store_dir))
    text = load_query("sampling/code_symptoms")
    for sparql in (
        bind_query(text, {"source": source_iri("wikimed")}),
        bind_query(text, {"source": source_iri("wikimed"), "code": code_iri("M54.5")}),
    ):
        answer = evaluate(store, QueryRequest(sparql=sparql, accept=JSON, union=True), 100_000)
        assert isinstance(answer.body, bytes)
        expected = _python_json(store, sparql, union=True)
        assert len(expected["results"]["bindings"]) > 10  # type: ignore[index]
        assert json.loads(answer.body) == expected
        assert TRUNCATED_HEADER not in answer.headers
