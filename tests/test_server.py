"""The SPARQL 1.1 Protocol of `medsyn serve`, spoken over HTTP to the real command in a child process."""

from __future__ import annotations

import csv
import io
import json
import re
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from pyoxigraph import (
    NamedNode,
    QueryResultsFormat,
    RdfFormat,
    parse,
    parse_query_results,
)
from sparql_cases import CASES, FILLER, PREFIXES, Case, canonical, dataset_store

from medsyn.errors import StoreError
from medsyn.kg.remote_store import RemoteStore
from medsyn.kg.store import OxigraphStore, bind_query
from medsyn.kg.vocab import GRAPH
from medsyn.testing.commands import MEDSYN
from medsyn.testing.servers import RunningServer, free_port, medsyn_server

TOKEN = "s3cret-token"
SELECT = PREFIXES + "SELECT ?c ?l WHERE { ?c skos:notation ?n ; rdfs:label ?l }"
CONSTRUCT = PREFIXES + "CONSTRUCT { ?c ms:parent ?p } WHERE { ?c ms:parent ?p }"


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    store = dataset_store(tmp_path_factory.mktemp("serve") / "store")
    with medsyn_server(store, token=TOKEN) as server:
        yield server


@pytest.fixture(scope="module")
def limited(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    """Read-only, union by default, a 0.5 s time limit, 5 rows at most, CORS for one origin."""
    store = dataset_store(tmp_path_factory.mktemp("limited") / "store", filler=200)
    args = ["--timeout", "0.5", "--max-rows", "5", "--cors-origin", "https://curator.example", "--union-default-graph"]
    with medsyn_server(store, extra_args=[*args, "--quiet"]) as server:
        yield server


@pytest.fixture()
def client() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=30) as c:
        yield c


def _rows(response: httpx.Response) -> list[str]:
    assert response.status_code == 200, response.text
    return canonical(_decode(response))


def _decode(response: httpx.Response) -> object:
    ctype = response.headers["content-type"].split(";")[0]
    if ctype == "application/sparql-results+json":
        result = parse_query_results(response.content, format=QueryResultsFormat.JSON)
    elif ctype == "application/sparql-results+xml":
        result = parse_query_results(response.content, format=QueryResultsFormat.XML)
    elif ctype == "text/tab-separated-values":
        result = parse_query_results(response.content, format=QueryResultsFormat.TSV)
    else:
        fmt = RdfFormat.from_media_type(ctype)
        assert fmt is not None, ctype
        return [q.triple for q in parse(response.content, format=fmt)]
    if isinstance(result, bool) or not hasattr(result, "variables"):
        return bool(result)
    names = [v.value for v in result.variables]
    return [{n: t for n, t in zip(names, sol, strict=True) if t is not None} for sol in result]


def test_get_form_post_and_direct_post_agree(srv: RunningServer, client: httpx.Client, embedded: OxigraphStore) -> None:
    want = canonical(embedded.query(SELECT))
    params = {"query": SELECT, "union-default-graph": ""}
    by_get = client.get(srv.query_url, params=params)
    by_form = client.post(srv.query_url, data=params)
    by_body = client.post(
        srv.query_url,
        params={"union-default-graph": ""},
        content=SELECT.encode(),
        headers={"Content-Type": "application/sparql-query"},
    )
    assert _rows(by_get) == _rows(by_form) == _rows(by_body) == want
    assert by_get.headers["content-type"].startswith("application/sparql-results+json")


@pytest.mark.parametrize(
    "accept",
    ["application/sparql-results+json", "application/sparql-results+xml", "text/tab-separated-values", "*/*"],
)
def test_select_result_formats(accept: str, srv: RunningServer, client: httpx.Client, embedded: OxigraphStore) -> None:
    r = client.get(srv.query_url, params={"query": SELECT, "union-default-graph": ""}, headers={"Accept": accept})
    assert _rows(r) == canonical(embedded.query(SELECT))


def test_csv_results(srv: RunningServer, client: httpx.Client, embedded: OxigraphStore) -> None:
    r = client.get(srv.query_url, params={"query": SELECT, "union-default-graph": ""}, headers={"Accept": "text/csv"})
    assert r.headers["content-type"] == "text/csv; charset=utf-8"
    table = list(csv.reader(io.StringIO(r.text)))
    assert table[0] == ["c", "l"]
    want = sorted((row["c"].value, row["l"].value) for row in embedded.query(SELECT))
    assert sorted((a, b) for a, b in table[1:]) == want


