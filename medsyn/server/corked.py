"""A transport that sends an answer's head and body in one write.

uvicorn writes the status line and headers, then the body, as two writes; with TCP_NODELAY each is its own
``send()`` and its own segment, so every answer costs the server two system calls and the client two reads (the
Oxigraph server writes both at once). :class:`Corked` holds writes until the answer is complete (the protocol calls
:meth:`Corked.flush`), past ``limit`` bytes, or until the event loop's next turn (a streamed answer), whichever
comes first, then writes them together. Everything else is the real transport's.

>>> import asyncio
>>> class Sink:
...     def __init__(self): self.writes = []
...     def write(self, data): self.writes.append(data)
...     def is_closing(self): return False
...     def close(self): self.writes.append("closed")
>>> async def answer():
...     sink = Sink()
...     corked = Corked(sink, asyncio.get_running_loop())
...     corked.write(b"HTTP/1.1 200 OK\\r\\n\\r\\n"); corked.write(b"true"); corked.write(b"")
...     before = list(sink.writes)
...     corked.flush()
...     corked.write(b"more")
...     corked.close()
...     return before, sink.writes
>>> asyncio.run(answer())
([], [b'HTTP/1.1 200 OK\\r\\n\\r\\ntrue', b'more', 'closed'])
"""

from __future__ import annotations

import asyncio
from typing import Any

CORK_LIMIT = 256 * 1024


class Corked:
    """Writes to ``transport`` gathered into one (see the module); other attributes are the transport's."""

    def __init__(self, transport: Any, loop: asyncio.AbstractEventLoop, limit: int = CORK_LIMIT) -> None:
        self._transport = transport
        self._loop = loop
        self._limit = limit
        self._pending: list[bytes] = []
        self._size = 0
        self._scheduled = False

    def write(self, data: bytes) -> None:
        if not data:
            return
        self._pending.append(data)
        self._size += len(data)
        if self._size >= self._limit:
            self.flush()
        elif not self._scheduled:
            self._scheduled = True
            self._loop.call_soon(self._turn)

    def _turn(self) -> None:
        self._scheduled = False
        self.flush()

    def flush(self) -> None:
        """Write what is held (dropped when the connection is already going: nobody would read it)."""
        if not self._pending:
            return
        data = self._pending[0] if len(self._pending) == 1 else b"".join(self._pending)
        self._pending.clear()
        self._size = 0
        if not self._transport.is_closing():
            self._transport.write(data)

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)
