"""PROV-O provenance of generated notes, exactly as laid out in ``docs/data-model.md``.

Everything of a run lives in its named graph ``graph/run/<run_id>``: the run activity, the model agent, the prompt
template plan, and per note the ``ms:SyntheticNote`` entity and its ``ms:NoteGeneration`` activity. What every note
of a run shares (the model agent, the template, the graph build and its version, the qualified association) is stated
once, on the run; a note generation reaches it through ``prov:wasInformedBy``. Only a note drawn from another graph
version than the run's states its own version and build. At the paper's scale (41k notes) this keeps a note to ~35
quads instead of ~45 (``benchmarks/paper_scale.py``). Quads are a
pure function of the run record and the note records of the output JSONL, so re-adding them after a crash is
idempotent (an RDF store holds a set of quads).

Notes the quality filter rejected are recorded too, with ``ms:accepted false`` and ``ms:rejectionReason``; replies
that are not notes at all (empty, truncated, refused, transport errors) get no provenance, only a failures line.

>>> run = RunInfo(run_id="r1", started="2024-01-01T00:00:00+00:00", seed=1, parameters={}, backend="openai",
...               model="gpt-4", adapter_hash=None, template_name="paper_ru", template_hash="ab", graph_version="v1")
>>> any(q.predicate.value.endswith("wasAssociatedWith") for q in run_quads(run))
True
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pyoxigraph import Literal, NamedNode, Quad

from medsyn.kg.queries import run_named
from medsyn.kg.store import Store, quads_to_sparql_data
from medsyn.kg.vocab import (
    ID,
    RDF_TYPE,
    build_iri,
    code_iri,
    example_note_iri,
    graph_iri,
    ms,
    prov,
    rdfs,
    run_iri,
    synthetic_note_iri,
    xsd,
)


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def _h(text: str, n: int = 16) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:n]


def agent_iri(backend: str, model: str, adapter_hash: str | None) -> NamedNode:
    """``id/agent/<hash(backend, model, adapter hash)>``."""
    return NamedNode(ID + "agent/" + _h(f"{backend}\x1f{model}\x1f{adapter_hash or ''}"))


def template_iri(content_hash: str) -> NamedNode:
    return NamedNode(ID + "template/" + content_hash)


def generation_iri(note_id: str) -> NamedNode:
    return NamedNode(ID + "generation/" + note_id)


def note_id(run_id: str, sample_id: str, attempt: int) -> str:
    """Deterministic id of attempt ``attempt`` of sample ``sample_id`` in run ``run_id``."""
    return _h(f"{run_id}\x1f{sample_id}\x1f{attempt}")


def content_hash(text: str) -> str:
    """sha256 of a note's text (UTF-8), as ``ms:contentHash``."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _str(v: str) -> Literal:
    return Literal(v)


def _int(v: int) -> Literal:
    return Literal(str(int(v)), datatype=xsd("integer"))


def _dbl(v: float) -> Literal:
    return Literal(repr(float(v)), datatype=xsd("double"))


def _bool(v: bool) -> Literal:
    return Literal("true" if v else "false", datatype=xsd("boolean"))


def _time(v: str) -> Literal:
    return Literal(v, datatype=xsd("dateTime"))


@dataclass(frozen=True)
class RunInfo:
    run_id: str
    started: str
    seed: int
    parameters: Mapping[str, Any]
    backend: str
    model: str
    adapter_hash: str | None
    template_name: str
    template_hash: str
    graph_version: str

    @property
    def graph(self) -> NamedNode:
        return graph_iri("run", self.run_id)

    @property
    def iri(self) -> NamedNode:
        return run_iri(self.run_id)

    @property
    def agent(self) -> NamedNode:
        return agent_iri(self.backend, self.model, self.adapter_hash)


