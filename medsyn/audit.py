"""Provenance auditing: where a note came from, whether a generated set still matches its record, run summaries.

Everything here reads the store through the queries in ``sparql/audit/`` and the :class:`~medsyn.kg.store.Store`
protocol only, so it works the same on the embedded store and over a SPARQL endpoint (``--endpoint``).

``verify`` recomputes the sha256 of every note text in a generation directory (``notes.jsonl`` for accepted notes,
``failures.jsonl`` for rejected ones, as ``medsyn.generation.run_folder`` lays them out) and compares it with the
``ms:contentHash`` recorded at generation time.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pyoxigraph import NamedNode

from medsyn.errors import InputError, ParameterError
from medsyn.generation.run_folder import NOTE_STATUSES
from medsyn.jsonl import read_jsonl
from medsyn.kg.queries import run_named
from medsyn.kg.store import Store, to_python
from medsyn.kg.version import graph_version
from medsyn.kg.vocab import ID, MS, run_iri, synthetic_note_iri

NOTE_FILES = ("notes.jsonl", "failures.jsonl")
"""Files of a generation directory that hold note texts; ``failures.jsonl`` lines without a text are skipped."""


def note_ref(ref: str) -> NamedNode:
    """A synthetic note by id or full IRI."""
    ref = ref.strip()
    if not ref:
        raise InputError("empty note id")
    return NamedNode(ref) if ref.startswith(("http://", "https://")) else synthetic_note_iri(ref)


def run_ref(ref: str) -> NamedNode:
    ref = ref.strip()
    if not ref:
        raise InputError("empty run id")
    return NamedNode(ref) if ref.startswith(("http://", "https://")) else run_iri(ref)


def text_hash(text: str) -> str:
    """sha256 of a note text (UTF-8), hex, as recorded in ``ms:contentHash``."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _bare(h: str) -> str:
    # Tolerate an algorithm prefix ("sha256:...") in either place.
    return h.split(":", 1)[1] if h.startswith("sha256:") else h


def _py(row: dict[str, Any]) -> dict[str, Any]:
    return {k: to_python(v) for k, v in row.items()}


# ------------------------------------------------------------------------------------------------ lineage


@dataclass
class Lineage:
    note: str
    graph: str
    facts: dict[str, Any]
    symptoms: list[dict[str, Any]]
    current_graph_version: str | None

    def to_json(self) -> dict[str, Any]:
        return {
            "note": self.note,
            "graph": self.graph,
            **self.facts,
            "symptoms": self.symptoms,
            "current_graph_version": self.current_graph_version,
        }


def note_lineage(store: Store, ref: str) -> Lineage:
    """The recorded lineage of one synthetic note; InputError when the store has no record of it."""
    note = note_ref(ref)
    rows = run_named(store, "audit/note_lineage", note=note)
    if not rows:
        raise InputError(f"no provenance for note {ref!r} (looked for {note.value})")
    facts = _py(rows[0])
    graph = facts.pop("g")
    symptoms: dict[str, dict[str, Any]] = {}
    for r in run_named(store, "audit/note_symptoms", note=note):
        row = _py(r)
        s = symptoms.setdefault(
            row["symptom"],
            {
                "symptom": row["symptom"],
                "label": row.get("label") or row.get("replacementLabel"),
                "replaced_by": row.get("replacement"),
                "sources": [],
            },
        )
        if "source" in row:
            src = {"source": row["source"], "label": row.get("sourceLabel"), "weight": row.get("weight")}
            if src not in s["sources"]:
                s["sources"].append(src)
    return Lineage(note.value, graph, facts, list(symptoms.values()), graph_version(store))


# ------------------------------------------------------------------------------------------------ verify


@dataclass
class VerifyReport:
    folder: str
    runs: list[str]
    checked: int = 0
    ok: int = 0
    altered: list[dict[str, str]] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    unrecorded: list[str] = field(default_factory=list)

    @property
    def failed(self) -> bool:
        return bool(self.altered or self.missing or self.unrecorded)

    def to_json(self) -> dict[str, Any]:
        return {
            "folder": self.folder,
            "runs": self.runs,
            "checked": self.checked,
            "ok": self.ok,
            "altered": self.altered,
            "missing": self.missing,
            "unrecorded": self.unrecorded,
            "failed": self.failed,
        }


