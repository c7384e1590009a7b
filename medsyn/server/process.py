"""The server process: uvicorn on a socket MedSyn opened, its signal handling and request-head deadline, and
:func:`make_server`, the library entry point."""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import signal
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from medsyn.errors import InputError, StoreError
from medsyn.kg.store import OxigraphStore
from medsyn.server.app import App, trusted_peer
from medsyn.server.config import MAX_BODY, MAX_QUERY_BODY, MIN_WORKER_MEMORY_MIB, WORKER_MEMORY_MIB, ServerConfig
from medsyn.server.corked import Corked
from medsyn.server.endpoint import Endpoint
from medsyn.server.messages import StreamBroken

SPARE_WORKERS = 2  # query workers started with the server; the others start on demand (a fork, milliseconds)


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


_BUSY = (
    b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: text/plain; charset=utf-8\r\nretry-after: 5\r\n"
    b"connection: close\r\ncontent-length: 49\r\n\r\ntoo many open connections from this address (503)\n"
)


def _guarded_protocol(deadline_s: float, per_client: int, trusted: tuple[str, ...]) -> type[Any]:
    """uvicorn's h11 protocol, writing each answer at once (:class:`Corked`), with two guards against slow-loris:

    - a deadline for each request head (a client that sends its headers a byte at a time would otherwise hold its
      connection, and a place under --max-connections, forever);
    - at most ``per_client`` open connections per peer address (trusted proxies excepted: their clients share
      their address), so that one address cannot fill --max-connections; one more is answered 503 and closed.
    """
    from uvicorn.protocols.http.h11_impl import H11Protocol

    open_by_peer: dict[str, int] = {}  # the event loop's thread only: no lock

    class Guarded(H11Protocol):  # type: ignore[misc]
        def connection_made(self, transport: Any) -> None:
            super().connection_made(transport)
            self._peer: str | None = None
            self._head_timer: Any = None
            peer = self.client[0] if self.client else None
            if peer is not None and not trusted_peer(peer, trusted):
                if open_by_peer.get(peer, 0) >= per_client:
                    # Not counted against --max-connections either, even for the instant until connection_lost:
                    # a burst of refused connections must not make uvicorn answer others 503.
                    self.connections.discard(self)
                    transport.write(_BUSY)
                    transport.close()
                    return
                open_by_peer[peer] = open_by_peer.get(peer, 0) + 1
                self._peer = peer
            self.transport = Corked(transport, self.loop)  # an answer's head and body in one write
            self._arm()

        def _arm(self) -> None:
            self._head_timer = self.loop.call_later(deadline_s, self._head_expired)

        def _head_expired(self) -> None:
            # No request in progress (none yet, or the last one answered): the next head is late.
            if self.cycle is None or self.cycle.response_complete:
                self.transport.close()

        def on_response_complete(self) -> None:
            self.transport.flush()
            super().on_response_complete()
            if self._head_timer is not None:
                self._head_timer.cancel()
                self._arm()

        def connection_lost(self, exc: Exception | None) -> None:
            if self._head_timer is not None:
                self._head_timer.cancel()
            if self._peer is not None:
                left = open_by_peer.pop(self._peer) - 1
                if left:
                    open_by_peer[self._peer] = left
                self._peer = None
            super().connection_lost(exc)

    return Guarded


