"""``medsyn kg query`` output: pyoxigraph's own result writers, the same bytes for the embedded store and --endpoint."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from pyoxigraph import Literal, NamedNode, Quad, RdfFormat, parse

from medsyn.kg.remote_store import RemoteStore
from medsyn.kg.store import OxigraphStore
from medsyn.testing.servers import medsyn_server, oxigraph_server

MEDSYN = str(Path(sys.executable).with_name("medsyn"))
LABEL = NamedNode("http://www.w3.org/2000/01/rdf-schema#label")
NOTE = NamedNode("urn:note")
G = NamedNode("urn:g")
QUADS = [
    Quad(NamedNode("urn:a"), LABEL, Literal('Боль, "спина"'), G),
    Quad(NamedNode("urn:b"), LABEL, Literal("B", language="en"), G),
    Quad(NamedNode("urn:b"), NOTE, Literal("x"), G),
]
# ?note is unbound in the first row: the header must still have it, in the query's order.
OPTIONAL = (
    "SELECT ?s ?note ?l WHERE { ?s <http://www.w3.org/2000/01/rdf-schema#label> ?l OPTIONAL { ?s <urn:note> ?note } }"
    " ORDER BY ?s"
)
EMPTY = "SELECT ?x ?y WHERE { ?x <urn:none> ?y }"
CONSTRUCT = "CONSTRUCT { ?s <urn:p> ?l } WHERE { ?s <http://www.w3.org/2000/01/rdf-schema#label> ?l }"


def _store(path: Path) -> Path:
    with OxigraphStore(path) as s:
        s.add_quads(QUADS)
    return path


@pytest.fixture(scope="module")
def store_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _store(tmp_path_factory.mktemp("q") / "store")


@pytest.fixture(scope="module", params=["oxigraph", "medsyn"])
def endpoint(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    where = tmp_path_factory.mktemp(request.param)
    if request.param == "oxigraph":
        with oxigraph_server(where / "store") as server:
            RemoteStore(server.query_url).add_quads(QUADS)
            yield server.query_url
    else:
        with medsyn_server(_store(where / "store"), extra_args=["--quiet"]) as ms:
            yield ms.query_url


def kg_query(*args: str) -> subprocess.CompletedProcess[bytes]:
    env = {**os.environ, "COLUMNS": "200"}
    p = subprocess.run([MEDSYN, "kg", "query", *args], capture_output=True, env=env, timeout=120, check=False)
    assert p.returncode == 0, p.stderr.decode()
    return p


def test_select_header_comes_from_the_query_not_the_rows(store_dir: Path) -> None:
    q = ["-e", OPTIONAL, "--store", str(store_dir)]
    csv = kg_query(*q, "-f", "csv").stdout
    assert csv.decode() == 's,note,l\r\nurn:a,,"Боль, ""спина"""\r\nurn:b,x,B\r\n'  # RFC 4180: CRLF, quotes
    j = json.loads(kg_query(*q, "-f", "json").stdout)
    assert j["head"]["vars"] == ["s", "note", "l"] and "note" not in j["results"]["bindings"][0]
    assert kg_query(*q, "-f", "tsv").stdout.split(b"\n")[0] == b"?s\t?note\t?l"
    table = kg_query(*q).stdout.decode()
    header = next(line for line in table.splitlines() if "s " in line and "l" in line)
    assert [c.strip() for c in header.strip("┃│ ").split("┃")] == ["s", "note", "l"]


def test_an_empty_select_still_has_its_header(store_dir: Path) -> None:
    q = ["-e", EMPTY, "--store", str(store_dir)]
    assert kg_query(*q, "-f", "csv").stdout == b"x,y\r\n"
    assert kg_query(*q, "-f", "tsv").stdout == b"?x\t?y\n"
    assert json.loads(kg_query(*q, "-f", "json").stdout) == {"head": {"vars": ["x", "y"]}, "results": {"bindings": []}}
    table = kg_query(*q).stdout.decode()
    assert "x" in table and "y" in table and "0 rows" in table


def test_construct_is_written_in_the_requested_rdf_format(store_dir: Path) -> None:
    q = ["-e", CONSTRUCT, "--store", str(store_dir)]
    expected = {(NamedNode("urn:a"), QUADS[0].object), (NamedNode("urn:b"), QUADS[1].object)}
    for fmt, rdf in (("json", RdfFormat.JSON_LD), ("nt", RdfFormat.N_TRIPLES), ("ttl", RdfFormat.TURTLE)):
        triples = list(parse(kg_query(*q, "-f", fmt).stdout, format=rdf))
        assert {(t.subject, t.object) for t in triples} == expected, fmt
    assert json.loads(kg_query(*q, "-f", "json").stdout)[0]["urn:p"]  # JSON-LD, not N-Triples


def test_ask_in_each_format(store_dir: Path) -> None:
    q = ["-e", "ASK { ?s <urn:note> ?o }", "--store", str(store_dir)]
    assert json.loads(kg_query(*q, "-f", "json").stdout) == {"head": {}, "boolean": True}
    assert kg_query(*q).stdout == b"true\n"


@pytest.mark.parametrize("fmt", ["table", "json", "xml", "csv", "tsv"])
@pytest.mark.parametrize("query", [OPTIONAL, EMPTY])
def test_endpoint_gives_the_same_output(store_dir: Path, endpoint: str, fmt: str, query: str) -> None:
    local = kg_query("-e", query, "-f", fmt, "--store", str(store_dir)).stdout
    remote = kg_query("-e", query, "-f", fmt, "--endpoint", endpoint).stdout
    assert remote == local


def test_endpoint_construct_gives_the_same_triples(store_dir: Path, endpoint: str) -> None:
    local = kg_query("-e", CONSTRUCT, "-f", "nt", "--store", str(store_dir)).stdout
    remote = kg_query("-e", CONSTRUCT, "-f", "nt", "--endpoint", endpoint).stdout
    assert sorted(remote.splitlines()) == sorted(local.splitlines()) and local


def test_a_query_that_crashes_the_engine_is_one_error_line(store_dir: Path, tmp_path: Path) -> None:
    """3,000 nested groups overflow pyoxigraph's parser (a segfault, exit 139 before): the query runs in a child
    process, so the command prints one line and exits 2; the store is intact and the next query answers."""
    nested = tmp_path / "nested.rq"
    nested.write_text("SELECT * WHERE " + "{ " * 3000 + "}" * 3000, encoding="utf-8")
    done = _kg_query_failing(str(nested), "--store", str(store_dir))
    assert done.returncode == 2 and done.stdout == b""
    assert done.stderr.decode().strip().splitlines() == [
        "error: the query crashed the SPARQL engine (SIGSEGV): it is nested or long beyond what it can parse"
    ]
    again = kg_query("-e", "ASK { ?s ?p ?o }", "--store", str(store_dir))
    assert again.returncode == 0 and again.stdout == b"true\n"
    bad = _kg_query_failing("-e", "SELECT x", "--store", str(store_dir))  # errors raised in the child keep their line
    assert bad.returncode == 2 and bad.stderr.decode().startswith("error: SPARQL syntax error")


def _kg_query_failing(*args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([MEDSYN, "kg", "query", *args], capture_output=True, timeout=120, check=False)
