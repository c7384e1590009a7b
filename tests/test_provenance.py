"""Provenance triples of generated notes, queried back with SPARQL exactly as docs/data-model.md lays them out."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest

from medsyn.generation.backends import get_backend
from medsyn.generation.config import GenerationConfig
from medsyn.generation.engine import generate
from medsyn.generation.filter import FilterConfig
from medsyn.generation.prompts import load_template
from medsyn.generation.provenance import RunInfo, agent_iri, note_id, note_quads
from medsyn.generation.run_folder import NOTES_FILE, RUN_FILE
from medsyn.kg.store import OxigraphStore
from medsyn.kg.vocab import code_iri, example_note_iri, graph_iri, symptom_iri
from medsyn.testing import demo_samples
from medsyn.testing.openai_server import FakeOpenAIServer

P = """PREFIX ms: <https://w3id.org/medsyn/ontology#>
PREFIX prov: <http://www.w3.org/ns/prov#>
PREFIX rdfs: <http://www.w3.org/2000/01/rdf-schema#>
"""


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[OxigraphStore, Path, list]]:
    out = tmp_path_factory.mktemp("prov") / "out"
    store = OxigraphStore.in_memory()
    samples = demo_samples(6)
    with FakeOpenAIServer(latency=0.0) as srv:
        be = get_backend("openai", base_url=srv.base_url, concurrency=2, backoff_base=0.01)
        generate(samples, out, store=store, backend=be, config=GenerationConfig(seed=7), graph_version="kg-v1")
    yield store, out, samples


def notes(out: Path) -> list[dict]:
    return [json.loads(x) for x in (out / NOTES_FILE).read_text(encoding="utf-8").splitlines()]


def test_every_note_is_in_the_runs_named_graph(generated: tuple) -> None:
    store, out, _ = generated
    run_id = json.loads((out / RUN_FILE).read_text())["run_id"]
    g = graph_iri("run", run_id)
    rows = store.query(
        P + f"SELECT ?id ?h WHERE {{ GRAPH {g} {{ ?n a ms:SyntheticNote , prov:Entity ; ms:noteId ?id ; "
        f"ms:contentHash ?h ; ms:accepted true }} }}",
        union=False,
    )
    by_id = {r["id"].value: r["h"].value for r in rows}
    recs = notes(out)
    assert len(by_id) == len(recs) == 6
    for rec in recs:
        assert by_id[rec["id"]] == hashlib.sha256(rec["response"].encode("utf-8")).hexdigest()


def test_generation_activity_links_inputs(generated: tuple) -> None:
    store, out, samples = generated
    by_sample = {s.id: s for s in samples}
    for rec in notes(out):
        s = by_sample[rec["sample_id"]]
        rows = store.query(
            P + "SELECT ?gen ?code ?usedCode ?ex ?tpl ?th ?run ?kg ?seed ?start ?end ?agent WHERE { "
            "?n ms:noteId ?id ; ms:code ?code ; prov:wasGeneratedBy ?gen ; prov:generatedAtTime ?t . "
            "?gen a ms:NoteGeneration , prov:Activity ; ms:usedCode ?usedCode ; ms:exampleNote ?ex ; "
            "prov:wasInformedBy ?run ; ms:graphVersion ?kg ; ms:seed ?seed ; "
            "prov:startedAtTime ?start ; prov:endedAtTime ?end . "
            # The model and template every note of the run shares: stated once, on the run.
            "?run a ms:GenerationRun ; prov:wasAssociatedWith ?agent ; prov:used ?tpl ; "
            "prov:qualifiedAssociation [ prov:agent ?agent ; prov:hadPlan ?tpl ] . "
            "?tpl a ms:PromptTemplate , prov:Plan ; ms:contentHash ?th ; rdfs:label 'paper_ru' . }",
            bindings={"id": rec["id"]},
        )
        assert len(rows) == 1
        r = rows[0]
        assert r["code"] == code_iri(s.category) and r["usedCode"] == code_iri(s.code)
        assert r["ex"] == example_note_iri(s.example_id)
        assert r["th"].value == load_template("paper_ru").content_hash
        assert r["kg"].value == "demo"  # the samples' own KG version wins over the run default
        assert int(r["seed"].value) == rec["seed"]
        assert datetime.fromisoformat(r["start"].value) <= datetime.fromisoformat(r["end"].value)
        used = store.query(P + "SELECT ?s WHERE { ?gen ms:usedSymptom ?s }", bindings={"gen": r["gen"]})
        assert {u["s"].value for u in used} == {symptom_iri(x).value for x in s.symptoms}


def test_run_and_agent_nodes(generated: tuple) -> None:
    store, out, _ = generated
    doc = json.loads((out / RUN_FILE).read_text())
    rows = store.query(
        P + "SELECT ?seed ?params ?kg ?end ?backend ?model ?cost WHERE { ?run a ms:GenerationRun , prov:Activity ; "
        "prov:startedAtTime ?s ; prov:endedAtTime ?end ; ms:seed ?seed ; ms:parameters ?params ; ms:graphVersion ?kg ;"
        " ms:costUsd ?cost ; prov:wasAssociatedWith ?a . ?a a ms:ModelAgent , prov:SoftwareAgent ; ms:backend ?backend"
        " ; ms:modelName ?model . }"
    )
    assert len(rows) == 1  # one end time, even though the run updated it
    r = rows[0]
    assert int(r["seed"].value) == 7 and r["kg"].value == "kg-v1"
    assert (r["backend"].value, r["model"].value) == ("openai", "gpt-4")
    assert json.loads(r["params"].value)["template"] == "paper_ru"
    assert float(r["cost"].value) == pytest.approx(doc["totals"]["cost_usd"])
    assert not store.query(P + "ASK { ?a ms:adapterHash ?h }")


RUN_LEVEL = ("wasAttributedTo", "wasAssociatedWith", "usedTemplate", "qualifiedAssociation")


def test_run_level_facts_are_stated_once_on_the_run(generated: tuple) -> None:
    """The agent, template, association and graph build are the run's: no note or generation repeats them, and a
    note states its graph version only where it differs from the run's (docs/data-model.md)."""
    store, out, samples = generated
    run_id = json.loads((out / RUN_FILE).read_text())["run_id"]
    g = graph_iri("run", run_id)
    per_pred = {
        r["p"].value.rsplit("#", 1)[-1]: int(r["n"].value)
        for r in store.query(
            f"SELECT ?p (COUNT(*) AS ?n) WHERE {{ GRAPH {g} {{ ?s ?p ?o }} }} GROUP BY ?p", union=False
        )
    }
    # The run's own association and agent, once; nothing per note.
    assert (per_pred["wasAssociatedWith"], per_pred["qualifiedAssociation"], per_pred["hadPlan"]) == (1, 1, 1)
    assert per_pred.get("wasAttributedTo", 0) == per_pred.get("usedTemplate", 0) == 0
    n_assoc = store.query(
        P + f"SELECT (COUNT(*) AS ?n) WHERE {{ GRAPH {g} {{ ?a a prov:Association }} }}", union=False
    )[0]["n"]
    assert int(n_assoc.value) == 1
    # The samples carry their own graph version ("demo", not the run's "kg-v1"): each generation states it, beside
    # the run and the two builds (each stated once).
    assert per_pred["graphVersion"] == 3 + len(samples)
    # Quads a note adds beyond one per symptom input and example input: 45 before run-level facts, 24 now.
    recs = notes(out)
    total = sum(1 for _ in store.raw.quads_for_pattern(None, None, None, g))
    run_quads_n = 25  # the run, its agent, template, build and association (no adapter)
    by_sample = {s.id: s for s in samples}
    inputs = sum(3 * len(by_sample[r["sample_id"]].symptoms) + 4 for r in recs)
    assert (total - run_quads_n - inputs) / len(recs) <= 28


