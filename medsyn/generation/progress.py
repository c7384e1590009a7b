"""A run's running totals (attempts, outcomes, tokens, cost, per server) and its rich progress bar."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any


class Totals:
    def __init__(self) -> None:
        self.accepted = self.rejected = self.failed = self.attempts = 0
        self.prompt_tokens = self.completion_tokens = 0
        self.cost_usd = 0.0
        self.by_server: dict[str, int] = {}
        """Attempts answered by each server of an OpenAI-compatible pool (from the records, so resume keeps them)."""

    def add(self, rec: Mapping[str, Any]) -> None:
        self.attempts += 1
        if rec.get("accepted"):
            self.accepted += 1
        elif rec.get("status") == "rejected":
            self.rejected += 1
        else:
            self.failed += 1
        usage = rec.get("usage") or {}
        self.prompt_tokens += int(usage.get("prompt_tokens", 0))
        self.completion_tokens += int(usage.get("completion_tokens", 0))
        self.cost_usd += float(rec.get("cost_usd", 0.0))
        if rec.get("server"):
            self.by_server[rec["server"]] = self.by_server.get(rec["server"], 0) + 1

    def to_dict(self) -> dict[str, Any]:
        by_server = {"by_server": dict(sorted(self.by_server.items()))} if self.by_server else {}
        return {
            "accepted": self.accepted,
            "rejected": self.rejected,
            "failed": self.failed,
            "attempts": self.attempts,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "cost_usd": round(self.cost_usd, 6),
            **by_server,
        }


class Progress:
    """A rich progress bar with notes/s, accepted rate and cost; a no-op when disabled."""

    def __init__(self, enabled: bool, total: int, done: int) -> None:
        self._p: Any = None
        self._t0 = time.monotonic()
        self._done0 = done
        if not enabled:
            return
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

        self._p = Progress(
            TextColumn("[bold]generate"),
            BarColumn(),
            TextColumn("{task.completed}/{task.total} notes"),
            TextColumn("{task.fields[rate]:.1f} notes/s"),
            TextColumn("accepted {task.fields[acc]:.0%}"),
            TextColumn("${task.fields[cost]:.4f}"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            transient=False,
        )
        self._task = self._p.add_task("generate", total=total, completed=done, rate=0.0, acc=0.0, cost=0.0)
        self._p.start()

    def update(self, totals: Totals, attempts_now: int) -> None:
        if self._p is None:
            return
        dt = time.monotonic() - self._t0
        acc = totals.accepted / totals.attempts if totals.attempts else 0.0
        self._p.update(
            self._task,
            completed=totals.accepted,
            rate=attempts_now / dt if dt > 0 else 0.0,
            acc=acc,
            cost=totals.cost_usd,
        )

    def close(self) -> None:
        if self._p is not None:
            self._p.stop()
