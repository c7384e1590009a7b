"""Generator levers of issue 22: shots that show expansion (each real note after the graph symptoms it states,
``fewshot_expand_ru``), shots chosen by symptom overlap (``--shot-selection overlap``) and best-of-N candidates
(``--candidates N``). Selection, formatting and ranking are tested directly; one run uses the real Gemma 3 270M."""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from medsyn.errors import ParameterError
from medsyn.generation.mentions import mentioned, mentioned_symptoms
from medsyn.generation.prompts import load_template
from medsyn.generation.records import best_of
from medsyn.kg.store import OxigraphStore
from medsyn.sampling.draw import add_examples, draw_samples
from medsyn.sampling.tables import load_tables

MEDSYN = str(Path(sys.executable).with_name("medsyn"))


@pytest.fixture(scope="module")
def graph(shared_data: Path) -> OxigraphStore:
    from sampling_graph import real_graph

    st = OxigraphStore.in_memory()
    real_graph(shared_data, version="levers-test").into(st)
    return st


def category_vocab(graph: OxigraphStore, category: str) -> dict[str, str]:
    """label -> IRI of the graph symptoms of a category (what the matcher looks for in its notes)."""
    t = load_tables(graph, min_words=0)
    ci = t.category_index()[category]
    return {t.sym_label[v]: t.sym_iri[v] for c in t.cat_codes[ci] for v in t.code_symptoms[c]}


def test_expand_shots_list_the_graph_symptoms_each_note_states(graph: OxigraphStore) -> None:
    samples = draw_samples(graph, n=8, seed=11)
    a = add_examples(graph, samples, 5, seed=3, matcher=mentioned_symptoms)
    assert add_examples(graph, samples, 5, seed=3, matcher=mentioned_symptoms) == a  # seeded
    for s in a:
        vocab = category_vocab(graph, s.category)
        shots = s.extra["examples"]
        assert 1 <= len(shots) <= 5 and len({x["id"] for x in shots}) == len(shots)
        for x in shots:
            assert set(x["symptoms"]) <= set(vocab) and all(mentioned(x["text"], y) for y in x["symptoms"])
        # Notes stating a graph symptom come first; one stating none only fills in when too few others exist.
        flags = [bool(x["symptoms"]) for x in shots]
        assert flags == sorted(flags, reverse=True)
    t = load_template("fewshot_expand_ru")
    assert t.shows_symptoms and not load_template("paper_fewshot_ru").shows_symptoms
    assert t.content_hash != load_template("paper_fewshot_ru").content_hash
    s = dataclasses.replace(
        samples[0],
        extra={
            "examples": [
                {"id": "a", "text": "Жалобы на боль в горле, кашель.", "symptoms": ["боль в горле", "кашель"]},
                {"id": "b", "text": "Насморк, чихание.", "symptoms": []},
            ]
        },
    )
    text = t.render_text(s)
    assert "Симптомы: боль в горле; кашель\nЖалобы: Жалобы на боль в горле, кашель.\n" in text
    assert "Симптомы: насморк; чихание\nЖалобы: Насморк, чихание.\n" in text  # no graph symptom: its cues
    assert text.endswith(f"Симптомы: {'; '.join(s.symptoms)}\nЖалобы:")
    red = t.render_text(s, redact=True)
    # Graph labels stay in a redacted prompt; the note and the cues drawn from it do not.
    assert "Симптомы: боль в горле; кашель\nЖалобы: ⟨example:a⟩" in red and "Симптомы: ⟨cues:b⟩" in red
    assert "Насморк" not in red


def test_overlap_selection_puts_the_notes_sharing_most_symptoms_first(graph: OxigraphStore) -> None:
    samples = draw_samples(graph, n=10, seed=4)
    b = add_examples(graph, samples, 3, seed=5, selection="overlap", matcher=mentioned_symptoms)
    assert add_examples(graph, samples, 3, seed=5, selection="overlap", matcher=mentioned_symptoms) == b
    assert add_examples(graph, samples, 3, seed=6, selection="overlap", matcher=mentioned_symptoms) != b
    t = load_tables(graph, min_words=0)
    for s in b:
        vocab = category_vocab(graph, s.category)
        wanted = set(s.symptom_iris)
        shared = functools.partial(shared_count, wanted, vocab)
        chosen = s.extra["examples"]
        got = [shared(x["symptoms"]) for x in chosen]
        assert got == sorted(got, reverse=True)
        # No note of the category left out (of the allowed length) shares more than the least shared chosen one.
        ids = {x["id"] for x in chosen} | {s.example_id}
        ci = t.category_index()[s.category]
        others = [t.note_text[j] for j in t.cat_notes[ci] if t.note_id[j] not in ids]
        others = [x for x in others if 5 <= len(x.split()) <= 80]
        best_left = max((shared(mentioned_symptoms(x, list(vocab))) for x in others), default=0)
        assert best_left <= min(got)
    with pytest.raises(ParameterError, match="needs a symptom matcher"):
        add_examples(graph, samples, 3, selection="overlap")
    with pytest.raises(ParameterError, match="unknown shot selection"):
        add_examples(graph, samples, 3, selection="nearest", matcher=mentioned_symptoms)


