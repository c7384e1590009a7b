"""`medsyn serve` under load: concurrent readers during provenance writes, 10,000 mixed requests, a restart on
the same store, and clients that vanish mid-request. Bounded in count and time; 127.0.0.1 only."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from sparql_cases import CASES, PREFIXES, canonical, load_dataset

from medsyn.generation.provenance import RunInfo, add_notes, finish_run, run_quads
from medsyn.kg.remote_store import RemoteStore
from medsyn.kg.store import OxigraphStore
from medsyn.kg.vocab import GRAPH
from medsyn.testing.servers import RunningServer, medsyn_server

TOKEN = "reliability-token"
RUN_PREFIX = GRAPH + "run/stress-"
NOTES_PER_RUN = 60


@pytest.fixture(scope="module")
def store_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("reliability") / "store"
    s = OxigraphStore(path)
    load_dataset(s)
    s.close()
    return path


@pytest.fixture(scope="module")
def srv(store_dir: Path) -> Iterator[RunningServer]:
    with medsyn_server(store_dir, token=TOKEN, extra_args=["--quiet"]) as server:
        yield server


def _run(i: int) -> RunInfo:
    return RunInfo(
        run_id=f"stress-{i}",
        started="2024-08-05T10:00:00Z",
        seed=i,
        parameters={"n": NOTES_PER_RUN},
        backend="openai",
        model="gpt-4",
        adapter_hash=None,
        template_name="paper_ru",
        template_hash="sha256:template",
        graph_version="sha256:abc123",
    )


def _note(run: RunInfo, k: int) -> dict[str, object]:
    return {
        "id": f"{run.run_id}-{k}",
        "content_hash": f"sha256:{k}",
        "code": "M54",
        "subcode": "M54.5",
        "sample_id": f"s{k}",
        "accepted": k % 3 != 0,
        "scores": {"recall": 0.7},
        "started": "2024-08-05T10:00:01Z",
        "ended": "2024-08-05T10:00:02Z",
        "seed": k,
        "attempt": 0,
        "symptom_iris": [f"https://w3id.org/medsyn/id/symptom/s{k % 3 + 1}"],
        "example_id": "q43dfecc",
    }


READ_RUNS = (
    PREFIXES
    + f"""SELECT ?g (COUNT(DISTINCT ?n) AS ?notes) (COUNT(DISTINCT ?act) AS ?acts) WHERE {{
  GRAPH ?g {{ ?n a ms:SyntheticNote ; prov:wasGeneratedBy ?act . ?act prov:wasInformedBy ?run }}
  FILTER(STRSTARTS(STR(?g), "{RUN_PREFIX}"))
}} GROUP BY ?g"""
)


def test_concurrent_readers_during_provenance_writes(srv: RunningServer) -> None:
    """8 clients query the run graphs while runs are written; each write is one transaction, so every reader sees
    a run with all of its notes or none of them."""
    stop = threading.Event()
    errors: list[str] = []
    seen_runs: set[int] = set()
    reads = [0] * 8

    def reader(idx: int) -> None:
        with httpx.Client(timeout=30) as client:
            while not stop.is_set():
                try:
                    r = client.post(srv.query_url, data={"query": READ_RUNS, "union-default-graph": ""})
                except httpx.HTTPError as exc:
                    errors.append(f"reader {idx}: {exc!r}")
                    return
                if r.status_code != 200:
                    errors.append(f"reader {idx}: {r.status_code} {r.text[:200]}")
                    return
                rows = r.json()["results"]["bindings"]
                for row in rows:
                    notes, acts = int(row["notes"]["value"]), int(row["acts"]["value"])
                    if notes != NOTES_PER_RUN or acts != NOTES_PER_RUN:
                        errors.append(f"partial read of {row['g']['value']}: {notes} notes, {acts} generations")
                seen_runs.add(len(rows))
                reads[idx] += 1

    threads = [threading.Thread(target=reader, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    writer = RemoteStore(srv.query_url, token=TOKEN)
    try:
        for i in range(8):
            run = _run(i)
            writer.add_quads(run_quads(run))
            # one request for all notes of the run: ~1,600 quads, well under the 5,000-quad batch
            assert add_notes(writer, run, [_note(run, k) for k in range(NOTES_PER_RUN)]) == NOTES_PER_RUN
            finish_run(writer, run, ended="2024-08-05T11:00:00Z", totals={"prompt_tokens": 10})
            time.sleep(0.05)
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=30)
    assert not errors, errors[:5]
    assert all(n > 0 for n in reads), reads
    assert len(seen_runs) > 2, "readers should have overlapped with several writes"
    final = writer.query(READ_RUNS)
    assert len(final) == 8


def _request_kinds(srv: RunningServer) -> list[Callable[[httpx.Client], bool]]:
    q, store = srv.query_url, srv.store_url
    select = PREFIXES + "SELECT ?c ?l WHERE { ?c skos:notation ?n ; rdfs:label ?l }"
    sample = PREFIXES + (
        "SELECT ?symptom ?w WHERE { ?a ms:disease <https://w3id.org/medsyn/id/icd10/M54.5> ; "
        "ms:symptom ?symptom ; ms:weight ?w } LIMIT 50"
    )
    u = {"union-default-graph": ""}

    def ok(r: httpx.Response, status: int, ctype: str) -> bool:
        return r.status_code == status and r.headers.get("content-type", "").startswith(ctype)

    return [
        lambda c: ok(c.get(q, params={"query": select, **u}), 200, "application/sparql-results+json"),
        lambda c: ok(c.post(q, data={"query": sample, **u}, headers={"Accept": "text/csv"}), 200, "text/csv"),
        lambda c: ok(
            c.post(
                q,
                params=u,
                content=sample.encode(),
                headers={"Content-Type": "application/sparql-query", "Accept": "text/tab-separated-values"},
            ),
            200,
            "text/tab-separated-values",
        ),
        lambda c: ok(
            c.get(q, params={"query": "ASK { ?s ?p ?o }", **u}, headers={"Accept": "application/sparql-results+xml"}),
            200,
            "application/sparql-results+xml",
        ),
        lambda c: ok(
            c.get(q, params={"query": "CONSTRUCT WHERE { ?s ?p ?o } LIMIT 20", **u}, headers={"Accept": "text/turtle"}),
            200,
            "text/turtle",
        ),
        lambda c: ok(
            c.get(store, params={"graph": GRAPH + "meta"}, headers={"Accept": "application/n-triples"}),
            200,
            "application/n-triples",
        ),
        lambda c: ok(c.get(srv.base_url + "/health"), 200, "application/json"),
        lambda c: ok(c.get(q, params={"query": "SELECT ?x WHERE {"}), 400, "text/plain"),
    ]


def test_ten_thousand_mixed_requests(srv: RunningServer) -> None:
    kinds = _request_kinds(srv)
    threads, per_thread = 4, 2500
    failures: list[str] = []

    def client_loop(idx: int) -> None:
        with httpx.Client(timeout=30) as client:  # keep-alive: one connection per client thread
            for n in range(per_thread):
                kind = (idx + n) % len(kinds)
                try:
                    if not kinds[kind](client):
                        failures.append(f"thread {idx} request {n}: kind {kind} failed")
                except httpx.HTTPError as exc:
                    failures.append(f"thread {idx} request {n}: kind {kind}: {exc!r}")

    started = time.perf_counter()
    pool = [threading.Thread(target=client_loop, args=(i,)) for i in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join(timeout=240)
    elapsed = time.perf_counter() - started
    print(f"\n{threads * per_thread} mixed requests in {elapsed:.1f} s ({threads * per_thread / elapsed:.0f}/s)")
    assert not any(t.is_alive() for t in pool)
    assert not failures, failures[:5]
    assert srv.process.poll() is None


def test_restart_serves_the_same_data(tmp_path: Path) -> None:
    store_dir = tmp_path / "store"
    s = OxigraphStore(store_dir)
    load_dataset(s)
    s.close()

    def answers(server: RunningServer) -> list[object]:
        remote = RemoteStore(server.query_url, token=TOKEN)
        return [canonical(remote.query(c.sparql, bindings=c.bindings or None, union=c.union)) for c in CASES]

    with medsyn_server(store_dir, token=TOKEN, extra_args=["--quiet"], log_path=tmp_path / "a.log") as first:
        RemoteStore(first.query_url, token=TOKEN).update(
            "INSERT DATA { GRAPH <urn:medsyn:test:restart> { <urn:written> <urn:before> 'restart' } }"
        )
        before = answers(first)
    assert first.process.returncode == 0  # SIGTERM is a clean shutdown
    with medsyn_server(store_dir, token=TOKEN, extra_args=["--quiet"], log_path=tmp_path / "b.log") as second:
        assert answers(second) == before
        assert RemoteStore(second.query_url).query("ASK { <urn:written> <urn:before> 'restart' }")


_KILLED_CLIENT = r"""
import socket, sys, time, urllib.parse
host, port, query = sys.argv[1], int(sys.argv[2]), sys.argv[3]
s = socket.create_connection((host, port))
path = "/sparql?union-default-graph&query=" + urllib.parse.quote(query)
s.sendall(f"GET {path} HTTP/1.1\r\nHost: {host}\r\nAccept: application/sparql-results+json\r\n\r\n".encode())
s.recv(100)
print("reading", flush=True)
time.sleep(60)
"""


def test_killed_client_leaves_server_healthy(srv: RunningServer) -> None:
    host, port = "127.0.0.1", int(srv.base_url.rsplit(":", 1)[1])
    # A large answer (about 70,000 rows), so the server is still writing when the client dies.
    big = "SELECT * WHERE { GRAPH ?g { ?s ?p ?o } VALUES ?k { " + " ".join(map(str, range(40))) + " } }"
    proc = subprocess.Popen(
        [sys.executable, "-c", _KILLED_CLIENT, host, str(port), big], stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "reading"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    # a body promised but never sent, and a connection that says nothing at all
    with socket.create_connection((host, port)) as s:
        s.sendall(
            b"POST /sparql HTTP/1.1\r\nHost: x\r\nContent-Type: application/sparql-query\r\n"
            b"Content-Length: 1000\r\n\r\nSELECT"
        )
    with socket.create_connection((host, port)):
        pass
    with httpx.Client(timeout=30) as client:
        for _ in range(20):
            assert client.get(srv.base_url + "/health").status_code == 200
            r = client.get(srv.query_url, params={"query": "ASK { ?s ?p ?o }", "union-default-graph": ""})
            assert r.json()["boolean"] is True
    assert srv.process.poll() is None
    assert "Traceback" not in srv.log()
