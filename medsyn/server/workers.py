"""The query workers: two lanes of slots (see :class:`Workers`) and the worker processes queries run in
(:class:`Pool`)."""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import os
import signal
import socket
import sys
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from multiprocessing import forkserver
from pathlib import Path
from typing import Any

from medsyn.errors import StoreError
from medsyn.server import querying, wire
from medsyn.server.messages import Answer, HttpError

# glibc's per-thread cache of freed small blocks, 7 per size by default. RocksDB's seeks allocate and free small
# blocks by the thousand per query: on the one-code sampling query malloc and free were ~20% of a worker's CPU, and
# with this count malloc_consolidate (2%) went away and _int_malloc halved (3.4% -> 1.5%; docs/endpoint.md). The
# cache lives inside the worker's address-space limit like any other memory.
MALLOC_TUNABLES = "glibc.malloc.tcache_count=2000"


class Lane:
    """``size`` slots that running evaluations are counted against; taken on the event loop, given back from any
    thread (the evaluation's own, when it ends)."""

    def __init__(self, name: str, size: int) -> None:
        self.name = name
        self.size = size
        self._lock = threading.Lock()
        self._held = 0
        self._sem: asyncio.Semaphore | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: int | None = None

    def _semaphore(self) -> asyncio.Semaphore:
        if self._sem is None:
            self._loop = asyncio.get_running_loop()
            self._loop_thread = threading.get_ident()
            self._sem = asyncio.Semaphore(self.size)
        return self._sem

    async def acquire(self, timeout_s: float) -> None:
        """Wait up to ``timeout_s`` for a slot, else 503."""
        sem = self._semaphore()
        if not sem.locked():  # a free slot: taken without suspending (wait_for would wrap it in a task)
            await sem.acquire()
            with self._lock:
                self._held += 1
            return
        try:
            await asyncio.wait_for(sem.acquire(), timeout=max(timeout_s, 0.001))
        except TimeoutError:
            raise HttpError(
                503, f"all {self.size} {self.name}-lane query workers are busy; try again later", {"Retry-After": "5"}
            ) from None
        with self._lock:
            self._held += 1

    async def try_acquire(self) -> bool:
        """A slot now, or False (no waiting: a request waiting here would hold its other slot meanwhile)."""
        sem = self._semaphore()
        if sem.locked():  # no free slot, or earlier requests are waiting for one
            return False
        await sem.acquire()  # a free semaphore is taken without suspending, so nothing can come between
        with self._lock:
            self._held += 1
        return True

    def release(self) -> None:
        """Give a slot back (callable from any thread)."""
        with self._lock:
            self._held -= 1
        assert self._loop is not None and self._sem is not None
        if threading.get_ident() == self._loop_thread:
            self._sem.release()  # on the loop already: no wake-up through its self-pipe
        else:
            self._loop.call_soon_threadsafe(self._sem.release)

    @property
    def held(self) -> int:
        with self._lock:
            return self._held

    @property
    def full(self) -> bool:
        return self.held >= self.size


class Workers:
    """Two-level admission: what a running query is counted against.

    Every query starts in the *fast lane* (``fast`` slots) with a budget of ``fast_budget_s``. One still running
    past it is *demoted*: it takes a *slow-lane* slot (``slow``, the ``--workers`` count) and gives its fast slot
    back, or, when no slow slot is free, it is answered 503 and its worker process is killed. So a fast slot frees
    within the budget whatever long queries do, and a small query waits about the budget for one at most (one budget
    per wave when more than ``fast`` queries are queued ahead of it). Dumps take slow-lane slots directly (they run
    in ``pool``, threads of the server over its own store). A query keeps the same worker process through both lanes,
    so at most ``fast + slow`` queries evaluate at once.
    """

    def __init__(self, slow: int, fast: int, fast_budget_s: float) -> None:
        self.fast = Lane("fast", fast)
        self.slow = Lane("slow", slow)
        self.fast_budget_s = fast_budget_s
        # twice the lane: a dump thread gives its slot back a moment before it ends
        self.pool = ThreadPoolExecutor(max_workers=2 * slow, thread_name_prefix="medsyn-dump")


