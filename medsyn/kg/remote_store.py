"""The store interface over a SPARQL 1.1 endpoint (Oxigraph server, ``medsyn serve``, any SPARQL 1.1 server).

Queries and updates go through SPARQLWrapper; results come back as the same pyoxigraph terms the embedded store
returns (pyoxigraph parses the SPARQL JSON/XML results and RDF documents). Options not given fall back to the
environment, so commands only pass ``--endpoint URL``:

==========================  =========================================================================
``MEDSYN_UPDATE_ENDPOINT``  update URL (default: ``/query`` or ``/sparql`` replaced by ``/update``)
``MEDSYN_ENDPOINT_TOKEN``   bearer token (``medsyn serve --token``)
``MEDSYN_ENDPOINT_USER``    basic-auth user, with ``MEDSYN_ENDPOINT_PASSWORD``
``MEDSYN_ENDPOINT_UNION``   request parameter asking for the union default graph (default
                            ``union-default-graph``, understood by Oxigraph and ``medsyn serve``;
                            empty for servers whose default graph is already the union, e.g. Virtuoso)
``MEDSYN_ENDPOINT_BATCH``   quads per INSERT DATA request (default 5000; Virtuoso's SPARQL compiler
                            runs out of memory near 5000 lines: give it 1000)
==========================  =========================================================================

Result caps: a server that cuts a result short (``medsyn serve`` at ``--max-rows``, with its truncation header) gets
the same SELECT or CONSTRUCT again in pages (``ORDER BY`` every variable, ``LIMIT`` the cap, ``OFFSET``), when the
query has no solution modifier of its own; one graph is dumped by a Graph Store Protocol GET, which no cap cuts.

Atomicity: one ``update`` is one request, a transaction on Oxigraph and ``medsyn serve``. ``add_quads`` and
``load`` send INSERT DATA batches of ``batch_size`` quads, so a load larger than one batch is *not* one
transaction on a remote server: if a batch fails, the error says how many quads were stored; since inserting a
triple that is already there changes nothing, re-running the same load completes it. Quads with blank nodes all go
in one final request (a blank node label only means the same node within one request), an ``INSERT { } WHERE {}``
template rather than INSERT DATA, which Virtuoso refuses with blank nodes.
"""

from __future__ import annotations

import ast
import os
import re
import urllib.error
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from pyoxigraph import (
    BlankNode,
    DefaultGraph,
    NamedNode,
    Quad,
    QueryResultsFormat,
    RdfFormat,
    Triple,
    parse,
    parse_query_results,
    serialize,
)
from SPARQLWrapper import POST, SELECT, URLENCODED, SPARQLWrapper
from SPARQLWrapper.SPARQLExceptions import SPARQLWrapperException, Unauthorized

from medsyn.errors import InputError, StoreError
from medsyn.kg.protocol import STORE_DEFAULT_GRAPH, TRUNCATED_HEADER
from medsyn.kg.scopes import query_dataset
from medsyn.kg.store import (
    Bindings,
    OxigraphStore,
    QueryResult,
    Row,
    bind_query,
    quads_to_sparql_data,
    rdf_format,
    rows_of,
)

# Results and graphs in one Accept header: the server answers whichever fits the query form.
_ACCEPT = (
    "application/sparql-results+json, application/n-triples;q=0.9, text/turtle;q=0.8, "
    "application/sparql-results+xml;q=0.5"
)


# A CONSTRUCT or DESCRIBE asks for a graph format first: Virtuoso answers the first type listed, even SPARQL JSON
# results for a graph (with blank nodes as "uri" values pyoxigraph rightly refuses).
_GRAPH_ACCEPT = "application/n-triples, text/turtle;q=0.9, application/sparql-results+json;q=0.5"
_GRAPH_FORMS = ("CONSTRUCT", "DESCRIBE")
# Virtuoso writes blank nodes in SPARQL JSON results as "nodeID://b123", not a valid blank node label.
_VIRTUOSO_BNODE = re.compile(rb'("type"\s*:\s*"bnode"\s*,\s*"value"\s*:\s*")nodeID://')


class _Wrapper(SPARQLWrapper):
    """SPARQLWrapper guesses query versus update from the first keyword (and warns on ``WITH`` or a ``VALUES``
    prologue); the caller knows which it sends, so that choice is fixed here instead."""

    forced_type: str = SELECT

    def _parseQueryType(self, query: str) -> str | None:
        return self.forced_type