class _DropBrokenStreams(logging.Filter):
    """uvicorn logs an exception that ends an ASGI app with a traceback; a broken-off stream was already logged
    in one line by the app, and dropping the connection is what it asked for."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.exc_info and isinstance(record.exc_info[1], StreamBroken))


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
            proxy_headers=False,  # X-Forwarded-For is read by the app, and only from --trusted-proxy peers
            server_header=False,
            h11_max_incomplete_event_size=64 * 1024,  # request line and headers: no megabyte header lines
            http=_guarded_protocol(
                endpoint.config.client_timeout_s,
                endpoint.config.max_connections_per_client,
                endpoint.config.trusted_proxies,
            ),
        )
        logging.getLogger("uvicorn.error").addFilter(_DropBrokenStreams())
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
        """Free the socket, the dump threads and the query workers and, when the server opened the store, flush and
        close it."""
        self.socket.close()
        self.endpoint.workers.pool.shutdown(wait=False, cancel_futures=True)
        self.endpoint.pool.close()
        if self.endpoint.owns_store:
            self.endpoint.store.close()


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
    worker_memory_mib: int = WORKER_MEMORY_MIB,
    max_connections: int = 256,
    max_connections_per_client: int = 64,
    trusted_proxies: tuple[str, ...] = (),
    max_body_bytes: int = MAX_BODY,
    max_query_bytes: int = MAX_QUERY_BODY,
    allow_hosts: tuple[str, ...] = (),
    service_hosts: tuple[str, ...] = (),
    load_hosts: tuple[str, ...] = (),
    client_timeout_s: float = 15.0,
    quiet: bool = False,
) -> SparqlServer:
    """Bind an endpoint (not yet serving: call ``serve_forever()``, then ``close()``).

    A path is opened read-write and closed by ``close()``; a given store (on disk) stays the caller's. Queries run in
    worker processes that open it read-only, each under an address-space limit of ``worker_memory_mib``.
    ``port=0`` picks a free port (see ``server.url``). ``fast_workers`` defaults to ``workers``.
    """
    fast_workers = workers if fast_workers is None else fast_workers
    config = ServerConfig(
        token=token,
        timeout_s=timeout_s,
        max_rows=max_rows,
        cors_origin=cors_origin,
        union_default_graph=union_default_graph,
        workers=workers,
        fast_workers=fast_workers,
        fast_budget_s=fast_budget_s,
        worker_memory_mib=worker_memory_mib,
        max_connections=max_connections,
        max_connections_per_client=max_connections_per_client,
        trusted_proxies=tuple(trusted_proxies),
        max_body_bytes=max_body_bytes,
        max_query_bytes=max_query_bytes,
        host=host,
        allow_hosts=tuple(allow_hosts),
        service_hosts=tuple(service_hosts),
        load_hosts=tuple(load_hosts),
        client_timeout_s=client_timeout_s,
        quiet=quiet,
    )
    _check(config, port)
    owns = not isinstance(store, OxigraphStore)
    # Serving never creates a store: a mistyped path must not answer "ok" over an empty graph.
    opened = OxigraphStore(Path(store), create=False) if not isinstance(store, OxigraphStore) else store
    try:
        endpoint = Endpoint(opened, config, owns_store=owns)
        sock = _listen(host, port)
    except BaseException:
        if owns:
            opened.close()
        raise
    try:
        endpoint.pool.start(spare=SPARE_WORKERS)
    except BaseException:
        sock.close()
        if owns:
            opened.close()
        raise
    return SparqlServer(endpoint, sock)


def _check(config: ServerConfig, port: int) -> None:
    """One-line errors for options out of range, naming the option (the CLI's exit status 2)."""
    c = config
    if c.timeout_s <= 0 or c.max_rows <= 0 or c.workers <= 0 or c.max_connections <= 0 or c.client_timeout_s <= 0:
        raise InputError("timeout, max rows, workers and max connections must be positive")
    if c.fast_workers <= 0:
        raise InputError(f"--fast-workers: {c.fast_workers} is not a positive number of workers")
    if not c.fast_budget_s > 0:  # also NaN
        raise InputError(f"--fast-budget: {c.fast_budget_s:g} is not a positive number of seconds")
    if c.worker_memory_mib < MIN_WORKER_MEMORY_MIB:
        raise InputError(f"--worker-memory: {c.worker_memory_mib} MiB is under the {MIN_WORKER_MEMORY_MIB} MiB minimum")
    if c.max_connections_per_client <= 0:
        raise InputError(f"--max-connections-per-client: {c.max_connections_per_client} is not a positive number")
    for proxy in c.trusted_proxies:
        try:
            ipaddress.ip_network(proxy, strict=False)
        except ValueError:
            raise InputError(f"--trusted-proxy: {proxy!r} is not an IP address or network") from None
    if c.max_body_bytes <= 0 or c.max_query_bytes <= 0:
        raise InputError("body limits must be positive")
    if not 0 <= port <= 65535:
        raise InputError(f"--port: {port} is not a TCP port (0-65535)")
    if c.token is not None and not c.token.strip():
        raise InputError("the update token is empty")


def _listen(host: str, port: int) -> socket.socket:
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
        raise StoreError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    return sock
