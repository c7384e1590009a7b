"""Build the knowledge graph from the real data into an Oxigraph store, atomically.

The graph is built into a fresh directory beside the target and swapped in by renames only when every source
imported cleanly, so a failed build leaves the previous store as it was. The version of a build is a sha256 over
the sorted canonical N-Quads of every graph except ``graph/meta`` (which holds the version and a timestamp).
In a notebook (the tests build the same graph)::

    report = build_kg(".medsyn/store")
    report.version, report.class_counts["ICD10Category"]   # ('sha256:…', 2058)
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import shutil
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from pyoxigraph import BlankNode, CanonicalizationAlgorithm, Dataset, Literal, Quad, RdfFormat, parse

from medsyn.atomic import BUILDING, sibling, swap_dir, writable_folder
from medsyn.errors import InputError, StoreError
from medsyn.kg.importers import resolve, source_spec
from medsyn.kg.importers._common import BuildContext, integer
from medsyn.kg.store import OxigraphStore, corrupt_store_error, lock_file, recover
from medsyn.kg.vocab import (
    META_GRAPH,
    ONTOLOGY_GRAPH,
    RDF_TYPE,
    build_iri,
    is_knowledge_graph,
    ms,
    prov,
    source_iri,
    xsd,
)
from medsyn.locks import hold
from medsyn.paths import ONTOLOGY_DIR, data_dir

ONTOLOGY_FILE = ONTOLOGY_DIR / "medsyn.ttl"
_Step = Callable[[str], None]


@dataclass
class BuildReport:
    """What a build produced: version, counts per class and per named graph, dropped facts, time."""

    store: Path
    version: str
    sources: list[str]
    triples: int
    seconds: float
    class_counts: dict[str, int] = field(default_factory=dict)
    graph_counts: dict[str, int] = field(default_factory=dict)
    skipped: dict[str, int] = field(default_factory=dict)
    source_seconds: dict[str, float] = field(default_factory=dict)
    kept_quads: int = 0
    """Provenance and curation-record quads carried over from the store this build replaced."""
    dropped_quads: int = 0
    """The same, dropped on request (``discard_provenance``)."""

    @property
    def triples_per_second(self) -> float:
        return self.triples / self.seconds if self.seconds else 0.0


def build_kg(
    store_path: str | Path,
    *,
    data: Path | None = None,
    sources: Sequence[str] | None = None,
    progress: bool = True,
    discard_provenance: bool = False,
) -> BuildReport:
    """Build the MKG from ``data`` (default: the shared data folder) into ``store_path``, replacing it atomically.

    ``sources``: names from :data:`medsyn.kg.importers.SOURCES`, ``"all"`` or ``None`` for the defaults (all but the
    non-commercial ``sider4``). Raises InputError for bad source files and StoreError for a locked or unwritable
    store; in both cases the existing store is untouched. The run provenance and curation record of an existing
    store are carried into the new one unless ``discard_provenance``.
    """
    started = time.perf_counter()
    data = Path(data) if data is not None else data_dir()
    if not data.is_dir():
        raise InputError("data folder not found (set MEDSYN_DATA or pass --data)", path=data)
    names = resolve(sources)
    target = Path(store_path)
    _check_target(target)
    # The store's lock is held from the first check to the swap: no server or curation can open the old store
    # while its successor is being built and renamed over it.
    with hold(lock_file(target), f"store {target}"):
        recover(target)
        history = _history(target)
        kept = [] if discard_provenance else history
        tmp = sibling(target, BUILDING)
        try:
            with _progress(progress, len(names) + 4) as step:
                report = _build_into(tmp, data, names, step, kept)
                report.dropped_quads = len(history) - len(kept)
                step("swapping in the new store")
                swap_dir(tmp, target)
                step("done")
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    report.store = target
    report.seconds = time.perf_counter() - started
    return report


def _history(target: Path) -> list[Quad]:
    """The provenance (``graph/run/*``) and curation record of the store being replaced, to carry over.

    A rebuild replaces knowledge, not history: ``audit verify`` must still find every note's run afterwards.
    """
    if not target.is_dir() or not (target / "CURRENT").is_file():
        return []
    old = OxigraphStore(target, read_only=True, lock=False)
    try:
        graphs = [g for g in old.named_graphs() if not is_knowledge_graph(g)]
        quads = [q for g in graphs for q in old.raw.quads_for_pattern(None, None, None, g)]
    except RuntimeError as exc:
        raise corrupt_store_error(target, exc) from None
    finally:
        old.close()
    return quads


def content_hash(quads: Iterator[Quad]) -> str:
    """sha256 over sorted canonical N-Quads, ``graph/meta`` left out.

    Blank nodes (the TBox's ``owl:AllDisjointClasses`` axioms) are relabelled by RDFC-1.0 canonicalisation, so two
    loads of the same file hash the same. Only quads that mention a blank node take part in canonicalisation: their
    canonical labels depend on those quads alone.
    """
    lines: list[str] = []
    with_bnodes = Dataset()
    for q in quads:
        if q.graph_name == META_GRAPH:
            continue
        if isinstance(q.subject, BlankNode) or isinstance(q.object, BlankNode):
            with_bnodes.add(q)
        else:
            lines.append(str(q))
    if len(with_bnodes):
        with_bnodes.canonicalize(CanonicalizationAlgorithm.RDFC_1_0)
        lines += [str(q) for q in with_bnodes]
    lines.sort()
    h = hashlib.sha256()
    for line in lines:
        h.update(line.encode("utf-8"))
        h.update(b" .\n")
    return "sha256:" + h.hexdigest()


# ------------------------------------------------------------------------------------------------ internals


def _build_into(tmp: Path, data: Path, names: list[str], step: _Step, kept: list[Quad]) -> BuildReport:
    from medsyn.kg.stats import class_counts, graph_counts

    store = OxigraphStore(tmp, lock=False)  # a private folder: the target's lock covers it
    try:
        step("ontology")
        try:
            quads = [
                Quad(q.subject, q.predicate, q.object, ONTOLOGY_GRAPH)
                for q in parse(path=str(ONTOLOGY_FILE), format=RdfFormat.TURTLE)
            ]
        except SyntaxError as exc:
            raise InputError(f"TBox syntax error: {exc}", path=ONTOLOGY_FILE) from None
        ctx = BuildContext(data=data)
        timings: dict[str, float] = {}
        for name in names:
            step(f"source {name}")
            t0 = time.perf_counter()
            quads += source_spec(name).loader()(ctx)
            timings[name] = time.perf_counter() - t0
        step("writing the store")
        # One bulk write: each bulk_extend call writes and ingests its own SST files, a fixed cost per call.
        try:
            store.raw.bulk_extend(quads)
        except OSError as exc:
            raise StoreError(f"cannot write {tmp}: {exc}") from None
        del quads
        step("content hash and counts")
        version = content_hash(store.raw.quads_for_pattern(None, None, None, None))
        triples = len(store)
        store.add_quads(_meta_quads(version, triples, names))
        if kept:  # after the hash: history is not part of the build's version
            store.add_quads(kept)
        report = BuildReport(
            store=tmp,
            version=version,
            sources=names,
            triples=triples,
            seconds=0.0,
            class_counts=class_counts(store),
            graph_counts=graph_counts(store),
            skipped=dict(sorted(ctx.skipped.items())),
            source_seconds=timings,
            kept_quads=len(kept),
        )
        store.flush()
        return report
    finally:
        store.close()


def _meta_quads(version: str, triples: int, names: list[str]) -> list[Quad]:
    g = META_GRAPH
    b = ms("KnowledgeGraphBuild")
    node = build_iri(version)
    now = dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")
    quads = [
        Quad(node, RDF_TYPE, b, g),
        Quad(node, ms("contentHash"), Literal(version), g),
        Quad(node, ms("tripleCount"), integer(triples), g),
        Quad(node, prov("generatedAtTime"), Literal(now, datatype=xsd("dateTime")), g),
    ]
    for n in names:
        quads += [Quad(node, prov("used"), source_iri(n), g), Quad(node, ms("sourceName"), Literal(n), g)]
    return quads


def _check_target(target: Path) -> None:
    """Refuse early (before minutes of work) a target that is a file, a foreign folder, locked or unwritable."""
    writable_folder(target.parent, "the folder of store")
    if target.exists():
        if not target.is_dir():
            raise StoreError(f"{target} exists and is not a store directory")
        if any(target.iterdir()) and not (target / "CURRENT").is_file():
            raise StoreError(f"{target} is a non-empty folder that is not an Oxigraph store; refusing to replace it")
        # Opening read-write takes the store's locks (ours and RocksDB's): this fails now if a server, another
        # CLI or an `oxigraph serve` holds it.
        OxigraphStore(target).close()


@contextlib.contextmanager
def _progress(enabled: bool, total: int) -> Iterator[_Step]:
    if not enabled:
        yield lambda label: None
        return
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(
        TextColumn("[bold]kg build[/]"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TextColumn("{task.description}"),
        TimeElapsedColumn(),
        transient=False,
    ) as bar:
        task = bar.add_task("starting", total=total)
        first = True

        def step(label: str) -> None:
            nonlocal first
            if not first:
                bar.advance(task)
            first = False
            bar.update(task, description=label)

        yield step
        bar.update(task, completed=total)
