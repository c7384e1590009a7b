"""`medsyn serve` against hostile requests, spoken to the real command over HTTP and raw sockets: SERVICE/LOAD
allow lists, the Host check, security headers, bodies refused before reading, the connection cap, the two worker
lanes (small queries answered while long ones fill the slow lane; queries answered 503 stopped with their worker
process), and bad-token rate limiting."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sparql_cases import FILLER, dataset_store

from medsyn.testing.servers import RunningServer, medsyn_server, oxigraph_server

TOKEN = "security-token"
SLOW_FILLER = 300  # a three-way product of 300 triples: 27 million rows, seconds of work for one aggregate
SLOW = f"SELECT (COUNT(*) AS ?n) WHERE {{ GRAPH <{FILLER.value}> {{ ?a ?b ?c . ?d ?e ?f . ?g ?h ?i }} }}"


class Listener:
    """A TCP port that records every connection and never answers: a silent host for SERVICE/LOAD."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.hits = 0
        self.sock.settimeout(0.2)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        self._conns: list[socket.socket] = []

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except (TimeoutError, OSError):
                continue
            self.hits += 1
            self._conns.append(conn)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        for c in self._conns:
            c.close()
        self.sock.close()


@pytest.fixture(scope="module")
def silent() -> Iterator[Listener]:
    listener = Listener()
    yield listener
    listener.close()


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    store = dataset_store(tmp_path_factory.mktemp("sec") / "store")
    with medsyn_server(store, token=TOKEN, extra_args=["--quiet", "--allow-host", "medsyn.example"]) as server:
        yield server


def _auth() -> dict[str, str]:
    return {"Authorization": f"Bearer {TOKEN}"}


def test_service_and_load_are_refused_by_default(srv: RunningServer, silent: Listener) -> None:
    url = f"http://127.0.0.1:{silent.port}/sparql"
    with httpx.Client(timeout=10) as c:
        r = c.get(srv.query_url, params={"query": f"SELECT * WHERE {{ SERVICE <{url}> {{ ?s ?p ?o }} }}"})
        assert r.status_code == 400 and "SERVICE is disabled" in r.text and "--allow-service" in r.text
        # a prefixed name, SILENT and lower case change nothing
        q = f"PREFIX x: <http://127.0.0.1:{silent.port}/> SELECT * {{ service silent x:sparql {{ ?s ?p ?o }} }}"
        assert c.get(srv.query_url, params={"query": q}).status_code == 400
        r = c.post(srv.update_url, data={"update": f"LOAD <{url}>"}, headers=_auth())
        assert r.status_code == 400 and "LOAD is disabled" in r.text
        for text in ("SELECT * { SERVICE <file:///etc/passwd> { ?s ?p ?o } }", "LOAD <file:///etc/passwd>"):
            key = "update" if text.startswith("LOAD") else "query"
            target = srv.update_url if key == "update" else srv.query_url
            r = c.post(target, data={key: text}, headers=_auth())
            assert r.status_code == 400 and "only http and https" in r.text
        # the word in a string, a comment or an IRI is not a SERVICE call
        ok = c.get(srv.query_url, params={"query": 'ASK { BIND("SERVICE <http://x/>" AS ?s) } # SERVICE <http://y/>'})
        assert ok.status_code == 200
    time.sleep(0.3)
    assert silent.hits == 0  # nothing was fetched


def test_service_to_an_allowed_host(tmp_path: Path, silent: Listener) -> None:
    """With --allow-service 127.0.0.1 a federated query reaches a real Oxigraph server; other hosts stay refused."""
    remote_store = dataset_store(tmp_path / "remote")
    with (
        oxigraph_server(remote_store, log_path=tmp_path / "ox.log") as ox,
        medsyn_server(dataset_store(tmp_path / "local"), extra_args=["--quiet", "--allow-service", "127.0.0.1"]) as ms,
    ):
        notation = "<http://www.w3.org/2004/02/skos/core#notation>"
        q = f'ASK {{ SERVICE <{ox.query_url}> {{ GRAPH ?g {{ ?c {notation} "M54.5" }} }} }}'
        r = httpx.get(ms.query_url, params={"query": q}, timeout=30)
        assert r.status_code == 200 and r.json()["boolean"] is True
        other = ox.query_url.replace("127.0.0.1", "localhost")
        r = httpx.get(ms.query_url, params={"query": f"ASK {{ SERVICE <{other}> {{ ?s ?p ?o }} }}"}, timeout=30)
        assert r.status_code == 400 and "'localhost' is not allowed" in r.text
        r = httpx.get(ms.query_url, params={"query": "ASK { SERVICE ?where { ?s ?p ?o } }"}, timeout=30)
        assert r.status_code == 400 and "constant" in r.text


