"""The cost of ``eval privacy`` on a large set: membership inference and the personal-data scan on N notes.

No 41k-note synthetic set ships with the project, so the set is the authors' three sets and ours
(docs/reports/local-v1/notes.jsonl) repeated to N notes, each copy marked with its number so no two texts are equal.
The goal (issue 25): 41k notes within 5 minutes. Judged on process CPU time (on a shared machine the wall time
also counts the time other processes held the cores); both are printed, with the load average.

    .venv/bin/python benchmarks/privacy.py                 # N = 41,185 (the size of the authors' GPT-4 set x ~17)
    .venv/bin/python benchmarks/privacy.py --n 10000 --no-pii
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from medsyn.evaluation.data import NoteSet, default_dev, default_synthetic, default_train, read_notes  # noqa: E402
from medsyn.evaluation.privacy import membership  # noqa: E402
from medsyn.evaluation.upsampling import rare_codes  # noqa: E402
from medsyn.generation.pii import scan  # noqa: E402

GOAL_S = 300.0


def enlarged(n: int) -> NoteSet:
    base = [x for p in [*default_synthetic(), ROOT / "docs/reports/local-v1/notes.jsonl"] for x in read_notes(p).notes]
    notes = [
        replace(base[i % len(base)], id=f"{i}", text=f"{base[i % len(base)].text} ({i // len(base)})") for i in range(n)
    ]
    return NoteSet(f"enlarged-{n}", Path("enlarged"), "rumedtop3", notes)


def timed(label: str, fn):  # type: ignore[no-untyped-def]
    cpu, wall = time.process_time(), time.perf_counter()
    out = fn()
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    print(f"{label}: cpu {cpu:.1f} s, wall {wall:.1f} s", flush=True)
    return out, cpu, wall


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=41_185)
    ap.add_argument("--no-pii", action="store_true")
    a = ap.parse_args()
    print(f"load average before: {os.getloadavg()}")
    (train, dev, syn), c0, w0 = timed(
        "read train, dev and the set", lambda: (read_notes(default_train()), read_notes(default_dev()), enlarged(a.n))
    )
    rare = rare_codes(train.codes)
    (_, _), c1, w1 = timed(
        f"membership inference on {len(syn.notes):,} notes",
        lambda: membership(syn, train, dev, np.random.default_rng(0), rare=rare, n_boot=1000),
    )
    c2 = w2 = 0.0
    if not a.no_pii:
        _, c2, w2 = timed(f"personal-data scan of {len(syn.notes):,} notes", lambda: scan(syn.texts))
    cpu, wall = c0 + c1 + c2, w0 + w1 + w2
    print(
        f"total: cpu {cpu:.0f} s, wall {wall:.0f} s; goal {GOAL_S:.0f} s: {'met' if cpu <= GOAL_S else 'NOT met'} "
        f"(on cpu time); load average after: {os.getloadavg()}"
    )


if __name__ == "__main__":
    main()