class Evaluation:
    """The lane slot one running query is counted against (moved and given back on the event loop)."""

    def __init__(self, lane: Lane) -> None:
        self.lane = lane

    def move_to(self, lane: Lane) -> None:
        """Count the evaluation against ``lane`` (whose slot the caller took) instead."""
        old, self.lane = self.lane, lane
        old.release()

    def ended(self) -> None:
        self.lane.release()


class Worker:
    """One query worker process and the server's end of its socket (non-blocking: read on the event loop)."""

    def __init__(self, process: Any, sock: socket.socket) -> None:
        self.process = process
        self.sock = sock
        self.pid: int = process.pid
        self._reaped: asyncio.Task[int] | None = None

    def reap(self) -> asyncio.Task[int]:
        """Wait (once, shared by every caller) until the process is gone; its exit code."""
        if self._reaped is None:
            self._reaped = asyncio.ensure_future(self._reap())
        return self._reaped

    async def _reap(self) -> int:
        # The sentinel becomes readable once the process is reaped, so its pid no longer exists after this.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(_readable(self.process.sentinel), timeout=10)
        self.process.join(0)
        code = self.process.exitcode
        return -signal.SIGKILL if code is None else int(code)


class Pool:
    """The worker processes queries run in: each opens the store read-only and runs under an address-space limit of
    ``memory_bytes``; at most ``size`` exist (one per lane slot), started on demand and kept while they live.

    Processes come from a multiprocessing forkserver (a clean process started before any thread of ours, with
    pyoxigraph preloaded): a new worker is a fork of it, a few milliseconds, so one killed at its time limit or
    crashed by its query is replaced at once. ``generation`` counts writes (:meth:`wrote`): a worker reopens its
    read-only handle when it is older than the query it is given.
    """

    def __init__(self, path: Path, *, size: int, max_rows: int, memory_bytes: int) -> None:
        self.path = path
        self.size = size
        self.max_rows = max_rows
        self.memory_bytes = memory_bytes
        self.generation = 0
        self.idle: list[Worker] = []
        self.spare = 0
        self.busy: dict[int, Worker] = {}
        self.stopped = 0  # killed at a time limit (or when their client left)
        self.crashed = 0  # died of their query (a parser crash, the memory limit)
        self._ctx: Any = multiprocessing.get_context("forkserver")

    def start(self, spare: int) -> None:
        """Start the forkserver and ``spare`` workers, so the first queries need not wait for them."""
        preload = [querying.__name__]
        if "medsyn.cli" in sys.modules:
            # multiprocessing re-runs the `medsyn` script in every child (it is __main__); with the CLI already
            # imported in the forkserver, that costs nothing.
            preload.append("medsyn.cli")
        self._ctx.set_forkserver_preload(preload)
        with _environment(GLIBC_TUNABLES=_tunables(os.environ.get("GLIBC_TUNABLES"))):
            # glibc reads its tunables when a program starts: the forkserver's exec is the one start workers share
            forkserver.ensure_running()
        self.spare = min(spare, self.size)
        try:
            self.idle = [self._spawn() for _ in range(self.spare)]
        except HttpError as exc:
            raise StoreError(str(exc)) from None

    def _spawn(self) -> Worker:
        try:
            mine, theirs = socket.socketpair()
        except OSError as exc:
            raise HttpError(503, f"cannot start a query worker: {exc}", {"Retry-After": "5"}) from None
        args = (theirs, str(self.path), self.generation, self.max_rows, self.memory_bytes)
        process = self._ctx.Process(target=querying.serve, args=args, daemon=True, name="medsyn-query")
        try:
            process.start()
        except OSError as exc:
            mine.close()
            raise HttpError(503, f"cannot start a query worker: {exc}", {"Retry-After": "5"}) from None
        finally:
            theirs.close()
        mine.setblocking(False)
        return Worker(process, mine)

    def wrote(self) -> None:
        """The store changed (and was flushed): every query admitted from now on runs on a handle opened after it."""
        self.generation += 1

    def take(self) -> Worker:
        """An idle live worker, or a new one (the caller holds a lane slot, so at most ``size`` are busy)."""
        while self.idle:
            worker = self.idle.pop()
            if worker.process.is_alive():
                break
            worker.sock.close()
        else:
            worker = self._spawn()
        self.busy[worker.pid] = worker
        self._top_up()
        return worker

    def _top_up(self) -> None:
        """Start workers until ``spare`` are idle (within ``size``): a query should find one that has its store open
        already, since a new one needs a moment to start, more on a loaded machine than the fast budget."""
        while len(self.idle) < self.spare and len(self.idle) + len(self.busy) < self.size:
            try:
                self.idle.insert(0, self._spawn())  # at the cold end: the warm ones are taken first
            except HttpError:
                return  # the next query tries again

    async def ask(self, worker: Worker, payload: querying.Payload) -> Answer:
        """Send a query to ``worker`` and wait for its answer; a worker that dies meanwhile answers its death."""
        loop = asyncio.get_running_loop()
        try:
            await loop.sock_sendall(worker.sock, wire.query_frame(self.generation, payload))
            status, ctype, headers, keep, body = await wire.read_reply(worker.sock)
        except (EOFError, OSError):
            return await self._died(worker)
        self.busy.pop(worker.pid, None)
        if keep:
            self.idle.append(worker)
        else:  # it answered, then leaves (out of memory): never hand it another query
            self.crashed += 1
            await self.stop(worker)
        return Answer(status, body, ctype, headers)

    async def _died(self, worker: Worker) -> Answer:
        code = await asyncio.shield(worker.reap())
        worker.sock.close()
        if self.busy.pop(worker.pid, None) is None:  # stopped by the server: its answer is the server's
            return Answer(503, b"query stopped\n")
        self.crashed += 1
        self._top_up()
        return crash_answer(code, self.memory_bytes)

    async def stop(self, worker: Worker) -> None:
        """Kill a busy worker (its query past its time, or its client gone) and wait until its process is gone.
        The caller has ended the :meth:`ask` on it first (its reader must be off the socket before it closes)."""
        if self.busy.pop(worker.pid, None) is not None:
            self.stopped += 1
        with contextlib.suppress(ProcessLookupError):
            os.kill(worker.pid, signal.SIGKILL)
        await asyncio.shield(worker.reap())
        worker.sock.close()
        self._top_up()

    def close(self) -> None:
        """Kill every worker (the server is stopping; the store handles are read-only, nothing to flush)."""
        for worker in [*self.idle, *self.busy.values()]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(worker.pid, signal.SIGKILL)
            worker.process.join(5)
            worker.sock.close()
        self.idle, self.busy = [], {}

    @property
    def pids(self) -> list[int]:
        return sorted(w.pid for w in [*self.idle, *self.busy.values()])

    @property
    def busy_pids(self) -> list[int]:
        return sorted(self.busy)