def read_note_texts(folder: str | Path) -> tuple[dict[str, str], set[str]]:
    """Note id -> text of a generation directory (or one JSONL file), and the run ids the lines name.

    Failed attempts (no text, or a status other than accepted/rejected) are skipped; a malformed line or a
    repeated id is an InputError
    naming file and line.
    """
    p = Path(folder)
    files = [p] if p.is_file() else [p / n for n in NOTE_FILES if (p / n).is_file()]
    if not files:
        raise InputError(f"no {' or '.join(NOTE_FILES)} here", path=p)
    texts: dict[str, str] = {}
    runs: set[str] = set()
    for f in files:
        for lineno, rec in read_jsonl(f):
            if not isinstance(rec.get("id"), str):
                raise InputError("expected a string 'id'", path=f, line=lineno)
            text = rec.get("response")
            # Empty, truncated or refused replies are failed attempts, not notes: they never get provenance.
            if not isinstance(text, str) or rec.get("status") not in (None, *NOTE_STATUSES):
                continue
            if rec["id"] in texts:
                raise InputError(f"note id {rec['id']!r} appears twice", path=f, line=lineno)
            texts[rec["id"]] = text
            if isinstance(rec.get("run_id"), str):
                runs.add(rec["run_id"])
    return texts, runs


def verify(store: Store, folder: str | Path, *, run: str | None = None) -> VerifyReport:
    """Compare a generated set with its provenance: altered, missing and unrecorded notes.

    The runs compared are ``run``, else those the directory names (``run.json``, ``run_id`` fields), else the
    runs that recorded any of the directory's note ids.
    """
    texts, named = read_note_texts(folder)
    run_json = Path(folder) / "run.json"
    if run is None and run_json.is_file():
        try:
            rid = json.loads(run_json.read_text(encoding="utf-8")).get("run_id")
        except (json.JSONDecodeError, AttributeError):
            raise InputError("invalid JSON", path=run_json) from None
        if isinstance(rid, str):
            named.add(rid)
    wanted = {run_ref(run).value} if run else {run_ref(r).value for r in named}
    recorded: dict[str, tuple[str, str]] = {}  # note id -> (run, hash)
    for r in run_named(store, "audit/note_hashes", **({"run": run_ref(run)} if run else {})):
        recorded[str(r["noteId"].value)] = (r["run"].value, str(r["hash"].value) if "hash" in r else "")
    if not wanted:
        wanted = {recorded[i][0] for i in texts if i in recorded}
    in_scope = {i: v for i, v in recorded.items() if v[0] in wanted}
    report = VerifyReport(str(folder), sorted(wanted), checked=len(texts))
    for nid, text in sorted(texts.items()):
        if nid not in in_scope:
            report.unrecorded.append(nid)
            continue
        want, have = _bare(in_scope[nid][1]), text_hash(text)
        if want == have:
            report.ok += 1
        else:
            report.altered.append({"id": nid, "recorded": want, "actual": have})
    report.missing = sorted(set(in_scope) - set(texts))
    return report


# ------------------------------------------------------------------------------------------------ runs, sources


@dataclass
class RunSummary:
    run: str
    facts: dict[str, Any]
    notes: int
    accepted: int
    models: dict[str, int]
    codes: dict[str, int]
    cost_usd: float | None

    @property
    def acceptance_rate(self) -> float:
        return self.accepted / self.notes if self.notes else 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "run": self.run,
            **self.facts,
            "notes": self.notes,
            "accepted": self.accepted,
            "acceptance_rate": self.acceptance_rate,
            "models": self.models,
            "codes_covered": len(self.codes),
            "codes": self.codes,
            "cost_usd": self.cost_usd,
        }


def run_summary(store: Store, ref: str) -> RunSummary:
    run = run_ref(ref)
    rows = run_named(store, "audit/run", run=run)
    if not rows:
        known = [r["run"].value.removeprefix(ID + "run/") for r in run_named(store, "audit/runs")]
        raise InputError(f"no generation run {ref!r} in the store (known: {', '.join(known[:10]) or 'none'})")
    facts = _py(rows[0])
    notes: dict[str, dict[str, Any]] = {}
    for r in run_named(store, "audit/run_notes", run=run):
        row = _py(r)
        notes.setdefault(row["note"], row)
    accepted = sum(1 for n in notes.values() if n.get("accepted"))
    models = Counter(f"{n.get('backend', '?')}/{n.get('model', '?')}" for n in notes.values())
    codes = Counter(
        n.get("notation") or str(n.get("code", "?")).rsplit("/", 1)[-1] for n in notes.values() if n.get("accepted")
    )
    per_note = [n["cost"] for n in notes.values() if n.get("cost") is not None]
    cost = facts.get("cost")
    if cost is None and per_note:
        cost = float(sum(per_note))
    return RunSummary(run.value, facts, len(notes), accepted, dict(models), dict(sorted(codes.items())), cost)


