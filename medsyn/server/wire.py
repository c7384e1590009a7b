"""The framing on the socket between ``medsyn serve`` and one query worker.

A query goes to the worker as a length-prefixed pickle of ``(generation, payload)``. The answer comes back as a
fixed header (the length of a pickled ``(status, content type, headers, keep)`` and the length of the body), that
pickle, then the body's bytes as the worker serialised them, in one write: the body is never pickled, and the server
reads it with non-blocking reads on its event loop, so a large answer (a sampling table is ~0.7 MB, more than a
socket buffer) never holds the loop while the worker is still writing it.

>>> a, b = socket.socketpair()
>>> send_query(a, 3, ("ASK {}",))
>>> read_query(b)
(3, ('ASK {}',))
>>> send_reply(b, 200, b"true", "text/plain", {}, keep=True)
>>> a.setblocking(False)
>>> asyncio.run(read_reply(a))
(200, 'text/plain', {}, True, b'true')
"""

from __future__ import annotations

import asyncio
import pickle
import socket
import struct
from typing import Any

_QUERY = struct.Struct("!I")  # pickle length
_REPLY = struct.Struct("!IQ")  # pickle length, body length
_FIRST_READ = 256 * 1024  # most answers arrive whole in the first read

Reply = tuple[int, str, dict[str, str], bool, bytes]
"""status, content type, headers, whether the worker takes another query, body."""


def send_query(sock: socket.socket, generation: int, payload: Any) -> None:
    """Blocking send (tests and the doctest; the server uses :func:`query_frame` with the event loop)."""
    sock.sendall(query_frame(generation, payload))


def query_frame(generation: int, payload: Any) -> bytes:
    data = pickle.dumps((generation, payload), protocol=pickle.HIGHEST_PROTOCOL)
    return _QUERY.pack(len(data)) + data


def read_query(sock: socket.socket) -> tuple[int, Any] | None:
    """The next query (blocking), or None when the server closed its end."""
    head = _recv_exact(sock, _QUERY.size)
    if head is None:
        return None
    (size,) = _QUERY.unpack(head)
    data = _recv_exact(sock, size)
    if data is None:
        return None
    generation, payload = pickle.loads(data)
    return int(generation), payload


def send_reply(
    sock: socket.socket, status: int, body: bytes, content_type: str, headers: dict[str, str], *, keep: bool
) -> None:
    """Blocking send of an answer (the worker's side), in one write; OSError when the server is gone."""
    meta = pickle.dumps((status, content_type, headers, keep), protocol=pickle.HIGHEST_PROTOCOL)
    sock.sendall(_REPLY.pack(len(meta), len(body)) + meta + body)


async def read_reply(sock: socket.socket) -> Reply:
    """The worker's answer, read without blocking the event loop (``sock`` is non-blocking); EOFError when the
    worker died before it was complete. A small answer takes one read."""
    loop = asyncio.get_running_loop()
    first = b""
    while len(first) < _REPLY.size:
        piece = await loop.sock_recv(sock, _FIRST_READ)
        if not piece:
            raise EOFError("the worker closed its socket")
        first += piece
    meta_size, body_size = _REPLY.unpack_from(first)
    total = _REPLY.size + meta_size + body_size
    if len(first) > total:
        raise EOFError("the worker sent more than its answer")  # a broken frame: the worker is not trusted
    buf = bytearray(total)
    buf[: len(first)] = first
    view = memoryview(buf)
    got = len(first)
    while got < total:
        n = await loop.sock_recv_into(sock, view[got:])
        if n == 0:
            raise EOFError("the worker closed its socket")
        got += n
    start = _REPLY.size + meta_size
    status, content_type, headers, keep = pickle.loads(view[_REPLY.size : start])
    return int(status), str(content_type), dict(headers), bool(keep), bytes(view[start:])


def _recv_exact(sock: socket.socket, size: int) -> bytes | None:
    buf = bytearray(size)
    view = memoryview(buf)
    got = 0
    while got < size:
        n = sock.recv_into(view[got:])
        if n == 0:
            return None
        got += n
    return bytes(buf)