def test_a_note_of_the_runs_graph_version_states_none(tmp_path: Path) -> None:
    run = RunInfo(
        run_id="r1",
        started="2024-01-01T00:00:00+00:00",
        seed=1,
        parameters={},
        backend="openai",
        model="gpt-4",
        adapter_hash=None,
        template_name="paper_ru",
        template_hash="ab",
        graph_version="v1",
    )
    rec = {
        "id": "n1",
        "content_hash": "h",
        "code": "K29",
        "subcode": "K29.7",
        "sample_id": "s1",
        "accepted": True,
        "started": "2024-01-01T00:00:00+00:00",
        "ended": "2024-01-01T00:00:01+00:00",
        "seed": 3,
        "attempt": 0,
        "kg_version": "v1",
        "symptom_iris": [],
    }
    quads = note_quads(run, rec)
    preds = [q.predicate.value.rsplit("#", 1)[-1] for q in quads]
    assert not set(preds) & {*RUN_LEVEL, "graphVersion", "hadPlan", "agent"}
    assert len(quads) == 23  # 10 of the note, 11 of its generation, its code as prov:used and as a prov:Entity
    other = note_quads(run, {**rec, "kg_version": "v2"})
    assert [q.object.value for q in other if q.predicate.value.endswith("graphVersion")] == ["v2", "v2"]