@pytest.mark.parametrize("accept", ["text/turtle", "application/n-triples", "application/ld+json", "text/plain"])
def test_graph_result_formats(accept: str, srv: RunningServer, client: httpx.Client, embedded: OxigraphStore) -> None:
    r = client.get(srv.query_url, params={"query": CONSTRUCT, "union-default-graph": ""}, headers={"Accept": accept})
    assert _rows(r) == canonical(embedded.query(CONSTRUCT))


def test_ask_in_json_and_xml(srv: RunningServer, client: httpx.Client) -> None:
    q = PREFIXES + 'ASK { ?c skos:notation "M54.5" }'
    for accept in ("application/sparql-results+json", "application/sparql-results+xml"):
        r = client.get(srv.query_url, params={"query": q, "union-default-graph": ""}, headers={"Accept": accept})
        assert _decode(r) is True


def test_unacceptable_format_is_406(srv: RunningServer, client: httpx.Client) -> None:
    r = client.get(srv.query_url, params={"query": SELECT}, headers={"Accept": "image/png"})
    assert r.status_code == 406 and "application/sparql-results+json" in r.text


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_shared_cases_over_http(case: Case, srv: RunningServer, client: httpx.Client, embedded: OxigraphStore) -> None:
    sparql = bind_query(case.sparql, case.bindings) if case.bindings else case.sparql
    params = {"query": sparql}
    params["union-default-graph"] = "true" if case.union else "false"
    got = _decode(client.post(srv.query_url, data=params))
    assert canonical(got) == canonical(embedded.query(sparql, union=case.union))


def test_default_graph_union_and_dataset_parameters(srv: RunningServer, client: httpx.Client) -> None:
    q = "SELECT (COUNT(*) AS ?n) WHERE { ?s ?p ?o }"

    def count(**params: str | list[str]) -> int:
        r = client.get(srv.query_url, params={"query": q, **params})
        assert r.status_code == 200, r.text
        return int(r.json()["results"]["bindings"][0]["n"]["value"])

    default_only = count(**{"union-default-graph": "false"})
    assert default_only == 1  # the one triple the dataset keeps in the store's default graph
    union = count()  # the union is the default
    assert union > 100 and count(**{"union-default-graph": ""}) == union
    assert count(**{"store-default-graph": "true"}) == default_only
    icd = count(**{"default-graph-uri": GRAPH + "icd10"})
    two = count(**{"default-graph-uri": [GRAPH + "icd10", GRAPH + "meta"]})
    assert 10 < icd < two < union
    named = client.get(
        srv.query_url,
        params={"query": "SELECT DISTINCT ?g WHERE { GRAPH ?g { } }", "named-graph-uri": GRAPH + "meta"},
    ).json()["results"]["bindings"]
    assert [b["g"]["value"] for b in named] == [GRAPH + "meta"]


def test_graph_store_get(srv: RunningServer, client: httpx.Client, embedded: OxigraphStore) -> None:
    icd = NamedNode(GRAPH + "icd10")
    r = client.get(srv.store_url, params={"graph": icd.value}, headers={"Accept": "text/turtle"})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/turtle")
    got = {str(t) for t in parse(r.content, format=RdfFormat.TURTLE)}
    assert got == {str(t) for t in parse(embedded.dump(format="nt", graph=icd), format=RdfFormat.N_TRIPLES)}
    r = client.get(srv.store_url, params={"default": ""}, headers={"Accept": "application/n-triples"})
    assert r.text.count("\n") == 1 and "default graph only" in r.text
    r = client.get(srv.store_url, headers={"Accept": "application/n-quads"})
    assert len(r.text.splitlines()) == len(embedded.dump(format="nq").splitlines())
    r = client.get(srv.store_url, params={"graph": "urn:no:such:graph"})
    assert r.status_code == 404 and "urn:no:such:graph" in r.text


