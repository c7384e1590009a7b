"""The endpoint's work, apart from HTTP: admit queries to the worker processes, run updates, describe the service,
read and write graphs (Graph Store Protocol), check tokens and report health."""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import queue
import threading
import time
from collections import deque
from collections.abc import AsyncIterator
from urllib.parse import urlsplit

from pyoxigraph import (
    BlankNode,
    DefaultGraph,
    NamedNode,
    Quad,
    RdfFormat,
    Triple,
    parse,
    serialize,
)

from medsyn.errors import InputError, StoreError
from medsyn.kg.scopes import remote_targets
from medsyn.kg.store import OxigraphStore
from medsyn.kg.version import graph_version
from medsyn.server import results
from medsyn.server.config import BAD_TOKEN_LIMIT, DUMP_CHUNK, ServerConfig
from medsyn.server.messages import (
    QUAD_FORMATS,
    QUAD_TYPES,
    Answer,
    HttpError,
    QueryRequest,
    StreamBroken,
    parse_iri,
    pick,
    single_param,
)
from medsyn.server.querying import to_payload
from medsyn.server.workers import Evaluation, Pool, Workers

_SD = "http://www.w3.org/ns/sparql-service-description#"
_RDF_TYPE = NamedNode("http://www.w3.org/1999/02/22-rdf-syntax-ns#type")
_FORMATS = "http://www.w3.org/ns/formats/"