def run_quads(run: RunInfo) -> list[Quad]:
    """The run activity, its model agent and its prompt template (no end time: see :func:`finish_run`)."""
    g, r, a, t = run.graph, run.iri, run.agent, template_iri(run.template_hash)
    params = json.dumps(run.parameters, ensure_ascii=False, sort_keys=True)
    out = [
        Quad(r, RDF_TYPE, ms("GenerationRun"), g),
        Quad(r, RDF_TYPE, prov("Activity"), g),
        Quad(r, prov("startedAtTime"), _time(run.started), g),
        Quad(r, ms("seed"), _int(run.seed), g),
        Quad(r, ms("parameters"), _str(params), g),
        Quad(r, prov("wasAssociatedWith"), a, g),
        Quad(r, ms("graphVersion"), _str(run.graph_version), g),
        *_association(r, a, t, g),
        *_build_quads(run.graph_version, g),
        Quad(r, prov("used"), build_iri(run.graph_version), g),
        Quad(r, prov("used"), t, g),
        Quad(a, RDF_TYPE, ms("ModelAgent"), g),
        # Agent and SoftwareAgent both: a consumer without a reasoner does not infer the first from the second.
        Quad(a, RDF_TYPE, prov("Agent"), g),
        Quad(a, RDF_TYPE, prov("SoftwareAgent"), g),
        Quad(a, rdfs("label"), _str(f"{run.backend}/{run.model}"), g),
        Quad(a, ms("backend"), _str(run.backend), g),
        Quad(a, ms("modelName"), _str(run.model), g),
        Quad(t, RDF_TYPE, ms("PromptTemplate"), g),
        Quad(t, RDF_TYPE, prov("Plan"), g),
        Quad(t, RDF_TYPE, prov("Entity"), g),
        Quad(t, rdfs("label"), _str(run.template_name), g),
        Quad(t, ms("contentHash"), _str(run.template_hash), g),
    ]
    if run.adapter_hash:
        out.append(Quad(a, ms("adapterHash"), _str(run.adapter_hash), g))
    return out


def association_iri(activity: NamedNode) -> NamedNode:
    """The ``prov:Association`` of an activity with its model agent (one per activity: it has one agent)."""
    return NamedNode(ID + "association/" + _h(activity.value))


def _association(act: NamedNode, agent: NamedNode, plan: NamedNode, g: NamedNode) -> list[Quad]:
    """``act prov:qualifiedAssociation [ prov:agent agent ; prov:hadPlan plan ]``: how PROV-O says "the model ran
    this template"; a named node, so re-adding the quads after a crash adds nothing."""
    q = association_iri(act)
    return [
        Quad(act, prov("qualifiedAssociation"), q, g),
        Quad(q, RDF_TYPE, prov("Association"), g),
        Quad(q, prov("agent"), agent, g),
        Quad(q, prov("hadPlan"), plan, g),
    ]


def _build_quads(version: str, g: NamedNode) -> list[Quad]:
    """The graph build a note was derived from, as a ``prov:Entity`` with its version, inside the run's graph (so
    the run graph alone is a complete PROV document); graph/meta holds the build's own record."""
    b = build_iri(version)
    return [
        Quad(b, RDF_TYPE, prov("Entity"), g),
        Quad(b, RDF_TYPE, ms("KnowledgeGraphBuild"), g),
        Quad(b, ms("graphVersion"), _str(version), g),
    ]


def start_run(store: Store, run: RunInfo) -> None:
    """Add :func:`run_quads` (one update), replacing the ``ms:parameters`` of an earlier start of the same run: a
    resumed run may carry another ``max_cost`` or backend options, and the run has one parameters literal."""
    g, r, p = run.graph, run.iri, ms("parameters")
    store.update(
        f"DELETE WHERE {{ GRAPH {g} {{ {r} {p} ?o }} }} ;\n"
        "INSERT DATA {\n" + quads_to_sparql_data(run_quads(run)) + "\n}"
    )


