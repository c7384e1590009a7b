"""`medsyn serve` against the real Oxigraph server: both started on copies of the same store, sent the same queries
(dataset clauses, GRAPH patterns, the protocol's dataset parameters), their answers compared row for row; and
`medsyn kg query` honouring a query's own dataset the same way."""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from pyoxigraph import QueryResultsFormat, RdfFormat, parse, parse_query_results
from sparql_cases import PREFIXES, canonical, dataset_store

from medsyn.kg.vocab import GRAPH
from medsyn.testing.servers import RunningServer, medsyn_server, oxigraph_server

MEDSYN = str(Path(sys.executable).with_name("medsyn"))
COUNT = "SELECT (COUNT(*) AS ?n) "
ALL = "WHERE { ?s ?p ?o }"
PER_GRAPH = "SELECT ?g (COUNT(*) AS ?n) WHERE { GRAPH ?g { ?s ?p ?o } } GROUP BY ?g"
ONTO, ICD, WIKI = f"<{GRAPH}ontology>", f"<{GRAPH}icd10>", f"<{GRAPH}source/wikimed>"
UNION = {"union-default-graph": "true"}  # the Oxigraph server's switch; medsyn serve answers from the union anyway

# (name, query, extra parameters for medsyn serve, extra parameters for Oxigraph). medsyn serve runs as users run
# it (union default graph); where a query has no dataset of its own, Oxigraph is asked for the union too.
CASES: list[tuple[str, str, dict[str, str], dict[str, str]]] = [
    ("union_default", COUNT + ALL, {}, UNION),
    ("store_default", COUNT + ALL, {"union-default-graph": "false"}, {}),
    ("from_nothing", COUNT + "FROM <urn:nothing> " + ALL, {}, {}),
    ("from_ontology", COUNT + f"FROM {ONTO} " + ALL, {}, {}),
    ("from_two_graphs", COUNT + f"FROM {ICD} FROM {WIKI} " + ALL, {}, {}),
    ("from_named_only_default_empty", COUNT + f"FROM NAMED {ICD} " + ALL, {}, {}),
    (
        "from_named_graph_var",
        f"SELECT ?g (COUNT(*) AS ?n) FROM NAMED {ICD} FROM NAMED {WIKI} "
        "WHERE { GRAPH ?g { ?s ?p ?o } } GROUP BY ?g",
        {},
        {},
    ),
    (
        "from_and_from_named",
        f"SELECT ?g ?c FROM {ONTO} FROM NAMED {ICD} "
        "WHERE { GRAPH ?g { ?c a ?k } FILTER NOT EXISTS { ?c ?p ?o } }",
        {},
        {},
    ),
    ("lower_case_from", "select (count(*) as ?n) from <urn:nothing> " + ALL, {}, {}),
    ("graph_var_union", PER_GRAPH, {}, UNION),
    ("graph_var_store_default", PER_GRAPH, {"union-default-graph": "false"}, {}),
    (
        "graph_iri",
        f"SELECT ?c WHERE {{ GRAPH {ICD} {{ ?c <http://www.w3.org/2004/02/skos/core#notation> ?n }} }}",
        {},
        UNION,
    ),
    ("ask_from", PREFIXES + f'ASK FROM {ONTO} {{ ?c skos:notation "M54.5" }}', {}, {}),
    ("ask_from_icd", PREFIXES + f'ASK FROM {ICD} {{ ?c skos:notation "M54.5" }}', {}, {}),
    ("construct_from", PREFIXES + f"CONSTRUCT {{ ?c ms:parent ?p }} FROM {ICD} WHERE {{ ?c ms:parent ?p }}", {}, {}),
    ("describe_from", PREFIXES + f"DESCRIBE msid:icd10\\/M54 FROM {ICD}", {}, {}),
    ("default_graph_uri", COUNT + ALL, {"default-graph-uri": ICD[1:-1]}, {"default-graph-uri": ICD[1:-1]}),
    ("default_graph_uri_no_named", PER_GRAPH, {"default-graph-uri": ICD[1:-1]}, {"default-graph-uri": ICD[1:-1]}),
    ("named_graph_uri", PER_GRAPH, {"named-graph-uri": WIKI[1:-1]}, {"named-graph-uri": WIKI[1:-1]}),
    ("named_graph_uri_empty_default", COUNT + ALL, {"named-graph-uri": WIKI[1:-1]}, {"named-graph-uri": WIKI[1:-1]}),
    (
        "protocol_over_from",
        COUNT + f"FROM {ONTO} " + ALL,
        {"default-graph-uri": ICD[1:-1]},
        {"default-graph-uri": ICD[1:-1]},
    ),
]


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, RunningServer]]:
    base = tmp_path_factory.mktemp("parity")
    dataset_store(base / "medsyn")
    shutil.copytree(base / "medsyn", base / "oxigraph")  # the same bytes for both servers
    with (
        medsyn_server(base / "medsyn", extra_args=["--quiet"]) as ms,
        oxigraph_server(base / "oxigraph", log_path=base / "oxigraph.log") as ox,
    ):
        yield {"medsyn": ms, "oxigraph": ox}


