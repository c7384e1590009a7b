"""The query workers: two lanes of slots and the overflow of queries that cannot be stopped (see :class:`Workers`)."""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor

from medsyn.server.messages import HttpError


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

    def _semaphore(self) -> asyncio.Semaphore:
        if self._sem is None:
            self._loop = asyncio.get_running_loop()
            self._sem = asyncio.Semaphore(self.size)
        return self._sem

    async def acquire(self, timeout_s: float) -> None:
        """Wait up to ``timeout_s`` for a slot, else 503."""
        try:
            await asyncio.wait_for(self._semaphore().acquire(), timeout=max(timeout_s, 0.001))
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
        self._loop.call_soon_threadsafe(self._sem.release)

    @property
    def held(self) -> int:
        with self._lock:
            return self._held

    @property
    def full(self) -> bool:
        return self.held >= self.size


class Workers:
    """Two-level admission, with accounting only: a running pyoxigraph evaluation cannot change threads, but what it
    is counted against can.

    Every query starts in the *fast lane* (``fast`` slots) with a budget of ``fast_budget_s``. One still running
    past it is *demoted*: it takes a *slow-lane* slot (``slow``, the ``--workers`` count) and gives its fast slot
    back, or, when no slow slot is free, it is answered 503 and abandoned. So, while the overflow has room, a fast
    slot frees within the budget whatever long queries do, and a small query waits about the budget for one at most
    (one budget per wave when more than ``fast`` queries are queued ahead of it). Dumps take slow-lane slots directly.

    pyoxigraph cannot interrupt an aggregate, so an abandoned query (demoted without a slow slot, or past its time
    limit) keeps running. Up to ``slow`` such queries at a time move to the overflow and give their slot back; once
    the overflow is full, an abandoned query keeps its slot (fast or slow) until it really ends. So at most
    ``fast + 2 * slow`` evaluations ever run, and ``/health`` names the lanes with no free slot.
    """

    def __init__(self, slow: int, fast: int, fast_budget_s: float) -> None:
        self.fast = Lane("fast", fast)
        self.slow = Lane("slow", slow)
        self.fast_budget_s = fast_budget_s
        self.overflow_size = slow
        self.pool = ThreadPoolExecutor(max_workers=fast + slow + self.overflow_size, thread_name_prefix="medsyn-sparql")
        self._lock = threading.Lock()
        self._abandoned = 0  # abandoned evaluations still running (in the overflow or on a slot)
        self._overflow = 0  # of those, the ones that gave their slot back

    def abandon(self) -> bool:
        """A query was answered 503 while still evaluating; True when it moved to the overflow, so its slot must be
        released now (and not again when it ends)."""
        with self._lock:
            self._abandoned += 1
            if self._overflow < self.overflow_size:
                self._overflow += 1
                return True
            return False

    def ended_abandoned(self, *, in_overflow: bool) -> None:
        with self._lock:
            self._abandoned -= 1
            if in_overflow:
                self._overflow -= 1

    @property
    def abandoned(self) -> int:
        with self._lock:
            return self._abandoned

    @property
    def overflow(self) -> int:
        with self._lock:
            return self._overflow


class Evaluation:
    """What one running query is counted against: a lane's slot, or nothing once it moved to the overflow. The
    event loop moves it; its worker thread gives back whatever it holds when the evaluation ends."""

    def __init__(self, workers: Workers, lane: Lane) -> None:
        self.workers = workers
        self.lane: Lane | None = lane
        self._lock = threading.Lock()
        self._done = False
        self._abandoned = False

    def ended(self) -> None:
        with self._lock:
            self._done = True
            if self._abandoned:
                self.workers.ended_abandoned(in_overflow=self.lane is None)
            if self.lane is not None:
                self.lane.release()

    def move_to(self, lane: Lane) -> bool:
        """Count the evaluation against ``lane`` (whose slot the caller took) instead; False when it already ended."""
        with self._lock:
            if self._done:
                return False
            old, self.lane = self.lane, lane
        assert old is not None
        old.release()
        return True

    def abandon(self) -> bool:
        """Its client gets a 503: to the overflow if there is room, else it keeps its slot. False when it already
        ended (its answer is ready)."""
        with self._lock:
            if self._done:
                return False
            self._abandoned = True
            if self.workers.abandon():
                old, self.lane = self.lane, None
                assert old is not None
                old.release()
            return True
