"""`--engine ray` against `--engine local` on one machine: the same job, the same server, notes/s of each.

    .venv/bin/python benchmarks/ray_generation.py [--n 500] [--latency 0.2] [--concurrency 16] [--workers 2]

The ``openai`` backend against ``python -m medsyn.testing.openai_server`` in its own process (every request answered
after ``--latency`` seconds). Local: one process with ``--concurrency x --workers`` requests in flight; Ray: a local
Ray (started by the run, its start counted) with ``--workers`` model-call tasks of ``--concurrency`` each. On one
machine Ray can only add its own overhead: the figure says what that overhead is, not what a cluster gains. Both
runs must write the same notes (checked).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from medsyn.generation.backends import BackendSpec  # noqa: E402
from medsyn.generation.config import GenerationConfig  # noqa: E402
from medsyn.generation.engine import generate  # noqa: E402
from medsyn.generation.ray_engine import generate_ray  # noqa: E402
from medsyn.generation.run_folder import NOTES_FILE, read_note_records  # noqa: E402
from medsyn.kg.store import OxigraphStore  # noqa: E402
from medsyn.testing import demo_samples  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=500)
    ap.add_argument("--latency", type=float, default=0.2)
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--port", type=int, default=8617)
    a = ap.parse_args()
    server = subprocess.Popen(
        [sys.executable, "-m", "medsyn.testing.openai_server", "--port", str(a.port), "--latency", str(a.latency)],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env={**os.environ, "PYTHONPATH": str(ROOT)},
    )  # fmt: skip
    time.sleep(2)
    url = f"http://127.0.0.1:{a.port}/v1"
    samples, cfg = demo_samples(a.n), GenerationConfig(seed=1)
    rows = []
    try:
        with tempfile.TemporaryDirectory() as tmp:
            store = OxigraphStore.in_memory()
            local = BackendSpec("openai", options={"base_url": url, "concurrency": a.concurrency * a.workers})
            t = time.monotonic()
            generate(samples, Path(tmp) / "local", store=store, backend=local.build(), config=cfg)
            rows.append(("local", time.monotonic() - t))
            ray = BackendSpec("openai", options={"base_url": url, "concurrency": a.concurrency})
            t = time.monotonic()
            generate_ray(samples, Path(tmp) / "ray", store=store, backend=ray, config=cfg, workers=a.workers)
            rows.append(("ray", time.monotonic() - t))
            texts = [
                sorted((r["sample_id"], r["content_hash"]) for r in read_note_records(Path(tmp) / k / NOTES_FILE))
                for k in ("local", "ray")
            ]
            assert texts[0] == texts[1] and len(texts[0]) == a.n, "the two engines wrote different notes"
    finally:
        server.terminate()
        server.wait(timeout=30)
    ideal = a.n * a.latency / (a.concurrency * a.workers)
    for name, s in rows:
        print(json.dumps({"engine": name, "notes": a.n, "s": round(s, 2), "notes_per_s": round(a.n / s, 1),
                          "ideal_s": round(ideal, 2)}))  # fmt: skip
    print(f"ray / local wall time: x{rows[1][1] / rows[0][1]:.2f} (same {a.n} notes, {a.concurrency * a.workers} "
          f"requests in flight, server latency {a.latency}s)")  # fmt: skip


if __name__ == "__main__":
    main()
