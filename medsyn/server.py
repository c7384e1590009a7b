"""``medsyn serve``: a SPARQL 1.1 Protocol endpoint over one embedded Oxigraph store.

Routes: ``/sparql`` (alias ``/query``) answers queries by GET, form POST and direct POST; ``/update`` (and an
``update=`` form or ``application/sparql-update`` body on ``/sparql``) runs SPARQL Update, only when the server was
started with a token and the request carries ``Authorization: Bearer <token>``; ``/store`` is the Graph Store
Protocol GET (``?graph=IRI``, ``?default``, or the whole dataset); ``/health`` reports the store; ``/`` is a small
query page.

The process owns the store read-write (RocksDB allows one writer process), so while it runs the CLI reaches the
graph through ``--endpoint``. Every query reads a snapshot and every update is one transaction, so a reader never
sees half a write.

Default graph: like the Oxigraph server, a query sees the store's default graph unless the request has a
``union-default-graph`` parameter or the server was started with ``union_default_graph=True`` (MedSyn keeps all data
in named graphs, so clients normally ask for the union). ``union-default-graph=false`` switches it off per request.

Limits: a query that runs past ``timeout_s`` is answered 503 and abandoned. Row-by-row evaluation stops at the next
solution; an operator that must see all its input first (ORDER BY, GROUP BY, an aggregate) cannot be interrupted
inside pyoxigraph and finishes in its worker thread (at most ``workers`` such threads; further queries wait for
a free worker within their own deadline). Results stop after ``max_rows`` rows or triples, with the header
``X-Medsyn-Truncated``.
"""

from __future__ import annotations

import hmac
import io
import json
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from pyoxigraph import DefaultGraph, NamedNode, QueryBoolean, QuerySolutions, RdfFormat

from medsyn import sparql_results as results
from medsyn.errors import InputError, StoreError
from medsyn.graphversion import graph_version
from medsyn.store import OxigraphStore

PAGE = Path(__file__).resolve().parent / "resources" / "server_page.html"
MAX_BODY = 64 * 1024 * 1024
TRUNCATED_HEADER = results.TRUNCATED_HEADER
QUAD_TYPES = ["application/n-quads", "application/trig"]
_QUAD_FORMATS = {"application/n-quads": RdfFormat.N_QUADS, "application/trig": RdfFormat.TRIG}
_FALSE = {"false", "0", "no", "off"}


@dataclass(frozen=True)
class ServerConfig:
    """Options of one endpoint. ``token=None`` disables updates; ``cors_origin=None`` sends no CORS headers."""

    token: str | None = None
    timeout_s: float = 30.0
    max_rows: int = 100_000
    cors_origin: str | None = None
    union_default_graph: bool = False
    workers: int = 8
    quiet: bool = False
    log: Callable[[str], None] = field(default=lambda line: print(line, file=sys.stderr, flush=True))


@dataclass
class Answer:
    status: int
    body: bytes
    content_type: str = "text/plain; charset=utf-8"
    headers: dict[str, str] = field(default_factory=dict)


