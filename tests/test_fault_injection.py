"""The fault-injection script in its CI-light mode: one round of the kinds that stop at a random point (kill -9 of
generate, kg build and curation, and a second writer) must leave everything intact.

The folder-write kinds (export, merge, finetune) stop at a named fault point, so a round of them is the same
schedule every time; their dedicated tests (tests/test_export.py, tests/test_finetune.py) run that schedule, and
`make bench` runs their rounds here. Running them twice cost the suite four minutes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RANDOM_POINT_KINDS = ("generate", "build", "curation", "concurrent")


def test_one_round_of_each_fault_is_survived() -> None:
    r = subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "fault_injection.py"),
            "--n",
            "1",
            "--seed",
            "3",
            "--json",
            "--only",
            ",".join(RANDOM_POINT_KINDS),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=ROOT,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    counts = json.loads(r.stdout.strip().splitlines()[-1])
    assert set(counts) == set(RANDOM_POINT_KINDS)
    for kind, c in counts.items():
        assert c["runs"] == c["intact"] == 1, (kind, c)
        assert {k for k, v in c.items() if v and k not in ("runs", "intact", "killed")} == set(), (kind, c)
