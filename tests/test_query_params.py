"""Query parameters: every parametrized ``sparql/*.rq`` binds where its variables are used (sub-SELECTs included),
so a value that matches nothing gives no rows; undeclared and unused parameters are refused."""

from __future__ import annotations

import pytest
from pyoxigraph import Literal, NamedNode

from medsyn.errors import InputError
from medsyn.kg.queries import query_parameters, run_named, run_query
from medsyn.kg.store import OxigraphStore, bind_query
from medsyn.kg.vocab import ID
from medsyn.paths import SPARQL_DIR

# Per parametrized query: a binding that matches the shared dataset (tests/sparql_cases.py). A new parametrized
# query without an entry here fails test_every_parametrized_query_has_a_case.
MATCHING: dict[str, dict[str, NamedNode | Literal]] = {
    "audit/note_lineage": {"note": NamedNode(ID + "note/synthetic/n1")},
    "audit/note_symptoms": {"note": NamedNode(ID + "note/synthetic/n1")},
    "audit/note_hashes": {"run": NamedNode(ID + "run/r1")},
    "audit/run_note_attempts": {"g": NamedNode("https://w3id.org/medsyn/graph/run/r1")},
    "audit/run": {"run": NamedNode(ID + "run/r1")},
    "audit/run_notes": {"run": NamedNode(ID + "run/r1")},
    "audit/sources": {"run": NamedNode(ID + "run/r1")},
    "export/note_inputs": {"run": NamedNode(ID + "run/r1")},
    "curation/code": {"code": NamedNode(ID + "icd10/M54.5")},
    "curation/group_weights": {"disease": NamedNode(ID + "icd10/M54.5"), "source": NamedNode(ID + "source/wikimed")},
    "curation/incoming": {"node": NamedNode(ID + "icd10/M54")},
    "curation/knowledge_sources": {"s": NamedNode(ID + "source/wikimed")},
    "curation/node_triples": {"node": NamedNode(ID + "icd10/M54.5")},
    "curation/symptom_by_label": {"text": Literal("ЛИХОРАДКА")},
    "curation/symptom_links": {"symptom": NamedNode(ID + "symptom/s1")},
    "instructions/symptoms_by_category": {"source": NamedNode(ID + "source/wikimed")},
    "sampling/code_symptoms": {"source": NamedNode(ID + "source/wikimed")},
    "sampling/codes": {"source": NamedNode(ID + "source/wikimed")},
}


def _parametrized() -> list[str]:
    names = [str(p.relative_to(SPARQL_DIR).with_suffix("")) for p in sorted(SPARQL_DIR.rglob("*.rq"))]
    return [n for n in names if query_parameters(n)]


def _nothing(term: NamedNode | Literal) -> NamedNode | Literal:
    return NamedNode("urn:medsyn:test:matches-nothing") if isinstance(term, NamedNode) else Literal("matches nothing")


def test_every_parametrized_query_has_a_case() -> None:
    assert sorted(MATCHING) == _parametrized()
    for name, binding in MATCHING.items():
        assert sorted(binding) == sorted(query_parameters(name)), name


@pytest.mark.parametrize("name", sorted(MATCHING))
def test_binding_restricts_the_answer(name: str, embedded: OxigraphStore) -> None:
    binding = MATCHING[name]
    assert run_named(embedded, name, **binding), f"{name}: the matching binding should give rows"
    for param in binding:
        other = {**binding, param: _nothing(binding[param])}
        assert run_named(embedded, name, **other) == [], f"{name}: ?{param} matching nothing must give no rows"


def test_a_sub_select_parameter_is_bound_inside_the_sub_select(embedded: OxigraphStore) -> None:
    q = "SELECT ?x WHERE { { SELECT ?x WHERE { ?x <urn:p> ?v } } }"
    embedded.update("INSERT DATA { GRAPH <urn:t> { <urn:a> <urn:p> 1 . <urn:b> <urn:p> 2 } }")
    try:
        assert [r["x"].value for r in run_query(embedded, q, v=2)] == ["urn:b"]
        bound = bind_query(q, {"v": 2})
        assert bound.index("VALUES") > bound.index("SELECT", 10)
    finally:
        embedded.clear_graph(NamedNode("urn:t"))


def test_parameters_in_both_scopes_are_bound_in_both() -> None:
    q = "SELECT ?c WHERE { { SELECT ?c WHERE { ?c <urn:s> ?src } } ?c <urn:from> ?src }"
    assert bind_query(q, {"src": "x"}).count("VALUES (?src)") == 2


def test_strings_comments_and_iris_do_not_confuse_the_scopes() -> None:
    q = '# { SELECT ?v\nSELECT ?x WHERE { ?x <urn:a{b> "} SELECT ?v {" ; <urn:p> """?v { SELECT""" , ?v }'
    bound = bind_query(q, {"v": 1})
    assert bound.count("VALUES") == 1 and bound.index("VALUES") == q.index("WHERE {") + 8


def test_an_aggregate_alias_of_a_sub_select_belongs_to_the_outer_group() -> None:
    q = "SELECT ?n WHERE { { SELECT (COUNT(?s) AS ?n) WHERE { ?s ?p ?o } } }"
    bound = bind_query(q, {"n": 0})
    assert bound.index("VALUES") < bound.index("SELECT", 10)


def test_unused_and_undeclared_parameters_are_refused(embedded: OxigraphStore) -> None:
    with pytest.raises(InputError, match=r"does not use the parameter \?nope"):
        run_query(embedded, "SELECT ?s WHERE { ?s ?p ?o }", nope=1)
    with pytest.raises(InputError, match=r"sparql/sampling/codes.rq has no parameter \?code \(it declares: \?source\)"):
        run_named(embedded, "sampling/codes", code=NamedNode(ID + "icd10/M54"))
    with pytest.raises(InputError, match=r"kg/graph_counts.rq has no parameter \?g \(it declares: none\)"):
        run_named(embedded, "kg/graph_counts", g=NamedNode("urn:g"))