def test_host_header_is_checked(srv: RunningServer) -> None:
    port = srv.base_url.rsplit(":", 1)[1]
    with httpx.Client(timeout=10) as c:
        r = c.get(srv.base_url + "/health", headers={"Host": f"rebind.attacker.example:{port}"})
        assert r.status_code == 421 and "--allow-host" in r.text
        for host in (f"localhost:{port}", f"127.0.0.1:{port}", "medsyn.example"):
            assert c.get(srv.base_url + "/health", headers={"Host": host}).status_code == 200, host


def test_security_headers(srv: RunningServer) -> None:
    for path in ("/", "/sparql?query=ASK%7B%7D", "/health", "/nope"):
        r = httpx.get(srv.base_url + path, timeout=10)
        assert r.headers["x-content-type-options"] == "nosniff", path
        assert r.headers["x-frame-options"] == "DENY"
        assert "frame-ancestors 'none'" in r.headers["content-security-policy"]
        assert "script-src 'self'" in r.headers["content-security-policy"]


def _raw_request(srv: RunningServer, head: bytes, *, wait_s: float = 5.0) -> tuple[bytes, float]:
    """Send only the request head (no body) and return the first answer bytes and how long they took."""
    host, port = "127.0.0.1", int(srv.base_url.rsplit(":", 1)[1])
    with socket.create_connection((host, port), timeout=wait_s) as s:
        started = time.monotonic()
        s.sendall(head)
        data = s.recv(65536)
        took = time.monotonic() - started
        while b"\r\n\r\n" not in data or len(data.split(b"\r\n\r\n", 1)[1]) < _length(data):
            more = s.recv(65536)
            if not more:
                break
            data += more
        return data, took


def _length(data: bytes) -> int:
    for line in data.split(b"\r\n\r\n", 1)[0].split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            return int(line.split(b":", 1)[1])
    return 0


def test_bodies_are_refused_before_reading(srv: RunningServer) -> None:
    big = 60 * 1024 * 1024
    # An update without a token: 401 at once, the 60 MiB are never awaited.
    head = (
        f"POST /update HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/sparql-update\r\n"
        f"Content-Length: {big}\r\n\r\n"
    ).encode()
    data, took = _raw_request(srv, head)
    assert data.startswith(b"HTTP/1.1 401") and took < 2
    # A query body over the unauthenticated limit (2 MiB): 413 at once.
    head = (
        f"POST /sparql HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/sparql-query\r\n"
        f"Content-Length: {big}\r\n\r\n"
    ).encode()
    data, took = _raw_request(srv, head)
    assert data.startswith(b"HTTP/1.1 413") and b"the limit for a query" in data and took < 2
    # With the token the limit is 64 MiB: 65 MiB is refused unread too.
    head = (
        f"POST /update HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {TOKEN}\r\n"
        f"Content-Type: application/sparql-update\r\nContent-Length: {65 * 1024 * 1024}\r\n\r\n"
    ).encode()
    data, took = _raw_request(srv, head)
    assert data.startswith(b"HTTP/1.1 413") and took < 2
    # A chunked query body that grows past the limit is cut while reading.
    chunk = b"#" * (1024 * 1024)
    r = httpx.post(
        srv.query_url,
        content=iter([chunk, chunk, chunk]),
        headers={"Content-Type": "application/sparql-query"},
        timeout=30,
    )
    assert r.status_code == 413
    assert httpx.get(srv.base_url + "/health", timeout=10).status_code == 200


def test_bad_tokens_are_rate_limited(tmp_path: Path) -> None:
    with medsyn_server(dataset_store(tmp_path / "s"), token=TOKEN, extra_args=["--quiet"]) as ms, httpx.Client() as c:
        upd = {"update": "CLEAR GRAPH <urn:nothing>"}
        codes = [
            c.post(ms.update_url, data=upd, headers={"Authorization": f"Bearer guess{i}"}).status_code
            for i in range(12)
        ]
        assert codes[:10] == [401] * 10 and codes[10:] == [429, 429]
        r = c.post(ms.update_url, data=upd, headers={"Authorization": "Bearer guess12"})
        assert r.status_code == 429 and r.headers["retry-after"] == "60"


