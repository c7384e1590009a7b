"""What a query worker process runs: the store opened read-only, one query at a time, the answer serialised here.

A worker is a child process of ``medsyn serve`` (started through a multiprocessing forkserver, see
:class:`~medsyn.server.workers.Pool`) under an address-space limit. It reads ``(generation, request)`` messages from
its socket and sends back the status, headers and the body already in the negotiated format (framing in
:mod:`medsyn.server.wire`), so the server only moves bytes. A parser crash, a runaway aggregate or a query killed at
its time limit costs this process, never the server. ``generation`` counts the server's writes: a worker whose
handle is older reopens the store before it evaluates (a read-only handle sees the store as of its opening).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import resource
import signal
import socket
import time
from collections.abc import Callable
from multiprocessing import forkserver
from typing import Any

from pyoxigraph import DefaultGraph, NamedNode, Quad, QueryBoolean, QuerySolutions, serialize
from pyoxigraph import Store as _OxStore

from medsyn.kg.protocol import TRUNCATED_HEADER
from medsyn.kg.scopes import query_dataset
from medsyn.server import results, wire
from medsyn.server.messages import QUAD_FORMATS, QUAD_TYPES, Answer, HttpError, QueryRequest, pick

Payload = tuple[str, str | None, bool, str | None, tuple[str, ...], tuple[str, ...]]
"""A :class:`QueryRequest` as plain data for the socket: sparql, accept, union, base IRI, default and named graphs."""

OPEN_ATTEMPTS = 20
_PR_SET_PDEATHSIG = 1
_M_ARENA_MAX = -8
OUT_OF_MEMORY = "the query needed more memory than this endpoint gives one query (--worker-memory {} MiB)"


def to_payload(req: QueryRequest) -> Payload:
    return (
        req.sparql,
        req.accept,
        req.union,
        req.base_iri,
        tuple(g.value for g in req.default_graphs),
        tuple(g.value for g in req.named_graphs),
    )


def from_payload(payload: Payload) -> QueryRequest:
    sparql, accept, union, base_iri, default_graphs, named_graphs = payload
    return QueryRequest(
        sparql=sparql,
        accept=accept,
        union=union,
        base_iri=base_iri,
        default_graphs=tuple(NamedNode(g) for g in default_graphs),
        named_graphs=tuple(NamedNode(g) for g in named_graphs),
    )


def evaluate(store: _OxStore, req: QueryRequest, max_rows: int) -> Answer:
    """Run one query and write its answer (a body in bytes, never a stream)."""
    options: dict[str, Any] = {"base_iri": req.base_iri}
    if req.default_graphs or req.named_graphs:
        # The protocol's dataset replaces the query's, and is exactly what it names: no named graphs when only
        # default-graph-uri is given, an empty default graph when only named-graph-uri is (as Oxigraph).
        options["default_graph"] = list(req.default_graphs)
        options["named_graphs"] = list(req.named_graphs)
    elif not query_dataset(req.sparql):  # a query's own FROM / FROM NAMED replaces the union default
        options["use_default_graph_as_union"] = req.union
    try:
        result = store.query(req.sparql, **options)
    except SyntaxError as exc:
        return Answer(400, f"SPARQL syntax error: {exc}\n".encode())
    try:
        truncated = False
        if isinstance(result, QueryBoolean):
            media = pick(req.accept, results.SOLUTION_TYPES)
            answer = Answer(200, results.write_boolean(bool(result), media), results.content_type(media))
        elif isinstance(result, QuerySolutions):
            media = pick(req.accept, results.SOLUTION_TYPES)
            names = [v.value for v in result.variables]
            native = media in results.JSON_TYPES
            body = results.native_json(result, names, max_rows) if native else None
            if body is None:
                if native:  # the native writer used the solutions up
                    result = store.query(req.sparql, **options)
                rows, truncated = _collect(result, max_rows, tuple)
                body = results.write_solutions(names, rows, media)
            answer = Answer(200, body, results.content_type(media))
        else:
            media = pick(req.accept, results.GRAPH_TYPES + QUAD_TYPES)
            triples, truncated = _collect(result, max_rows, lambda t: t)
            if media in QUAD_FORMATS:  # CONSTRUCT as a dataset: the triples in the default graph
                quads = [Quad(t.subject, t.predicate, t.object, DefaultGraph()) for t in triples]
                body = serialize(quads, format=QUAD_FORMATS[media]) or b""
                answer = Answer(200, body, media + "; charset=utf-8")
            else:
                answer = Answer(200, results.write_graph(triples, media), results.content_type(media, graph=True))
    except HttpError as exc:
        return Answer(exc.status, (str(exc) + "\n").encode(), headers=exc.headers)
    if truncated:
        answer.headers[TRUNCATED_HEADER] = f"max-rows={max_rows}"
    return answer


def _collect(result: Any, cap: int, convert: Callable[[Any], Any]) -> tuple[list[Any], bool]:
    """Take rows until the cap (a query past its time limit is stopped by killing its worker, not here)."""
    rows: list[Any] = []
    for item in result:
        if len(rows) >= cap:
            return rows, True
        rows.append(convert(item))
    return rows, False


def _limit_self(memory_bytes: int) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    # One malloc arena: each thread's own arena reserves 64 MiB of address space (a worker had 435 MiB mapped
    # before its first query; 108 MiB with one arena), and queries here run on one thread anyway.
    libc.mallopt(_M_ARENA_MAX, 1)
    # Address space, not RSS: the one limit the kernel enforces per process. An allocation past it fails, which
    # pyoxigraph (Rust) answers with an abort: this process dies, the server answers that one request.
    resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))
    # Our parent is the forkserver, which exits with the server: a kill -9 of the server must not leave a runaway
    # aggregate behind. The forkserver stays up while anyone holds its "alive" pipe, which multiprocessing hands to
    # every child (so that children may start processes too): this one starts none, so it lets go of it.
    with contextlib.suppress(OSError, AttributeError, TypeError):
        os.close(forkserver._forkserver._forkserver_alive_fd)  # type: ignore[attr-defined]
    with contextlib.suppress(OSError, AttributeError):
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() == 1:
        os._exit(0)


def _open(path: str) -> _OxStore:
    """The store read-only. The writer's compactions delete files: one listed in the manifest we read may be gone
    by the time we open it (RocksDB then reports "Corruption: ... No such file"), so read the manifest again."""
    for attempt in range(OPEN_ATTEMPTS):
        try:
            return _OxStore.read_only(path)
        except (OSError, RuntimeError):
            if attempt == OPEN_ATTEMPTS - 1:
                raise
            time.sleep(0.01 * (attempt + 1))
    raise AssertionError("unreachable")


def _answer(store: _OxStore, req: QueryRequest, max_rows: int, path: str) -> tuple[_OxStore, Answer]:
    """The answer, and the handle to keep: an error under an old handle (a file the writer compacted away since it
    was opened) is tried once more on a fresh one."""
    for attempt in range(2):
        try:
            return store, evaluate(store, req, max_rows)
        except (OSError, RuntimeError) as exc:
            if attempt == 1:
                return store, Answer(500, f"query failed: {exc}\n".encode())
            store = _open(path)
        except (ValueError, TypeError) as exc:  # evaluation errors surface while iterating
            return store, Answer(500, f"query failed: {exc}\n".encode())
    raise AssertionError("unreachable")


def serve(sock: socket.socket, path: str, generation: int, max_rows: int, memory_bytes: int) -> None:
    """The worker's loop: answer queries from ``sock`` until the server closes it."""
    _limit_self(memory_bytes)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl+C in the terminal is the server's to handle
    store = _open(path)
    while True:
        try:
            message = wire.read_query(sock)
        except OSError:
            return
        if message is None:
            return
        wanted, payload = message
        try:
            if wanted != generation:
                store, generation = _open(path), wanted
            store, answer = _answer(store, from_payload(payload), max_rows, path)
        except (OSError, RuntimeError) as exc:  # no fresh handle after all the attempts: this query fails, not us
            answer = Answer(503, f"store unavailable: {exc}\n".encode(), headers={"Retry-After": "1"})
        except MemoryError:
            # A process that ran out of memory half-way is not trusted with the next query: it says so, and leaves
            # without the interpreter's teardown (which may need memory too).
            answer = Answer(400, (OUT_OF_MEMORY.format(memory_bytes // (1024 * 1024)) + "\n").encode())
            _send(sock, answer, keep=False)
            os._exit(0)
        if not _send(sock, answer, keep=True):
            return


def _send(sock: socket.socket, answer: Answer, *, keep: bool) -> bool:
    assert isinstance(answer.body, bytes)
    try:
        wire.send_reply(sock, answer.status, answer.body, answer.content_type, answer.headers, keep=keep)
        return True
    except OSError:
        return False
