"""Samples per second through the full path (SPARQL queries + sampling), Oxigraph against rdflib, in one run.

Both backends run the same code (``medsyn.sampling.draw_samples``) and the same ``sparql/sampling/*.rq`` queries
over the same triples; only the store differs. The run checks that both give identical samples.

    .venv/bin/python benchmarks/sampling.py --n 20000
    .venv/bin/python benchmarks/sampling.py --store .medsyn/store --strategy softmax

Without ``--store`` the graph holds the real WikiMed symptom map and RuMedTop3 train notes, written to the data
model by ``tests/sampling_graph.py`` (about 58k triples) into an on-disk Oxigraph store.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import rdflib
from pyoxigraph import BlankNode, Literal, NamedNode
from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from medsyn.paths import data_dir  # noqa: E402
from medsyn.sampling import draw_samples  # noqa: E402
from medsyn.store import Bindings, OxigraphStore, bind_query  # noqa: E402
from medsyn.strategies.tables import load_tables  # noqa: E402


class RdflibStore:
    """The query side of medsyn.store.Store over an rdflib Dataset (default graph = union of the named graphs)."""

    def __init__(self, nquads: bytes) -> None:
        self.ds = rdflib.Dataset(default_union=True)
        self.ds.parse(data=nquads, format="nquads")

    def query(self, sparql: str, *, bindings: Bindings | None = None, union: bool = True) -> Any:
        if bindings:
            sparql = bind_query(sparql, bindings)
        result = self.ds.query(sparql)
        if result.type == "ASK":
            return bool(result.askAnswer)
        names = [str(v) for v in result.vars]
        return [{n: _term(row[i]) for i, n in enumerate(names) if row[i] is not None} for row in result]


def _term(t: Any) -> Any:
    if isinstance(t, rdflib.URIRef):
        return NamedNode(str(t))
    if isinstance(t, rdflib.BNode):
        return BlankNode(str(t))
    if t.language:
        return Literal(str(t), language=t.language)
    return Literal(str(t), datatype=NamedNode(str(t.datatype))) if t.datatype else Literal(str(t))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=20_000)
    ap.add_argument("--strategy", default="paper")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--store", type=Path, help="an existing store built by `medsyn kg build`")
    args = ap.parse_args()
    console = Console()

    with tempfile.TemporaryDirectory() as tmp:
        if args.store:
            ox = OxigraphStore(args.store, read_only=True)
            graph = str(args.store)
        else:
            from sampling_graph import real_graph

            path = Path(tmp) / "store"
            with OxigraphStore(path) as w:
                real_graph(data_dir()).into(w)
            ox = OxigraphStore(path, read_only=True)
            graph = "WikiMed symptoms + RuMedTop3 train notes"
        nquads = ox.dump(format="nq")
        quads = nquads.count(b"\n")
        console.print(f"graph: {graph}, {quads:,} quads; n = {args.n:,}, strategy {args.strategy}")
        with console.status("loading rdflib"):
            rd = RdflibStore(nquads)

        rows = []
        results = {}
        for name, store in (("oxigraph", ox), ("rdflib", rd)):
            with console.status(f"sampling with {name}"):
                t0 = time.perf_counter()
                tables = load_tables(
                    store,
                    cache=False,
                    weighted_source="hsdn" if args.strategy == "softmax" else None,
                    drugs=args.strategy == "softmax",
                )
                t_tables = time.perf_counter() - t0
                t0 = time.perf_counter()
                samples = draw_samples(store, n=args.n, strategy=args.strategy, seed=args.seed, cache=False)
                t_full = time.perf_counter() - t0
                t0 = time.perf_counter()
                draw_samples(tables, n=args.n, strategy=args.strategy, seed=args.seed)
                t_sampling = time.perf_counter() - t0
            results[name] = samples
            rows.append((name, t_tables, t_sampling, t_full))
        with contextlib.suppress(RuntimeError):
            ox.close()

    base = rows[0][3]
    table = Table(title=f"Sampling throughput, {args.n:,} samples ({args.strategy}), full path = queries + sampling")
    for col in ("backend", "queries s", "sampling s", "full path s", "samples/s (full)", "slower than oxigraph"):
        table.add_column(col, justify="left" if col == "backend" else "right")
    for name, tq, ts, tf in rows:
        table.add_row(name, f"{tq:.3f}", f"{ts:.3f}", f"{tf:.3f}", f"{args.n / tf:,.0f}", f"{tf / base:.1f}x")
    console.print(table)
    same = results["oxigraph"] == results["rdflib"]
    console.print(f"identical samples from both stores: {same}")
    if not same:
        sys.exit(1)


if __name__ == "__main__":
    main()
