"""Knowledge-graph build benchmark: full build time and triples/s, and the same N-Quads loaded into Oxigraph and
into rdflib's in-memory Dataset in this run (the ratio is the figure to compare; absolute times depend on the box).

Targets (issue #2): full build under 15 s on 2 cores; Oxigraph load at least 10x rdflib's.

    .venv/bin/python benchmarks/kg_build.py [--sources all]
"""

from __future__ import annotations

import argparse
import io
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sources", nargs="*", default=None, help="sources to build (default: the default set)")
    args = ap.parse_args()

    import rdflib
    from pyoxigraph import RdfFormat
    from pyoxigraph import Store as OxStore

    from medsyn.kg.build import build_kg
    from medsyn.kg.store import OxigraphStore

    console = Console()
    with tempfile.TemporaryDirectory(prefix="medsyn-bench-") as tmp:
        store_dir = Path(tmp) / "store"
        t0, c0 = time.perf_counter(), time.process_time()
        report = build_kg(store_dir, sources=args.sources, progress=False)
        build_s, build_cpu = time.perf_counter() - t0, time.process_time() - c0
        with OxigraphStore(store_dir) as s:
            nq = s.dump(format="nq")

        t0, c0 = time.perf_counter(), time.process_time()
        ox = OxStore(str(Path(tmp) / "load"))
        ox.bulk_load(nq, format=RdfFormat.N_QUADS)
        ox.flush()
        ox_s, ox_cpu = time.perf_counter() - t0, time.process_time() - c0
        ox_n = len(ox)
        del ox

        t0, c0 = time.perf_counter(), time.process_time()
        mem = OxStore()
        mem.load(nq, format=RdfFormat.N_QUADS)
        mem_s, mem_cpu = time.perf_counter() - t0, time.process_time() - c0
        del mem

        t0, c0 = time.perf_counter(), time.process_time()
        ds = rdflib.Dataset()
        ds.parse(io.BytesIO(nq), format="nquads")
        rdf_s, rdf_cpu = time.perf_counter() - t0, time.process_time() - c0
        rdf_n = len(list(ds.quads((None, None, None, None))))

    table = Table(title="medsyn kg build benchmark", width=110)
    # CPU seconds are reported beside wall seconds: the box is shared, so wall time includes other people's work.
    for col in ("measure", "wall s", "CPU s", "triples", "triples/s (wall)"):
        table.add_column(col, justify="right" if col != "measure" else "left")
    table.add_row(
        "full build (import + load + hash + counts)",
        f"{build_s:.2f}",
        f"{build_cpu:.2f}",
        f"{report.triples:,}",
        f"{report.triples / build_s:,.0f}",
    )
    for name, sec in report.source_seconds.items():
        table.add_row(f"  source {name}", f"{sec:.2f}", "", "", "")
    table.add_row(
        "load N-Quads: Oxigraph bulk_load (on disk)", f"{ox_s:.2f}", f"{ox_cpu:.2f}", f"{ox_n:,}", f"{ox_n / ox_s:,.0f}"
    )
    table.add_row(
        "load N-Quads: Oxigraph (in memory)", f"{mem_s:.2f}", f"{mem_cpu:.2f}", f"{ox_n:,}", f"{ox_n / mem_s:,.0f}"
    )
    table.add_row(
        "load N-Quads: rdflib Dataset (in memory)",
        f"{rdf_s:.2f}",
        f"{rdf_cpu:.2f}",
        f"{rdf_n:,}",
        f"{rdf_n / rdf_s:,.0f}",
    )
    console.print(table)
    console.print(
        f"Oxigraph vs rdflib load, in memory: {rdf_s / mem_s:.1f}x wall, {rdf_cpu / mem_cpu:.1f}x CPU; "
        f"on-disk bulk_load: {rdf_s / ox_s:.1f}x wall, {rdf_cpu / ox_cpu:.1f}x CPU (target >= 10x)"
    )
    console.print(f"full build: {build_s:.1f} s wall, {build_cpu:.1f} s CPU (target < 15 s)")


if __name__ == "__main__":
    main()
