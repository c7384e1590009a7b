"""Auditing: lineage of a note, integrity of a generated set against its provenance, run and source summaries."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from mkg_small import NOTES, RUN_ID, build_store, sha256, write_notes

from medsyn import audit
from medsyn.curation import edits as curation
from medsyn.errors import InputError
from medsyn.kg.store import OxigraphStore
from medsyn.kg.vocab import run_iri, symptom_iri


@pytest.fixture
def store() -> OxigraphStore:
    return build_store()


def test_note_lineage_has_every_part(store: OxigraphStore) -> None:
    lin = audit.note_lineage(store, "n2")
    f = lin.facts
    assert lin.graph.endswith("/graph/run/" + RUN_ID)
    assert f["hash"] == sha256("Жалобы на головную боль и тошноту.")
    assert f["run"] == run_iri(RUN_ID).value
    assert (f["backend"], f["model"]) == ("openai", "gpt-4")
    assert f["templateLabel"] == "paper_ru" and f["templateHash"] == sha256("template")
    assert f["usedNotation"] == "G43.0" and f["noteCode"] == "G43"
    assert f["exampleId"] == "q2" and f["exampleSource"].endswith("/source/rumedtop3")
    assert (f["seed"], f["runSeed"], f["graphVersion"]) == (42, 42, "sha256:graph-v1")
    assert f["accepted"] is True and f["generatedAt"] == "2024-05-01T10:05:00Z"
    assert lin.current_graph_version == "sha256:graph-v1"
    sources = {s["label"]: sorted((x["label"], x["weight"]) for x in s["sources"]) for s in lin.symptoms}
    assert sources == {
        "головная боль": [("HSDN", 3.5), ("WikiMed symptom map", 1.0)],
        "тошнота": [("HSDN", 1.2), ("WikiMed symptom map", 1.0)],
    }


def test_lineage_survives_a_merge(store: OxigraphStore) -> None:
    curation.merge_symptoms(store, "боль в пояснице", "Боли в пояснице", by="x")
    lin = audit.note_lineage(store, "n1")
    by_iri = {s["symptom"]: s for s in lin.symptoms}
    merged = by_iri[symptom_iri("Боли в пояснице").value]
    assert merged["replaced_by"] == symptom_iri("боль в пояснице").value
    assert merged["label"] == "боль в пояснице"


def test_unknown_note_is_one_clear_error(store: OxigraphStore) -> None:
    with pytest.raises(InputError, match="no provenance for note 'zzz'"):
        audit.note_lineage(store, "zzz")


def test_verify_clean_set(store: OxigraphStore, tmp_path: Path) -> None:
    write_notes(tmp_path)
    r = audit.verify(store, tmp_path)
    assert not r.failed
    assert (r.checked, r.ok, r.runs) == (3, 3, [run_iri(RUN_ID).value])


def test_a_tampered_note_is_caught(store: OxigraphStore, tmp_path: Path) -> None:
    path = write_notes(tmp_path)
    lines = path.read_text(encoding="utf-8").splitlines()
    rec = json.loads(lines[1])
    rec["response"] = rec["response"].replace("тошноту", "рвоту")
    lines[1] = json.dumps(rec, ensure_ascii=False)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    r = audit.verify(store, tmp_path)
    assert r.failed
    assert [a["id"] for a in r.altered] == ["n2"]
    assert r.altered[0]["recorded"] == sha256(NOTES[1][4])
    assert (r.ok, r.missing, r.unrecorded) == (2, [], [])


def test_missing_and_unrecorded_notes(store: OxigraphStore, tmp_path: Path) -> None:
    path = write_notes(tmp_path)
    lines = path.read_text(encoding="utf-8").splitlines()
    extra = json.dumps({"id": "n9", "response": "лишняя запись"}, ensure_ascii=False)
    path.write_text("\n".join([lines[0], lines[2], extra]) + "\n", encoding="utf-8")
    r = audit.verify(store, tmp_path)
    assert (r.missing, r.unrecorded, r.altered) == (["n2"], ["n9"], [])


def test_verify_with_an_explicit_run_and_run_json(store: OxigraphStore, tmp_path: Path) -> None:
    write_notes(tmp_path)
    assert audit.verify(store, tmp_path, run="other-run").unrecorded == ["n1", "n2", "n3"]
    (tmp_path / "run.json").write_text(json.dumps({"run_id": RUN_ID}), encoding="utf-8")
    assert not audit.verify(store, tmp_path).failed


def test_verify_reads_rejected_notes_from_failures(store: OxigraphStore, tmp_path: Path) -> None:
    write_notes(tmp_path, NOTES[:2])
    rejected = {"id": "n3", "status": "rejected", "response": NOTES[2][4]}
    failed = {"id": "n4", "status": "error", "response": None}
    # A reply cut at the token limit keeps its partial text in failures.jsonl but is no note: no provenance.
    truncated = {"id": "n5", "status": "truncated", "response": "Жалобы на боль в"}
    (tmp_path / "failures.jsonl").write_text(
        "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in (rejected, failed, truncated)), encoding="utf-8"
    )
    r = audit.verify(store, tmp_path)
    assert not r.failed and r.ok == 3


def test_verify_bad_input_names_file_and_line(store: OxigraphStore, tmp_path: Path) -> None:
    (tmp_path / "notes.jsonl").write_text('{"id": "n1", "response": "x"}\nnot json\n', encoding="utf-8")
    with pytest.raises(InputError, match=r"notes.jsonl:2: invalid JSON"):
        audit.verify(store, tmp_path)
    with pytest.raises(InputError, match=r"no notes\.jsonl or failures\.jsonl"):
        audit.verify(store, tmp_path / "empty")


def test_run_summary(store: OxigraphStore) -> None:
    s = audit.run_summary(store, RUN_ID)
    assert (s.notes, s.accepted) == (3, 2)
    assert s.acceptance_rate == pytest.approx(2 / 3)
    assert s.models == {"openai/gpt-4": 3}
    assert s.codes == {"G43": 1, "M54": 1}
    assert s.cost_usd == pytest.approx(0.12)
    assert [r["notes"] for r in audit.list_runs(store)] == [3]
    with pytest.raises(InputError, match=f"known: {RUN_ID}"):
        audit.run_summary(store, "nope")


def test_sources_summary(store: OxigraphStore) -> None:
    rows = {r["label"]: (r["notes"], r["symptoms"]) for r in audit.sources_summary(store)}
    assert rows == {"WikiMed symptom map": (3, 5), "RuMedTop3 train": (3, 0), "HSDN": (1, 2)}
    assert audit.sources_summary(store, run="other") == []


def test_audit_on_the_real_built_graph(kg_store_dir: Path, tmp_path: Path) -> None:
    """Provenance written against the real graph: lineage finds real knowledge sources of real symptoms."""
    from mkg_small import run_quads

    from medsyn.kg.queries import run_query

    store = OxigraphStore(kg_store_dir, read_only=True)
    rows = run_query(
        store,
        "PREFIX ms: <https://w3id.org/medsyn/ontology#> "
        "SELECT ?code ?symptom ?ex WHERE { ?a ms:disease ?d ; ms:symptom ?symptom ; ms:source ?src . "
        "?d ms:category ?cat ; <http://www.w3.org/2004/02/skos/core#notation> ?code . "
        "?n a ms:ExampleNote ; ms:code ?cat ; ms:noteId ?ex } LIMIT 1",
    )
    code, symptom, example = (rows[0][k].value for k in ("code", "symptom", "ex"))
    copy = OxigraphStore.in_memory()
    copy.load(store.dump(format="nq"), format="nq")
    store.close()
    notes = [("r1", code, [symptom], example, "Жалобы на боль.")]
    copy.add_quads(run_quads("real", notes))
    lin = audit.note_lineage(copy, "r1")
    assert lin.symptoms[0]["label"] and lin.symptoms[0]["sources"]
    assert lin.facts["exampleSource"].endswith("/source/rumedtop3")
    assert lin.current_graph_version and lin.current_graph_version.startswith("sha256:")
    assert {r["source"].rsplit("/", 1)[-1] for r in audit.sources_summary(copy)} >= {"rumedtop3"}
    write_notes(tmp_path, notes)
    assert not audit.verify(copy, tmp_path).failed


def test_audit_and_curation_over_a_sparql_endpoint(tmp_path: Path) -> None:
    """The same queries through RemoteStore against the real Oxigraph server binary."""
    from medsyn.kg.remote_store import RemoteStore
    from medsyn.testing.servers import oxigraph_server

    with oxigraph_server(tmp_path / "ox") as server:
        remote = RemoteStore(server.query_url)
        remote.load(build_store().dump(format="nq"), format="nq")
        lin = audit.note_lineage(remote, "n2")
        assert lin.facts["usedNotation"] == "G43.0" and len(lin.symptoms) == 2
        write_notes(tmp_path / "run")
        assert not audit.verify(remote, tmp_path / "run").failed
        assert audit.run_summary(remote, RUN_ID).accepted == 2
        curation.merge_symptoms(remote, "головная боль", "головные боли", by="remote")
        assert not audit.note_lineage(remote, "n2").symptoms[0]["replaced_by"]
        with pytest.raises(InputError):
            curation.add_symptom(remote, "M54.5", "x", weight=1.0, source="wikimed", by="r", lang="ru ")