def test_updates_need_the_bearer_token(srv: RunningServer, client: httpx.Client) -> None:
    upd = "INSERT DATA { GRAPH <urn:medsyn:test:upd> { <urn:a> <urn:b> 'c' } }"
    assert client.post(srv.update_url, data={"update": upd}).status_code == 401
    r = client.post(srv.update_url, data={"update": upd}, headers={"Authorization": "Bearer wrong"})
    assert r.status_code == 401 and "invalid" in r.text
    r = client.post(srv.update_url, data={"update": upd}, headers={"Authorization": f"Bearer {TOKEN}"})
    assert r.status_code == 204
    r = client.post(
        srv.query_url,
        content=b"DROP GRAPH <urn:medsyn:test:upd>",
        headers={"Content-Type": "application/sparql-update", "Authorization": f"Bearer {TOKEN}"},
    )
    assert r.status_code == 204
    ask = client.get(srv.query_url, params={"query": "ASK { GRAPH ?g { <urn:a> <urn:b> 'c' } }"}).json()
    assert ask["boolean"] is False


def test_updates_disabled_without_token(limited: RunningServer, client: httpx.Client) -> None:
    r = client.post(limited.update_url, data={"update": "CLEAR ALL"}, headers={"Authorization": f"Bearer {TOKEN}"})
    assert r.status_code == 403 and "--token" in r.text
    assert client.get(limited.base_url + "/health").json()["updates"] is False


def test_malformed_query_is_400_with_parser_message(srv: RunningServer, client: httpx.Client) -> None:
    r = client.get(srv.query_url, params={"query": "SELECT ?x WHERE { ?x"})
    assert r.status_code == 400 and r.text.startswith("SPARQL syntax error: error at 1:")
    bad_update = client.post(
        srv.update_url, data={"update": "INSERT DATA {"}, headers={"Authorization": f"Bearer {TOKEN}"}
    )
    assert bad_update.status_code == 400 and "error at" in bad_update.text


def test_protocol_errors(srv: RunningServer, client: httpx.Client) -> None:
    assert client.get(srv.query_url, params={"query": ""}).status_code == 400  # empty query
    assert client.get(srv.query_url, params=[("query", "ASK {}"), ("query", "ASK {}")]).status_code == 400
    assert client.post(srv.query_url, content=b"ASK {}", headers={"Content-Type": "text/plain"}).status_code == 415
    assert client.put(srv.store_url, content=b"").status_code == 401  # Graph Store writes need the token
    assert client.request("PATCH", srv.store_url).status_code == 405
    assert client.get(srv.base_url + "/nope").status_code == 404
    assert client.get(srv.query_url, params={"query": "ASK {}", "default-graph-uri": "not an iri"}).status_code == 400
    # the keep-alive connection is still usable after each refusal
    assert client.get(srv.query_url, params={"query": "ASK {}"}).json() == {"head": {}, "boolean": True}


def test_health(srv: RunningServer, client: httpx.Client) -> None:
    doc = client.get(srv.base_url + "/health").json()
    assert doc["status"] == "ok" and doc["graphVersion"] == "sha256:abc123"
    assert doc["updates"] is True and doc["namedGraphs"] >= 6
    assert doc["workers"] == doc["fastWorkers"] == 8 and doc["fastBudgetSeconds"] == 0.5  # the defaults
    assert doc["saturatedLanes"] == [] and doc["busyFastWorkers"] == doc["stoppedQueries"] == 0
    assert doc["workerMemoryMiB"] == 2048 and doc["busyQueryWorkers"] == [] and len(doc["queryWorkers"]) >= 1


def test_cors_off_by_default(srv: RunningServer, client: httpx.Client) -> None:
    r = client.get(srv.query_url, params={"query": "ASK {}"}, headers={"Origin": "https://evil.example"})
    assert "access-control-allow-origin" not in r.headers
    pre = client.options(srv.query_url, headers={"Origin": "https://evil.example"})
    assert "access-control-allow-origin" not in pre.headers


def test_cors_for_the_configured_origin(limited: RunningServer, client: httpx.Client) -> None:
    r = client.get(limited.query_url, params={"query": "ASK {}"}, headers={"Origin": "https://curator.example"})
    assert r.headers["access-control-allow-origin"] == "https://curator.example"
    pre = client.options(limited.query_url, headers={"Access-Control-Request-Method": "POST"})
    assert pre.status_code == 204 and "Authorization" in pre.headers["access-control-allow-headers"]


