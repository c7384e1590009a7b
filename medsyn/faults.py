"""Fault-injection points: a named place in a write path where a test or ``benchmarks/fault_injection.py`` can stop
a real ``medsyn`` process deterministically (then kill it, or let it go on), instead of guessing a delay.

``MEDSYN_PAUSE_AT=<point>`` and ``MEDSYN_PAUSE_FILE=<path>`` in the environment: when the process reaches
``<point>`` it creates ``<path>`` (holding its pid) and waits while that file exists. Deleting the file lets it go
on. Unset (always, outside tests), a point costs one dictionary lookup.

Points: ``swap.filled`` (a folder replace: the new folder written and fsynced, nothing renamed yet),
``swap.aside`` (the old folder renamed aside, the new one not yet in), ``swap.done`` (the new folder in place, the
old one not yet removed), ``finetune.restart`` (rank 0, holding ``--out``'s lock, before it clears it for
``--restart``), ``ray.shard_written`` (``generate --engine ray``: a result shard on disk, its records not yet in
notes.jsonl or the store).
"""

from __future__ import annotations

import os
import time
from pathlib import Path

PAUSE_AT = "MEDSYN_PAUSE_AT"
PAUSE_FILE = "MEDSYN_PAUSE_FILE"


def pause_point(name: str) -> None:
    """Wait here while ``$MEDSYN_PAUSE_FILE`` exists, when ``$MEDSYN_PAUSE_AT`` names this point."""
    if os.environ.get(PAUSE_AT) != name or not os.environ.get(PAUSE_FILE):
        return
    flag = Path(os.environ[PAUSE_FILE])
    flag.write_text(f"{os.getpid()}\n", encoding="utf-8")
    while flag.exists():
        time.sleep(0.01)
