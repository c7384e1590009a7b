"""The ASGI application of ``medsyn serve``: routing, the Host check, body limits, security headers and the query
page, around an :class:`~medsyn.server.endpoint.Endpoint`."""

from __future__ import annotations

import asyncio
import ipaddress
import json
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs

from medsyn.kg.protocol import STORE_DEFAULT_GRAPH, TRUNCATED_HEADER
from medsyn.kg.scopes import dataset_clauses, where_sites
from medsyn.paths import PACKAGE_DIR
from medsyn.server.config import ServerConfig
from medsyn.server.endpoint import Endpoint
from medsyn.server.messages import (
    FALSE_VALUES,
    Answer,
    HttpError,
    QueryRequest,
    StreamBroken,
    body_text,
    media_type,
    parse_iri,
    single_param,
)

RESOURCES = PACKAGE_DIR / "resources"
PAGE_DIR = RESOURCES / "yasgui"
_LOOPBACK_NAMES = {"localhost", "127.0.0.1", "::1"}
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
            await _lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        started = time.perf_counter()
        request = _Request(scope, receive, self.config)
        try:
            answer = await self.dispatch(request)
        except HttpError as exc:
            answer = Answer(exc.status, (str(exc) + "\n").encode(), headers=exc.headers)
        except Exception as exc:  # a bug must not drop the connection silently; the client gets a 500
            self.config.log(f"internal error on {request.method} {request.path}: {type(exc).__name__}: {exc}")
            answer = Answer(500, f"internal error: {type(exc).__name__}\n".encode())
        try:
            size = await self.send_answer(request, answer, send)
        except StreamBroken as exc:
            self.config.log(f"{request.client} {request.method} {request.path}: stream broken off: {exc}")
            raise  # the ASGI server then drops the connection: no clean end of a cut answer
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
        if request.body_unread:
            # Answered before the body was read (refused, too large): close rather than read and discard the rest.
            headers["connection"] = "close"
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
            return await asyncio.to_thread(self.endpoint.health)  # store reads: never on the event loop
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

    async def body(self, request: _Request, kind: str) -> bytes:
        """The request body, refused before reading when its announced size is over the limit.

        ``kind``: ``update`` (the caller checked the token: the update limit), ``query`` (the query limit, whatever
        the token), ``form`` (a query or an update: past the query limit only a request that passes
        :meth:`Endpoint.authorize` may send more). So no answer about a body's size depends on the token being
        right: a wrong one gets the 401 of every token check, counted against its address's limit.
        """
        cfg = self.config
        limit = cfg.max_body_bytes if kind == "update" else cfg.max_query_bytes

        def over(size: int) -> int:
            if kind == "form" and limit < cfg.max_body_bytes and request.header("authorization") is not None:
                self.endpoint.authorize(request.header("authorization"), request.client)
                if size <= cfg.max_body_bytes:
                    return cfg.max_body_bytes
            if kind == "update" or size > cfg.max_body_bytes:
                raise HttpError(413, f"request body over {_size(cfg.max_body_bytes)}")
            if kind == "query":
                raise HttpError(413, f"request body over {_size(limit)}, the limit for a query")
            raise HttpError(413, f"request body over {_size(limit)}; only an update with the token may be larger")

        length = request.header("content-length")
        if length is not None:
            if not length.isdigit():
                raise HttpError(400, f"invalid Content-Length {length!r}")
            if int(length) > limit:
                limit = over(int(length))
        return await request.read(limit, over)

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
            ctype, charset = media_type(request.header("content-type"))
            if charset not in (None, "utf-8", "utf8"):
                raise HttpError(415, f"charset {charset} is not supported; send UTF-8")
            if ctype == "application/x-www-form-urlencoded":
                form = parse_qs(body_text(await self.body(request, "form")), keep_blank_values=True)
                if "update" in form:
                    if not allow_update:
                        raise HttpError(400, "updates go to /update")
                    if "query" in form:
                        raise HttpError(400, "a request carries a query or an update, not both")
                    return await self._update(request, single_param(form, "update"), params | form)
                for key, values in form.items():
                    params.setdefault(key, []).extend(values)
            elif ctype == "application/sparql-query":
                params.setdefault("query", []).append(body_text(await self.body(request, "query")))
            elif ctype == "application/sparql-update" and allow_update:
                self.endpoint.authorize(request.header("authorization"), request.client)
                return await self._update(request, body_text(await self.body(request, "update")), params)
            else:
                raise HttpError(415, f"unsupported Content-Type {ctype!r} for a query")
        else:
            raise HttpError(405, "use GET or POST on this route", {"Allow": "GET, HEAD, POST"})
        sparql = single_param(params, "query")
        self.endpoint.check_remote(sparql)
        union = self.config.union_default_graph
        if "union-default-graph" in params:
            union = params["union-default-graph"][-1].strip().lower() not in FALSE_VALUES
        elif STORE_DEFAULT_GRAPH in params:
            union = params[STORE_DEFAULT_GRAPH][-1].strip().lower() in FALSE_VALUES
        req = QueryRequest(
            sparql=sparql,
            accept=request.header("accept"),
            union=union,
            base_iri=base,
            default_graphs=tuple(parse_iri(v) for v in params.get("default-graph-uri", [])),
            named_graphs=tuple(parse_iri(v) for v in params.get("named-graph-uri", [])),
        )
        return await self.endpoint.run_query(req)

    async def update(self, request: _Request) -> Answer:
        self.endpoint.authorize(request.header("authorization"), request.client)
        ctype, charset = media_type(request.header("content-type"))
        if charset not in (None, "utf-8", "utf8"):
            raise HttpError(415, f"charset {charset} is not supported; send UTF-8")
        body = await self.body(request, "update")
        params = request.params
        if ctype == "application/x-www-form-urlencoded":
            form = parse_qs(body_text(body), keep_blank_values=True)
            return await self._update(request, single_param(form, "update"), params | form)
        if ctype == "application/sparql-update":
            return await self._update(request, body_text(body), params)
        raise HttpError(415, f"unsupported Content-Type {ctype!r} for an update")

    async def _update(self, request: _Request, sparql: str, params: dict[str, list[str]]) -> Answer:
        self.endpoint.authorize(request.header("authorization"), request.client)
        using = [parse_iri(v) for v in params.get("using-graph-uri", [])]
        using_named = [parse_iri(v) for v in params.get("using-named-graph-uri", [])]
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
            body = b"" if method == "DELETE" else await self.body(request, "update")
            ctype, _ = media_type(request.header("content-type"))
            return await asyncio.to_thread(self.endpoint.graph_store_write, method, request.params, ctype, body)
        raise HttpError(405, "use GET, PUT, POST or DELETE on /store", {"Allow": "GET, HEAD, PUT, POST, DELETE"})