def test_quads_are_idempotent_and_deterministic(generated: tuple) -> None:
    store, out, _ = generated
    doc = json.loads((out / RUN_FILE).read_text())
    run = RunInfo(
        run_id=doc["run_id"],
        started=doc["created"],
        seed=7,
        parameters=doc["parameters"],
        backend="openai",
        model="gpt-4",
        adapter_hash=None,
        template_name="paper_ru",
        template_hash=load_template("paper_ru").content_hash,
        graph_version="kg-v1",
    )
    before = len(store)
    for rec in notes(out):
        store.add_quads(note_quads(run, rec))
    assert len(store) == before
    assert note_id("r", "s", 0) == note_id("r", "s", 0) != note_id("r", "s", 1)
    assert agent_iri("local", "m", None) != agent_iri("local", "m", "sha256:x")


def test_rejected_notes_are_recorded_as_not_accepted(tmp_path: Path) -> None:
    store = OxigraphStore.in_memory()
    with FakeOpenAIServer() as srv:
        be = get_backend("openai", base_url=srv.base_url, concurrency=2)
        generate(
            demo_samples(2),
            tmp_path / "o",
            store=store,
            backend=be,
            config=GenerationConfig(max_attempts=1, filter=FilterConfig(min_words=10_000)),
        )
    rows = store.query(P + "SELECT ?r WHERE { ?n a ms:SyntheticNote ; ms:accepted false ; ms:rejectionReason ?r }")
    assert len(rows) == 2 and all("too short" in r["r"].value for r in rows)


def test_resume_restores_missing_provenance(tmp_path: Path) -> None:
    store = OxigraphStore.in_memory()
    samples = demo_samples(3)
    with FakeOpenAIServer() as srv:

        def again() -> None:
            be = get_backend("openai", base_url=srv.base_url, concurrency=2)
            generate(samples, tmp_path / "o", store=store, backend=be)

        again()
        rec = notes(tmp_path / "o")[0]
        # Simulate a crash between the JSONL line and the provenance write: drop one note's quads.
        store.update(P + f"DELETE WHERE {{ GRAPH ?g {{ ?n ms:noteId '{rec['id']}' ; ?p ?o }} }}")
        assert not store.query(P + f"ASK {{ ?n ms:noteId '{rec['id']}' }}")
        n_requests = srv.stats()["requests"]
        again()
        assert srv.stats()["requests"] == n_requests  # nothing regenerated
    assert store.query(P + f"ASK {{ ?n ms:noteId '{rec['id']}' ; ms:accepted true }}")


def test_a_resume_with_a_bigger_budget_keeps_one_parameters_literal(tmp_path: Path) -> None:
    store = OxigraphStore.in_memory()
    with FakeOpenAIServer() as srv:
        for cap in (1.0, 2.0):  # --max-cost may be raised on resume; the run keeps one ms:parameters, the latest
            be = get_backend("openai", base_url=srv.base_url, concurrency=2)
            generate(demo_samples(2), tmp_path / "o", store=store, backend=be, config=GenerationConfig(max_cost=cap))
    rows = store.query(P + "SELECT ?p WHERE { ?run a ms:GenerationRun ; ms:parameters ?p }")
    assert [json.loads(r["p"].value)["max_cost"] for r in rows] == [2.0]


def test_audit_reads_run_level_facts_through_the_run(generated: tuple) -> None:
    """`audit note` and `audit run` on a run of the current layout: the agent, template and graph version the notes
    no longer state come from their run (and a note's own graph version wins over the run's)."""
    from medsyn import audit

    store, out, _ = generated
    rec = notes(out)[0]
    f = audit.note_lineage(store, rec["id"]).facts
    assert (f["backend"], f["model"]) == ("openai", "gpt-4")
    assert f["templateLabel"] == "paper_ru" and f["templateHash"] == load_template("paper_ru").content_hash
    assert (f["graphVersion"], f["runGraphVersion"]) == ("demo", "kg-v1")
    run_id = json.loads((out / RUN_FILE).read_text())["run_id"]
    rows = store.query(
        P + "SELECT ?backend ?model WHERE { ?gen prov:wasInformedBy ?run . ?note prov:wasGeneratedBy ?gen . "
        "?run prov:wasAssociatedWith ?a . ?a ms:backend ?backend ; ms:modelName ?model }",
        bindings={"run": audit.run_ref(run_id)},
    )
    assert {(r["backend"].value, r["model"].value) for r in rows} == {("openai", "gpt-4")}
    summary = audit.run_summary(store, run_id)
    assert summary.models == {"openai/gpt-4": summary.notes} and summary.notes >= len(notes(out))  # not "?/?"
