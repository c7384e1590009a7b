"""Queries per second of `medsyn serve` against the Oxigraph server, same sampling query, same store, one run.

    .venv/bin/python benchmarks/endpoint.py [--store DIR] [--seconds 8] [--clients 4]

Without --store the real knowledge graph is built from the shared data (about 20 s). Both servers get an identical
copy of the store, the same query (sparql/sampling/code_symptoms.rq, as the samplers run it, and the one-code variant
a single sample needs), the same Accept header and union-default-graph parameter, and the same client processes
(keep-alive connections). Prints qps for each and the ratio medsyn/oxigraph (target: at least 0.5).
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import shutil
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from medsyn.queries import load_query  # noqa: E402
from medsyn.store import bind_query  # noqa: E402
from medsyn.testing.servers import medsyn_server, oxigraph_server  # noqa: E402
from medsyn.vocab import code_iri, source_iri  # noqa: E402

ACCEPT = {"Accept": "application/sparql-results+json"}


def _client(url: str, query: str, seconds: float, out: mp.Queue) -> None:  # type: ignore[type-arg]
    done = errors = 0
    with httpx.Client(timeout=60) as client:
        deadline = time.perf_counter() + seconds
        while time.perf_counter() < deadline:
            r = client.post(url, data={"query": query, "union-default-graph": "true"}, headers=ACCEPT)
            if r.status_code == 200:
                done += 1
            else:
                errors += 1
    out.put((done, errors))


def measure(url: str, query: str, *, seconds: float, clients: int) -> float:
    """Requests per second over ``seconds`` with ``clients`` processes (no shared GIL with the server or each other)."""
    with httpx.Client(timeout=60) as warm:
        for _ in range(3):
            warm.post(url, data={"query": query, "union-default-graph": "true"}, headers=ACCEPT).raise_for_status()
    out: mp.Queue = mp.Queue()  # type: ignore[type-arg]
    procs = [mp.Process(target=_client, args=(url, query, seconds, out)) for _ in range(clients)]
    started = time.perf_counter()
    for p in procs:
        p.start()
    results = [out.get(timeout=seconds + 120) for _ in procs]
    for p in procs:
        p.join()
    elapsed = time.perf_counter() - started
    errors = sum(e for _, e in results)
    if errors:
        raise SystemExit(f"{url}: {errors} failed requests")
    return sum(d for d, _ in results) / elapsed


def rows(url: str, query: str) -> list[str]:
    r = httpx.post(url, data={"query": query, "union-default-graph": "true"}, headers=ACCEPT, timeout=60)
    r.raise_for_status()
    return sorted(str(sorted(b.items())) for b in r.json()["results"]["bindings"])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--store", type=Path, help="an existing store (copied; default: build the real KG)")
    ap.add_argument("--seconds", type=float, default=8.0)
    ap.add_argument("--clients", type=int, default=4)
    args = ap.parse_args()

    with tempfile.TemporaryDirectory(prefix="medsyn-bench-") as tmp:
        base = Path(tmp)
        if args.store:
            shutil.copytree(args.store, base / "a")
        else:
            from medsyn.build import build_kg

            t = time.perf_counter()
            build_kg(base / "a", progress=False)
            print(f"built the knowledge graph in {time.perf_counter() - t:.0f} s")
        shutil.copytree(base / "a", base / "b")  # a closed RocksDB directory copies as an identical store

        text = load_query("sampling/code_symptoms")
        queries = {
            "code_symptoms(wikimed)": bind_query(text, {"source": source_iri("wikimed")}),
            "code_symptoms(wikimed, M54.5)": bind_query(
                text, {"source": source_iri("wikimed"), "code": code_iri("M54.5")}
            ),
        }
        with (
            medsyn_server(base / "a", extra_args=["--quiet"], log_path=base / "medsyn.log") as ms,
            oxigraph_server(base / "b", log_path=base / "oxigraph.log") as ox,
        ):
            print(f"clients: {args.clients} processes, {args.seconds:g} s per measurement, keep-alive, JSON results")
            ratios = []
            for name, query in queries.items():
                answer = rows(ms.query_url, query)
                if answer != rows(ox.query_url, query):
                    raise SystemExit(f"{name}: the two servers disagree")
                # Alternate the order so neither server always runs on a warmer machine.
                ox_qps = measure(ox.query_url, query, seconds=args.seconds, clients=args.clients)
                ms_qps = measure(ms.query_url, query, seconds=args.seconds, clients=args.clients)
                ox_qps = (ox_qps + measure(ox.query_url, query, seconds=args.seconds, clients=args.clients)) / 2
                ratio = ms_qps / ox_qps
                ratios.append(ratio)
                print(
                    f"{name:32s} {len(answer):5d} rows  oxigraph {ox_qps:8.1f} q/s  medsyn serve {ms_qps:8.1f} q/s  "
                    f"ratio {ratio:.2f}x"
                )
            # Informational: a trivial query measures protocol overhead alone (Python HTTP vs Rust HTTP).
            ask = "ASK { ?s ?p ?o }"
            ox_qps = measure(ox.query_url, ask, seconds=args.seconds, clients=args.clients)
            ms_qps = measure(ms.query_url, ask, seconds=args.seconds, clients=args.clients)
            print(
                f"{'ASK (overhead only, no target)':32s} {1:5d} rows  oxigraph {ox_qps:8.1f} q/s  "
                f"medsyn serve {ms_qps:8.1f} q/s  ratio {ms_qps / ox_qps:.2f}x"
            )
            verdict = "meets" if min(ratios) >= 0.5 else "MISSES"
            print(f"lowest sampling-query ratio {min(ratios):.2f}x: {verdict} the 0.5x target")


if __name__ == "__main__":
    main()
