"""RemoteStore against real servers: the Oxigraph server binary and `medsyn serve`, loaded through RemoteStore
itself, must answer the shared cases exactly like the embedded store."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from pyoxigraph import Literal, NamedNode, Quad, RdfFormat, parse
from sparql_cases import BULK_GRAPH, CASES, EMPTY_CASES, Case, bulk_quads, canonical, load_dataset

from medsyn.errors import InputError, StoreError
from medsyn.kg.opener import open_store
from medsyn.kg.remote_store import RemoteStore, copy_graphs
from medsyn.kg.store import OxigraphStore, Store
from medsyn.kg.vocab import GRAPH
from medsyn.testing.commands import MEDSYN
from medsyn.testing.servers import RunningServer, free_port, medsyn_server, oxigraph_server

TOKEN = "test-token-7"


@pytest.fixture(scope="module")
def oxigraph(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    with oxigraph_server(tmp_path_factory.mktemp("ox") / "store") as server:
        # A small batch size makes the bulk part of the dataset go in several INSERT DATA requests.
        load_dataset(RemoteStore(server.query_url, batch_size=250))
        yield server


@pytest.fixture(scope="module")
def medsyn(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    path = tmp_path_factory.mktemp("ms") / "store"
    OxigraphStore(path).close()  # serve never creates a store
    with medsyn_server(path, token=TOKEN, extra_args=["--quiet"]) as server:
        load_dataset(RemoteStore(server.query_url, token=TOKEN, batch_size=250))
        yield server


@pytest.fixture(scope="module", params=["oxigraph", "medsyn"])
def server(request: pytest.FixtureRequest) -> RunningServer:
    return request.getfixturevalue(request.param)


@pytest.fixture()
def remote(server: RunningServer) -> RemoteStore:
    return RemoteStore(server.query_url, token=server.token)


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_same_answers_as_embedded(case: Case, remote: RemoteStore, embedded: OxigraphStore) -> None:
    expected = canonical(embedded.query(case.sparql, bindings=case.bindings or None, union=case.union))
    got = canonical(remote.query(case.sparql, bindings=case.bindings or None, union=case.union))
    assert got == expected
    if case.name not in EMPTY_CASES:
        assert expected, f"case {case.name} should have a non-empty answer to be a useful comparison"


def test_remote_is_a_store(remote: RemoteStore) -> None:
    assert isinstance(remote, Store)


def test_named_graphs_and_counts_match(remote: RemoteStore, embedded: OxigraphStore) -> None:
    assert remote.named_graphs() == embedded.named_graphs()
    count = "SELECT (COUNT(*) AS ?n) WHERE { GRAPH ?g { ?s ?p ?o } }"
    assert remote.query(count)[0]["n"] == embedded.query(count)[0]["n"]


def test_dump_matches_embedded(remote: RemoteStore, embedded: OxigraphStore) -> None:
    def quads(data: bytes) -> list[str]:
        return sorted(
            str(q) for q in parse(data, format=RdfFormat.N_QUADS) if "_:" not in str(q)
        )  # blank node labels differ per store

    assert quads(remote.dump(format="nq")) == quads(embedded.dump(format="nq"))
    icd = NamedNode(GRAPH + "icd10")
    got = {str(t) for t in parse(remote.dump(format="ttl", graph=icd), format=RdfFormat.TURTLE)}
    want = {str(t) for t in parse(embedded.dump(format="ttl", graph=icd), format=RdfFormat.TURTLE)}
    assert got == want and len(got) > 10


def test_reloading_is_idempotent(remote: RemoteStore) -> None:
    """A failed multi-batch load is completed by running it again: re-inserting stored triples changes nothing."""
    count = f"SELECT (COUNT(*) AS ?n) WHERE {{ GRAPH <{BULK_GRAPH.value}> {{ ?s ?p ?o }} }}"
    before = remote.query(count)[0]["n"].value
    remote.add_quads(bulk_quads())
    assert remote.query(count)[0]["n"].value == before == str(len(bulk_quads()))


def test_blank_nodes_stay_connected_across_batches(remote: RemoteStore) -> None:
    g = NamedNode("urn:medsyn:test:lists")
    ttl = "<urn:x> <urn:members> ( <urn:a> <urn:b> <urn:c> <urn:d> ) ; <urn:note> [ <urn:v> 1 ; <urn:w> 2 ] ."
    small = RemoteStore(remote.endpoint, token=remote.token, batch_size=2)
    small.load(ttl, format="ttl", graph=g)
    rows = remote.query(
        "PREFIX rdf: <http://www.w3.org/1999/02/22-rdf-syntax-ns#> "
        "SELECT ?m WHERE { GRAPH ?g { <urn:x> <urn:members>/rdf:rest*/rdf:first ?m } }"
    )
    assert sorted(r["m"].value for r in rows) == ["urn:a", "urn:b", "urn:c", "urn:d"]
    assert remote.query("ASK { <urn:x> <urn:note> [ <urn:v> 1 ; <urn:w> 2 ] }")
    small.clear_graph(g)
    assert g not in remote.named_graphs()


def test_update_and_clear_graph(remote: RemoteStore) -> None:
    g = NamedNode("urn:medsyn:test:scratch")
    remote.add_quads([Quad(NamedNode("urn:s"), NamedNode("urn:p"), Literal("значение", language="ru"), g)])
    assert remote.query("ASK { GRAPH <urn:medsyn:test:scratch> { <urn:s> <urn:p> 'значение'@ru } }", union=False)
    remote.clear_graph(g)
    assert not remote.query("ASK { GRAPH <urn:medsyn:test:scratch> { ?s ?p ?o } }", union=False)


def test_update_bindings_refused(remote: RemoteStore) -> None:
    with pytest.raises(TypeError):
        remote.update("INSERT DATA { <urn:a> <urn:b> <urn:c> }", bindings={"x": 1})


def test_malformed_query_is_one_line_input_error(remote: RemoteStore) -> None:
    with pytest.raises(InputError) as err:
        remote.query("SELECT ?x WHERE { ?x ")
    msg = str(err.value)
    assert remote.endpoint in msg and "error at" in msg and "\n" not in msg


def test_malformed_rdf_names_the_input(remote: RemoteStore, tmp_path: Path) -> None:
    bad = tmp_path / "bad.ttl"
    bad.write_text("<urn:a> <urn:b> .\n", encoding="utf-8")
    with pytest.raises(InputError, match=r"bad\.ttl"):
        remote.load(bad, format="ttl")


def test_connection_refused_names_endpoint() -> None:
    url = f"http://127.0.0.1:{free_port()}/sparql"
    with pytest.raises(StoreError) as err:
        RemoteStore(url).query("ASK {}")
    assert url in str(err.value) and "\n" not in str(err.value)


def test_bad_endpoint_url() -> None:
    with pytest.raises(InputError, match="http"):
        RemoteStore("localhost:7878")


def test_batch_size_from_the_environment(remote: RemoteStore, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MEDSYN_ENDPOINT_BATCH", "3")
    small = RemoteStore(remote.endpoint, token=remote.token)
    assert small.batch_size == 3 and RemoteStore(remote.endpoint, batch_size=7).batch_size == 7
    monkeypatch.setenv("MEDSYN_ENDPOINT_BATCH", "lots")
    with pytest.raises(InputError, match="MEDSYN_ENDPOINT_BATCH must be a whole number"):
        RemoteStore(remote.endpoint)


def test_medsyn_updates_need_the_token(medsyn: RunningServer) -> None:
    with pytest.raises(StoreError, match="401"):
        RemoteStore(medsyn.query_url).update("INSERT DATA { <urn:a> <urn:b> <urn:c> }")
    with pytest.raises(StoreError, match="load stopped at batch 1 of"):
        RemoteStore(medsyn.query_url, token="wrong", batch_size=100).add_quads(bulk_quads(100))


def test_token_from_environment(medsyn: RunningServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MEDSYN_ENDPOINT_TOKEN", TOKEN)
    store = open_store(endpoint=medsyn.query_url)
    assert isinstance(store, RemoteStore)
    store.update("INSERT DATA { GRAPH <urn:medsyn:test:env> { <urn:a> <urn:b> <urn:c> } }")
    assert store.query("ASK { <urn:a> <urn:b> <urn:c> }")
    store.clear_graph(NamedNode("urn:medsyn:test:env"))


def test_kg_query_cli_over_endpoint(server: RunningServer) -> None:
    """The CLI's --endpoint path end to end: a separate process reads the server's graph."""
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "medsyn",
            "kg",
            "query",
            "--endpoint",
            server.query_url,
            "-f",
            "csv",
            "-e",
            'PREFIX skos: <http://www.w3.org/2004/02/skos/core#> SELECT ?n WHERE { ?c skos:notation "M54.5", ?n }',
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert "M54.5" in proc.stdout


def test_copy_graphs_replaces_them_on_the_endpoint(remote: RemoteStore) -> None:
    g = NamedNode("urn:medsyn:test:published")
    remote.add_quads([Quad(NamedNode("urn:stale"), NamedNode("urn:p"), Literal("old"), g)])
    local = OxigraphStore.in_memory()
    local.add_quads(Quad(NamedNode(f"urn:n{i}"), NamedNode("urn:p"), Literal(str(i)), g) for i in range(30))
    small = RemoteStore(remote.endpoint, token=remote.token, batch_size=7)
    assert copy_graphs(local, small) == 30
    rows = remote.query("SELECT ?s WHERE { GRAPH <urn:medsyn:test:published> { ?s ?p ?o } }", union=False)
    assert len(rows) == 30 and NamedNode("urn:stale") not in {r["s"] for r in rows}
    remote.clear_graph(g)


def test_exports_through_a_capped_medsyn_serve_page_past_the_cap(tmp_path: Path) -> None:
    """`kg export -f ttl` and `onto export-owl --with-symptoms` through --endpoint used to stop at the server's row
    cap and tell the user to add LIMIT/OFFSET to a query they do not write; a cap of 40 rows makes every part of
    these exports larger than one answer."""
    from mkg_small import build_store

    from medsyn.kg.queries import run_named

    path = tmp_path / "store"
    build_store(path).close()
    out = tmp_path / "out"
    out.mkdir()

    def medsyn(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*MEDSYN, *args], capture_output=True, text=True, timeout=300)

    local = {
        "ttl": medsyn("kg", "export", "-f", "ttl", "-o", str(out / "local.ttl"), "--store", str(path)),
        "owl": medsyn("onto", "export-owl", "--with-symptoms", "--out", str(out / "local.owl"), "--store", str(path)),
    }
    assert all(r.returncode == 0 for r in local.values()), local
    with OxigraphStore(path, read_only=True) as st:
        symptoms = set(run_named(st, "owl/symptoms"))
    assert len(symptoms) > 2 * 40
    with medsyn_server(path, extra_args=["--quiet", "--max-rows", "40"]) as server:
        capped = RemoteStore(server.query_url)
        assert set(run_named(capped, "owl/symptoms")) == symptoms  # a CONSTRUCT in pages
        with pytest.raises(StoreError, match="cut the result short"):  # the cap is real: a LIMIT query is not paged
            capped.query("SELECT ?s WHERE { GRAPH ?g { ?s ?p ?o } } LIMIT 1000", union=False)
        ttl = medsyn("kg", "export", "-f", "ttl", "-o", str(out / "remote.ttl"), "--endpoint", server.query_url)
        owl = medsyn(
            "onto", "export-owl", "--with-symptoms", "--out", str(out / "remote.owl"), "--endpoint", server.query_url
        )
    assert ttl.returncode == 0 and owl.returncode == 0, ttl.stderr + owl.stderr

    def triples(name: str, fmt: RdfFormat) -> set[str]:
        return {
            " ".join("_:" if str(t).startswith("_:") else str(t) for t in q.triple)
            for q in parse(path=str(out / name), format=fmt)
        }

    want_ttl, want_owl = triples("local.ttl", RdfFormat.TURTLE), triples("local.owl", RdfFormat.RDF_XML)
    assert len(want_ttl) > 10 * 40 and len(want_owl) > 3 * 40
    assert triples("remote.ttl", RdfFormat.TURTLE) == want_ttl
    assert triples("remote.owl", RdfFormat.RDF_XML) == want_owl