def note_quads(run: RunInfo, rec: Mapping[str, Any]) -> list[Quad]:
    """Quads of one note record (a line of notes.jsonl, or a rejected note of failures.jsonl): only what is the
    note's own; the run's agent, template and graph build are on the run (:func:`run_quads`)."""
    g = run.graph
    nid = rec["id"]
    n, act = synthetic_note_iri(nid), generation_iri(nid)
    usage = rec.get("usage") or {}
    out = [
        Quad(n, RDF_TYPE, ms("SyntheticNote"), g),
        Quad(n, RDF_TYPE, prov("Entity"), g),
        Quad(n, ms("noteId"), _str(nid), g),
        Quad(n, ms("contentHash"), _str(rec["content_hash"]), g),
        Quad(n, ms("code"), code_iri(rec["code"]), g),
        Quad(n, ms("sampleId"), _str(rec["sample_id"]), g),
        Quad(n, ms("accepted"), _bool(bool(rec["accepted"])), g),
        Quad(n, ms("scores"), _str(json.dumps(rec.get("scores") or {}, sort_keys=True)), g),
        Quad(n, prov("wasGeneratedBy"), act, g),
        Quad(n, prov("generatedAtTime"), _time(rec["ended"]), g),
        Quad(act, RDF_TYPE, ms("NoteGeneration"), g),
        Quad(act, RDF_TYPE, prov("Activity"), g),
        Quad(act, prov("startedAtTime"), _time(rec["started"]), g),
        Quad(act, prov("endedAtTime"), _time(rec["ended"]), g),
        Quad(act, prov("wasInformedBy"), run.iri, g),
        Quad(act, ms("usedCode"), code_iri(rec["subcode"]), g),
        Quad(act, ms("seed"), _int(rec["seed"]), g),
        Quad(act, ms("attempt"), _int(rec["attempt"]), g),
        Quad(act, ms("promptTokens"), _int(usage.get("prompt_tokens", 0)), g),
        Quad(act, ms("completionTokens"), _int(usage.get("completion_tokens", 0)), g),
        Quad(act, ms("costUsd"), _dbl(rec.get("cost_usd", 0.0)), g),
    ]
    # Every input twice: as the ms: sub-property (what MedSyn's own queries read) and as plain prov:used /
    # prov:wasDerivedFrom, which PROV tools and SPARQL without a reasoner see.
    code = code_iri(rec["subcode"])
    out += [Quad(act, prov("used"), code, g), Quad(code, RDF_TYPE, prov("Entity"), g)]
    version = rec.get("kg_version") or run.graph_version
    if version != run.graph_version:  # a resumed run on a rebuilt graph: this note's own build overrides the run's
        out += [
            Quad(act, ms("graphVersion"), _str(version), g),
            Quad(act, prov("used"), build_iri(version), g),
            *_build_quads(version, g),
        ]
    for iri in dict.fromkeys(rec.get("symptom_iris") or []):
        s = NamedNode(iri)
        out += [Quad(act, ms("usedSymptom"), s, g), Quad(act, prov("used"), s, g), Quad(s, RDF_TYPE, prov("Entity"), g)]
    if rec.get("server"):
        out.append(Quad(act, ms("server"), _str(rec["server"]), g))
    examples = rec.get("example_ids") or ([rec["example_id"]] if rec.get("example_id") else [])
    for e in dict.fromkeys(examples):
        ex = example_note_iri(e)
        out += [
            Quad(act, ms("exampleNote"), ex, g),
            Quad(act, prov("used"), ex, g),
            Quad(n, prov("wasDerivedFrom"), ex, g),
            Quad(ex, RDF_TYPE, prov("Entity"), g),
        ]
    if not rec["accepted"] and rec.get("reason"):
        out.append(Quad(n, ms("rejectionReason"), _str(rec["reason"]), g))
    return out


def recorded_note_ids(store: Store, run: RunInfo) -> dict[str, tuple[str, int]]:
    """Ids of the notes that already have provenance in the run's graph -> (sample id, attempt)."""
    return {
        row["id"].value: (row["sample"].value, int(row["attempt"].value))
        for row in run_named(store, "audit/run_note_attempts", g=run.graph)
    }


def add_notes(store: Store, run: RunInfo, records: Iterable[Mapping[str, Any]]) -> int:
    """Insert the quads of several note records as one transaction; returns the number of notes."""
    quads: list[Quad] = []
    n = 0
    for rec in records:
        quads += note_quads(run, rec)
        n += 1
    if quads:
        store.add_quads(quads)
    return n


def finish_run(store: Store, run: RunInfo, *, ended: str, totals: Mapping[str, Any]) -> None:
    """Set the run's end time and token/cost totals, replacing earlier values (one update)."""
    g, r = run.graph, run.iri
    props = {
        prov("endedAtTime"): _time(ended),
        ms("promptTokens"): _int(totals.get("prompt_tokens", 0)),
        ms("completionTokens"): _int(totals.get("completion_tokens", 0)),
        ms("costUsd"): _dbl(totals.get("cost_usd", 0.0)),
    }
    if totals.get("by_server"):  # attempts per server of the OpenAI-compatible endpoint(s), as a JSON object
        props[ms("serverCounts")] = _str(json.dumps(totals["by_server"], sort_keys=True))
    inserts = " ".join(f"{r} {p} {o} ." for p, o in props.items())
    names = " ".join(map(str, props))
    # A DELETE of what is there, then INSERT DATA, in one request, rather than DELETE/INSERT over OPTIONAL patterns:
    # Virtuoso drops a solution's inserts too when a deleted pattern has an unbound variable (a first finish).
    store.update(
        f"DELETE {{ GRAPH {g} {{ {r} ?p ?o }} }} WHERE {{ GRAPH {g} {{ {r} ?p ?o }} VALUES ?p {{ {names} }} }} ;\n"
        f"INSERT DATA {{ GRAPH {g} {{ {inserts} }} }}"
    )
