"""Generation benchmarks: framework overhead per note, and throughput against a local OpenAI-compatible server.

    .venv/bin/python benchmarks/generation.py [--overhead-notes 2000] [--latency 0.2] [--concurrency 1,16,64]

1. Overhead: everything except the model call (prompt rendering, reply parsing, scoring, JSONL append + flush,
   PROV-O quads into an on-disk Oxigraph store, scheduling), measured with a backend that answers instantly
   in-process. Target < 2 ms/note.
2. Throughput: the ``openai`` backend against ``python -m medsyn.testing.openai_server`` in its own process, which
   answers every request after a fixed delay (200 ms), at several concurrencies. Target >= 200 notes/s at 64.

Prints one JSON object per measurement and a summary table.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from medsyn.generation.backends import ChatRequest, Completion, get_backend  # noqa: E402
from medsyn.generation.config import GenerationConfig  # noqa: E402
from medsyn.generation.engine import generate  # noqa: E402
from medsyn.kg.store import OxigraphStore  # noqa: E402
from medsyn.testing import demo_samples  # noqa: E402
from medsyn.testing.openai_server import canned_note  # noqa: E402


class InstantBackend:
    """Answers at once with the same note the test server would send: isolates the framework's own cost."""

    name = "instant"
    model = "instant"
    adapter_hash = None
    batch_size = 1
    max_concurrency = 16

    async def complete(self, requests: Sequence[ChatRequest]) -> list[Completion]:
        out = []
        for r in requests:
            text = canned_note(r.messages)
            out.append(Completion(text=text, finish_reason="stop", prompt_tokens=300, completion_tokens=80))
        return out

    def describe(self) -> dict[str, Any]:
        return {"backend": self.name}

    async def aclose(self) -> None:
        return None


def bench_overhead(n: int) -> dict[str, Any]:
    samples = demo_samples(n, seed=1)
    with tempfile.TemporaryDirectory() as d:
        store = OxigraphStore(Path(d) / "store")
        be = InstantBackend()
        # Warm up (imports, caches) on another directory: the figure is the steady-state cost per note.
        generate(demo_samples(50, seed=2), Path(d) / "warm", store=store, backend=be, config=GenerationConfig())
        # The model call costs ~0 here; time the canned reply building separately and subtract it.
        t0 = time.perf_counter()
        for s in samples[:200]:
            canned_note([{"role": "user", "content": "; ".join(s.symptoms)}])
        reply_cost = (time.perf_counter() - t0) / 200
        t0, c0 = time.perf_counter(), time.process_time()
        summary = generate(samples, Path(d) / "out", store=store, backend=be, config=GenerationConfig(seed=1))
        dt, cpu = time.perf_counter() - t0, time.process_time() - c0
        store.close()
    per_note_ms = (dt / summary.attempts - reply_cost) * 1000
    return {
        "bench": "overhead",
        "notes": summary.accepted,
        "seconds": round(dt, 3),
        "overhead_ms_per_note": round(per_note_ms, 3),
        "cpu_ms_per_note": round((cpu / summary.attempts - reply_cost) * 1000, 3),
        "target_ms": 2.0,
    }


def start_server(latency: float) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "medsyn.testing.openai_server", "--port", "0", "--latency", str(latency)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline().strip()
    if not line.startswith("listening on "):
        proc.kill()
        raise RuntimeError(f"server did not start: {line!r}")
    return proc, line.removeprefix("listening on ")


def bench_throughput(base_url: str, concurrency: int, latency: float, seconds: float) -> dict[str, Any]:
    n = max(concurrency, int(concurrency / latency * seconds))
    samples = demo_samples(n, seed=concurrency)
    with tempfile.TemporaryDirectory() as d:
        store = OxigraphStore(Path(d) / "store")
        be = get_backend("openai", base_url=base_url, concurrency=concurrency, max_retries=0)
        t0, c0 = time.perf_counter(), time.process_time()
        summary = generate(samples, Path(d) / "out", store=store, backend=be, config=GenerationConfig())
        dt, cpu = time.perf_counter() - t0, time.process_time() - c0
        store.close()
    return {
        "bench": "throughput",
        "concurrency": concurrency,
        "latency_s": latency,
        "notes": summary.accepted,
        "seconds": round(dt, 3),
        "notes_per_s": round(summary.accepted / dt, 1),
        "client_cpu_ms_per_note": round(cpu / max(1, summary.attempts) * 1000, 3),
        "ideal_notes_per_s": round(concurrency / latency, 1),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--overhead-notes", type=int, default=2000)
    ap.add_argument("--latency", type=float, default=0.2)
    ap.add_argument("--concurrency", default="1,16,64")
    ap.add_argument("--seconds", type=float, default=3.0, help="approximate duration of each throughput run")
    a = ap.parse_args()
    print(f"# load average: {os.getloadavg()}", flush=True)
    results = [bench_overhead(a.overhead_notes)]
    print(json.dumps(results[-1]), flush=True)
    proc, url = start_server(a.latency)
    try:
        asyncio.set_event_loop_policy(None)
        for c in (int(x) for x in a.concurrency.split(",")):
            results.append(bench_throughput(url, c, a.latency, a.seconds))
            print(json.dumps(results[-1]), flush=True)
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    print(f"# load average: {os.getloadavg()}", flush=True)


if __name__ == "__main__":
    main()