def _default_update_endpoint(endpoint: str) -> str:
    parts = urlsplit(endpoint)
    head, _, last = parts.path.rpartition("/")
    if last in ("query", "sparql"):
        return urlunsplit(parts._replace(path=head + "/update", query=""))
    return endpoint


def _default_store_endpoint(endpoint: str) -> str | None:
    """Graph Store Protocol URL for the two known layouts (Oxigraph and ``medsyn serve``: ``/store``)."""
    parts = urlsplit(endpoint)
    head, _, last = parts.path.rpartition("/")
    if last in ("query", "sparql"):
        return urlunsplit(parts._replace(path=head + "/store", query=""))
    return None


class RemoteStore:
    """A :class:`medsyn.kg.store.Store` backed by a SPARQL 1.1 query endpoint and update endpoint.

    Nothing is held open between calls, so one instance may be shared by threads.
    """

    path: Path | None = None  # no directory: code that reports the store location prints the endpoint instead

    def __init__(
        self,
        endpoint: str,
        *,
        update_endpoint: str | None = None,
        store_endpoint: str | None = None,
        user: str | None = None,
        password: str | None = None,
        token: str | None = None,
        timeout: float = 120.0,
        batch_size: int | None = None,
        union_parameter: str | None = None,
    ) -> None:
        self.endpoint = _check_url(endpoint, "endpoint")
        env = os.environ
        self.update_endpoint = _check_url(
            update_endpoint or env.get("MEDSYN_UPDATE_ENDPOINT") or _default_update_endpoint(endpoint),
            "update endpoint",
        )
        self.store_endpoint = store_endpoint or _default_store_endpoint(endpoint)
        self.user = user or env.get("MEDSYN_ENDPOINT_USER")
        self.password = password if password is not None else env.get("MEDSYN_ENDPOINT_PASSWORD")
        self.token = token or env.get("MEDSYN_ENDPOINT_TOKEN")
        if self.token and self.user:
            raise InputError("give either a bearer token or a user and password for the endpoint, not both")
        if self.user and self.password is None:
            raise InputError(f"endpoint user {self.user!r} has no password (set MEDSYN_ENDPOINT_PASSWORD)")
        if batch_size is None:
            raw = env.get("MEDSYN_ENDPOINT_BATCH") or "5000"
            if not raw.isdigit():
                raise InputError(f"MEDSYN_ENDPOINT_BATCH must be a whole number of quads, got {raw!r}")
            batch_size = int(raw)
        if timeout <= 0 or batch_size <= 0:
            raise InputError("endpoint timeout and batch size must be positive")
        self.timeout = timeout
        self.batch_size = batch_size
        self.union_parameter = (
            union_parameter if union_parameter is not None else env.get("MEDSYN_ENDPOINT_UNION", "union-default-graph")
        )

    def __repr__(self) -> str:
        return f"RemoteStore({self.endpoint!r})"

    # --- the Store protocol -------------------------------------------------------------------------------------

    def query(self, sparql: str, *, bindings: Bindings | None = None, union: bool = True) -> Any:
        """SELECT -> list of ``{var: term}`` rows, ASK -> bool, CONSTRUCT/DESCRIBE -> list of triples.

        A result the server cuts at its row cap is fetched again in pages (see the module notes)."""
        if bindings:
            sparql = bind_query(sparql, bindings)
        try:
            body, ctype = self._send(sparql, update=False, union=union)
        except _Truncated as exc:
            order = _page_order(sparql)
            if order is None or exc.cap < 1:
                raise StoreError(str(exc)) from None
            return self._paged(sparql, order, exc.cap, union=union)
        return _decode(body, ctype, self.endpoint)

    def _paged(self, sparql: str, order: str, cap: int, *, union: bool) -> list[Any]:
        """Every page of a query the server capped: rows in order, or the distinct triples of a CONSTRUCT."""
        got: list[Any] = []
        offset, size = 0, cap
        while True:
            page = f"{sparql}\n{order} LIMIT {size} OFFSET {offset}"
            try:
                body, ctype = self._send(page, update=False, union=union)
            except _Truncated:
                if size == 1:
                    raise StoreError(
                        f"{self.endpoint} caps the triples of one solution; ask for a higher --max-rows"
                    ) from None
                size = max(1, size // 2)  # a CONSTRUCT writes several triples per solution: fewer solutions a page
                continue
            rows = _decode(body, ctype, self.endpoint)
            assert isinstance(rows, list)
            got += rows
            offset += size
            # A SELECT page shorter than asked is the last; a CONSTRUCT page (triples, not solutions) only when empty.
            if not rows or (rows and not isinstance(rows[0], Triple) and len(rows) < size):
                break
        return list(dict.fromkeys(got)) if got and isinstance(got[0], Triple) else got

    def results(self, sparql: str, *, union: bool = True) -> QueryResult:
        """The endpoint's answer parsed by pyoxigraph: solutions with the endpoint's variables, a boolean, triples."""
        body, ctype = self._send(sparql, update=False, union=union)
        _decode(body, ctype, self.endpoint)  # parsing is lazy: check the whole answer before handing it out
        return _parse(body, ctype, self.endpoint)

    def update(self, sparql: str, *, bindings: Bindings | None = None) -> None:
        """Run a SPARQL update in one request (one transaction on Oxigraph and ``medsyn serve``)."""
        if bindings:
            raise TypeError("bindings are not supported for updates; build quads and call add_quads instead")
        self._send(sparql, update=True)

    def add_quads(self, quads: Iterable[Quad]) -> None:
        """Insert quads by INSERT DATA batches: one transaction per batch (see the module notes)."""
        plain: list[Quad] = []
        with_bnodes: list[Quad] = []
        for q in quads:
            (with_bnodes if _has_bnode(q) else plain).append(q)
        batches = list(_chunks(plain, self.batch_size))
        if with_bnodes:
            batches.append(with_bnodes)
        total, done = len(plain) + len(with_bnodes), 0
        for i, batch in enumerate(batches, 1):
            data = quads_to_sparql_data(batch)
            try:
                # Blank nodes go in an INSERT template (fresh nodes, shared within it), where INSERT DATA would do:
                # Virtuoso refuses blank nodes in INSERT DATA ("not allowed in a constant clause").
                self.update(f"INSERT {{ {data} }} WHERE {{}}" if batch is with_bnodes else f"INSERT DATA {{ {data} }}")
            except StoreError as exc:
                if len(batches) == 1:
                    raise
                raise StoreError(
                    f"load stopped at batch {i} of {len(batches)}: {done} of {total} quads stored; "
                    f"re-run the same load to complete it ({exc})"
                ) from None
            done += len(batch)

    def load(self, data: bytes | str | Path, *, format: str, graph: NamedNode | None = None) -> None:
        """Parse locally (errors name the input, as on the embedded store), then insert in batches."""
        fmt = rdf_format(format)
        where = str(data) if isinstance(data, Path) else "input"
        try:
            if isinstance(data, Path):
                parsed = list(parse(path=str(data), format=fmt))
            else:
                parsed = list(parse(data.encode("utf-8") if isinstance(data, str) else data, format=fmt))
        except SyntaxError as exc:
            raise InputError(f"{where}: RDF syntax error: {exc}") from None
        except OSError as exc:
            raise InputError(f"{where}: cannot read: {exc.strerror or exc}") from None
        if graph is not None and not fmt.supports_datasets:
            parsed = [Quad(q.subject, q.predicate, q.object, graph) for q in parsed]
        self.add_quads(parsed)

    def dump(self, *, format: str, graph: NamedNode | None = None) -> bytes:
        """The whole dataset (quad formats) or one graph (triple formats; the default graph when ``graph`` is None)."""
        fmt = rdf_format(format)
        if fmt.supports_datasets:
            if graph is not None:
                rows = self.query(f"SELECT ?s ?p ?o WHERE {{ GRAPH <{graph.value}> {{ ?s ?p ?o }} }}", union=False)
                quads = [Quad(r["s"], r["p"], r["o"], graph) for r in rows]
            else:
                quads = self._all_quads()
            return serialize(quads, format=fmt) or b""
        if graph is not None:
            whole = self._gsp_graph(graph, fmt)
            if whole is not None:
                return whole
            triples = self.query(f"CONSTRUCT {{ ?s ?p ?o }} WHERE {{ GRAPH <{graph.value}> {{ ?s ?p ?o }} }}")
        else:
            triples = self.query("CONSTRUCT { ?s ?p ?o } WHERE { ?s ?p ?o }", union=False)
        return serialize(triples, format=fmt) or b""

    def named_graphs(self) -> list[NamedNode]:
        rows = self.query("SELECT DISTINCT ?g WHERE { GRAPH ?g { } }", union=False)
        return sorted((r["g"] for r in rows if isinstance(r.get("g"), NamedNode)), key=lambda g: g.value)

    def clear_graph(self, graph: NamedNode) -> None:
        """Remove every triple of a named graph in one update (one transaction)."""
        self.update(f"DROP SILENT GRAPH <{graph.value}>")

    def flush(self) -> None:
        """The server manages its own storage."""

    def compact(self) -> None:
        """The server manages its own storage."""

    def close(self) -> None:
        """Nothing to release: every call is its own HTTP request."""

    def __enter__(self) -> RemoteStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- HTTP ---------------------------------------------------------------------------------------------------

    def _all_quads(self) -> list[Quad]:
        if self.store_endpoint:
            try:
                body, ctype = self._gsp_get()
                return list(parse(body, format=RdfFormat.from_media_type(ctype) or RdfFormat.N_QUADS))
            except StoreError:
                pass  # no Graph Store Protocol there: fall back to SPARQL
        # A server whose default graph is the union (no union parameter: Virtuoso) has no default graph of its own
        # to read; its named graphs are the whole dataset.
        default = "{ ?s ?p ?o } UNION " if self.union_parameter else ""
        rows = self.query(f"SELECT ?s ?p ?o ?g WHERE {{ {default}{{ GRAPH ?g {{ ?s ?p ?o }} }} }}", union=False)
        return [Quad(r["s"], r["p"], r["o"], r.get("g", DefaultGraph())) for r in rows]

    def _gsp_graph(self, graph: NamedNode, fmt: RdfFormat) -> bytes | None:
        """One graph by a Graph Store Protocol GET (whole, whatever the server's row cap), in ``fmt``; None when the
        endpoint has no Graph Store Protocol."""
        if not self.store_endpoint:
            return None
        from urllib.parse import quote

        try:
            body, ctype = self._gsp_get(f"?graph={quote(graph.value, safe='')}", accept="application/n-triples")
        except StoreError:
            return None  # no Graph Store Protocol there: the caller falls back to SPARQL
        source = RdfFormat.from_media_type(ctype) or RdfFormat.N_TRIPLES
        if source == fmt:
            return body
        try:
            return serialize(parse(body, format=source), format=fmt) or b""
        except SyntaxError as exc:
            raise StoreError(f"{self.store_endpoint} sent a malformed {ctype} graph: {exc}") from None

    def _gsp_get(self, query: str = "", *, accept: str = "application/n-quads") -> tuple[bytes, str]:
        import urllib.request

        assert self.store_endpoint is not None
        req = urllib.request.Request(self.store_endpoint + query, headers={"Accept": accept})
        for name, value in self._auth_headers().items():
            req.add_header(name, value)
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                return resp.read(), resp.headers.get("Content-Type", "application/n-quads").split(";")[0]
        except (urllib.error.URLError, OSError) as exc:
            raise StoreError(f"{self.store_endpoint}: {exc}") from None

    def _auth_headers(self) -> dict[str, str]:
        if self.token:
            return {"Authorization": f"Bearer {self.token}"}
        if self.user:
            import base64

            raw = f"{self.user}:{self.password}".encode()
            return {"Authorization": "Basic " + base64.b64encode(raw).decode("ascii")}
        return {}

    def _send(self, sparql: str, *, update: bool, union: bool = False) -> tuple[bytes, str]:
        url = self.update_endpoint if update else self.endpoint
        wrapper = _Wrapper(self.endpoint, updateEndpoint=self.update_endpoint)
        wrapper.forced_type = "INSERT" if update else SELECT
        wrapper.setMethod(POST)
        wrapper.setRequestMethod(URLENCODED)
        wrapper.setOnlyConneg(True)
        wrapper.setTimeout(self.timeout)  # type: ignore[arg-type]  # urllib takes float seconds
        wrapper.setQuery(sparql)
        if not update:
            wrapper.addCustomHttpHeader("Accept", _GRAPH_ACCEPT if _query_form(sparql) in _GRAPH_FORMS else _ACCEPT)
            if query_dataset(sparql):
                pass  # its own FROM / FROM NAMED is its dataset; Oxigraph's union switch would override it
            elif union and self.union_parameter:
                wrapper.addParameter(self.union_parameter, "true")
            elif not union:
                # `medsyn serve` answers from the union by default; this switch (ignored by Oxigraph and other
                # servers, which already default to the store's default graph) asks it for the store's default graph.
                wrapper.addParameter(STORE_DEFAULT_GRAPH, "true")
        for name, value in self._auth_headers().items():
            wrapper.addCustomHttpHeader(name, value)
        try:
            response = wrapper.query().response
            body = response.read()
        except Unauthorized as exc:
            hint = "" if (self.token or self.user) else " (set MEDSYN_ENDPOINT_TOKEN or a user and password)"
            raise StoreError(f"{url} refused the request: 401 {_reason(exc)}{hint}") from None
        except SPARQLWrapperException as exc:
            status = exc.msg.split("HTTP status code ")[-1] if "status code" in exc.msg else ""
            reason = _reason(exc)
            if type(exc).__name__ == "QueryBadFormed":
                raise InputError(f"{url} rejected the {'update' if update else 'query'}: {reason}") from None
            if type(exc).__name__ == "EndPointNotFound":
                raise StoreError(f"{url}: 404 not found: {reason}") from None
            raise StoreError(f"{url}: HTTP {status or 'error'}: {reason}") from None
        except urllib.error.HTTPError as exc:
            text = exc.read().decode("utf-8", errors="replace").strip()
            raise StoreError(f"{url}: HTTP {exc.code}: {_first_line(text) or exc.reason}") from None
        except urllib.error.URLError as exc:
            reason = exc.reason
            if isinstance(reason, TimeoutError):
                raise StoreError(f"{url} did not answer within {self.timeout:g} s") from None
            raise StoreError(
                f"cannot reach SPARQL endpoint {url}: {getattr(reason, 'strerror', None) or reason}"
            ) from None
        except TimeoutError:
            raise StoreError(f"{url} did not answer within {self.timeout:g} s") from None
        except (ConnectionError, OSError) as exc:
            raise StoreError(f"connection to {url} failed: {exc}") from None
        headers = response.info()
        truncated = headers.get(TRUNCATED_HEADER)
        if truncated:
            cap = truncated.partition("=")[2]
            raise _Truncated(
                f"{url} cut the result short ({truncated}); add LIMIT/OFFSET or ask for a higher --max-rows",
                cap=int(cap) if cap.isdigit() else 0,
            )
        return body, (headers.get("Content-Type") or "").split(";")[0].strip().lower()


class _Truncated(StoreError):
    """A result cut at the server's row cap (``cap`` rows or triples; 0 when the server did not say)."""

    def __init__(self, message: str, *, cap: int) -> None:
        super().__init__(message)
        self.cap = cap


_IRI_OR_STRING = re.compile(r"<[^<>\s]*>|\"(?:[^\"\\\n]|\\.)*\"|'(?:[^'\\\n]|\\.)*'")
_COMMENT = re.compile(r"#[^\n]*")
_MODIFIER = re.compile(r"\b(LIMIT|OFFSET|ORDER\s+BY|GROUP\s+BY|HAVING)\b", re.IGNORECASE)
_FORM = re.compile(r"\b(SELECT|CONSTRUCT|ASK|DESCRIBE)\b", re.IGNORECASE)
_VARIABLE = re.compile(r"[?$]([A-Za-z_][A-Za-z0-9_]*)")


def _page_order(sparql: str) -> str | None:
    """``ORDER BY`` every variable of a SELECT or CONSTRUCT that has no solution modifier (nor sub-query with one),
    which makes LIMIT/OFFSET pages of it stable; None for a query that cannot be paged so.

    >>> _page_order("PREFIX ms: <https://w3id.org/medsyn/ontology#> SELECT ?b ?a WHERE { ?a ms:x ?b } # ?c")
    'ORDER BY ?a ?b'
    >>> _page_order("SELECT ?a WHERE { ?a ?p ?o } LIMIT 10") is None
    True
    """
    code = _COMMENT.sub(" ", _IRI_OR_STRING.sub(" ", sparql))
    form = _FORM.search(code)
    if form is None or form.group(1).upper() not in ("SELECT", "CONSTRUCT") or _MODIFIER.search(code):
        return None
    names = sorted(set(_VARIABLE.findall(code)))
    return "ORDER BY " + " ".join("?" + n for n in names) if names else None


def _query_form(sparql: str) -> str | None:
    """SELECT, CONSTRUCT, ASK or DESCRIBE: the query's first form keyword outside IRIs, strings and comments.

    >>> _query_form("PREFIX s: <http://x/SELECT> CONSTRUCT { ?s ?p 'ASK' } WHERE { ?s ?p ?o }")
    'CONSTRUCT'
    """
    form = _FORM.search(_COMMENT.sub(" ", _IRI_OR_STRING.sub(" ", sparql)))
    return form.group(1).upper() if form else None


def copy_graphs(source: OxigraphStore, target: RemoteStore, *, graphs: Sequence[NamedNode] | None = None) -> int:
    """Publish named graphs of an embedded store to an endpoint, replacing them there; returns the quads sent.

    This is how a graph built locally (``medsyn kg build``) reaches a SPARQL server. Each graph is dropped on the
    endpoint, then inserted in batches: not one transaction, so a failure leaves that graph partial on the server
    and the error names it; running the copy again replaces it whole.
    """
    total = 0
    for g in graphs if graphs is not None else source.named_graphs():
        quads = list(source.raw.quads_for_pattern(None, None, None, g))
        try:
            target.clear_graph(g)
            target.add_quads(quads)
        except StoreError as exc:
            raise StoreError(
                f"copying graph <{g.value}> to {target.endpoint} failed; run the copy again ({exc})"
            ) from None
        total += len(quads)
    return total


def _check_url(url: str, what: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise InputError(f"SPARQL {what} must be an http(s) URL, got {url!r}")
    return url


def _parse(body: bytes, ctype: str, url: str) -> QueryResult:
    """The answer as pyoxigraph reads it; solutions are parsed lazily, as they are iterated."""
    try:
        if ctype in ("application/sparql-results+json", "application/json"):
            if b"nodeID://" in body:
                body = _VIRTUOSO_BNODE.sub(rb"\1", body)
            return parse_query_results(body, format=QueryResultsFormat.JSON)
        if ctype in ("application/sparql-results+xml", "application/xml", "text/xml"):
            return parse_query_results(body, format=QueryResultsFormat.XML)
        fmt = RdfFormat.from_media_type(ctype)
        if fmt is None:
            raise StoreError(f"{url} answered with an unexpected Content-Type {ctype!r}")
        return [q.triple for q in parse(body, format=fmt)]
    except SyntaxError as exc:
        raise StoreError(f"{url} sent a malformed {ctype} answer: {exc}") from None


def _decode(body: bytes, ctype: str, url: str) -> list[Row] | bool | list[Triple]:
    """The answer as rows (:func:`medsyn.kg.store.rows_of`), read in full so a malformed one is a StoreError here."""
    try:
        return rows_of(_parse(body, ctype, url))
    except SyntaxError as exc:
        raise StoreError(f"{url} sent a malformed {ctype} answer: {exc}") from None


def _reason(exc: SPARQLWrapperException) -> str:
    """The server's own message, which SPARQLWrapper keeps only as the repr of the response bytes."""
    text = str(exc)
    marker = "Response:\n"
    if marker in text:
        raw = text.split(marker, 1)[1]
        try:
            value = ast.literal_eval(raw)
            if isinstance(value, bytes):
                return _first_line(value.decode("utf-8", errors="replace")) or exc.msg
        except (ValueError, SyntaxError):
            pass
    return exc.msg


def _first_line(text: str) -> str:
    """Server messages can span lines; the CLI prints one."""
    return " ".join(text.split())[:500]


def _has_bnode(q: Quad) -> bool:
    terms: list[Any] = [q.subject, q.object, q.graph_name]
    while terms:
        t = terms.pop()
        if isinstance(t, BlankNode):
            return True
        if isinstance(t, Triple):
            terms.extend((t.subject, t.object))
    return False


def _chunks(items: list[Quad], size: int) -> Iterator[list[Quad]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
