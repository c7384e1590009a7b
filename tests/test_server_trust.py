"""`medsyn serve` trust boundaries (issue 23, round two), spoken to the real command over HTTP and raw sockets:
X-Forwarded-For only from a trusted proxy, a token lockout that never locks the right token out, body limits that
answer the same whatever the token, a per-address connection cap, refused bodies not read on, a failed update's
reason, /health off the event loop, a broken dump that breaks its connection, the ASGI lifespan, and a locked store
whose message keeps the token to itself."""

from __future__ import annotations

import asyncio
import os
import select
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sparql_cases import FILLER, dataset_store

from medsyn.kg.store import OxigraphStore, lock_file
from medsyn.kg.vocab import GRAPH
from medsyn.server.app import App
from medsyn.server.config import ServerConfig
from medsyn.server.endpoint import Endpoint
from medsyn.testing.servers import RunningServer, free_port, medsyn_server, stop, wait_ready

TOKEN = "trust-token-0123456789"
UPDATE = {"update": "CLEAR SILENT GRAPH <urn:nothing>"}
MEDSYN = str(Path(sys.executable).with_name("medsyn"))
MIB = 1024 * 1024


@pytest.fixture()
def srv(tmp_path: Path) -> Iterator[RunningServer]:
    with medsyn_server(dataset_store(tmp_path / "s"), token=TOKEN, extra_args=["--quiet"]) as server:
        yield server