def test_union_by_default_when_started_so(limited: RunningServer, client: httpx.Client) -> None:
    r = client.get(
        limited.query_url, params={"query": 'ASK { ?c <http://www.w3.org/2004/02/skos/core#notation> "M54" }'}
    )
    assert r.json()["boolean"] is True
    off = client.get(
        limited.query_url,
        params={
            "query": 'ASK { ?c <http://www.w3.org/2004/02/skos/core#notation> "M54" }',
            "union-default-graph": "false",
        },
    )
    assert off.json()["boolean"] is False


def test_result_cap(limited: RunningServer, client: httpx.Client) -> None:
    r = client.get(limited.query_url, params={"query": "SELECT ?s WHERE { GRAPH ?g { ?s ?p ?o } }"})
    assert r.status_code == 200 and r.headers["x-medsyn-truncated"] == "max-rows=5"
    assert len(r.json()["results"]["bindings"]) == 5
    graph = client.get(
        limited.query_url, params={"query": "CONSTRUCT WHERE { ?s ?p ?o }"}, headers={"Accept": "application/n-triples"}
    )
    assert graph.headers["x-medsyn-truncated"] == "max-rows=5" and graph.text.count("\n") == 5
    small = client.get(limited.query_url, params={"query": "SELECT ?x WHERE { VALUES ?x { 1 2 } }"})
    assert "x-medsyn-truncated" not in small.headers


def test_query_time_limit(limited: RunningServer, client: httpx.Client) -> None:
    # A three-way product of the 200 filler triples: 8 million combinations, a few seconds of work.
    slow = f"SELECT (COUNT(*) AS ?n) WHERE {{ GRAPH <{FILLER.value}> {{ ?a ?b ?c . ?d ?e ?f . ?g ?h ?i }} }}"
    started = time.monotonic()
    r = client.get(limited.query_url, params={"query": slow})
    assert r.status_code == 503 and "0.5 s time limit" in r.text
    assert time.monotonic() - started < 5
    # The endpoint keeps answering; the evaluation was stopped with its worker process.
    assert client.get(limited.base_url + "/health").status_code == 200
    assert client.get(limited.query_url, params={"query": "ASK {}"}).json()["boolean"] is True


def test_query_page_is_yasgui_served_locally(srv: RunningServer, client: httpx.Client) -> None:
    r = client.get(srv.base_url + "/")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    scripts = re.findall(r'<script src="([^"]+)"', r.text)
    scripts += re.findall(r'<link rel="stylesheet" href="([^"]+)"', r.text)
    assert scripts and all(src.startswith("/static/") for src in scripts)  # no CDN
    for src in scripts:
        asset = client.get(srv.base_url + src)
        assert asset.status_code == 200 and len(asset.content) > 100, src
    assert "Yasgui" in client.get(srv.base_url + "/static/yasgui.min.js").text[:200_000]
    examples = client.get(srv.base_url + "/examples.json").json()
    names = {e["name"] for e in examples}
    assert "sampling/code_symptoms" in names and all(e["query"].strip() for e in examples)
    assert len(examples) == len(list(Path(__file__).resolve().parent.parent.joinpath("sparql").rglob("*.rq")))


def test_service_description_and_head(srv: RunningServer, client: httpx.Client) -> None:
    r = client.get(srv.query_url, headers={"Accept": "text/turtle"})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/turtle")
    sd = "http://www.w3.org/ns/sparql-service-description#"
    triples = {(str(t.predicate), str(t.object)) for t in parse(r.content, format=RdfFormat.TURTLE)}
    assert (f"<{sd}feature>", f"<{sd}UnionDefaultGraph>") in triples
    assert (f"<{sd}supportedLanguage>", f"<{sd}SPARQL11Update>") in triples  # the server has a token
    assert (f"<{sd}endpoint>", f"<{srv.query_url}>") in triples
    head = client.head(srv.query_url, params={"query": "ASK {}"})
    get = client.get(srv.query_url, params={"query": "ASK {}"})
    assert head.status_code == 200 and head.content == b""
    assert head.headers["content-type"] == get.headers["content-type"]
    assert head.headers["content-length"] == get.headers["content-length"]