def list_runs(store: Store) -> list[dict[str, Any]]:
    return [_py(r) for r in run_named(store, "audit/runs")]


def sources_summary(store: Store, *, run: str | None = None) -> list[dict[str, Any]]:
    """Knowledge sources with the number of notes (and distinct symptoms) they contributed to."""
    params = {"run": run_ref(run)} if run else {}
    return [_py(r) for r in run_named(store, "audit/sources", **params)]


# ------------------------------------------------------------------------------------------------ PROV export

PROV_FORMATS = ("provn", "provjson", "ttl")


def export_prov(store: Store, ref: str, *, fmt: str = "provn") -> str:
    """A run's named graph as a W3C PROV document, read and written by the ``prov`` package (PROV-N, PROV-JSON or
    Turtle): what a PROV tool sees of the run without a reasoner."""
    if fmt not in PROV_FORMATS:
        raise ParameterError(f"{{fmt}} must be one of {', '.join(PROV_FORMATS)}, got {fmt!r}")
    run = run_ref(ref)
    rows = run_named(store, "audit/run", run=run)
    if not rows:
        known = [r["run"].value.removeprefix(ID + "run/") for r in run_named(store, "audit/runs")]
        raise InputError(f"no generation run {ref!r} in the store (known: {', '.join(known[:10]) or 'none'})")
    from prov.model import ProvDocument  # local: only this command needs the prov package (and its rdflib reader)

    data = store.dump(format="nt", graph=rows[0]["g"]).decode("utf-8")
    doc = ProvDocument.deserialize(content=data, format="rdf", rdf_format="nt")
    for prefix, ns in (("ms", MS), ("medsyn", ID), ("xsd", "http://www.w3.org/2001/XMLSchema#")):
        doc.add_namespace(prefix, ns)
    if fmt == "provjson":
        return str(doc.serialize(format="json", indent=1))
    if fmt == "ttl":
        return str(doc.serialize(format="rdf", rdf_format="turtle"))
    return str(doc.serialize(format="provn"))


def rerecord(store: Store, folder: str | Path) -> tuple[str, int]:
    """Write a generate folder's provenance again from its run.json and JSONL files: (run id, notes recorded).

    Quads are a pure function of those records (:mod:`medsyn.generation.provenance`), so this is idempotent; on a run
    recorded by an older MedSyn it adds what the current layout has and the old one lacked (plain ``prov:used``,
    ``prov:wasDerivedFrom``, the qualified association, ``prov:Agent``, the graph build), which the SHACL shapes of
    ``kg validate`` ask for. The files are only read.
    """
    from medsyn.generation.provenance import RunInfo, add_notes, start_run
    from medsyn.generation.run_folder import FAILURES_FILE, RUN_FILE
    from medsyn.generation.run_folder import NOTES_FILE as NOTES

    d = Path(folder)
    path = d / RUN_FILE
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
        ident = doc["identity"]
        run = RunInfo(
            run_id=doc["run_id"],
            started=doc["created"],
            seed=int(ident["seed"]),
            parameters=doc["parameters"],
            backend=ident["backend"],
            model=ident["model"],
            adapter_hash=ident.get("adapter_hash"),
            template_name=ident["template"],
            template_hash=ident["template_hash"],
            graph_version=doc["graph_version"],
        )
    except OSError:
        raise InputError(f"not a medsyn generate folder (no {RUN_FILE})", path=d) from None
    except (ValueError, KeyError, TypeError) as exc:
        raise InputError(f"not a run file of medsyn generate ({type(exc).__name__}: {exc})", path=path) from None
    records = []
    for name in (NOTES, FAILURES_FILE):
        f = d / name
        if f.is_file():
            for lineno, rec in read_jsonl(f):
                if rec.get("run_id") != run.run_id:
                    raise InputError(f"record of another run ({rec.get('run_id')!r})", path=f, line=lineno)
                if rec.get("status") in NOTE_STATUSES and rec.get("content_hash"):
                    records.append(rec)
    start_run(store, run)
    return run.run_id, add_notes(store, run, records)
