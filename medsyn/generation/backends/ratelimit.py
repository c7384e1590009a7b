"""Client-side pacing shared by all requests of a backend: a requests-per-minute limit and global pauses.

Requests start at least ``60 / rpm`` seconds apart; a 429 with Retry-After pauses every request, not just the
one that got it (the server's limit is shared).
"""

from __future__ import annotations

import asyncio
import time
from collections import deque


class RateLimiter:
    def __init__(self, rpm: float | None = None) -> None:
        if rpm is not None and rpm <= 0:
            raise ValueError("rpm must be > 0")
        self.interval = 60.0 / rpm if rpm else 0.0
        self._next = 0.0
        self._paused_until = 0.0
        self.schedule: deque[float] = deque(maxlen=1024)
        """The start slots (``time.monotonic()``) given to the latest requests, in order: what the limit promises,
        whatever the machine's load does to when the requests then reach the server."""

    def pause(self, seconds: float) -> None:
        """Hold every request for ``seconds`` from now (e.g. a server's Retry-After)."""
        self._paused_until = max(self._paused_until, time.monotonic() + seconds)

    async def acquire(self) -> None:
        """Wait for this request's start slot (slots are reserved before sleeping, so waiters line up)."""
        while True:
            now = time.monotonic()
            if self._paused_until > now:
                await asyncio.sleep(self._paused_until - now)
                continue
            if not self.interval:
                return
            slot = max(now, self._next)
            self._next = slot + self.interval
            if slot > now:
                await asyncio.sleep(slot - now)
                if time.monotonic() < self._paused_until:
                    continue
            self.schedule.append(slot)
            return
