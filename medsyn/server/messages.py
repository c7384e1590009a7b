"""A request and an answer as the endpoint sees them, and the small parsers of parameters, bodies and media types."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

from pyoxigraph import NamedNode, RdfFormat

from medsyn.server import results

QUAD_TYPES = ["application/n-quads", "application/trig"]
QUAD_FORMATS = {"application/n-quads": RdfFormat.N_QUADS, "application/trig": RdfFormat.TRIG}
FALSE_VALUES = {"false", "0", "no", "off"}


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


class StreamBroken(Exception):
    """A streamed answer failed after its status went out: the connection is dropped (no clean end), so the client
    sees an incomplete answer instead of a short one that looks whole."""


@dataclass(frozen=True)
class QueryRequest:
    sparql: str
    accept: str | None
    union: bool
    base_iri: str | None = None
    default_graphs: tuple[NamedNode, ...] = ()
    named_graphs: tuple[NamedNode, ...] = ()


def pick(accept: str | None, offers: list[str]) -> str:
    media = results.negotiate(accept, offers)
    if media is None:
        raise HttpError(406, f"cannot answer in {accept}; available: {', '.join(offers)}")
    return media


def single_param(params: dict[str, list[str]], name: str) -> str:
    values = params.get(name, [])
    if len(values) != 1:
        raise HttpError(400, f"expected exactly one '{name}' parameter, got {len(values)}")
    return values[0]


def parse_iri(value: str) -> NamedNode:
    try:
        return NamedNode(value)
    except ValueError as exc:
        raise HttpError(400, f"invalid IRI {value!r}: {exc}") from None


def body_text(body: bytes) -> str:
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise HttpError(400, f"request body is not UTF-8 (byte {exc.start})") from None


def media_type(ctype: str | None) -> tuple[str, str | None]:
    """``(media type, charset)`` of a Content-Type header."""
    fields = (ctype or "").split(";")
    charset = None
    for param in fields[1:]:
        key, _, value = param.partition("=")
        if key.strip().lower() == "charset":
            charset = value.strip().strip('"').lower()
    return fields[0].strip().lower(), charset