async def _lifespan(receive: Callable[..., Any], send: Callable[..., Any]) -> None:
    """Answer the ASGI lifespan protocol (nothing to set up: the endpoint is ready when built); an ASGI server run
    with lifespan on waits for the startup answer before it serves."""
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


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


def client_address(peer: str, forwarded_for: str | None, config: ServerConfig) -> str:
    """The address a request's limits count against: the peer, or, when the peer is one of ``--trusted-proxy``,
    the nearest address in its X-Forwarded-For that is not itself a trusted proxy. Anyone else's X-Forwarded-For
    is ignored (a client could otherwise pick a new address for every request)."""
    if not forwarded_for or not trusted_peer(peer, config.trusted_proxies):
        return peer
    for hop in reversed([h.strip() for h in forwarded_for.split(",")]):
        try:
            ipaddress.ip_address(hop)
        except ValueError:
            return peer  # a hop the proxy did not write: nothing behind it can be believed
        if not trusted_peer(hop, config.trusted_proxies):
            return hop
    return peer


def trusted_peer(address: str, proxies: tuple[str, ...]) -> bool:
    """Whether ``address`` is one of the ``--trusted-proxy`` addresses or networks."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in ipaddress.ip_network(p, strict=False) for p in proxies)


class _Request:
    """The parts of an ASGI HTTP request the routes read."""

    def __init__(self, scope: dict[str, Any], receive: Callable[..., Any], config: ServerConfig) -> None:
        self.scope = scope
        self.client_timeout_s = config.client_timeout_s
        self.receive = receive
        self.method: str = scope["method"]
        self.path: str = scope["path"]
        self.params = parse_qs(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True)
        self._headers: dict[str, str] = {}
        for key, value in scope.get("headers", []):
            name = key.decode("latin-1").lower()
            self._headers[name] = value.decode("latin-1")
        peer = scope.get("client")
        self.client = client_address(peer[0] if peer else "-", self._headers.get("x-forwarded-for"), config)
        length = self._headers.get("content-length")
        # A body the client still sends when the answer goes out is not read: the connection is closed instead.
        self.body_unread = "transfer-encoding" in self._headers or (length is not None and length.strip() != "0")

    def header(self, name: str) -> str | None:
        return self._headers.get(name)

    @property
    def base_url(self) -> str:
        """This request's URL without the query string: the base IRI of its query or update (the protocol allows
        "the service endpoint")."""
        scheme = self.scope.get("scheme", "http")
        host = self.header("host") or "localhost"
        return f"{scheme}://{host}{self.path}"

    async def read(self, limit: int, over: Callable[[int], int]) -> bytes:
        """The body, up to ``limit`` bytes; past it ``over(size)`` gives a new limit or raises."""
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
                limit = over(size)
            chunks.append(piece)
            if not message.get("more_body", False):
                self.body_unread = False
                return b"".join(chunks)