def shared_count(wanted: set[str], vocab: dict[str, str], found: list[str]) -> int:
    return len(wanted & {vocab[y] for y in found})


def record(i: int, *, accepted: bool, recall: float = 0.5, similarity: float = 0.1, status: str = "") -> dict:
    scores = None if status else {"recall": recall, "similarity": similarity, "words": 9, "repetition": 0.0}
    return {
        "id": "n",
        "seed": 100 + i,
        "accepted": accepted,
        "status": status or ("accepted" if accepted else "rejected"),
        "scores": scores,
        "usage": {"prompt_tokens": 10, "completion_tokens": i + 1},
        "cost_usd": 0.0,
        "retries": 0,
    }


def test_best_of_n_keeps_the_candidate_the_filter_ranks_best() -> None:
    one = record(0, accepted=False)
    assert best_of([one]) is one  # a single completion: the record as it always was
    cands = [
        record(0, accepted=False, recall=1.0),
        record(1, accepted=True, recall=0.5, similarity=0.3),
        record(2, accepted=True, recall=0.5, similarity=0.1),
        record(3, accepted=False, status="truncated"),
    ]
    rec = best_of(cands)
    # Accepted before rejected, then the highest recall, then the least copied.
    assert (rec["candidate"], rec["seed"], rec["candidates"]) == (2, 102, 4)
    assert rec["usage"] == {"prompt_tokens": 40, "completion_tokens": 10}  # every candidate's tokens count
    assert [c["status"] for c in rec["candidate_scores"]] == ["rejected", "accepted", "accepted", "truncated"]
    assert best_of([record(0, accepted=False, recall=0.2), record(1, accepted=False, recall=0.4)])["candidate"] == 1
    assert best_of([record(0, accepted=False, status="empty"), record(1, accepted=False)])["candidate"] == 1


def test_cli_expand_overlap_best_of_two_with_the_real_model(shared_data: Path, tmp_path: Path) -> None:
    from sampling_graph import real_graph

    store_dir = tmp_path / "store"
    with OxigraphStore(store_dir) as st:
        real_graph(shared_data, version="kg-levers").into(st)
    out = tmp_path / "run"
    args = [MEDSYN, "generate", "--backend", "llamacpp", "--n", "2", "--codes", "J06", "--seed", "2"]
    args += ["--max-attempts", "1", "--max-tokens", "24", "--temperature", "0.7", "--template", "fewshot_expand_ru"]
    args += ["--shot-selection", "overlap", "--candidates", "2", "--store", str(store_dir), "--no-progress"]
    r = subprocess.run([*args, "--out", str(out)], capture_output=True, text=True, timeout=600, env={**os.environ})
    assert "Traceback" not in r.stderr and json.loads(r.stdout.splitlines()[-1])["attempts"] == 2, r.stderr
    run = json.loads((out / "run.json").read_text())
    assert run["identity"]["shot_selection"] == "overlap" and run["identity"]["candidates"] == 2
    recs = [json.loads(x) for f in ("notes.jsonl", "failures.jsonl") for x in (out / f).read_text().splitlines()]
    assert len(recs) == 2
    for x in recs:
        assert x["candidates"] == 2 and x["candidate"] in (0, 1) and x["template"] == "fewshot_expand_ru"
        assert x["template_hash"] == load_template("fewshot_expand_ru").content_hash
        seeds = [c["seed"] for c in x["candidate_scores"]]
        assert len(set(seeds)) == 2 and x["seed"] == seeds[x["candidate"]]
    samples = [json.loads(x) for x in (out / "samples.jsonl").read_text().splitlines()]
    assert all("symptoms" in e for s in samples for e in s["extra"]["examples"])
    # Resume: the same command on the finished folder makes no new attempt.
    again = subprocess.run([*args, "--out", str(out)], capture_output=True, text=True, timeout=600)
    assert json.loads(again.stdout.splitlines()[-1])["generated_now"] == 0, again.stderr
    bad = subprocess.run(
        [*args[:-3], "--shot-selection", "nearest", "--out", str(tmp_path / "bad")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert bad.returncode == 2 and "Traceback" not in bad.stderr and "--shot-selection" in bad.stderr