class Endpoint:
    """The store, its options, the workers and the write lock: everything a request needs, shared by all."""

    def __init__(self, store: OxigraphStore, config: ServerConfig, *, owns_store: bool) -> None:
        self.store = store
        self.config = config
        self.owns_store = owns_store
        self.workers = Workers(config.workers, config.fast_workers, config.fast_budget_s)
        if store.path is None:
            raise InputError("medsyn serve needs a store on disk: its query workers open it read-only")
        self.pool = Pool(
            store.path,
            size=config.workers + config.fast_workers,
            max_rows=config.max_rows,
            memory_bytes=config.worker_memory_mib * 1024 * 1024,
        )
        self.write_lock = threading.Lock()  # one update at a time: pyoxigraph transactions would otherwise conflict
        self._bad_tokens: dict[str, deque[float]] = {}
        self._bad_lock = threading.Lock()

    # --- queries ------------------------------------------------------------------------------------------------

    async def run_query(self, req: QueryRequest) -> Answer:
        """Evaluate in a worker process, counted in the fast lane, then (past its budget) in the slow lane, within
        the deadline; a query answered 503 before it ended is stopped by killing its worker (see :class:`Workers`)."""
        lanes = self.workers
        deadline = time.monotonic() + self.config.timeout_s
        await lanes.fast.acquire(deadline - time.monotonic())
        run = Evaluation(lanes.fast)
        try:
            worker = self.pool.take()
            task = asyncio.ensure_future(self.pool.ask(worker, to_payload(req)))
            try:
                return await self._admit(task, run, deadline)
            finally:
                if not task.done():  # answered 503, or the request itself was cancelled: stop the evaluation
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await task
                    await self.pool.stop(worker)
        finally:
            run.ended()

    async def _admit(self, task: asyncio.Future[Answer], run: Evaluation, deadline: float) -> Answer:
        """The answer within the fast budget, else within the deadline on a slow-lane slot, else a 503."""
        lanes = self.workers
        budget_end = min(time.monotonic() + lanes.fast_budget_s, deadline)
        answer = await _by(task, budget_end)
        if answer is not None:
            return answer
        if budget_end < deadline:
            if not await lanes.slow.try_acquire():
                message = (
                    f"all {lanes.slow.size} slow-lane query workers are busy and this query ran past the "
                    f"{lanes.fast_budget_s:g} s fast-lane budget; try again later\n"
                )
                return task.result() if task.done() else Answer(503, message.encode(), headers={"Retry-After": "5"})
            run.move_to(lanes.slow)
            answer = await _by(task, deadline)
            if answer is not None:
                return answer
        if task.done():
            return task.result()
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
            except RuntimeError as exc:  # the store refused it ("The graph <g> does not exist"), or it is damaged
                reason = _first_line(exc)
                return Answer(500 if _damage(reason) else 400, f"update failed: {reason}\n".encode())
            self._wrote()
        return Answer(204, b"")

    def _wrote(self) -> None:
        """Make the write visible to the query workers before the next query is admitted: flushed to disk (a
        read-only handle reads the files), then a new generation, which makes each worker reopen its handle."""
        self.store.flush()
        self.pool.wrote()

    def authorize(self, authorization: str | None, client: str) -> None:
        """Pass the right bearer token, always: a lockout never applies to it, so nobody can lock the operator out.
        Wrong tokens are counted per client address (see ``--trusted-proxy``); past ``BAD_TOKEN_LIMIT`` in a
        minute that address gets 429 for its wrong tokens. Guessing is made hopeless by the token's length, not by
        this limit, which bounds the work and log noise of failed attempts."""
        token = self.config.token
        if token is None:
            raise HttpError(403, "updates are disabled on this endpoint (start `medsyn serve` with --token)")
        scheme, _, given = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not given:
            raise HttpError(401, "updates need 'Authorization: Bearer <token>'", {"WWW-Authenticate": "Bearer"})
        # Constant-time comparison: response timing must not reveal how much of a guessed token was right.
        if hmac.compare_digest(given.strip().encode(), token.encode()):
            return
        now = time.monotonic()
        with self._bad_lock:
            if len(self._bad_tokens) > 4096:  # addresses that stopped failing a minute ago are forgotten
                self._bad_tokens = {a: d for a, d in self._bad_tokens.items() if d and now - d[-1] <= 60}
            recent = self._bad_tokens.setdefault(client, deque())
            while recent and now - recent[0] > 60:
                recent.popleft()
            if len(recent) >= BAD_TOKEN_LIMIT:
                raise HttpError(429, "too many invalid tokens from this address; wait a minute", {"Retry-After": "60"})
            recent.append(now)
        raise HttpError(401, "invalid bearer token", {"WWW-Authenticate": 'Bearer error="invalid_token"'})

    # --- health, service description, Graph Store ---------------------------------------------------------------

    def health(self) -> Answer:
        try:
            version = graph_version(self.store)
            graphs = sum(1 for _ in self.store.raw.named_graphs())
        except (OSError, RuntimeError, StoreError) as exc:  # RuntimeError: RocksDB found damage
            return Answer(503, f"store unavailable: {_first_line(exc)}\n".encode())
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
            "queryWorkers": self.pool.pids,
            "busyQueryWorkers": self.pool.busy_pids,
            "stoppedQueries": self.pool.stopped,
            "crashedQueries": self.pool.crashed,
            "workerMemoryMiB": self.config.worker_memory_mib,
            "unionDefaultGraph": self.config.union_default_graph,
        }
        return Answer(503 if status == "saturated" else 200, json.dumps(doc).encode(), "application/json")

    def service_description(self, endpoint_url: str, accept: str | None) -> Answer:
        media = pick(accept, results.GRAPH_TYPES)
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
            return parse_iri(single_param(params, "graph"))
        if "default" in params:
            return DefaultGraph()
        return None

    async def graph_store_get(self, params: dict[str, list[str]], accept: str | None) -> Answer:
        """One named graph, the default graph, or the whole dataset, streamed in pieces; holds a worker meanwhile."""
        target = self.graph_target(params)
        if isinstance(target, NamedNode) and not self.store.raw.contains_named_graph(target):
            raise HttpError(404, f"no graph <{target.value}> in this store")
        if target is None:
            media = pick(accept, QUAD_TYPES)
            fmt, ctype = QUAD_FORMATS[media], media + "; charset=utf-8"
        else:
            media = pick(accept, results.GRAPH_TYPES)
            fmt, ctype = results.graph_format(media), results.content_type(media, graph=True)
        if fmt not in (RdfFormat.N_QUADS, RdfFormat.TRIG, RdfFormat.N_TRIPLES, RdfFormat.TURTLE):
            # RDF/XML and JSON-LD documents cannot be cut into pieces: one graph is written whole.
            await self.workers.slow.acquire(self.config.timeout_s)
            try:
                quads = await asyncio.get_running_loop().run_in_executor(
                    self.workers.pool, lambda: list(self.store.raw.quads_for_pattern(None, None, None, target))
                )
                body = serialize([q.triple for q in quads], format=fmt) or b""
            except (OSError, RuntimeError, ValueError) as exc:  # damage, or a term the format cannot write
                raise HttpError(500, f"dump failed: {_first_line(exc)}") from None
            finally:
                self.workers.slow.release()
            return Answer(200, body, ctype)
        await self.workers.slow.acquire(self.config.timeout_s)
        stop = threading.Event()
        return Answer(200, self._stream(target, fmt, stop), ctype, close=stop.set)

    def _stream(
        self, target: NamedNode | DefaultGraph | None, fmt: RdfFormat, stop: threading.Event
    ) -> AsyncIterator[bytes]:
        """Pieces of a dump, written by one worker thread (pyoxigraph's quad iterator must stay in the thread that
        made it) into a short queue; the worker slot taken by the caller is freed when that thread ends, which
        ``stop`` (set by the answer's ``close``, also when the stream never started) makes it do."""
        pieces: queue.Queue[bytes | Exception | None] = queue.Queue(maxsize=4)

        def put(item: bytes | Exception | None) -> bool:
            while not stop.is_set():
                try:
                    pieces.put(item, timeout=0.5)
                    return True
                except queue.Full:
                    continue
            return False

        def produce() -> None:
            end: Exception | None = None
            sent = 0
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
                    sent += len(chunk)
            except Exception as exc:  # damage found midway: the client must not take the part for the whole
                end = StreamBroken(f"the dump failed after {sent} quads: {_first_line(exc)}")
            finally:
                self.workers.slow.release()
                put(end)

        self.workers.pool.submit(produce)  # now, not on the first read: an answer never sent must still end it

        def take() -> bytes | Exception | None:
            while True:
                try:
                    return pieces.get(timeout=0.5)
                except queue.Empty:
                    if stop.is_set():
                        return None

        async def drain() -> AsyncIterator[bytes]:
            while (data := await asyncio.to_thread(take)) is not None:
                if isinstance(data, Exception):
                    raise data
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
                self._wrote()
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
            self._wrote()
        return Answer(204 if exists else 201, b"")


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]


def _damage(reason: str) -> bool:
    """RocksDB's words for a damaged or failing store (its other errors are the update's own fault)."""
    return any(word in reason for word in ("Corruption", "IO error", "rocksdb", "RocksDB"))


async def _by(future: asyncio.Future[Answer], when: float) -> Answer | None:
    """The answer if it is ready by ``when`` (monotonic time), else None; the evaluation goes on either way."""
    try:
        return await asyncio.wait_for(asyncio.shield(future), timeout=max(when - time.monotonic(), 0.001))
    except TimeoutError:
        return None
