"""The socket between `medsyn serve` and a query worker (medsyn.server.wire): an answer larger than a socket buffer
arrives whole without holding the server's event loop while the worker is still writing it, and a worker that dies
mid-answer reads as a death, never as a short answer."""

from __future__ import annotations

import asyncio
import socket
import threading

import pytest

from medsyn.server import wire

BODY = bytes(range(256)) * (12 * 1024)  # 3 MiB: many socket buffers


def _frame(body: bytes) -> bytes:
    """What a worker writes for one answer (taken from the real writer, through a socketpair)."""
    a, b = socket.socketpair()
    with a, b:
        done = threading.Thread(
            target=wire.send_reply, args=(a, 200, body, "text/csv", {"X-A": "1"}), kwargs={"keep": True}
        )
        done.start()
        got = bytearray()
        while len(got) < len(body) + 12:  # at least the header and the body; the rest is the small pickle
            got += b.recv(1 << 20)
        done.join()
        a.close()
        while piece := b.recv(1 << 20):
            got += piece
    return bytes(got)


def test_a_large_answer_arrives_whole_while_the_loop_serves_others() -> None:
    frame = _frame(BODY)
    server, worker = socket.socketpair()
    server.setblocking(False)
    half = len(frame) // 2
    loop_ran = threading.Event()

    def write() -> None:  # the worker: half the answer, then the rest only once the server's loop ran something else
        worker.sendall(frame[:half])
        if loop_ran.wait(timeout=30):
            worker.sendall(frame[half:])
        worker.close()

    async def other_request() -> None:
        await asyncio.sleep(0)
        loop_ran.set()

    async def main() -> wire.Reply:
        reply = asyncio.ensure_future(wire.read_reply(server))
        await other_request()
        return await asyncio.wait_for(reply, timeout=60)

    writer = threading.Thread(target=write)
    writer.start()
    try:
        status, ctype, headers, keep, body = asyncio.run(main())
    finally:
        loop_ran.set()
        writer.join()
        server.close()
    assert (status, ctype, headers, keep) == (200, "text/csv", {"X-A": "1"}, True)
    assert body == BODY


@pytest.mark.parametrize("cut", [5, 40, 100_000])
def test_a_worker_that_dies_mid_answer_reads_as_eof(cut: int) -> None:
    frame = _frame(BODY)
    server, worker = socket.socketpair()
    server.setblocking(False)
    worker.sendall(frame[:cut])
    worker.close()
    with pytest.raises(EOFError):
        asyncio.run(wire.read_reply(server))
    server.close()


def test_a_query_frame_round_trips() -> None:
    a, b = socket.socketpair()
    with a, b:
        payload = ("SELECT * WHERE { ?s ?p ?o }" * 1000, None, True, "http://x/", (), ("urn:g",))
        wire.send_query(a, 7, payload)
        assert wire.read_query(b) == (7, payload)
        a.close()
        assert wire.read_query(b) is None  # the server closed its end: the worker leaves