def _tunables(given: str | None) -> str:
    """Ours, after any the operator set (a tunable they name themselves is theirs)."""
    if not given:
        return MALLOC_TUNABLES
    named = {item.split("=", 1)[0] for item in given.split(":")}
    ours = [item for item in MALLOC_TUNABLES.split(":") if item.split("=", 1)[0] not in named]
    return ":".join([given, *ours])


@contextlib.contextmanager
def _environment(**values: str) -> Iterator[None]:
    """``values`` in the environment for what starts inside the block (the server starts no thread before)."""
    before = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in before.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def crash_answer(code: int, memory_bytes: int) -> Answer:
    """What the client of a query that killed its worker is told (400: the same query would do it again)."""
    if code == -signal.SIGABRT:
        # pyoxigraph aborts when an allocation fails: the query wanted more than the address-space limit.
        message = querying.OUT_OF_MEMORY.format(memory_bytes // (1024 * 1024)) + " and crashed its worker"
        return Answer(400, (message + "\n").encode())
    name = signal.Signals(-code).name if code < 0 and -code in signal.valid_signals() else f"exit status {code}"
    if code < 0 and -code in (signal.SIGSEGV, signal.SIGBUS, signal.SIGILL):
        return Answer(400, f"the query crashed its worker ({name}); the server goes on\n".encode())
    return Answer(500, f"the query's worker died ({name}); the server goes on\n".encode())


async def _readable(fd: int) -> None:
    """Wait on the event loop until ``fd`` can be read (data, end of file or a reaped process's sentinel)."""
    loop = asyncio.get_running_loop()
    ready: asyncio.Future[None] = loop.create_future()
    loop.add_reader(fd, lambda: ready.done() or ready.set_result(None))
    try:
        await ready
    finally:
        loop.remove_reader(fd)