def _bearer(token: str, **more: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", **more}


def test_forwarded_for_is_ignored_without_a_trusted_proxy(srv: RunningServer) -> None:
    """A client that names a new X-Forwarded-For address with every guess is still one address."""
    with httpx.Client(timeout=30) as c:
        codes = [
            c.post(srv.update_url, data=UPDATE, headers=_bearer(f"guess{i}", **{"X-Forwarded-For": f"10.0.0.{i}"}))
            for i in range(12)
        ]
    assert [r.status_code for r in codes] == [401] * 10 + [429, 429]


def test_a_trusted_proxy_names_the_client(tmp_path: Path) -> None:
    args = ["--quiet", "--trusted-proxy", "127.0.0.1"]
    with medsyn_server(dataset_store(tmp_path / "s"), token=TOKEN, extra_args=args) as ms, httpx.Client() as c:

        def guess(forwarded: str) -> int:
            return c.post(
                ms.update_url, data=UPDATE, headers=_bearer("guess", **{"X-Forwarded-For": forwarded})
            ).status_code

        assert [guess("10.0.0.1") for _ in range(10)] == [401] * 10
        assert guess("10.0.0.1") == 429
        assert guess("10.0.0.2") == 401  # another client behind the same proxy is not locked out
        # the proxy appends the address it saw: a hop the client wrote in front of it changes nothing
        assert guess("10.0.0.2, 10.0.0.1") == 429


def test_the_right_token_passes_a_lockout(srv: RunningServer) -> None:
    """Anyone can make an address fail ten times; the operator's right token still works from it."""
    with httpx.Client(timeout=30) as c:
        codes = [c.post(srv.update_url, data=UPDATE, headers=_bearer(f"guess{i}")).status_code for i in range(11)]
        assert codes == [401] * 10 + [429]
        assert c.post(srv.update_url, data=UPDATE, headers=_bearer(TOKEN)).status_code == 204
        assert c.post(srv.update_url, data=UPDATE, headers=_bearer("guess")).status_code == 429


def test_body_limits_answer_the_same_for_any_token(srv: RunningServer) -> None:
    """A query body over the query limit says nothing about the token: the same status and text for the right one,
    a wrong one and none, announced or chunked. A form (query or update) past the query limit needs the token,
    checked like every token: a wrong one is 401 and counts toward the lockout."""
    body = b"ASK {}" + b" " * (3 * MIB)
    ctype = {"Content-Type": "application/sparql-query"}
    with httpx.Client(timeout=60) as c:
        answers = set()
        for headers in (_bearer(TOKEN), _bearer("wrong"), {}):
            for content in (body, iter([body[: 2 * MIB], body[2 * MIB :]])):
                r = c.post(srv.query_url, content=content, headers={**ctype, **headers})
                answers.add((r.status_code, r.text))
        assert answers == {(413, "request body over 2 MiB, the limit for a query\n")}
        form = "query=ASK%20%7B%7D&pad=" + "x" * (3 * MIB)
        formtype = {"Content-Type": "application/x-www-form-urlencoded"}
        r = c.post(srv.query_url, content=form, headers={**formtype, **_bearer(TOKEN)})
        assert r.status_code == 200 and r.json()["boolean"] is True
        r = c.post(srv.query_url, content=form, headers=formtype)
        assert r.status_code == 413 and "only an update with the token" in r.text
        codes = [
            c.post(srv.query_url, content=form, headers={**formtype, **_bearer("wrong")}).status_code for _ in range(11)
        ]
        assert codes == [401] * 10 + [429]


class Loris:
    """``n`` connections from 127.0.0.1 that never send a byte, each reopened as soon as the server cuts it."""

    def __init__(self, port: int, n: int) -> None:
        self.port = port
        self.socks = [self._open() for _ in range(n)]
        self.refused = 0  # connections the server answered 503 and closed
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _open(self) -> socket.socket:
        return socket.create_connection(("127.0.0.1", self.port), timeout=10)

    def _run(self) -> None:
        while not self._stop.is_set():
            readable, _, _ = select.select(self.socks, [], [], 0.05)
            for s in readable:
                try:
                    data = s.recv(4096)
                except OSError:
                    data = b""
                if data.startswith(b"HTTP/1.1 503"):
                    self.refused += 1
                s.close()
                self.socks[self.socks.index(s)] = self._open()

    def held(self) -> int:
        """Connections still open and silent."""
        readable, _, _ = select.select(self.socks, [], [], 0)
        return len(self.socks) - len(readable)

    def pause(self) -> None:
        """Stop reopening (and reading): what is open stays open."""
        self._stop.set()
        self._thread.join(timeout=10)

    def close(self) -> None:
        self.pause()
        for s in self.socks:
            s.close()


def test_one_address_cannot_hold_every_connection(tmp_path: Path) -> None:
    """300 idle connections from 127.0.0.1, reopened as they are cut, against a cap of 100: 127.0.0.1 keeps 16,
    and every small query of a second client (127.0.0.2) on a new connection is answered."""
    args = ["--quiet", "--max-connections", "100", "--max-connections-per-client", "16", "--client-timeout", "60"]
    with medsyn_server(dataset_store(tmp_path / "s"), extra_args=args) as ms:
        port = int(ms.base_url.rsplit(":", 1)[1])
        loris = Loris(port, 300)
        try:
            deadline = time.monotonic() + 120
            while loris.refused < 300 - 16:
                assert time.monotonic() < deadline, f"only {loris.refused} connections refused"
                time.sleep(0.05)
            other = httpx.HTTPTransport(local_address="127.0.0.2")
            codes = []
            with httpx.Client(transport=other, timeout=30) as c:
                for _ in range(40):
                    r = c.get(ms.query_url, params={"query": "ASK {}"}, headers={"Connection": "close"})
                    codes.append(r.status_code)
            assert codes == [200] * 40
            loris.pause()
            while loris.held() != 16:  # the last reopened ones get their 503 too
                assert time.monotonic() < deadline, f"{loris.held()} connections of 127.0.0.1 held"
                time.sleep(0.05)
        finally:
            loris.close()


def test_a_refused_chunked_body_is_not_read_on(srv: RunningServer) -> None:
    """Past the limit the server answers 413 and closes: a client that keeps sending is cut off after a few MiB
    (what the socket buffers hold), not read for as long as it sends."""
    port = int(srv.base_url.rsplit(":", 1)[1])
    head = b"POST /sparql HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/sparql-query\r\n"
    head += b"Transfer-Encoding: chunked\r\n\r\n"
    chunk = b"%x\r\n" % MIB + b"#" * MIB + b"\r\n"
    sent = 0
    cut = False
    with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
        s.sendall(head)
        try:
            while sent < 512 * MIB:
                s.sendall(chunk)
                sent += MIB
        except (BrokenPipeError, ConnectionResetError):
            cut = True
        if not cut:
            s.settimeout(5)
            answer = b""
            try:
                while piece := s.recv(65536):
                    answer += piece
            except (ConnectionResetError, TimeoutError):
                pass
    assert cut, f"the server read all {sent // MIB} MiB"
    assert sent < 64 * MIB
    assert httpx.get(srv.base_url + "/health", timeout=10).status_code == 200


def test_a_failed_update_says_why(srv: RunningServer) -> None:
    with httpx.Client(timeout=30) as c:
        r = c.post(srv.update_url, data={"update": "DROP GRAPH <urn:nothing>"}, headers=_bearer(TOKEN))
        assert r.status_code == 400 and r.text == "update failed: The graph <urn:nothing> does not exist\n"
        r = c.post(srv.update_url, data={"update": f"CREATE GRAPH <{GRAPH}icd10>"}, headers=_bearer(TOKEN))
        assert r.status_code == 400 and "already exists" in r.text
    assert "RuntimeError" not in srv.log()


def test_health_reads_the_store_off_the_event_loop(tmp_path: Path) -> None:
    """While /health reads the store the event loop runs other tasks: a ticker task advances between the request
    and its answer. (Run in-process on a real store, on disk as the query workers need; none is started, since
    /health reads the server's own handle: the ticker is the event loop's view of the work.)"""
    store = OxigraphStore(tmp_path / "store")
    endpoint = Endpoint(store, ServerConfig(quiet=True), owns_store=False)
    app = App(endpoint)
    scope = {
        "type": "http",
        "method": "GET",
        "path": "/health",
        "query_string": b"",
        "headers": [(b"host", b"127.0.0.1")],
        "client": ("127.0.0.1", 40000),
        "scheme": "http",
    }
    seen: dict[str, int] = {}

    async def run() -> None:
        ticks = 0
        done = False

        async def ticker() -> None:
            nonlocal ticks
            while not done:
                ticks += 1
                await asyncio.sleep(0)

        task = asyncio.create_task(ticker())
        await asyncio.sleep(0)

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                seen["status"] = message["status"]
                seen["ticks"] = ticks - before

        before = ticks
        await app(scope, receive, send)
        done = True
        await task

    asyncio.run(run())
    endpoint.pool.close()
    endpoint.workers.pool.shutdown(wait=True)
    store.close()
    assert seen["status"] == 200 and seen["ticks"] >= 1


def _corrupt(store: Path) -> None:
    """Overwrite 4 KiB at 70% of every large RocksDB table file: data blocks a full scan reaches only midway."""
    for f in store.glob("*.sst"):
        size = f.stat().st_size
        if size > 100_000:
            with open(f, "r+b") as h:
                h.seek(int(size * 0.7))
                h.write(b"\xff" * 4096)


def test_a_dump_that_fails_midway_breaks_the_connection(tmp_path: Path) -> None:
    """A store damaged in the middle: the dump has sent 200 and part of the graph when reading fails. The client
    must see an incomplete answer (no clean end of the chunked stream), not a short graph that looks whole."""
    total = 200_000
    store = dataset_store(tmp_path / "s", filler=total)
    _corrupt(store)
    with medsyn_server(store, extra_args=["--quiet"]) as ms, httpx.Client(timeout=60) as c:
        lines = 0
        query = {"graph": FILLER.value}
        with (
            pytest.raises(httpx.RemoteProtocolError),
            c.stream("GET", ms.store_url, params=query, headers={"Accept": "application/n-triples"}) as r,
        ):
            assert r.status_code == 200
            for line in r.iter_lines():
                lines += bool(line)
        assert 0 < lines < total
        log = ms.log()
        assert "stream broken off: the dump failed after" in log and "Corruption" in log
        assert "Traceback" not in log


def test_the_app_answers_the_asgi_lifespan(tmp_path: Path) -> None:
    """Under uvicorn with lifespan on (the default of many deployments) the app starts serving and stops cleanly."""
    store = dataset_store(tmp_path / "s")
    port = free_port()
    script = (
        "import sys, uvicorn\n"
        "from medsyn.server import make_server\n"
        "srv = make_server(sys.argv[1], port=0, quiet=True)\n"
        "srv.socket.close()\n"
        "uvicorn.run(srv.app, host='127.0.0.1', port=int(sys.argv[2]), lifespan='on', log_level='info')\n"
    )
    log = tmp_path / "uvicorn.log"
    with open(log, "wb") as out:
        process = subprocess.Popen([sys.executable, "-c", script, str(store), str(port)], stdout=out, stderr=out)
    try:
        wait_ready(process, f"http://127.0.0.1:{port}/health", log)
        r = httpx.get(f"http://127.0.0.1:{port}/sparql", params={"query": "ASK {}"}, timeout=10)
        assert r.status_code == 200 and r.json()["boolean"] is True
    finally:
        stop(process)
    text = log.read_text()
    assert process.returncode in (0, -15), text  # uvicorn.run re-raises the SIGTERM it handled
    assert "Application startup complete" in text and "Application shutdown complete" in text, text


def test_a_locked_store_does_not_print_the_token(tmp_path: Path) -> None:
    """`serve --token T` holds the store; another command's "locked" message names the holder without T."""
    store = dataset_store(tmp_path / "s")
    secret = "do-not-print-this-token-4711"
    port = free_port()
    log = tmp_path / "serve.log"
    env = {k: v for k, v in os.environ.items() if k != "MEDSYN_SERVE_TOKEN"}
    # the token first: the message shows the start of the holder's command line
    args = [MEDSYN, "serve", "--token", secret, "--store", str(store), "--port", str(port), "--quiet"]
    with open(log, "wb") as out:
        process = subprocess.Popen(args, stdout=out, stderr=out, env=env)
    try:
        wait_ready(process, f"http://127.0.0.1:{port}/health", log)
        second = [MEDSYN, "serve", "--store", str(store), "--port", str(free_port())]
        run = subprocess.run(second, capture_output=True, text=True, timeout=120, env=env)
        assert run.returncode != 0 and "locked by process" in run.stderr and "--token ***" in run.stderr
        assert secret not in run.stderr + run.stdout and "Traceback" not in run.stderr
        assert secret not in lock_file(store).read_text()
    finally:
        stop(process)


def test_a_graph_the_format_cannot_write_says_why(srv: RunningServer) -> None:
    """JSON-LD (written whole) has no RDF 1.2 triple terms: the answer names that, not an internal exception."""
    update = "INSERT DATA { GRAPH <urn:t> { <urn:x> <urn:p> <<( <urn:a> <urn:p> <urn:b> )>> } }"
    with httpx.Client(timeout=30) as c:
        assert c.post(srv.update_url, data={"update": update}, headers=_bearer(TOKEN)).status_code == 204
        r = c.get(srv.store_url, params={"graph": "urn:t"}, headers={"Accept": "application/ld+json"})
        assert r.status_code == 500 and r.text == "dump failed: JSON-LD does not support RDF 1.2 yet\n"
        r = c.get(srv.store_url, params={"graph": "urn:t"}, headers={"Accept": "application/n-triples"})
        assert r.status_code == 200 and "<<( <urn:a> <urn:p> <urn:b> )>>" in r.text


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--trusted-proxy", "proxy.example"], "--trusted-proxy: 'proxy.example' is not an IP address or network"),
        (["--max-connections-per-client", "0"], "--max-connections-per-client: 0 is not a positive number"),
    ],
)
def test_bad_trust_options_are_one_line_errors(tmp_path: Path, args: list[str], message: str) -> None:
    store = dataset_store(tmp_path / "s")
    run = subprocess.run(
        [MEDSYN, "serve", "--store", str(store), "--port", str(free_port()), *args],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 2 and message in run.stderr and len(run.stderr.strip().splitlines()) == 1, run.stderr