def _answer(srv: RunningServer, query: str, params: dict[str, str]) -> object:
    r = httpx.post(
        srv.query_url,
        data={"query": query, **params},
        timeout=30,
        headers={"Accept": "application/sparql-results+json, application/n-triples"},
    )
    assert r.status_code == 200, r.text
    ctype = r.headers["content-type"].split(";")[0]
    if ctype == "application/sparql-results+json":
        result = parse_query_results(r.content, format=QueryResultsFormat.JSON)
        if not hasattr(result, "variables"):
            return bool(result)
        names = [v.value for v in result.variables]
        return canonical([{n: t for n, t in zip(names, row, strict=True) if t is not None} for row in result])
    fmt = RdfFormat.from_media_type(ctype)
    assert fmt is not None, ctype
    return canonical([q.triple for q in parse(r.content, format=fmt)])


@pytest.mark.parametrize(("name", "query", "ms_params", "ox_params"), CASES, ids=[c[0] for c in CASES])
def test_same_answer_as_oxigraph(
    name: str, query: str, ms_params: dict[str, str], ox_params: dict[str, str], servers: dict[str, RunningServer]
) -> None:
    ours = _answer(servers["medsyn"], query, ms_params)
    theirs = _answer(servers["oxigraph"], query, ox_params)
    assert ours == theirs
    assert ours not in ([], False) or name in EMPTY, f"{name}: an empty answer proves nothing"


EMPTY = {
    "from_named_only_default_empty",
    "named_graph_uri_empty_default",
    "from_nothing",
    "lower_case_from",
    "default_graph_uri_no_named",
    "ask_from",
}


def test_dataset_counts(servers: dict[str, RunningServer]) -> None:
    """The issue's figures in small: a FROM graph replaces the union default, and FROM NAMED alone leaves an empty
    default graph."""
    ms = servers["medsyn"]

    def count(query: str) -> int:
        r = httpx.post(ms.query_url, data={"query": query}, timeout=30, headers={"Accept": "text/csv"})
        assert r.status_code == 200, r.text
        return int(r.text.split()[1])

    union = count(COUNT + ALL)
    onto = count(COUNT + f"FROM {ONTO} " + ALL)
    assert count(COUNT + "FROM <urn:nothing> " + ALL) == 0
    assert 0 < onto < union
    assert count(COUNT + f"FROM NAMED {ONTO} " + ALL) == 0


def test_kg_query_honours_the_query_dataset(tmp_path: Path) -> None:
    store = dataset_store(tmp_path / "store")

    def count(query: str) -> int:
        run = subprocess.run(
            [MEDSYN, "kg", "query", "--store", str(store), "-f", "csv", "-e", query], capture_output=True, timeout=120
        )
        assert run.returncode == 0, run.stderr.decode()
        return int(run.stdout.decode().split()[1])

    union = count(COUNT + ALL)
    assert count(COUNT + "FROM <urn:nothing> " + ALL) == 0
    assert 0 < count(COUNT + f"FROM {ONTO} " + ALL) < union
    assert count(COUNT + f"FROM NAMED {ONTO} " + ALL) == 0
