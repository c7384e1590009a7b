"""Which attempt runs next: every sample (or, with ``target_per_code``, every category) is a group that wants a quota
of accepted notes within a cap of attempts.

A group never has more attempts in flight than it still needs, so a run never writes more notes than requested;
a group whose attempt just ended goes to the front, so a sample finishes before new ones start.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field

from medsyn.generation.config import GenerationConfig
from medsyn.sampling.samples import Sample


@dataclass(eq=False)
class Group:
    key: str
    slots: list[Sample]
    quota: int
    cap: int
    accepted: int = 0
    counted: int = 0
    in_flight: int = 0
    used: set[int] = field(default_factory=set)
    next_attempt: int = 0
    queued: bool = False

    def can_start(self) -> bool:
        return self.accepted + self.in_flight < self.quota and self.counted + self.in_flight < self.cap

    def finished(self) -> bool:
        return self.in_flight == 0 and not self.can_start()

    def start(self) -> tuple[Sample, int]:
        while self.next_attempt in self.used:
            self.next_attempt += 1
        a = self.next_attempt
        self.used.add(a)
        self.in_flight += 1
        return self.slots[a % len(self.slots)], a


class Scheduler:
    def __init__(self, groups: list[Group]) -> None:
        self.groups = groups
        self.ready: deque[Group] = deque()
        for g in groups:
            self.requeue(g)

    def requeue(self, g: Group, *, front: bool = False) -> None:
        if not g.queued and g.can_start():
            g.queued = True
            (self.ready.appendleft if front else self.ready.append)(g)

    def take(self, k: int) -> list[tuple[Group, Sample, int]]:
        out = []
        while self.ready and len(out) < k:
            g = self.ready[0]
            if not g.can_start():
                self.ready.popleft()
                g.queued = False
                continue
            s, a = g.start()
            out.append((g, s, a))
        return out


def make_groups(samples: Sequence[Sample], config: GenerationConfig) -> list[Group]:
    if config.target_per_code is None:
        return [Group(s.id, [s], 1, config.max_attempts) for s in samples]
    by_code: dict[str, list[Sample]] = {}
    for s in samples:
        by_code.setdefault(s.category, []).append(s)
    k = config.target_per_code
    return [Group(code, ss, k, k * config.max_attempts) for code, ss in by_code.items()]
