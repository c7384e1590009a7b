"""The fault-injection script in its CI-light mode: one round of each kind (kill -9 of generate, kg build and
curation at random points, a second writer, and kill -9 of export, merge and finetune inside their folder writes)
must leave everything intact."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_one_round_of_each_fault_is_survived() -> None:
    r = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "fault_injection.py"), "--n", "1", "--seed", "3", "--json"],
        capture_output=True,
        text=True,
        timeout=900,
        cwd=ROOT,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    counts = json.loads(r.stdout.strip().splitlines()[-1])
    assert set(counts) == {"generate", "build", "curation", "concurrent", "export", "merge", "finetune"}
    for kind, c in counts.items():
        assert c["runs"] == c["intact"] == 1, (kind, c)
        if kind in ("export", "merge", "finetune"):  # stopped at a fault point (medsyn.faults), so always killed
            assert c["killed"] == 1, (kind, c)
        assert {k for k, v in c.items() if v and k not in ("runs", "intact", "killed")} == set(), (kind, c)
