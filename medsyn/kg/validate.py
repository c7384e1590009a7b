"""Validation of a built graph: SPARQL checks that must return no rows, and OWL consistency by HermiT.

The checks live in ``sparql/checks/*.rq`` (a leading comment says what each catches), in the manner of ROBOT's
``verify``. Other modules (curation) call :func:`run_checks` after a change.

>>> from medsyn.kg.store import OxigraphStore
>>> s = OxigraphStore.in_memory()
>>> s.update('INSERT DATA { GRAPH <urn:g> { <urn:b> a <https://w3id.org/medsyn/ontology#ICD10Block> } }')
>>> [r["code"].value for r in run_checks(s)["code_without_parent"]]
['urn:b']
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from pyoxigraph import NamedNode

from medsyn.kg.queries import list_queries, run_named
from medsyn.kg.store import Row, Store
from medsyn.kg.vocab import GRAPH, ICD10_GRAPH, ONTOLOGY_GRAPH
from medsyn.paths import ONTOLOGY_DIR

CHECKS_DIR = "checks"


def check_names() -> list[str]:
    """Names of the checks (file stems in ``sparql/checks``), sorted."""
    return [n.split("/", 1)[1] for n in list_queries(CHECKS_DIR)]


def run_checks(
    store: Store, names: Sequence[str] | None = None, *, on_check: Callable[[str], None] | None = None
) -> dict[str, list[Row]]:
    """Run every check (or ``names``); maps each check to its offending rows (empty list = passed). ``on_check`` is
    told each check's name as it starts (a progress line)."""
    results: dict[str, list[Row]] = {}
    for n in names or check_names():
        if on_check is not None:
            on_check(n)
        results[n] = run_named(store, f"{CHECKS_DIR}/{n}")
    return results


@dataclass(frozen=True)
class Consistency:
    """Result of the OWL reasoner over the TBox plus the ICD-10 hierarchy."""

    consistent: bool
    seconds: float
    axioms: int
    message: str = ""

    def summary(self) -> str:
        state = "consistent" if self.consistent else "INCONSISTENT"
        detail = f": {self.message}" if self.message else ""
        return f"OWL (HermiT): {state} ({self.axioms:,} triples, {self.seconds:.1f} s){detail}"


def reason(source: Store | Sequence[str | Path]) -> Consistency:
    """Load the ontology and ICD-10 graphs (from a store, or RDF files) into owlready2 and run HermiT.

    Needs a Java runtime (HermiT is a Java program). Inconsistency is a result, not an exception.
    """
    import owlready2  # local: owlready2 import is slow and only validation needs it

    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="medsyn-owl-") as tmp:
        files = _as_files(source, Path(tmp))
        world = owlready2.World()
        try:  # closed also when a file fails to load
            for f in files:
                world.get_ontology(f.resolve().as_uri()).load()
            triples = len(world.graph)
            try:
                with world.get_ontology("http://medsyn.invalid/inferred#"):
                    owlready2.sync_reasoner_hermit(world, infer_property_values=False, debug=0)
            except owlready2.OwlReadyInconsistentOntologyError as exc:
                return Consistency(False, time.perf_counter() - started, triples, _first_line(exc))
            except (owlready2.OwlReadyJavaError, FileNotFoundError, OSError) as exc:
                from medsyn.errors import ValidationError

                msg = f"the OWL reasoner could not run (is Java installed?): {_first_line(exc)}"
                raise ValidationError(msg) from None
        finally:
            world.close()
    return Consistency(True, time.perf_counter() - started, triples)


def _as_files(source: Store | Sequence[str | Path], tmp: Path) -> list[Path]:
    if isinstance(source, Store):
        out = []
        for name, g in (("ontology", ONTOLOGY_GRAPH), ("icd10", ICD10_GRAPH)):
            p = tmp / f"{name}.nt"
            p.write_bytes(source.dump(format="nt", graph=g))
            out.append(p)
        return out
    return [Path(p) for p in source]


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:300] if text else type(exc).__name__


# ------------------------------------------------------------------------------------------------ SHACL, provenance
RUN_GRAPH_PREFIX = GRAPH + "run/"


@dataclass(frozen=True)
class ShaclReport:
    """SHACL shapes (``ontology/shapes.ttl``) run on the provenance graphs: one line per violation."""

    graphs: int
    triples: int
    problems: list[str]
    seconds: float

    @property
    def conforms(self) -> bool:
        return not self.problems

    def summary(self) -> str:
        state = "conforms" if self.conforms else f"{len(self.problems)} violation(s)"
        return (
            f"SHACL (provenance, {self.graphs} run graph(s), {self.triples:,} triples): {state} ({self.seconds:.1f} s)"
        )


SHAPES_FILE = ONTOLOGY_DIR / "shapes.ttl"


@lru_cache(maxsize=1)
def shapes_graph() -> Any:
    """The SHACL shapes of ``ontology/shapes.ttl`` (an rdflib graph, parsed once): ``kg validate`` runs them on the
    provenance, a curation change set on the graphs it touches."""
    import rdflib

    return rdflib.Graph().parse(SHAPES_FILE, format="turtle")


def validate_provenance(store: Store, graphs: Sequence[NamedNode] | None = None) -> ShaclReport:
    """Run the SHACL shapes on the run graphs (``graph/run/*``, or ``graphs``) as they are, without the TBox or a
    reasoner: the shapes ask for the explicit PROV-O types and relations that a PROV consumer reads."""
    import pyshacl
    import rdflib

    started = time.perf_counter()
    chosen = (
        list(graphs)
        if graphs is not None
        else [g for g in store.named_graphs() if g.value.startswith(RUN_GRAPH_PREFIX)]
    )
    data = rdflib.Graph()
    for g in chosen:
        data.parse(data=store.dump(format="nt", graph=g).decode("utf-8"), format="nt")
    if not len(data):
        return ShaclReport(len(chosen), 0, [], time.perf_counter() - started)
    _, results, _ = pyshacl.validate(data, shacl_graph=shapes_graph(), inference="none", allow_warnings=True)
    sh = rdflib.Namespace("http://www.w3.org/ns/shacl#")
    problems = []
    for r in results.subjects(rdflib.RDF.type, sh.ValidationResult):
        focus, path, msg, comp = (
            results.value(r, p) for p in (sh.focusNode, sh.resultPath, sh.resultMessage, sh.sourceConstraintComponent)
        )
        what = str(msg) if msg is not None else str(comp).rsplit("#", 1)[-1]
        problems.append(f"{focus}: {what}" + (f" (path {path})" if path is not None else ""))
    return ShaclReport(len(chosen), len(data), sorted(problems), time.perf_counter() - started)