def _threads(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Threads:"):
            return int(line.split()[1])
    raise AssertionError("no thread count")


def test_idle_connections_take_no_threads_and_are_capped(tmp_path: Path) -> None:
    args = ["--quiet", "--max-connections", "100", "--max-connections-per-client", "1000"]
    with medsyn_server(dataset_store(tmp_path / "s"), extra_args=args) as ms:
        port = int(ms.base_url.rsplit(":", 1)[1])
        before = _threads(ms.process.pid)
        idle = [socket.create_connection(("127.0.0.1", port)) for _ in range(300)]
        try:
            time.sleep(0.5)
            assert _threads(ms.process.pid) <= before + 2  # asyncio: a connection is not a thread
            # past the cap, requests are answered 503 instead of queueing without bound
            r = httpx.get(ms.base_url + "/health", timeout=10)
            assert r.status_code == 503
        finally:
            for s in idle:
                s.close()
        deadline = time.monotonic() + 10
        while httpx.get(ms.base_url + "/health", timeout=10).status_code != 200:
            assert time.monotonic() < deadline, "the server did not recover after the idle connections closed"
            time.sleep(0.1)


def _health(c: httpx.Client, ms: RunningServer) -> tuple[int, dict[str, object]]:
    r = c.get(ms.base_url + "/health")
    return r.status_code, r.json()


def _wait_health(c: httpx.Client, ms: RunningServer, field: str, value: int, *, within_s: float = 60) -> None:
    deadline = time.monotonic() + within_s
    while _health(c, ms)[1][field] != value:
        assert time.monotonic() < deadline, f"/health {field} never reached {value}"
        time.sleep(0.05)


def test_small_queries_are_answered_while_long_ones_fill_the_slow_lane(tmp_path: Path) -> None:
    """Two-level admission: aggregates past the fast budget move to the slow lane and keep their full time limit;
    while they fill it, a small query still gets a fast-lane slot (200), a third aggregate is refused (503) and
    stopped with its worker, and /health names the full lane without calling the server saturated."""
    store = dataset_store(tmp_path / "s", filler=SLOW_FILLER)
    args = ["--quiet", "--workers", "2", "--fast-workers", "2", "--fast-budget", "0.25", "--timeout", "120"]
    with medsyn_server(store, extra_args=args) as ms, httpx.Client(timeout=180) as c:
        answers: list[httpx.Response] = []

        def slow() -> None:
            with httpx.Client(timeout=180) as own:
                answers.append(own.get(ms.query_url, params={"query": SLOW}))

        long_ones = [threading.Thread(target=slow) for _ in range(2)]
        for t in long_ones:
            t.start()
        _wait_health(c, ms, "busyWorkers", 2)
        code, doc = _health(c, ms)
        assert code == 200 and doc["status"] == "busy" and doc["saturatedLanes"] == ["slow"]
        assert doc["busyFastWorkers"] == 0  # the demoted aggregates gave their fast slots back
        for _ in range(3):
            r = c.get(ms.query_url, params={"query": "ASK {}"})
            assert r.status_code == 200 and r.json()["boolean"] is True
        third = c.get(ms.query_url, params={"query": SLOW})
        assert third.status_code == 503 and "slow-lane query workers are busy" in third.text
        code, doc = _health(c, ms)
        # the slow lane was full through all of the above: the small queries were answered beside it
        assert doc["busyWorkers"] == 2 and doc["saturatedLanes"] == ["slow"]
        assert doc["stoppedQueries"] == 1 and len(doc["busyQueryWorkers"]) == 2 and doc["busyFastWorkers"] == 0
        for t in long_ones:
            t.join()
        # the long queries had their whole time limit: answered, not cut at the fast budget
        assert [a.status_code for a in answers] == [200, 200]
        assert {a.json()["results"]["bindings"][0]["n"]["value"] for a in answers} == {str(SLOW_FILLER**3)}
        code, doc = _health(c, ms)
        assert code == 200 and doc["status"] == "ok" and doc["saturatedLanes"] == []
        assert doc["busyWorkers"] == 0 and doc["busyFastWorkers"] == 0 and doc["busyQueryWorkers"] == []


def test_queries_answered_503_are_stopped_and_give_their_slots_back(tmp_path: Path) -> None:
    """An aggregate past its time limit is stopped with its worker process before its 503 is sent: nothing goes on
    evaluating, both lanes are free at once, and one slot per lane is enough for any number of them in a row."""
    store = dataset_store(tmp_path / "s", filler=SLOW_FILLER)
    args = ["--quiet", "--workers", "1", "--fast-workers", "1", "--fast-budget", "0.2", "--timeout", "0.5"]
    with medsyn_server(store, extra_args=args) as ms, httpx.Client(timeout=30) as c:
        for stopped in range(1, 4):
            r = c.get(ms.query_url, params={"query": SLOW})  # demoted, then past the limit
            assert r.status_code == 503 and "0.5 s time limit" in r.text
            code, doc = _health(c, ms)
            assert code == 200 and doc["status"] == "ok" and doc["saturatedLanes"] == []
            assert doc["busyWorkers"] == 0 and doc["busyFastWorkers"] == 0 and doc["busyQueryWorkers"] == []
            assert doc["stoppedQueries"] == stopped
            assert c.get(ms.query_url, params={"query": "ASK {}"}).json()["boolean"] is True


def test_dumps_stream_and_count_against_the_workers(tmp_path: Path) -> None:
    """A whole-dataset GET holds one worker while it streams; a HEAD or a client that leaves gives it back."""
    store = dataset_store(tmp_path / "s", filler=200_000)  # ~20 MB of N-Quads: more than the socket buffers hold
    args = ["--quiet", "--workers", "1", "--timeout", "0.5"]
    with medsyn_server(store, extra_args=args) as ms, httpx.Client(timeout=30) as c:
        with c.stream("GET", ms.store_url, headers={"Accept": "application/n-quads"}) as dump:
            assert dump.status_code == 200 and "content-length" not in dump.headers  # streamed, not buffered
            first = next(dump.iter_raw())
            assert first
            # the dump holds the one slow-lane worker: a second dump waits for it and is refused; a small query
            # is still answered in the fast lane
            busy = c.get(ms.store_url, headers={"Accept": "application/n-quads"})
            assert busy.status_code == 503 and "slow-lane query workers are busy" in busy.text
            doc = c.get(ms.base_url + "/health").json()
            assert doc["status"] == "busy" and doc["saturatedLanes"] == ["slow"] and doc["busyWorkers"] == 1
            assert c.get(ms.query_url, params={"query": "ASK {}"}).json()["boolean"] is True
        # the client closed the stream early: the producer stops and frees the worker
        deadline = time.monotonic() + 10
        while c.get(ms.base_url + "/health").json()["busyWorkers"] != 0:
            assert time.monotonic() < deadline
            time.sleep(0.1)
        assert c.head(ms.store_url).status_code == 200
        time.sleep(1)
        assert c.get(ms.base_url + "/health").json()["busyWorkers"] == 0
        assert c.get(ms.query_url, params={"query": "ASK {}"}).status_code == 200


def test_slow_clients_are_cut_off(tmp_path: Path) -> None:
    """A request head sent a byte at a time, or a body that stalls, ends after --client-timeout (slow-loris)."""
    with medsyn_server(dataset_store(tmp_path / "s"), extra_args=["--quiet", "--client-timeout", "1"]) as ms:
        port = int(ms.base_url.rsplit(":", 1)[1])
        with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
            started = time.monotonic()
            closed = False
            for byte in b"GET /health HTTP/1.1\r\nHost: localhost\r\nX-Slow: " + b"a" * 100:
                try:
                    s.sendall(bytes([byte]))
                except (BrokenPipeError, ConnectionResetError):
                    closed = True
                    break
                time.sleep(0.05)
                if time.monotonic() - started > 4:
                    break
            if not closed:
                try:
                    closed = s.recv(1024) == b""
                except ConnectionResetError:
                    closed = True
            assert closed and time.monotonic() - started < 4
        head = (
            b"POST /sparql HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/sparql-query\r\n"
            b"Content-Length: 100\r\n\r\nASK"
        )
        data, took = _raw_request(ms, head)
        assert data.startswith(b"HTTP/1.1 408") and 0.5 < took < 4
        assert httpx.get(ms.base_url + "/health", timeout=10).status_code == 200
