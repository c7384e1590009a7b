"""SPARQL query results on the wire: content negotiation and the result serializers of ``medsyn serve``.

The server sends at most ``max_rows`` solutions (so it can stop a runaway query and signal truncation), which
pyoxigraph's native writers cannot stop at. SPARQL JSON, what every MedSyn client asks for, is written natively and
its rows counted afterwards (:func:`native_json`); a result that may pass the cap, and every other format, goes
through the writers here, which follow the W3C result formats and take at most ``max_rows`` rows.

>>> negotiate("text/csv;q=0.5, application/sparql-results+json", SOLUTION_TYPES)
'application/sparql-results+json'
>>> from pyoxigraph import Literal
>>> write_solutions(["x"], [(Literal("1"),)], "text/csv")
b'x\\r\\n1\\r\\n'
>>> dec = NamedNode("http://www.w3.org/2001/XMLSchema#decimal")
>>> rows = [(Literal("é\\"", language="ru"), NamedNode("urn:a")), (Literal("2", datatype=dec), None)]
>>> doc = {"head": {"vars": ["a", "b"]}, "results": {"bindings": [
...     {"a": json_term(rows[0][0]), "b": json_term(rows[0][1])}, {"a": json_term(rows[1][0])}]}}
>>> text = json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode()
>>> write_solutions(["a", "b"], rows, "application/json") == text
True
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from json.encoder import encode_basestring as _quote  # the C string escaper of json.dumps
from typing import Any
from xml.sax.saxutils import escape, quoteattr

from pyoxigraph import BlankNode, Literal, NamedNode, QueryResultsFormat, QuerySolutions, RdfFormat, Triple, serialize

from medsyn.kg.vocab import PREFIXES

Solution = Sequence[NamedNode | BlankNode | Literal | Triple | None]

XSD_STRING = "http://www.w3.org/2001/XMLSchema#string"
RDF_LANG_STRING = "http://www.w3.org/1999/02/22-rdf-syntax-ns#langString"

# Offered media types, preferred first (the first one answers "Accept: */*" or no Accept header).
SOLUTION_TYPES = [
    "application/sparql-results+json",
    "application/json",
    "application/sparql-results+xml",
    "application/xml",
    "text/xml",
    "text/csv",
    "text/tab-separated-values",
]
GRAPH_TYPES = [
    "text/turtle",
    "application/n-triples",
    "text/plain",
    "application/ld+json",
    "application/json",
    "application/rdf+xml",
    "application/x-turtle",
]
_GRAPH_FORMATS = {
    "text/turtle": RdfFormat.TURTLE,
    "application/x-turtle": RdfFormat.TURTLE,
    "application/n-triples": RdfFormat.N_TRIPLES,
    "text/plain": RdfFormat.N_TRIPLES,
    "application/ld+json": RdfFormat.JSON_LD,
    "application/json": RdfFormat.JSON_LD,
    "application/rdf+xml": RdfFormat.RDF_XML,
}
JSON_TYPES = ("application/sparql-results+json", "application/json")  # the solution types written as SPARQL JSON
# The charset is stated because CSV/TSV/N-Triples clients otherwise guess Latin-1 for Russian labels.
CONTENT_TYPES = {
    "application/json": "application/sparql-results+json; charset=utf-8",
    "application/xml": "application/sparql-results+xml; charset=utf-8",
    "text/xml": "application/sparql-results+xml; charset=utf-8",
}


def content_type(media_type: str, *, graph: bool = False) -> str:
    """The Content-Type header for a negotiated media type."""
    if graph:
        return {"text/plain": "application/n-triples", "application/json": "application/ld+json"}.get(
            media_type, media_type
        ) + "; charset=utf-8"
    return CONTENT_TYPES.get(media_type, media_type + "; charset=utf-8")


def negotiate(accept: str | None, offers: Sequence[str]) -> str | None:
    """Pick the offer the client prefers most (RFC 9110 q-values; ties go to the client's order), or None.

    >>> negotiate("text/*;q=0.3, text/turtle", GRAPH_TYPES)
    'text/turtle'
    >>> negotiate("image/png", GRAPH_TYPES) is None
    True
    """
    if not accept or not accept.strip():
        return offers[0]
    prefs: list[tuple[str, float]] = []
    for part in accept.split(","):
        fields = part.split(";")
        media = fields[0].strip().lower()
        if not media:
            continue
        q = 1.0
        for param in fields[1:]:
            key, _, value = param.partition("=")
            if key.strip().lower() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        prefs.append((media, q))
    best: tuple[float, int, int, int] | None = None
    chosen: str | None = None
    for offer_index, offer in enumerate(offers):
        kind = offer.split("/")[0]
        match: tuple[int, float, int] | None = None  # (specificity, q, client position)
        for pos, (media, q) in enumerate(prefs):
            spec = 2 if media == offer else 1 if media == kind + "/*" else 0 if media == "*/*" else -1
            if spec >= 0 and (match is None or spec > match[0]):
                match = (spec, q, pos)
        if match is None or match[1] <= 0:
            continue
        # Higher q wins; then an exact mention; then the client's order; then ours.
        score = (match[1], match[0], -match[2], -offer_index)
        if best is None or score > best:
            best, chosen = score, offer
    return chosen


def graph_format(media_type: str) -> RdfFormat:
    return _GRAPH_FORMATS[media_type]


def write_graph(triples: Sequence[Triple], media_type: str) -> bytes:
    """Serialize CONSTRUCT/DESCRIBE results (or a graph) natively with pyoxigraph; Turtle gets the MedSyn prefixes."""
    fmt = _GRAPH_FORMATS[media_type]
    prefixes = PREFIXES if fmt == RdfFormat.TURTLE else None
    return serialize(triples, format=fmt, prefixes=prefixes) or b""


def write_boolean(value: bool, media_type: str) -> bytes:
    text = "true" if value else "false"
    if media_type in JSON_TYPES:
        return b'{"head":{},"boolean":' + text.encode() + b"}"
    if media_type in ("application/sparql-results+xml", "application/xml", "text/xml"):
        return (
            '<?xml version="1.0"?><sparql xmlns="http://www.w3.org/2005/sparql-results#"><head/>'
            f"<boolean>{text}</boolean></sparql>"
        ).encode()
    return text.encode()  # CSV/TSV define no boolean form; Oxigraph answers the bare word too


ROW_BYTES = 1024
"""How many bytes a row may take on average before :func:`native_json` leaves a result to the capped writers."""


class _OverBudget(Exception):
    """Raised inside pyoxigraph's serializer to stop it (not an OSError: that would read as a store failure)."""


class _CappedSink:
    """A file-like target for pyoxigraph's writer that stops it past ``budget`` bytes."""

    def __init__(self, budget: int) -> None:
        self.buffer = bytearray()
        self.budget = budget

    def write(self, data: bytes) -> int:
        self.buffer += data
        if len(self.buffer) > self.budget:
            raise _OverBudget
        return len(data)

    def flush(self) -> None:
        pass


def native_json(solutions: QuerySolutions, variables: Sequence[str], max_rows: int) -> bytes | None:
    """The solutions (their ``variables`` named) in SPARQL JSON written by pyoxigraph, or None when they may hold
    more than ``max_rows`` rows or more than ``max_rows * ROW_BYTES`` bytes. The writers here create a Python object
    per term: the sampling table (3,343 rows) took 34 ms in them against 10-16 ms natively, of a 190 ms query.
    pyoxigraph cannot stop at a row count, so the rows are counted in what it wrote; on None the solutions are used
    up, and the caller evaluates again and collects up to the cap.

    >>> from pyoxigraph import Store
    >>> native_json(Store().query("SELECT ?x WHERE { VALUES ?x { 1 2 } }"), ["x"], 2)
    b'{"head":{"vars":["x"]},"results":{"bindings":[{"x":{"type":"literal","value":"1","datatype":"http://www.w3.org/2001/XMLSchema#integer"}},{"x":{"type":"literal","value":"2","datatype":"http://www.w3.org/2001/XMLSchema#integer"}}]}}'
    >>> native_json(Store().query("SELECT ?x WHERE { VALUES ?x { 1 2 3 } }"), ["x"], 2) is None
    True
    """
    sink = _CappedSink(max_rows * ROW_BYTES)
    try:
        solutions.serialize(sink, format=QueryResultsFormat.JSON)
    except _OverBudget:
        return None
    body = bytes(sink.buffer)
    return body if json_rows_at_most(body, variables) <= max_rows else None


def json_rows_at_most(body: bytes, variables: Sequence[str]) -> int:
    """An upper bound on the rows of a SPARQL JSON document as pyoxigraph writes it (compact, keys in this order),
    from byte counts alone. Every row is an object: the ``{`` count less the document's own three bounds it (loosely:
    each term is an object too, and strings may hold braces). When that is too loose: a row that binds something
    begins ``},{"v":{"type":"`` after the row before it, and those bytes cannot start inside a string (a string holds
    no bare ``"``, and after a closing quote comes ``}``, ``,`` or ``:``, never a variable name), so they count those
    rows exactly; a row that binds nothing is ``{}``, and every ``{}`` is counted as one.

    >>> json_rows_at_most(b'{"head":{"vars":["x"]},"results":{"bindings":[{},{}]}}', ["x"])
    2
    >>> x = b'{"x":{"type":"literal","value":"{}"}}'
    >>> json_rows_at_most(b'{"head":{"vars":["x"]},"results":{"bindings":[' + x + b',' + x + b']}}', ["x"])
    4
    """
    loose = body.count(b"{") - 3
    if loose <= 0:
        return 0
    starts = sum(body.count(b'},{"' + v.encode() + b'":{"type":"') for v in variables)
    opening = b'"results":{"bindings":[{"'  # the head before it holds variable names only
    first = 1 if opening in body[: body.index(b'"results":') + len(opening)] else 0  # a first row that binds something
    return min(loose, first + starts + body.count(b"{}"))


def write_solutions(variables: Sequence[str], rows: Sequence[Solution], media_type: str) -> bytes:
    """Serialize SELECT solutions (each row a tuple aligned with ``variables``, None when unbound)."""
    if media_type in JSON_TYPES:
        return _json(variables, rows)
    if media_type in ("application/sparql-results+xml", "application/xml", "text/xml"):
        return _xml(variables, rows)
    if media_type == "text/csv":
        return _csv(variables, rows)
    if media_type == "text/tab-separated-values":
        return _tsv(variables, rows)
    raise ValueError(f"no result writer for {media_type}")


def json_term(term: NamedNode | BlankNode | Literal | Triple) -> dict[str, Any]:
    """One RDF term in the SPARQL 1.1 JSON results format (triple terms as in SPARQL 1.2)."""
    if isinstance(term, NamedNode):
        return {"type": "uri", "value": term.value}
    if isinstance(term, BlankNode):
        return {"type": "bnode", "value": term.value}
    if isinstance(term, Literal):
        out: dict[str, Any] = {"type": "literal", "value": term.value}
        if term.language:
            out["xml:lang"] = term.language
        elif term.datatype.value != XSD_STRING:
            out["datatype"] = term.datatype.value
        return out
    return {
        "type": "triple",
        "value": {
            "subject": json_term(term.subject),
            "predicate": json_term(term.predicate),
            "object": json_term(term.object),
        },
    }


def _json_fragment(term: NamedNode | BlankNode | Literal | Triple) -> str:
    """``json_term(term)`` as compact JSON text, written directly (json.dumps per term took most of the time)."""
    if isinstance(term, NamedNode):
        return '{"type":"uri","value":' + _quote(term.value) + "}"
    if isinstance(term, BlankNode):
        return '{"type":"bnode","value":' + _quote(term.value) + "}"
    if isinstance(term, Literal):
        if term.language:
            return '{"type":"literal","value":' + _quote(term.value) + ',"xml:lang":' + _quote(term.language) + "}"
        if term.datatype.value != XSD_STRING:
            datatype = _quote(term.datatype.value)
            return '{"type":"literal","value":' + _quote(term.value) + ',"datatype":' + datatype + "}"
        return '{"type":"literal","value":' + _quote(term.value) + "}"
    return json.dumps(json_term(term), ensure_ascii=False, separators=(",", ":"))


def _json(variables: Sequence[str], rows: Sequence[Solution]) -> bytes:
    # The same text as json.dumps of the whole document (doctest below), built from per-term fragments that are
    # written once per distinct term: the sampling tables repeat codes and symptoms over thousands of rows.
    keys = [_quote(v) + ":" for v in variables]
    cache: dict[Any, str] = {}
    parts: list[str] = []
    for row in rows:
        items = []
        for key, term in zip(keys, row, strict=True):
            if term is None:
                continue
            fragment = cache.get(term)
            if fragment is None:
                fragment = cache[term] = _json_fragment(term)
            items.append(key + fragment)
        parts.append("{" + ",".join(items) + "}")
    head = '{"vars":[' + ",".join(_quote(v) for v in variables) + "]}"
    return ('{"head":' + head + ',"results":{"bindings":[' + ",".join(parts) + "]}}").encode("utf-8")


def _xml_term(term: NamedNode | BlankNode | Literal | Triple) -> str:
    if isinstance(term, NamedNode):
        return f"<uri>{escape(term.value)}</uri>"
    if isinstance(term, BlankNode):
        return f"<bnode>{escape(term.value)}</bnode>"
    if isinstance(term, Literal):
        if term.language:
            return f"<literal xml:lang={quoteattr(term.language)}>{escape(term.value)}</literal>"
        if term.datatype.value != XSD_STRING:
            return f"<literal datatype={quoteattr(term.datatype.value)}>{escape(term.value)}</literal>"
        return f"<literal>{escape(term.value)}</literal>"
    return (
        f"<triple><subject>{_xml_term(term.subject)}</subject><predicate>{_xml_term(term.predicate)}</predicate>"
        f"<object>{_xml_term(term.object)}</object></triple>"
    )


def _xml(variables: Sequence[str], rows: Sequence[Solution]) -> bytes:
    out = ['<?xml version="1.0"?><sparql xmlns="http://www.w3.org/2005/sparql-results#"><head>']
    out.extend(f"<variable name={quoteattr(v)}/>" for v in variables)
    out.append("</head><results>")
    for row in rows:
        out.append("<result>")
        for name, term in zip(variables, row, strict=True):
            if term is not None:
                out.append(f"<binding name={quoteattr(name)}>{_xml_term(term)}</binding>")
        out.append("</result>")
    out.append("</results></sparql>")
    return "".join(out).encode("utf-8")


def _csv_value(term: NamedNode | BlankNode | Literal | Triple | None) -> str:
    if term is None:
        return ""
    if isinstance(term, BlankNode):
        return "_:" + term.value
    if isinstance(term, NamedNode | Literal):
        return term.value
    return str(term)


def _csv(variables: Sequence[str], rows: Sequence[Solution]) -> bytes:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\r\n")
    writer.writerow(variables)
    writer.writerows([_csv_value(t) for t in row] for row in rows)
    return buf.getvalue().encode("utf-8")


def _tsv(variables: Sequence[str], rows: Sequence[Solution]) -> bytes:
    # pyoxigraph prints terms in N-Triples syntax with tabs and newlines escaped, which is what TSV results need.
    lines = ["\t".join("?" + v for v in variables)]
    lines.extend("\t".join("" if t is None else str(t) for t in row) for row in rows)
    return ("\n".join(lines) + "\n").encode("utf-8")