def test_base_iri_and_construct_as_quads(srv: RunningServer, client: httpx.Client) -> None:
    r = client.get(srv.query_url, params={"query": "SELECT ?x WHERE { BIND(<relative> AS ?x) }"})
    assert r.status_code == 200 and r.json()["results"]["bindings"][0]["x"]["value"] == srv.base_url + "/relative"
    construct = "CONSTRUCT { ?c <urn:p> ?p } WHERE { ?c <https://w3id.org/medsyn/ontology#parent> ?p } LIMIT 3"
    for accept, fmt in (("application/n-quads", RdfFormat.N_QUADS), ("application/trig", RdfFormat.TRIG)):
        r = client.get(srv.query_url, params={"query": construct}, headers={"Accept": accept})
        assert r.status_code == 200 and r.headers["content-type"].startswith(accept)
        assert len(list(parse(r.content, format=fmt))) == 3


def test_graph_store_writes_need_the_token(srv: RunningServer, client: httpx.Client) -> None:
    g = "urn:medsyn:test:gsp"
    data = b'<urn:a> <urn:b> "one" .\n<urn:a> <urn:b> "two" .\n'
    nt = {"Content-Type": "application/n-triples"}
    assert client.put(srv.store_url, params={"graph": g}, content=data, headers=nt).status_code == 401
    auth = {**nt, "Authorization": f"Bearer {TOKEN}"}
    assert client.put(srv.store_url, params={"graph": g}, content=data, headers=auth).status_code == 201

    def count() -> int:
        r = client.get(srv.store_url, params={"graph": g}, headers={"Accept": "application/n-triples"})
        return len(r.text.splitlines()) if r.status_code == 200 else -1

    assert count() == 2
    more = b'<urn:a> <urn:b> "three" .\n'
    assert client.post(srv.store_url, params={"graph": g}, content=more, headers=auth).status_code == 204
    assert count() == 3
    assert client.put(srv.store_url, params={"graph": g}, content=more, headers=auth).status_code == 204
    assert count() == 1  # PUT replaces
    r = client.put(srv.store_url, params={"graph": g}, content=b"<urn:a> <urn:b", headers=auth)
    assert r.status_code == 400 and count() == 1  # a bad body changes nothing
    r = client.put(srv.store_url, params={"graph": g}, content=more, headers={**auth, "Content-Type": "image/png"})
    assert r.status_code == 415
    assert client.delete(srv.store_url, params={"graph": g}).status_code == 401
    assert client.delete(srv.store_url, params={"graph": g}, headers=auth).status_code == 204
    assert count() == -1
    assert client.delete(srv.store_url, params={"graph": g}, headers=auth).status_code == 404


def test_cli_errors_are_one_line(srv: RunningServer, tmp_path: Path) -> None:
    store = Path(json.loads(httpx.get(srv.base_url + "/health").text)["store"])
    locked = subprocess.run(
        [*MEDSYN, "serve", "--store", str(store), "--port", str(free_port())],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert locked.returncode == 2
    assert locked.stderr.strip().startswith("error:") and "locked" in locked.stderr
    assert len(locked.stderr.strip().splitlines()) == 1
    busy_port = int(srv.base_url.rsplit(":", 1)[1])
    OxigraphStore(tmp_path / "s").close()  # serve never creates a store
    taken = subprocess.run(
        [*MEDSYN, "serve", "--store", str(tmp_path / "s"), "--port", str(busy_port)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert taken.returncode == 2 and "cannot listen" in taken.stderr
    assert len(taken.stderr.strip().splitlines()) == 1
    bad_port = subprocess.run(
        [*MEDSYN, "serve", "--store", str(tmp_path / "s"), "--port", "99999"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert bad_port.returncode == 2 and "Traceback" not in bad_port.stderr
    assert bad_port.stderr.strip().splitlines() == ["error: --port: 99999 is not a TCP port (0-65535)"]
    bad_budget = subprocess.run(
        [*MEDSYN, "serve", "--store", str(tmp_path / "s"), "--fast-budget", "0"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert bad_budget.returncode == 2
    assert bad_budget.stderr.strip().splitlines() == ["error: --fast-budget: 0 is not a positive number of seconds"]


def test_remote_store_refuses_a_truncated_result(limited: RunningServer) -> None:
    remote = RemoteStore(limited.query_url)
    # A query with its own ORDER BY cannot be fetched again in pages (paging is tested in test_remote_store.py).
    with pytest.raises(StoreError, match="max-rows=5"):
        remote.query("SELECT ?s WHERE { GRAPH ?g { ?s ?p ?o } } ORDER BY ?s")
    assert len(remote.query("SELECT ?s WHERE { GRAPH ?g { ?s ?p ?o } } LIMIT 5")) == 5
