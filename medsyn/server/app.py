"""``medsyn serve``: a SPARQL 1.1 Protocol endpoint over one embedded Oxigraph store, as an ASGI app on uvicorn.

Routes: ``/sparql`` (alias ``/query``) answers queries by GET, form POST and direct POST, and describes the service
(SPARQL 1.1 Service Description) on a GET without a query; updates go to ``/update`` (or an ``update=`` form or an
``application/sparql-update`` body on ``/sparql``) and need ``Authorization: Bearer <token>`` on a server started
with a token; ``/store`` is the Graph Store Protocol (GET of a graph, the default graph or the whole dataset, streamed;
PUT/POST/DELETE with the token); ``/health`` reports the store and the workers; ``/`` is the YASGUI query page
(vendored, served from the package) with the files of ``sparql/`` as examples.

Why an ASGI app over pyoxigraph rather than the Oxigraph server behind a proxy: see docs/endpoint.md (measured: the
proxy hop cost 4-5x on small queries, and a proxy cannot cap rows nor fix Oxigraph's 200 answers cut by a timeout).

The process owns the store read-write (RocksDB allows one writer process). Every query reads a snapshot and every
update is one transaction, so a reader never sees half a write.

Default graph: the union of the named graphs (MedSyn keeps all data in named graphs, so SPARQLWrapper, rdflib and
YASGUI users see the data); ``union-default-graph=false`` on a request, or ``union_default_graph=False`` on the
server, gives the store's default graph instead.

Limits: two-level admission (:class:`Workers`). Every query starts in the fast lane (``fast_workers`` slots) with a
budget of ``fast_budget_s``; one still running past it needs a slow-lane slot (``workers``, shared with dumps) to go on
up to ``timeout_s``, and is answered 503 when none is free. So a fast slot frees within the budget and a small query is
answered, whatever long queries do, until the overflow below is full too. A query answered 503 (past ``timeout_s``, or
demoted without a slow slot) is told to stop: row-by-row evaluation stops at its next row, but an operator that must see
all its input first (ORDER BY, GROUP BY, aggregates) cannot be interrupted inside pyoxigraph. It goes on in a bounded
overflow, or once that is full keeps its slot until it ends, so at most ``fast_workers + 2 * workers`` evaluations run,
and ``/health`` names the lanes with no free slot (503 ``saturated`` when the fast lane has none). Bodies are refused
before they are read when over the limit (``max_query_bytes`` without a valid token, ``max_body_bytes`` with one).
uvicorn caps concurrent connections (``max_connections``; past it, 503) and closes idle keep-alive connections. SERVICE
and LOAD are refused unless their host is allowed; ``file:`` and other non-HTTP schemes always are.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import ipaddress
import json
import queue
import signal
import socket
import sys
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from pyoxigraph import (
    BlankNode,
    DefaultGraph,
    NamedNode,
    Quad,
    QueryBoolean,
    QuerySolutions,
    RdfFormat,
    Triple,
    parse,
    serialize,
)

from medsyn.errors import InputError, StoreError
from medsyn.kg.scopes import dataset_clauses, remote_targets, where_sites
from medsyn.kg.store import OxigraphStore
from medsyn.kg.version import graph_version
from medsyn.paths import PACKAGE_DIR
from medsyn.server import results

RESOURCES = PACKAGE_DIR / "resources"
PAGE_DIR = RESOURCES / "yasgui"
MAX_BODY = 64 * 1024 * 1024
MAX_QUERY_BODY = 2 * 1024 * 1024
TRUNCATED_HEADER = results.TRUNCATED_HEADER
QUAD_TYPES = ["application/n-quads", "application/trig"]
_QUAD_FORMATS = {"application/n-quads": RdfFormat.N_QUADS, "application/trig": RdfFormat.TRIG}
_FALSE = {"false", "0", "no", "off"}
_LOOPBACK_NAMES = {"localhost", "127.0.0.1", "::1"}
DUMP_CHUNK = 5000  # quads per streamed piece of a Graph Store GET
BAD_TOKEN_LIMIT = 10  # failed bearer tokens per client address and minute before 429
SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    # YASGUI sets inline styles and draws icons from data: URIs; scripts come only from this server.
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
        "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
    ),
}
_SD = "http://www.w3.org/ns/sparql-service-description#"
_RDF_TYPE = NamedNode("http://www.w3.org/1999/02/22-rdf-syntax-ns#type")
_FORMATS = "http://www.w3.org/ns/formats/"


@dataclass(frozen=True)
class ServerConfig:
    """Options of one endpoint. ``token=None`` disables updates; ``cors_origin=None`` sends no CORS headers.

    ``allow_hosts``: Host header values accepted besides the bound address (and the loopback names when bound to
    loopback); ``"*"`` turns the check off. ``service_hosts``/``load_hosts``: hosts that SERVICE and LOAD may reach
    (empty: SERVICE and LOAD are refused).
    """

    token: str | None = None
    timeout_s: float = 30.0
    max_rows: int = 100_000
    cors_origin: str | None = None
    union_default_graph: bool = True
    workers: int = 8  # the slow lane (see Workers)
    fast_workers: int = 8
    fast_budget_s: float = 0.5
    max_connections: int = 256
    max_body_bytes: int = MAX_BODY
    max_query_bytes: int = MAX_QUERY_BODY
    host: str = "127.0.0.1"
    allow_hosts: tuple[str, ...] = ()
    service_hosts: tuple[str, ...] = ()
    load_hosts: tuple[str, ...] = ()
    client_timeout_s: float = 15.0  # for a request head after the connection (or the last answer), and for a body
    quiet: bool = False
    log: Callable[[str], None] = field(default=lambda line: print(line, file=sys.stderr, flush=True))


@dataclass
class Answer:
    status: int
    body: bytes | AsyncIterator[bytes]
    content_type: str = "text/plain; charset=utf-8"
    headers: dict[str, str] = field(default_factory=dict)
    close: Callable[[], None] | None = None  # called once the answer is sent or abandoned (a stream's producer)


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
    base_iri: str | None = None
    default_graphs: tuple[NamedNode, ...] = ()
    named_graphs: tuple[NamedNode, ...] = ()


class Lane:
    """``size`` slots that running evaluations are counted against; taken on the event loop, given back from any
    thread (the evaluation's own, when it ends)."""

    def __init__(self, name: str, size: int) -> None:
        self.name = name
        self.size = size
        self._lock = threading.Lock()
        self._held = 0
        self._sem: asyncio.Semaphore | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def _semaphore(self) -> asyncio.Semaphore:
        if self._sem is None:
            self._loop = asyncio.get_running_loop()
            self._sem = asyncio.Semaphore(self.size)
        return self._sem

    async def acquire(self, timeout_s: float) -> None:
        """Wait up to ``timeout_s`` for a slot, else 503."""
        try:
            await asyncio.wait_for(self._semaphore().acquire(), timeout=max(timeout_s, 0.001))
        except TimeoutError:
            raise HttpError(
                503, f"all {self.size} {self.name}-lane query workers are busy; try again later", {"Retry-After": "5"}
            ) from None
        with self._lock:
            self._held += 1

    async def try_acquire(self) -> bool:
        """A slot now, or False (no waiting: a request waiting here would hold its other slot meanwhile)."""
        sem = self._semaphore()
        if sem.locked():  # no free slot, or earlier requests are waiting for one
            return False
        await sem.acquire()  # a free semaphore is taken without suspending, so nothing can come between
        with self._lock:
            self._held += 1
        return True

    def release(self) -> None:
        """Give a slot back (callable from any thread)."""
        with self._lock:
            self._held -= 1
        assert self._loop is not None and self._sem is not None
        self._loop.call_soon_threadsafe(self._sem.release)

    @property
    def held(self) -> int:
        with self._lock:
            return self._held

    @property
    def full(self) -> bool:
        return self.held >= self.size


class Workers:
    """Two-level admission, with accounting only: a running pyoxigraph evaluation cannot change threads, but what it
    is counted against can.

    Every query starts in the *fast lane* (``fast`` slots) with a budget of ``fast_budget_s``. One still running
    past it is *demoted*: it takes a *slow-lane* slot (``slow``, the ``--workers`` count) and gives its fast slot
    back, or, when no slow slot is free, it is answered 503 and abandoned. So, while the overflow has room, a fast
    slot frees within the budget whatever long queries do, and a small query waits about the budget for one at most
    (one budget per wave when more than ``fast`` queries are queued ahead of it). Dumps take slow-lane slots directly.

    pyoxigraph cannot interrupt an aggregate, so an abandoned query (demoted without a slow slot, or past its time
    limit) keeps running. Up to ``slow`` such queries at a time move to the overflow and give their slot back; once
    the overflow is full, an abandoned query keeps its slot (fast or slow) until it really ends. So at most
    ``fast + 2 * slow`` evaluations ever run, and ``/health`` names the lanes with no free slot.
    """

    def __init__(self, slow: int, fast: int, fast_budget_s: float) -> None:
        self.fast = Lane("fast", fast)
        self.slow = Lane("slow", slow)
        self.fast_budget_s = fast_budget_s
        self.overflow_size = slow
        self.pool = ThreadPoolExecutor(max_workers=fast + slow + self.overflow_size, thread_name_prefix="medsyn-sparql")
        self._lock = threading.Lock()
        self._abandoned = 0  # abandoned evaluations still running (in the overflow or on a slot)
        self._overflow = 0  # of those, the ones that gave their slot back

    def abandon(self) -> bool:
        """A query was answered 503 while still evaluating; True when it moved to the overflow, so its slot must be
        released now (and not again when it ends)."""
        with self._lock:
            self._abandoned += 1
            if self._overflow < self.overflow_size:
                self._overflow += 1
                return True
            return False

    def ended_abandoned(self, *, in_overflow: bool) -> None:
        with self._lock:
            self._abandoned -= 1
            if in_overflow:
                self._overflow -= 1

    @property
    def abandoned(self) -> int:
        with self._lock:
            return self._abandoned

    @property
    def overflow(self) -> int:
        with self._lock:
            return self._overflow


class _Evaluation:
    """What one running query is counted against: a lane's slot, or nothing once it moved to the overflow. The
    event loop moves it; its worker thread gives back whatever it holds when the evaluation ends."""

    def __init__(self, workers: Workers, lane: Lane) -> None:
        self.workers = workers
        self.lane: Lane | None = lane
        self._lock = threading.Lock()
        self._done = False
        self._abandoned = False

    def ended(self) -> None:
        with self._lock:
            self._done = True
            if self._abandoned:
                self.workers.ended_abandoned(in_overflow=self.lane is None)
            if self.lane is not None:
                self.lane.release()

    def move_to(self, lane: Lane) -> bool:
        """Count the evaluation against ``lane`` (whose slot the caller took) instead; False when it already ended."""
        with self._lock:
            if self._done:
                return False
            old, self.lane = self.lane, lane
        assert old is not None
        old.release()
        return True

    def abandon(self) -> bool:
        """Its client gets a 503: to the overflow if there is room, else it keeps its slot. False when it already
        ended (its answer is ready)."""
        with self._lock:
            if self._done:
                return False
            self._abandoned = True
            if self.workers.abandon():
                old, self.lane = self.lane, None
                assert old is not None
                old.release()
            return True


class Endpoint:
    """The store, its options, the workers and the write lock: everything a request needs, shared by all."""

    def __init__(self, store: OxigraphStore, config: ServerConfig, *, owns_store: bool) -> None:
        self.store = store
        self.config = config
        self.owns_store = owns_store
        self.workers = Workers(config.workers, config.fast_workers, config.fast_budget_s)
        self.write_lock = threading.Lock()  # one update at a time: pyoxigraph transactions would otherwise conflict
        self._bad_tokens: dict[str, deque[float]] = {}
        self._bad_lock = threading.Lock()

    # --- queries ------------------------------------------------------------------------------------------------

    def evaluate(self, req: QueryRequest, cancel: threading.Event) -> Answer:
        options: dict[str, Any] = {"base_iri": req.base_iri}
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
            truncated = False
            if isinstance(result, QueryBoolean):
                media = _pick(req.accept, results.SOLUTION_TYPES)
                answer = Answer(200, results.write_boolean(bool(result), media), results.content_type(media))
            elif isinstance(result, QuerySolutions):
                media = _pick(req.accept, results.SOLUTION_TYPES)
                names = [v.value for v in result.variables]
                rows, truncated = self._collect(result, cancel, tuple)
                answer = Answer(200, results.write_solutions(names, rows, media), results.content_type(media))
            else:
                media = _pick(req.accept, results.GRAPH_TYPES + QUAD_TYPES)
                triples, truncated = self._collect(result, cancel, lambda t: t)
                if media in _QUAD_FORMATS:  # CONSTRUCT as a dataset: the triples in the default graph
                    quads = [Quad(t.subject, t.predicate, t.object, DefaultGraph()) for t in triples]
                    body = serialize(quads, format=_QUAD_FORMATS[media]) or b""
                    answer = Answer(200, body, media + "; charset=utf-8")
                else:
                    answer = Answer(200, results.write_graph(triples, media), results.content_type(media, graph=True))
        except HttpError as exc:
            return Answer(exc.status, (str(exc) + "\n").encode(), headers=exc.headers)
        except (OSError, RuntimeError, ValueError, TypeError) as exc:  # evaluation errors surface while iterating
            return Answer(500, f"query failed: {exc}\n".encode())
        if truncated:
            answer.headers[TRUNCATED_HEADER] = f"max-rows={self.config.max_rows}"
        return answer

    def _collect(self, result: Any, cancel: threading.Event, convert: Callable[[Any], Any]) -> tuple[list[Any], bool]:
        """Take rows until the cap; stop early when the request gave up on this query."""
        cap = self.config.max_rows
        rows: list[Any] = []
        for item in result:
            if len(rows) >= cap:
                return rows, True
            if cancel.is_set():
                raise HttpError(503, "query cancelled")
            rows.append(convert(item))
        return rows, False

    async def run_query(self, req: QueryRequest) -> Answer:
        """Evaluate in the fast lane, then (past its budget) in the slow lane, within the deadline; a query
        answered 503 before it ended is told to stop at its next row (one that cannot stop goes on in the overflow
        or on its slot, see :class:`Workers`)."""
        lanes = self.workers
        deadline = time.monotonic() + self.config.timeout_s
        await lanes.fast.acquire(deadline - time.monotonic())
        cancel = threading.Event()
        run = _Evaluation(lanes, lanes.fast)

        def work() -> Answer:
            try:
                return self.evaluate(req, cancel)
            finally:
                run.ended()

        future = asyncio.get_running_loop().run_in_executor(lanes.pool, work)
        budget_end = min(time.monotonic() + lanes.fast_budget_s, deadline)
        answer = await _by(future, budget_end)
        if answer is not None:
            return answer
        if budget_end < deadline:
            if not await lanes.slow.try_acquire():
                if not run.abandon():
                    return await future
                cancel.set()
                message = (
                    f"all {lanes.slow.size} slow-lane query workers are busy and this query ran past the "
                    f"{lanes.fast_budget_s:g} s fast-lane budget; try again later\n"
                )
                return Answer(503, message.encode(), headers={"Retry-After": "5"})
            if not run.move_to(lanes.slow):
                lanes.slow.release()
                return await future
            answer = await _by(future, deadline)
            if answer is not None:
                return answer
        if not run.abandon():
            return await future
        cancel.set()
        return Answer(503, f"query exceeded the {self.config.timeout_s:g} s time limit of this endpoint\n".encode())

    def check_remote(self, sparql: str) -> None:
        """Refuse SERVICE and LOAD unless their IRI is http(s) on an allowed host; ``file:`` is always refused."""
        for keyword, iri in remote_targets(sparql):
            allowed = self.config.service_hosts if keyword == "SERVICE" else self.config.load_hosts
            option = "--allow-service" if keyword == "SERVICE" else "--allow-load"
            if iri is None:
                raise HttpError(400, f"{keyword} needs a constant http(s) IRI on this endpoint")
            parts = urlsplit(iri)
            if parts.scheme not in ("http", "https"):
                raise HttpError(400, f"{keyword} <{iri}>: only http and https IRIs may be fetched")
            if not allowed:
                raise HttpError(400, f"{keyword} is disabled on this endpoint (start it with {option} HOST)")
            if "*" not in allowed and (parts.hostname or "") not in allowed:
                raise HttpError(400, f"{keyword} <{iri}>: host {parts.hostname!r} is not allowed ({option})")

    # --- updates ------------------------------------------------------------------------------------------------

    def run_update(self, sparql: str, *, base_iri: str | None) -> Answer:
        self.check_remote(sparql)
        with self.write_lock:
            try:
                self.store.raw.update(sparql, base_iri=base_iri)
            except SyntaxError as exc:
                return Answer(400, f"SPARQL update syntax error: {exc}\n".encode())
            except OSError as exc:
                return Answer(500, f"update failed: {exc}\n".encode())
        return Answer(204, b"")

    def authorize(self, authorization: str | None, client: str) -> None:
        token = self.config.token
        if token is None:
            raise HttpError(403, "updates are disabled on this endpoint (start `medsyn serve` with --token)")
        now = time.monotonic()
        with self._bad_lock:
            recent = self._bad_tokens.get(client)
            while recent and now - recent[0] > 60:
                recent.popleft()
            if recent and len(recent) >= BAD_TOKEN_LIMIT:
                raise HttpError(429, "too many invalid tokens from this address; wait a minute", {"Retry-After": "60"})
        scheme, _, given = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not given:
            raise HttpError(401, "updates need 'Authorization: Bearer <token>'", {"WWW-Authenticate": "Bearer"})
        # Constant-time comparison: response timing must not reveal how much of a guessed token was right.
        if not hmac.compare_digest(given.strip().encode(), token.encode()):
            with self._bad_lock:
                self._bad_tokens.setdefault(client, deque()).append(now)
            raise HttpError(401, "invalid bearer token", {"WWW-Authenticate": 'Bearer error="invalid_token"'})

    def token_ok(self, authorization: str | None) -> bool:
        token = self.config.token
        scheme, _, given = (authorization or "").partition(" ")
        if not token or scheme.lower() != "bearer":
            return False
        return hmac.compare_digest(given.strip().encode(), token.encode())

    # --- health, service description, Graph Store ---------------------------------------------------------------

    def health(self) -> Answer:
        try:
            version = graph_version(self.store)
            graphs = sum(1 for _ in self.store.raw.named_graphs())
        except (OSError, StoreError) as exc:
            return Answer(503, f"store unavailable: {exc}\n".encode())
        lanes = self.workers
        full = [lane.name for lane in (lanes.fast, lanes.slow) if lane.full]
        # 503 only when no query can start now; a full slow lane refuses long queries while small ones are answered.
        status = "saturated" if "fast" in full else "busy" if full else "ok"
        doc = {
            "status": status,
            "store": str(self.store.path) if self.store.path else None,
            "namedGraphs": graphs,
            "graphVersion": version,
            "updates": self.config.token is not None,
            "maxRows": self.config.max_rows,
            "timeoutSeconds": self.config.timeout_s,
            "workers": lanes.slow.size,
            "busyWorkers": lanes.slow.held,
            "fastWorkers": lanes.fast.size,
            "busyFastWorkers": lanes.fast.held,
            "fastBudgetSeconds": lanes.fast_budget_s,
            "saturatedLanes": full,
            "abandonedQueries": lanes.abandoned,
            "overflowQueries": lanes.overflow,
            "unionDefaultGraph": self.config.union_default_graph,
        }
        return Answer(503 if status == "saturated" else 200, json.dumps(doc).encode(), "application/json")

    def service_description(self, endpoint_url: str, accept: str | None) -> Answer:
        media = _pick(accept, results.GRAPH_TYPES)
        svc = BlankNode()
        sd = lambda name: NamedNode(_SD + name)  # noqa: E731
        triples = [
            Triple(svc, _RDF_TYPE, sd("Service")),
            Triple(svc, sd("endpoint"), NamedNode(endpoint_url)),
            Triple(svc, sd("supportedLanguage"), sd("SPARQL11Query")),
            Triple(svc, sd("feature"), sd("BasicFederatedQuery")) if self.config.service_hosts else None,
        ]
        if self.config.token is not None:
            triples.append(Triple(svc, sd("supportedLanguage"), sd("SPARQL11Update")))
        if self.config.union_default_graph:
            triples.append(Triple(svc, sd("feature"), sd("UnionDefaultGraph")))
        for name in ("SPARQL_Results_JSON", "SPARQL_Results_XML", "SPARQL_Results_CSV", "SPARQL_Results_TSV"):
            triples.append(Triple(svc, sd("resultFormat"), NamedNode(_FORMATS + name)))
        for name in ("Turtle", "N-Triples", "RDF_XML", "JSON-LD", "N-Quads", "TriG"):
            triples.append(Triple(svc, sd("resultFormat"), NamedNode(_FORMATS + name)))
        dataset, graph = BlankNode(), BlankNode()
        triples += [
            Triple(svc, sd("defaultDataset"), dataset),
            Triple(dataset, _RDF_TYPE, sd("Dataset")),
            Triple(dataset, sd("defaultGraph"), graph),
            Triple(graph, _RDF_TYPE, sd("Graph")),
        ]
        body = results.write_graph([t for t in triples if t is not None], media)
        return Answer(200, body, results.content_type(media, graph=True))

    def graph_target(self, params: dict[str, list[str]]) -> NamedNode | DefaultGraph | None:
        if "graph" in params:
            return _iri(_single(params, "graph"))
        if "default" in params:
            return DefaultGraph()
        return None

    async def graph_store_get(self, params: dict[str, list[str]], accept: str | None) -> Answer:
        """One named graph, the default graph, or the whole dataset, streamed in pieces; holds a worker meanwhile."""
        target = self.graph_target(params)
        if isinstance(target, NamedNode) and not self.store.raw.contains_named_graph(target):
            raise HttpError(404, f"no graph <{target.value}> in this store")
        if target is None:
            media = _pick(accept, QUAD_TYPES)
            fmt, ctype = _QUAD_FORMATS[media], media + "; charset=utf-8"
        else:
            media = _pick(accept, results.GRAPH_TYPES)
            fmt, ctype = results.graph_format(media), results.content_type(media, graph=True)
        if fmt not in (RdfFormat.N_QUADS, RdfFormat.TRIG, RdfFormat.N_TRIPLES, RdfFormat.TURTLE):
            # RDF/XML and JSON-LD documents cannot be cut into pieces: one graph is written whole.
            await self.workers.slow.acquire(self.config.timeout_s)
            try:
                quads = await asyncio.get_running_loop().run_in_executor(
                    self.workers.pool, lambda: list(self.store.raw.quads_for_pattern(None, None, None, target))
                )
            finally:
                self.workers.slow.release()
            return Answer(200, serialize([q.triple for q in quads], format=fmt) or b"", ctype)
        await self.workers.slow.acquire(self.config.timeout_s)
        stop = threading.Event()
        return Answer(200, self._stream(target, fmt, stop), ctype, close=stop.set)

    def _stream(
        self, target: NamedNode | DefaultGraph | None, fmt: RdfFormat, stop: threading.Event
    ) -> AsyncIterator[bytes]:
        """Pieces of a dump, written by one worker thread (pyoxigraph's quad iterator must stay in the thread that
        made it) into a short queue; the worker slot taken by the caller is freed when that thread ends, which
        ``stop`` (set by the answer's ``close``, also when the stream never started) makes it do."""
        pieces: queue.Queue[bytes | None] = queue.Queue(maxsize=4)

        def put(item: bytes | None) -> bool:
            while not stop.is_set():
                try:
                    pieces.put(item, timeout=0.5)
                    return True
                except queue.Full:
                    continue
            return False

        def produce() -> None:
            try:
                quads = iter(self.store.raw.quads_for_pattern(None, None, None, target))
                while not stop.is_set():
                    chunk = [q for _, q in zip(range(DUMP_CHUNK), quads, strict=False)]
                    if not chunk:
                        break
                    if fmt in (RdfFormat.N_QUADS, RdfFormat.TRIG):
                        data = serialize(chunk, format=fmt) or b""
                    else:
                        data = serialize([q.triple for q in chunk], format=fmt) or b""
                    if not put(data):
                        return
            finally:
                self.workers.slow.release()
                put(None)

        self.workers.pool.submit(produce)  # now, not on the first read: an answer never sent must still end it

        def take() -> bytes | None:
            while True:
                try:
                    return pieces.get(timeout=0.5)
                except queue.Empty:
                    if stop.is_set():
                        return None

        async def drain() -> AsyncIterator[bytes]:
            while (data := await asyncio.to_thread(take)) is not None:
                yield data

        return drain()

    def graph_store_write(self, method: str, params: dict[str, list[str]], ctype: str, body: bytes) -> Answer:
        """PUT replaces, POST adds to, DELETE removes a graph; each in one transaction."""
        target = self.graph_target(params)
        if target is None:
            raise HttpError(400, "name the graph: ?graph=IRI or ?default")
        exists = isinstance(target, DefaultGraph) or self.store.raw.contains_named_graph(target)
        if method == "DELETE":
            if not exists:
                raise HttpError(404, f"no graph <{target.value}> in this store")
            with self.write_lock:
                if isinstance(target, DefaultGraph):
                    self.store.raw.clear_graph(target)
                else:
                    self.store.raw.remove_graph(target)
            return Answer(204, b"")
        fmt = RdfFormat.from_media_type(ctype) if ctype else None
        if fmt is None or fmt.supports_datasets:
            raise HttpError(415, f"unsupported Content-Type {ctype!r} for a graph: Turtle, N-Triples, RDF/XML, JSON-LD")
        try:
            triples = [q.triple for q in parse(body, format=fmt)]
        except SyntaxError as exc:
            raise HttpError(400, f"cannot parse the {fmt.name} body: {exc}") from None
        quads = [Quad(t.subject, t.predicate, t.object, target) for t in triples]
        with self.write_lock:
            if method == "PUT":
                # One update: the old graph is dropped and the new one inserted in the same transaction.
                # The terms are written by pyoxigraph's N-Triples serializer, never copied from the request text.
                data = (serialize(triples, format=RdfFormat.N_TRIPLES) or b"").decode()
                if isinstance(target, DefaultGraph):
                    self.store.raw.update(f"DROP SILENT DEFAULT ; INSERT DATA {{ {data} }}")
                else:
                    self.store.raw.update(f"DROP SILENT GRAPH {target} ; INSERT DATA {{ GRAPH {target} {{ {data} }} }}")
            else:
                self.store.raw.extend(quads)
        return Answer(204 if exists else 201, b"")


async def _by(future: asyncio.Future[Answer], when: float) -> Answer | None:
    """The answer if it is ready by ``when`` (monotonic time), else None; the evaluation goes on either way."""
    try:
        return await asyncio.wait_for(asyncio.shield(future), timeout=max(when - time.monotonic(), 0.001))
    except TimeoutError:
        return None


def _pick(accept: str | None, offers: list[str]) -> str:
    media = results.negotiate(accept, offers)
    if media is None:
        raise HttpError(406, f"cannot answer in {accept}; available: {', '.join(offers)}")
    return media


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


def _text(body: bytes) -> str:
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise HttpError(400, f"request body is not UTF-8 (byte {exc.start})") from None


def _media(ctype: str | None) -> tuple[str, str | None]:
    """``(media type, charset)`` of a Content-Type header."""
    fields = (ctype or "").split(";")
    charset = None
    for param in fields[1:]:
        key, _, value = param.partition("=")
        if key.strip().lower() == "charset":
            charset = value.strip().strip('"').lower()
    return fields[0].strip().lower(), charset


def _allowed_hosts(config: ServerConfig) -> set[str] | None:
    """Host header names to accept (None: any). Loopback binds accept the loopback names (DNS rebinding guard)."""
    if "*" in config.allow_hosts:
        return None
    names = {config.host.lower(), *(h.lower() for h in config.allow_hosts)}
    try:
        wildcard = ipaddress.ip_address(config.host).is_unspecified
        loopback = ipaddress.ip_address(config.host).is_loopback
    except ValueError:
        wildcard, loopback = False, config.host.lower() == "localhost"
    if wildcard or loopback:
        names |= _LOOPBACK_NAMES
    return names


def _host_name(host_header: str) -> str:
    if host_header.startswith("["):  # [::1]:8080
        return host_header[1 : host_header.find("]")].lower()
    return host_header.rsplit(":", 1)[0].lower() if host_header.count(":") == 1 else host_header.lower()


class App:
    """The ASGI application: routing, limits and headers around an :class:`Endpoint`."""

    def __init__(self, endpoint: Endpoint) -> None:
        self.endpoint = endpoint
        self.config = endpoint.config
        self.hosts = _allowed_hosts(self.config)
        self.page_files = {p.name: p for p in PAGE_DIR.iterdir()} if PAGE_DIR.is_dir() else {}

    async def __call__(self, scope: dict[str, Any], receive: Callable[..., Any], send: Callable[..., Any]) -> None:
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                pass
            await send({"type": "lifespan.shutdown.complete"})
            return
        if scope["type"] != "http":
            return
        started = time.perf_counter()
        request = _Request(scope, receive, self.config.client_timeout_s)
        try:
            answer = await self.dispatch(request)
        except HttpError as exc:
            answer = Answer(exc.status, (str(exc) + "\n").encode(), headers=exc.headers)
        except Exception as exc:  # a bug must not drop the connection silently; the client gets a 500
            self.config.log(f"internal error on {request.method} {request.path}: {type(exc).__name__}: {exc}")
            answer = Answer(500, f"internal error: {type(exc).__name__}\n".encode())
        size = await self.send_answer(request, answer, send)
        if not self.config.quiet:
            ms = (time.perf_counter() - started) * 1000
            line = f"{request.method} {request.path}"
            line = line if len(line) <= 160 else line[:157] + "..."
            self.config.log(f'{request.client} "{line}" {answer.status} {size}B {ms:.1f}ms')

    async def send_answer(self, request: _Request, answer: Answer, send: Callable[..., Any]) -> int:
        headers = {"content-type": answer.content_type, **SECURITY_HEADERS}
        origin = self.config.cors_origin
        if origin:
            headers["access-control-allow-origin"] = origin
            headers["access-control-expose-headers"] = TRUNCATED_HEADER
            if origin != "*":
                headers["vary"] = "Origin"
        headers.update({k.lower(): v for k, v in answer.headers.items()})
        head_only = request.method == "HEAD"
        if isinstance(answer.body, bytes):
            headers["content-length"] = str(len(answer.body))
            await send({"type": "http.response.start", "status": answer.status, "headers": _raw(headers)})
            await send({"type": "http.response.body", "body": b"" if head_only else answer.body})
            return len(answer.body)
        stream = answer.body
        size = 0
        try:
            await send({"type": "http.response.start", "status": answer.status, "headers": _raw(headers)})
            if not head_only:
                async for piece in stream:
                    size += len(piece)
                    await send({"type": "http.response.body", "body": piece, "more_body": True})
            await send({"type": "http.response.body", "body": b""})
        finally:
            if answer.close is not None:
                answer.close()  # the producer stops at its next piece and gives its worker back
            await stream.aclose()  # type: ignore[attr-defined]
        return size

    async def dispatch(self, request: _Request) -> Answer:
        if self.hosts is not None and _host_name(request.header("host") or "") not in self.hosts:
            raise HttpError(421, f"Host {request.header('host')!r} is not served here (see --allow-host)")
        route = request.path.rstrip("/") or "/"
        method = request.method
        if method == "OPTIONS":
            headers = {"Allow": "GET, HEAD, POST, PUT, DELETE, OPTIONS"}
            if self.config.cors_origin:
                headers["Access-Control-Allow-Methods"] = "GET, HEAD, POST, PUT, DELETE, OPTIONS"
                headers["Access-Control-Allow-Headers"] = "Accept, Authorization, Content-Type"
                headers["Access-Control-Max-Age"] = "600"
            return Answer(204, b"", headers=headers)
        if route in ("/sparql", "/query"):
            return await self.sparql(request, allow_update=route == "/sparql")
        if route == "/update":
            _only(method, "POST")
            return await self.update(request)
        if route == "/store":
            return await self.store(request)
        if route == "/health":
            _only(method, "GET", "HEAD")
            return self.endpoint.health()
        if route == "/examples.json":
            _only(method, "GET", "HEAD")
            return Answer(200, _examples(), "application/json")
        if route == "/":
            _only(method, "GET", "HEAD")
            return self.static("index.html")
        name = route.rsplit("/", 1)[-1]
        if route == "/static/" + name and name in self.page_files:
            _only(method, "GET", "HEAD")
            return self.static(name)
        raise HttpError(404, f"no route {request.path}; try /sparql, /update, /store, /health or /")

    def static(self, name: str) -> Answer:
        path = self.page_files.get(name)
        if path is None:
            raise HttpError(404, f"the query page file {name} is not installed")
        kind = {".html": "text/html", ".js": "text/javascript", ".css": "text/css"}.get(path.suffix, "text/plain")
        return Answer(200, path.read_bytes(), kind + "; charset=utf-8", {"Cache-Control": "max-age=3600"})

    async def body(self, request: _Request, *, authorized: bool) -> bytes:
        """The request body, refused before reading when its announced size is over the caller's limit."""
        limit = self.config.max_body_bytes if authorized else self.config.max_query_bytes
        length = request.header("content-length")
        if length is not None:
            if not length.isdigit():
                raise HttpError(400, f"invalid Content-Length {length!r}")
            if int(length) > limit:
                raise HttpError(413, f"request body over {_size(limit)}{'' if authorized else ' without a token'}")
        return await request.read(limit, authorized)

    async def sparql(self, request: _Request, *, allow_update: bool) -> Answer:
        params = request.params
        method = request.method
        base = request.base_url
        if method in ("GET", "HEAD"):
            if "update" in params:
                raise HttpError(405, "an update needs POST", {"Allow": "POST"})
            if "query" not in params:
                return self.endpoint.service_description(base, request.header("accept"))
        elif method == "POST":
            ctype, charset = _media(request.header("content-type"))
            if charset not in (None, "utf-8", "utf8"):
                raise HttpError(415, f"charset {charset} is not supported; send UTF-8")
            authorized = self.endpoint.token_ok(request.header("authorization"))
            if ctype == "application/x-www-form-urlencoded":
                form = parse_qs(_text(await self.body(request, authorized=authorized)), keep_blank_values=True)
                if "update" in form:
                    if not allow_update:
                        raise HttpError(400, "updates go to /update")
                    if "query" in form:
                        raise HttpError(400, "a request carries a query or an update, not both")
                    return await self._update(request, _single(form, "update"), params | form)
                for key, values in form.items():
                    params.setdefault(key, []).extend(values)
            elif ctype == "application/sparql-query":
                params.setdefault("query", []).append(_text(await self.body(request, authorized=authorized)))
            elif ctype == "application/sparql-update" and allow_update:
                self.endpoint.authorize(request.header("authorization"), request.client)
                return await self._update(request, _text(await self.body(request, authorized=True)), params)
            else:
                raise HttpError(415, f"unsupported Content-Type {ctype!r} for a query")
        else:
            raise HttpError(405, "use GET or POST on this route", {"Allow": "GET, HEAD, POST"})
        sparql = _single(params, "query")
        self.endpoint.check_remote(sparql)
        union = self.config.union_default_graph
        if "union-default-graph" in params:
            union = params["union-default-graph"][-1].strip().lower() not in _FALSE
        elif results.STORE_DEFAULT_GRAPH in params:
            union = params[results.STORE_DEFAULT_GRAPH][-1].strip().lower() in _FALSE
        req = QueryRequest(
            sparql=sparql,
            accept=request.header("accept"),
            union=union,
            base_iri=base,
            default_graphs=tuple(_iri(v) for v in params.get("default-graph-uri", [])),
            named_graphs=tuple(_iri(v) for v in params.get("named-graph-uri", [])),
        )
        return await self.endpoint.run_query(req)

    async def update(self, request: _Request) -> Answer:
        self.endpoint.authorize(request.header("authorization"), request.client)
        ctype, charset = _media(request.header("content-type"))
        if charset not in (None, "utf-8", "utf8"):
            raise HttpError(415, f"charset {charset} is not supported; send UTF-8")
        body = await self.body(request, authorized=True)
        params = request.params
        if ctype == "application/x-www-form-urlencoded":
            form = parse_qs(_text(body), keep_blank_values=True)
            return await self._update(request, _single(form, "update"), params | form)
        if ctype == "application/sparql-update":
            return await self._update(request, _text(body), params)
        raise HttpError(415, f"unsupported Content-Type {ctype!r} for an update")

    async def _update(self, request: _Request, sparql: str, params: dict[str, list[str]]) -> Answer:
        self.endpoint.authorize(request.header("authorization"), request.client)
        using = [_iri(v) for v in params.get("using-graph-uri", [])]
        using_named = [_iri(v) for v in params.get("using-named-graph-uri", [])]
        if using or using_named:
            if dataset_clauses(sparql):
                raise HttpError(400, "the update names its dataset (USING/WITH) and the request does too")
            # The protocol's dataset is the USING clauses the update would otherwise carry: insert them (IRIs
            # already checked by NamedNode, written in N-Triples form) before each WHERE of a DELETE/INSERT.
            clause = " ".join([f"USING {g}" for g in using] + [f"USING NAMED {g}" for g in using_named]) + " "
            for site in reversed(where_sites(sparql)):
                sparql = sparql[:site] + clause + sparql[site:]
        return await asyncio.to_thread(self.endpoint.run_update, sparql, base_iri=request.base_url)

    async def store(self, request: _Request) -> Answer:
        method = request.method
        if method in ("GET", "HEAD"):
            return await self.endpoint.graph_store_get(request.params, request.header("accept"))
        if method in ("PUT", "POST", "DELETE"):
            self.endpoint.authorize(request.header("authorization"), request.client)
            body = b"" if method == "DELETE" else await self.body(request, authorized=True)
            ctype, _ = _media(request.header("content-type"))
            return await asyncio.to_thread(self.endpoint.graph_store_write, method, request.params, ctype, body)
        raise HttpError(405, "use GET, PUT, POST or DELETE on /store", {"Allow": "GET, HEAD, PUT, POST, DELETE"})


def _only(method: str, *allowed: str) -> None:
    if method not in allowed:
        raise HttpError(405, f"use {' or '.join(allowed)} on this route", {"Allow": ", ".join(allowed)})


def _size(n: int) -> str:
    return f"{n // (1024 * 1024)} MiB" if n >= 1024 * 1024 else f"{n} bytes"


def _raw(headers: dict[str, str]) -> list[tuple[bytes, bytes]]:
    return [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]


_EXAMPLES: bytes | None = None


def _examples() -> bytes:
    """The query files of ``sparql/`` as ``[{"name", "query"}]``, for the page's example menu."""
    global _EXAMPLES
    if _EXAMPLES is None:
        from medsyn.paths import SPARQL_DIR as root

        docs = [
            {"name": str(p.relative_to(root).with_suffix("")), "query": p.read_text(encoding="utf-8")}
            for p in sorted(root.rglob("*.rq"))
        ]
        _EXAMPLES = json.dumps(docs, ensure_ascii=False).encode("utf-8")
    return _EXAMPLES


class _Request:
    """The parts of an ASGI HTTP request the routes read."""

    def __init__(self, scope: dict[str, Any], receive: Callable[..., Any], client_timeout_s: float) -> None:
        self.scope = scope
        self.client_timeout_s = client_timeout_s
        self.receive = receive
        self.method: str = scope["method"]
        self.path: str = scope["path"]
        self.params = parse_qs(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True)
        self._headers: dict[str, str] = {}
        for key, value in scope.get("headers", []):
            name = key.decode("latin-1").lower()
            self._headers[name] = value.decode("latin-1")
        client = scope.get("client")
        self.client = client[0] if client else "-"

    def header(self, name: str) -> str | None:
        return self._headers.get(name)

    @property
    def base_url(self) -> str:
        """This request's URL without the query string: the base IRI of its query or update (the protocol allows
        "the service endpoint")."""
        scheme = self.scope.get("scheme", "http")
        host = self.header("host") or "localhost"
        return f"{scheme}://{host}{self.path}"

    async def read(self, limit: int, authorized: bool) -> bytes:
        chunks: list[bytes] = []
        size = 0
        deadline = time.monotonic() + self.client_timeout_s
        while True:
            try:
                message = await asyncio.wait_for(self.receive(), timeout=max(deadline - time.monotonic(), 0.001))
            except TimeoutError:
                raise HttpError(408, f"the request body did not arrive within {self.client_timeout_s:g} s") from None
            if message["type"] == "http.disconnect":
                raise HttpError(400, "the client left before sending its body")
            piece = message.get("body", b"")
            size += len(piece)
            if size > limit:  # a chunked body announces no size: count while reading
                raise HttpError(413, f"request body over {_size(limit)}{'' if authorized else ' without a token'}")
            chunks.append(piece)
            if not message.get("more_body", False):
                return b"".join(chunks)


def _uvicorn_server_class() -> type[Any]:
    import uvicorn

    class Quiet(uvicorn.Server):
        """uvicorn re-raises SIGTERM/SIGINT after its shutdown, which would kill the process before ``close()``
        flushes the store; here a signal only asks the server to stop, and ``serve_forever`` returns."""

        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            if threading.current_thread() is not threading.main_thread():
                yield
                return
            previous = {sig: signal.signal(sig, self.handle_exit) for sig in (signal.SIGINT, signal.SIGTERM)}
            try:
                yield
            finally:
                for sig, handler in previous.items():
                    signal.signal(sig, handler)

    return Quiet


def _head_deadline_protocol(deadline_s: float) -> type[Any]:
    """uvicorn's h11 protocol with a deadline for each request head (slow-loris: a client that sends its headers a
    byte at a time would otherwise hold its connection, and a place under --max-connections, forever)."""
    from uvicorn.protocols.http.h11_impl import H11Protocol

    class HeadDeadline(H11Protocol):  # type: ignore[misc]
        def connection_made(self, transport: Any) -> None:
            super().connection_made(transport)
            self._arm()

        def _arm(self) -> None:
            self._head_timer = self.loop.call_later(deadline_s, self._head_expired)

        def _head_expired(self) -> None:
            # No request in progress (none yet, or the last one answered): the next head is late.
            if self.cycle is None or self.cycle.response_complete:
                self.transport.close()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            self._head_timer.cancel()
            self._arm()

        def connection_lost(self, exc: Exception | None) -> None:
            self._head_timer.cancel()
            super().connection_lost(exc)

    return HeadDeadline


def _uvicorn_server(config: Any) -> Any:
    """A uvicorn server with MedSyn's signal handling (the class is made on first use: uvicorn loads lazily)."""
    return _uvicorn_server_class()(config)


class SparqlServer:
    """A bound endpoint: ``serve_forever()`` runs uvicorn on the socket until SIGINT/SIGTERM, ``close()`` frees it."""

    def __init__(self, endpoint: Endpoint, sock: socket.socket) -> None:
        import uvicorn

        self.endpoint = endpoint
        self.socket = sock
        self.app = App(endpoint)
        config = uvicorn.Config(
            self.app,
            limit_concurrency=endpoint.config.max_connections,
            timeout_keep_alive=15,
            timeout_graceful_shutdown=5,
            log_level="error",
            access_log=False,
            lifespan="off",
            server_header=False,
            h11_max_incomplete_event_size=64 * 1024,  # request line and headers: no megabyte header lines
            http=_head_deadline_protocol(endpoint.config.client_timeout_s),
        )
        self.uvicorn = _uvicorn_server(config)

    @property
    def url(self) -> str:
        host, port = self.socket.getsockname()[:2]
        return f"http://{host}:{port}"

    @property
    def store(self) -> OxigraphStore:
        return self.endpoint.store

    def serve_forever(self) -> None:
        self.uvicorn.run(sockets=[self.socket])

    def close(self) -> None:
        """Free the socket and workers and, when the server opened the store, flush and close it."""
        self.socket.close()
        self.endpoint.workers.pool.shutdown(wait=False, cancel_futures=True)
        if self.endpoint.owns_store:
            self.endpoint.store.close()

    @property
    def abandoned_queries(self) -> int:
        """Queries answered 503 (past the time limit, or demoted without a slow-lane slot) still evaluating."""
        return self.endpoint.workers.abandoned


def make_server(
    store: str | Path | OxigraphStore,
    *,
    host: str = "127.0.0.1",
    port: int = 7879,
    token: str | None = None,
    timeout_s: float = 30.0,
    max_rows: int = 100_000,
    cors_origin: str | None = None,
    union_default_graph: bool = True,
    workers: int = 8,
    fast_workers: int | None = None,
    fast_budget_s: float = 0.5,
    max_connections: int = 256,
    max_body_bytes: int = MAX_BODY,
    max_query_bytes: int = MAX_QUERY_BODY,
    allow_hosts: tuple[str, ...] = (),
    service_hosts: tuple[str, ...] = (),
    load_hosts: tuple[str, ...] = (),
    client_timeout_s: float = 15.0,
    quiet: bool = False,
) -> SparqlServer:
    """Bind an endpoint (not yet serving: call ``serve_forever()``, then ``close()``).

    A path is opened read-write and closed by ``close()``; a given store stays the caller's.
    ``port=0`` picks a free port (see ``server.url``). ``fast_workers`` defaults to ``workers``.
    """
    fast_workers = workers if fast_workers is None else fast_workers
    if timeout_s <= 0 or max_rows <= 0 or workers <= 0 or max_connections <= 0 or client_timeout_s <= 0:
        raise InputError("timeout, max rows, workers and max connections must be positive")
    if fast_workers <= 0:
        raise InputError(f"--fast-workers: {fast_workers} is not a positive number of workers")
    if not fast_budget_s > 0:  # also NaN
        raise InputError(f"--fast-budget: {fast_budget_s:g} is not a positive number of seconds")
    if max_body_bytes <= 0 or max_query_bytes <= 0:
        raise InputError("body limits must be positive")
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
        fast_workers=fast_workers,
        fast_budget_s=fast_budget_s,
        max_connections=max_connections,
        max_body_bytes=max_body_bytes,
        max_query_bytes=max_query_bytes,
        host=host,
        allow_hosts=tuple(allow_hosts),
        service_hosts=tuple(service_hosts),
        load_hosts=tuple(load_hosts),
        client_timeout_s=client_timeout_s,
        quiet=quiet,
    )
    owns = not isinstance(store, OxigraphStore)
    # Serving never creates a store: a mistyped path must not answer "ok" over an empty graph.
    opened = OxigraphStore(Path(store), create=False) if not isinstance(store, OxigraphStore) else store
    try:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        # IPPROTO_TCP explicitly: asyncio sets TCP_NODELAY only on sockets that say so, and without it the body
        # (a write of its own after the headers) waits for the client's delayed ACK, ~40 ms per request.
        sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            sock.bind((host, port))
            sock.listen(512)
        except OSError:
            sock.close()
            raise
        sock.set_inheritable(True)
    except OSError as exc:
        if owns:
            opened.close()
        raise StoreError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    return SparqlServer(Endpoint(opened, config, owns_store=owns), sock)