class HttpError(Exception):
    """A request the server refuses: becomes a one-line text/plain answer with this status."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.headers = headers or {}


@dataclass(frozen=True)
class QueryRequest:
    sparql: str
    accept: str | None
    union: bool
    default_graphs: tuple[NamedNode, ...] = ()
    named_graphs: tuple[NamedNode, ...] = ()


class SparqlServer(ThreadingHTTPServer):
    """The HTTP server: one thread per connection (HTTP/1.1 keep-alive), queries evaluated in a bounded pool."""

    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, store: OxigraphStore, address: tuple[str, int], config: ServerConfig, *, owns_store: bool):
        self.store = store
        self.config = config
        self.owns_store = owns_store
        self.pool = ThreadPoolExecutor(max_workers=config.workers, thread_name_prefix="medsyn-sparql")
        self.write_lock = threading.Lock()  # one update at a time: pyoxigraph transactions would otherwise conflict
        self.page = PAGE.read_bytes()
        self._abandoned = 0
        self._abandoned_lock = threading.Lock()
        super().__init__(address, _Handler)

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}"

    def close(self) -> None:
        """Stop accepting, free the workers and, when the server opened the store, flush and close it."""
        self.server_close()
        self.pool.shutdown(wait=False, cancel_futures=True)
        if self.owns_store:
            self.store.close()

    # --- query evaluation (runs in a pool worker) ---------------------------------------------------------------

    def evaluate(self, req: QueryRequest, cancel: threading.Event) -> Answer:
        options: dict[str, Any] = {}
        if req.default_graphs:
            options["default_graph"] = list(req.default_graphs)
        else:
            options["use_default_graph_as_union"] = req.union
        if req.named_graphs:
            options["named_graphs"] = list(req.named_graphs)
        try:
            result = self.store.raw.query(req.sparql, **options)
        except SyntaxError as exc:
            return Answer(400, f"SPARQL syntax error: {exc}\n".encode())
        except OSError as exc:
            return Answer(500, f"query failed: {exc}\n".encode())
        try:
            if isinstance(result, QueryBoolean):
                media = self._pick(req.accept, results.SOLUTION_TYPES)
                return Answer(200, results.write_boolean(bool(result), media), results.content_type(media))
            if isinstance(result, QuerySolutions):
                media = self._pick(req.accept, results.SOLUTION_TYPES)
                names = [v.value for v in result.variables]
                rows, truncated = self._collect(result, cancel, tuple)
                answer = Answer(200, results.write_solutions(names, rows, media), results.content_type(media))
            else:
                media = self._pick(req.accept, results.GRAPH_TYPES)
                triples, truncated = self._collect(result, cancel, lambda t: t)
                answer = Answer(200, results.write_graph(triples, media), results.content_type(media, graph=True))
        except HttpError as exc:
            return Answer(exc.status, (str(exc) + "\n").encode(), headers=exc.headers)
        except (OSError, RuntimeError, ValueError, TypeError) as exc:  # evaluation errors surface while iterating
            return Answer(500, f"query failed: {exc}\n".encode())
        if truncated:
            answer.headers[TRUNCATED_HEADER] = f"max-rows={self.config.max_rows}"
        return answer

    def _collect(self, result: Any, cancel: threading.Event, convert: Callable[[Any], Any]) -> tuple[list[Any], bool]:
        """Take rows until the cap; stop early when the request thread gave up on this query."""
        cap = self.config.max_rows
        rows: list[Any] = []
        for item in result:
            if len(rows) >= cap:
                return rows, True
            if cancel.is_set():
                raise HttpError(503, "query cancelled")
            rows.append(convert(item))
        return rows, False

    @staticmethod
    def _pick(accept: str | None, offers: list[str]) -> str:
        media = results.negotiate(accept, offers)
        if media is None:
            raise HttpError(406, f"cannot answer in {accept}; available: {', '.join(offers)}")
        return media

    def run_query(self, req: QueryRequest) -> Answer:
        """Evaluate within the deadline; past it, answer 503 and tell the worker to stop."""
        cancel = threading.Event()
        future = self.pool.submit(self.evaluate, req, cancel)
        try:
            return future.result(timeout=self.config.timeout_s)
        except FutureTimeout:
            cancel.set()
            if not future.cancel():  # already running: it finishes (or stops at its next row) on its own
                with self._abandoned_lock:
                    self._abandoned += 1
                future.add_done_callback(self._forget)
            return Answer(503, f"query exceeded the {self.config.timeout_s:g} s time limit of this endpoint\n".encode())

    def _forget(self, _future: object) -> None:
        with self._abandoned_lock:
            self._abandoned -= 1

    @property
    def abandoned_queries(self) -> int:
        """Queries past their deadline still evaluating in a worker (pyoxigraph cannot interrupt them)."""
        with self._abandoned_lock:
            return self._abandoned

    def run_update(self, sparql: str) -> Answer:
        with self.write_lock:
            try:
                self.store.raw.update(sparql)
            except SyntaxError as exc:
                return Answer(400, f"SPARQL update syntax error: {exc}\n".encode())
            except OSError as exc:
                return Answer(500, f"update failed: {exc}\n".encode())
        return Answer(204, b"")

    def health(self) -> Answer:
        try:
            version = graph_version(self.store)
            graphs = sum(1 for _ in self.store.raw.named_graphs())
        except (OSError, StoreError) as exc:
            return Answer(503, f"store unavailable: {exc}\n".encode())
        doc = {
            "status": "ok",
            "store": str(self.store.path) if self.store.path else None,
            "namedGraphs": graphs,
            "graphVersion": version,
            "updates": self.config.token is not None,
            "maxRows": self.config.max_rows,
            "timeoutSeconds": self.config.timeout_s,
        }
        return Answer(200, json.dumps(doc).encode(), "application/json")

    def graph_store(self, params: dict[str, list[str]], accept: str | None) -> Answer:
        """Graph Store Protocol GET: one named graph, the default graph, or the whole dataset."""
        out_graph: NamedNode | DefaultGraph | None
        if "graph" in params:
            out_graph = _iri(_single(params, "graph"))
            if not self.store.raw.contains_named_graph(out_graph):
                raise HttpError(404, f"no graph <{out_graph.value}> in this store")
        elif "default" in params:
            out_graph = DefaultGraph()
        else:
            out_graph = None
        buf = io.BytesIO()
        if out_graph is None:
            media = self._pick(accept, QUAD_TYPES)
            self.store.raw.dump(buf, format=_QUAD_FORMATS[media])
            return Answer(200, buf.getvalue(), media + "; charset=utf-8")
        media = self._pick(accept, results.GRAPH_TYPES)
        self.store.raw.dump(buf, format=results.graph_format(media), from_graph=out_graph)
        return Answer(200, buf.getvalue(), results.content_type(media, graph=True))


def _single(params: dict[str, list[str]], name: str) -> str:
    values = params.get(name, [])
    if len(values) != 1:
        raise HttpError(400, f"expected exactly one '{name}' parameter, got {len(values)}")
    return values[0]


def _iri(value: str) -> NamedNode:
    try:
        return NamedNode(value)
    except ValueError as exc:
        raise HttpError(400, f"invalid IRI {value!r}: {exc}") from None


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: SparqlServer
    # Idle keep-alive connections and stalled uploads give their thread back after this many seconds.
    timeout = 60
    server_version = "medsyn-serve"
    # Headers and body go out in separate writes; with Nagle on, the body waits for the client's delayed ACK
    # (~40 ms per keep-alive request).
    disable_nagle_algorithm = True

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_OPTIONS(self) -> None:
        self._started = time.perf_counter()
        headers = {"Allow": "GET, POST, OPTIONS"}
        if self.server.config.cors_origin:
            headers["Access-Control-Allow-Methods"] = "GET, POST, OPTIONS"
            headers["Access-Control-Allow-Headers"] = "Accept, Authorization, Content-Type"
            headers["Access-Control-Max-Age"] = "600"
        self._send(Answer(204, b"", headers=headers))

    def do_PUT(self) -> None:
        self._refuse_method()

    def do_DELETE(self) -> None:
        self._refuse_method()

    def do_PATCH(self) -> None:
        self._refuse_method()

    def _refuse_method(self) -> None:
        self._started = time.perf_counter()
        self._drain()
        self._send(Answer(405, b"method not allowed\n", headers={"Allow": "GET, POST, OPTIONS"}))

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        """Silenced: ``_send`` logs one line per request with its duration instead."""

    def log_error(self, format: str, *args: Any) -> None:
        if not self.server.config.quiet:
            self.server.config.log(f"{self.client_address[0]} {format % args}")

    def _dispatch(self, method: str) -> None:
        self._started = time.perf_counter()
        url = urlsplit(self.path)
        route = url.path.rstrip("/") or "/"
        params = parse_qs(url.query, keep_blank_values=True)
        try:
            if route in ("/sparql", "/query"):
                answer = self._sparql(method, params, allow_update=route == "/sparql")
            elif route == "/update":
                answer = self._update(method, params)
            elif route == "/store":
                self._only(method, "GET")
                answer = self.server.graph_store(params, self.headers.get("Accept"))
            elif route == "/health":
                self._only(method, "GET")
                answer = self.server.health()
            elif route == "/":
                self._only(method, "GET")
                answer = Answer(200, self.server.page, "text/html; charset=utf-8")
            else:
                self._drain()
                raise HttpError(404, f"no route {url.path}; try /sparql, /update, /store, /health or /")
        except HttpError as exc:
            answer = Answer(exc.status, (str(exc) + "\n").encode(), headers=exc.headers)
        except Exception as exc:  # a bug must not kill the connection thread silently; the client gets a 500
            self.server.config.log(f"internal error on {method} {url.path}: {type(exc).__name__}: {exc}")
            answer = Answer(500, f"internal error: {type(exc).__name__}\n".encode())
        self._send(answer)

    def _only(self, method: str, allowed: str) -> None:
        if method != allowed:
            self._drain()
            raise HttpError(405, f"use {allowed} on this route", {"Allow": allowed})

    def _sparql(self, method: str, params: dict[str, list[str]], *, allow_update: bool) -> Answer:
        if method == "POST":
            ctype, body = self._body()
            if ctype == "application/x-www-form-urlencoded":
                form = parse_qs(body.decode("utf-8", errors="replace"), keep_blank_values=True)
                if "update" in form and allow_update:
                    self._authorize()
                    return self.server.run_update(_single(form, "update"))
                for key, values in form.items():
                    params.setdefault(key, []).extend(values)
            elif ctype == "application/sparql-query":
                params.setdefault("query", []).append(_text(body))
            elif ctype == "application/sparql-update" and allow_update:
                self._authorize()
                return self.server.run_update(_text(body))
            else:
                raise HttpError(415, f"unsupported Content-Type {ctype!r} for a query")
        if "query" not in params:
            raise HttpError(400, "missing 'query' parameter")
        return self.server.run_query(self._query_request(params))

    def _query_request(self, params: dict[str, list[str]]) -> QueryRequest:
        union = self.server.config.union_default_graph
        if "union-default-graph" in params:
            union = params["union-default-graph"][-1].strip().lower() not in _FALSE
        return QueryRequest(
            sparql=_single(params, "query"),
            accept=self.headers.get("Accept"),
            union=union,
            default_graphs=tuple(_iri(v) for v in params.get("default-graph-uri", [])),
            named_graphs=tuple(_iri(v) for v in params.get("named-graph-uri", [])),
        )

    def _update(self, method: str, params: dict[str, list[str]]) -> Answer:
        self._only(method, "POST")
        ctype, body = self._body()
        self._authorize()
        if ctype == "application/x-www-form-urlencoded":
            sparql = _single(parse_qs(body.decode("utf-8", errors="replace"), keep_blank_values=True), "update")
        elif ctype == "application/sparql-update":
            sparql = _text(body)
        else:
            raise HttpError(415, f"unsupported Content-Type {ctype!r} for an update")
        return self.server.run_update(sparql)

    def _authorize(self) -> None:
        token = self.server.config.token
        if token is None:
            raise HttpError(403, "updates are disabled on this endpoint (start `medsyn serve` with --token)")
        scheme, _, given = (self.headers.get("Authorization") or "").partition(" ")
        if scheme.lower() != "bearer" or not given:
            raise HttpError(401, "updates need 'Authorization: Bearer <token>'", {"WWW-Authenticate": "Bearer"})
        # Constant-time comparison: response timing must not reveal how much of a guessed token was right.
        if not hmac.compare_digest(given.strip().encode(), token.encode()):
            raise HttpError(401, "invalid bearer token", {"WWW-Authenticate": 'Bearer error="invalid_token"'})

    def _body(self) -> tuple[str, bytes]:
        ctype = (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        length = self.headers.get("Content-Length")
        if length is None:
            self.close_connection = True  # the body's end is unknown: this connection cannot be reused
            raise HttpError(411, "a POST needs a Content-Length header")
        try:
            size = int(length)
        except ValueError:
            self.close_connection = True
            raise HttpError(400, f"invalid Content-Length {length!r}") from None
        if size > MAX_BODY:
            self.close_connection = True
            raise HttpError(413, f"request body over {MAX_BODY // (1024 * 1024)} MiB")
        body = self.rfile.read(size)
        if len(body) < size:
            self.close_connection = True
            raise HttpError(400, "request body ended early")
        return ctype, body

    def _drain(self) -> None:
        """Read and drop an unused request body so the next request on this connection parses correctly."""
        length = self.headers.get("Content-Length")
        if length and length.isdigit() and int(length) <= MAX_BODY:
            self.rfile.read(int(length))
        elif length:
            self.close_connection = True

    def _send(self, answer: Answer) -> None:
        try:
            self.send_response(answer.status)
            self.send_header("Content-Type", answer.content_type)
            self.send_header("Content-Length", str(len(answer.body)))
            origin = self.server.config.cors_origin
            if origin:
                self.send_header("Access-Control-Allow-Origin", origin)
                self.send_header("Access-Control-Expose-Headers", TRUNCATED_HEADER)
                if origin != "*":
                    self.send_header("Vary", "Origin")
            for name, value in answer.headers.items():
                self.send_header(name, value)
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(answer.body)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True  # the client went away mid-answer; nothing to tell it
            return
        if not self.server.config.quiet:
            ms = (time.perf_counter() - self._started) * 1000
            line = self.requestline if len(self.requestline) <= 160 else self.requestline[:157] + "..."
            self.server.config.log(f'{self.client_address[0]} "{line}" {answer.status} {len(answer.body)}B {ms:.1f}ms')


def _text(body: bytes) -> str:
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise HttpError(400, f"request body is not UTF-8 (byte {exc.start})") from None


def make_server(
    store: str | Path | OxigraphStore,
    *,
    host: str = "127.0.0.1",
    port: int = 7879,
    token: str | None = None,
    timeout_s: float = 30.0,
    max_rows: int = 100_000,
    cors_origin: str | None = None,
    union_default_graph: bool = False,
    workers: int = 8,
    quiet: bool = False,
) -> SparqlServer:
    """Bind an endpoint (not yet serving: call ``serve_forever()``, then ``close()``).

    A path is opened read-write and closed by ``close()``; a given store stays the caller's.
    ``port=0`` picks a free port (see ``server.url``).
    """
    if timeout_s <= 0 or max_rows <= 0 or workers <= 0:
        raise InputError("timeout, max rows and workers must be positive")
    if not 0 <= port <= 65535:
        raise InputError(f"--port: {port} is not a TCP port (0-65535)")
    if token is not None and not token.strip():
        raise InputError("the update token is empty")
    config = ServerConfig(
        token=token,
        timeout_s=timeout_s,
        max_rows=max_rows,
        cors_origin=cors_origin,
        union_default_graph=union_default_graph,
        workers=workers,
        quiet=quiet,
    )
    owns = not isinstance(store, OxigraphStore)
    # Serving never creates a store: a mistyped path must not answer "ok" over an empty graph.
    opened = OxigraphStore(Path(store), create=False) if not isinstance(store, OxigraphStore) else store
    try:
        return SparqlServer(opened, (host, port), config, owns_store=owns)
    except OSError as exc:
        if owns:
            opened.close()
        raise StoreError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
