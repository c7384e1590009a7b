"""medsyn.training.instructions: the two-task instruction dataset built from real RuMedTop3 notes and the symptom
map."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from pyoxigraph import Literal, Quad

from medsyn.errors import InputError
from medsyn.generation.mentions import mentioned_symptoms
from medsyn.kg.store import OxigraphStore
from medsyn.kg.vocab import RDF_TYPE, association_iri, code_iri, graph_iri, ms, rdfs, source_iri, symptom_iri
from medsyn.testing.commands import MEDSYN
from medsyn.training.instructions import (
    CONTINUE_INSTRUCTIONS,
    INSTRUCTIONS,
    STATED,
    BuildOptions,
    build_dataset,
    build_instructions,
    build_prompt,
    card_paths,
    read_dataset,
    read_notes,
    symptoms_from_json,
    symptoms_from_store,
)


@pytest.fixture(scope="module")
def real(shared_data: Path) -> dict[str, Path]:
    return {
        "train": shared_data / "rumedbench/RuMedTop3/train_v1.jsonl",
        "dev": shared_data / "rumedbench/RuMedTop3/dev_v1.jsonl",
        "map": shared_data / "medsyn/mkg/rumedtop3_wikimed_symptoms_equipped_with_rumedprime.json",
        "generated": shared_data / "medsyn/synthetic/gpt4_train.jsonl",
    }


def test_full_dataset_and_card(tmp_path: Path, real: dict[str, Path]) -> None:
    out = tmp_path / "ift.jsonl"
    card = build_dataset(out, train=real["train"], dev=real["dev"], symptom_map=real["map"])
    records = read_dataset(out)
    assert len(records) == card["records"] > 8000
    assert set(card["by_task"]) == {"write", "continue"}
    assert card["by_task"]["write"] == 4690  # every train note has symptoms for its category
    assert card["codes"] == 105 and sum(sum(v.values()) for v in card["per_code"].values()) == len(records)
    assert card["by_task"]["continue"] + card["skipped"]["continue_too_short"] == 4690
    assert 0.03 < card["by_split"]["eval"] / len(records) < 0.08
    assert card["lengths"]["all"]["answer"]["max"] == 531 and card["length_unit"] == "words"
    card_json, card_md = card_paths(out)
    assert json.loads(card_json.read_text())["records"] == len(records)
    assert "| write/train |" in card_md.read_text()

    # the held-out part is chosen per note, and examples come from the same part
    split_of_note = {r.note_id: r.split for r in records}
    assert all(split_of_note[r.note_id] == r.split for r in records)
    assert all(split_of_note[r.example_id] == r.split for r in records if r.example_id)
    # no dev note anywhere
    dev = read_notes(real["dev"])
    whole_notes = {r.output if r.task == "write" else f"{r.input} {r.output}" for r in records}
    assert not {n.id for n in dev} & (set(split_of_note) | {r.example_id for r in records})
    assert not {n.text for n in dev} & whole_notes


def test_tasks_are_faithful(real: dict[str, Path]) -> None:
    notes = read_notes(real["train"])[:200]
    symptoms = symptoms_from_json(real["map"])
    records, _ = build_instructions(notes, symptoms, options=BuildOptions(seed=3))
    by_id = {n.id: n for n in notes}
    seen = set()
    for r in records:
        note = by_id[r.note_id]
        seen.add(r.instruction)
        assert r.prompt == build_prompt(r.instruction, r.input)
        assert r.prompt.startswith("### Задание: ") and r.prompt.endswith("\n### Ответ: ")
        if r.task == "continue":
            assert r.input + " " + r.output == note.text and r.instruction in CONTINUE_INSTRUCTIONS
        else:
            assert r.output == note.text
            chosen = r.extra["symptoms"]
            assert 2 <= len(chosen) <= 5 and r.input.endswith("; ".join(chosen))
            category_symptoms = {s for v in symptoms[note.category].values() for s in v}
            assert set(chosen) <= category_symptoms
            if r.example_id:
                example = by_id[r.example_id]
                assert example.category == note.category and example.id != note.id
                assert r.input.startswith(f"Пример: {example.text}\nСимптомы: ")
    assert len(seen) >= 10 and seen <= {i for v in INSTRUCTIONS.values() for i in v}  # paraphrases are used


def test_deterministic_and_seeded(tmp_path: Path, real: dict[str, Path]) -> None:
    notes = read_notes(real["train"])[:300]
    symptoms = symptoms_from_json(real["map"])
    a, _ = build_instructions(notes, symptoms, options=BuildOptions(seed=1))
    b, _ = build_instructions(notes, symptoms, options=BuildOptions(seed=1))
    c, _ = build_instructions(notes, symptoms, options=BuildOptions(seed=2))
    assert [r.to_json() for r in a] == [r.to_json() for r in b]
    assert [r.to_json() for r in a] != [r.to_json() for r in c]
    # a note's records do not depend on the other notes (except the example pool)
    only, _ = build_instructions(notes[:50], symptoms, options=BuildOptions(seed=1, example_share=0))
    full, _ = build_instructions(notes, symptoms, options=BuildOptions(seed=1, example_share=0))
    assert [r.to_json() for r in only] == [r.to_json() for r in full[: len(only)]]


def test_stated_symptoms_are_what_the_answer_note_says(real: dict[str, Path]) -> None:
    """Issue 22.3(c): the write task built from real notes with the symptoms they state, so a model learns to expand
    a list into the note that said it. Every listed symptom is one the matcher finds in the answer; notes that state
    none of their category's graph symptoms give no write record; drawn mode is unchanged."""
    notes = read_notes(real["train"])[:300]
    symptoms = symptoms_from_json(real["map"])
    stated = BuildOptions(seed=3, symptoms="stated", tasks=("write",))
    records, skipped = build_instructions(notes, symptoms, options=stated, matcher=mentioned_symptoms)
    assert records and skipped["write_no_symptoms"] > 0
    assert len(records) + skipped["write_no_symptoms"] == len(notes)
    for r in records:
        listed = r.extra["symptoms"]
        category = {s for v in symptoms[r.code].values() for s in v}
        assert 1 <= len(listed) <= 5 and set(listed) <= category
        assert sorted(mentioned_symptoms(r.output, listed)) == sorted(listed)
        assert r.instruction in STATED["write"] and r.input.endswith("; ".join(listed))
    # The list is in a seeded order, not the matcher's sorted one, wherever there is more than one.
    several = [r.extra["symptoms"] for r in records if len(r.extra["symptoms"]) > 2]
    assert any(x != sorted(x) for x in several)
    drawn_a, _ = build_instructions(notes, symptoms, options=BuildOptions(seed=3))
    drawn_b, _ = build_instructions(notes, symptoms, options=BuildOptions(seed=3, symptoms="drawn"))
    assert [r.to_json() for r in drawn_a] == [r.to_json() for r in drawn_b]
    assert all(r.instruction in {i for v in INSTRUCTIONS.values() for i in v} for r in drawn_a)
    with pytest.raises(InputError, match="--symptoms must be one of drawn, stated"):
        BuildOptions(symptoms="said")
    with pytest.raises(InputError, match="stated symptoms need a matcher"):
        build_instructions(notes, symptoms, options=stated)


@pytest.mark.parametrize(
    ("template", "instruction"),
    [("ift_ru", "WRITE_WITH_EXAMPLE_INSTRUCTIONS"), ("ift_stated_ru", "STATED_WITH_EXAMPLE_INSTRUCTIONS")],
)
def test_the_generation_templates_prompt_as_the_records_were_trained(template: str, instruction: str) -> None:
    """An adapter is prompted with the exact text of its training records (issue 22.3(c)): the packaged templates
    for the two write modes render what ``ift`` writes for a record with an example."""
    from medsyn.generation.prompts import load_template
    from medsyn.training import instructions

    (message,) = load_template(template).messages
    first = getattr(instructions, instruction)[0]
    assert message[1] == build_prompt(first, "Пример: {example}\nСимптомы: {symptoms}")


def test_dev_notes_are_dropped_and_generated_mixed_in(real: dict[str, Path]) -> None:
    notes = read_notes(real["train"])[:100]
    generated = read_notes(real["generated"], source="generated")[:40]
    symptoms = symptoms_from_json(real["map"])
    records, skipped = build_instructions(
        notes, symptoms, generated=generated, dev_notes=[notes[0], generated[0]], options=BuildOptions(seed=0)
    )
    assert skipped["dev_overlap"] == 2
    assert notes[0].id not in {r.note_id for r in records}
    mixed = [r for r in records if r.source == "generated"]
    assert mixed and all(r.split == "train" for r in mixed)
    assert {r.note_id for r in mixed} == {n.id for n in generated[1:]}


def test_symptoms_from_store_match_json(real: dict[str, Path]) -> None:
    symptoms = symptoms_from_json(real["map"])
    raw = json.loads(real["map"].read_text(encoding="utf-8"))
    codes = ["M54.5", "J00", "G35"]
    graph, src = graph_iri("source", "wikimed"), source_iri("wikimed")
    quads = []
    for code in codes:
        for label in raw[code]:
            assoc, sym = association_iri("symptom", code, label, "wikimed"), symptom_iri(label)
            quads += [
                Quad(assoc, RDF_TYPE, ms("SymptomAssociation"), graph),
                Quad(assoc, ms("disease"), code_iri(code), graph),
                Quad(assoc, ms("symptom"), sym, graph),
                Quad(assoc, ms("source"), src, graph),
                Quad(sym, rdfs("label"), Literal(label, language="ru"), graph),
            ]
    store = OxigraphStore.in_memory()
    store.add_quads(quads)
    from_store = symptoms_from_store(store)
    assert from_store == {c[:3]: {c: symptoms[c[:3]][c]} for c in codes}
    with pytest.raises(InputError, match=r"no symptom associations from source 'hsdn'"):
        symptoms_from_store(store, source="hsdn")


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("", r"ift\.jsonl: empty dataset"),
        ('{"instruction": "a", "output": "b"}\n\n', r"ift\.jsonl:2: empty line"),
        ('{"instruction": "a", "output": "b"}\n{"instruction": "a", "output": \n', r"ift\.jsonl:2: invalid JSON"),
        ('{"instruction": "a", "input": "x"}\n', r"ift\.jsonl:1: field 'output': missing or empty"),
        ('["a"]\n', r"ift\.jsonl:1: expected a JSON object"),
        ('{"instruction": "a", "output": "b", "split": "dev"}\n', r"ift\.jsonl:1: field 'split'"),
        ('{"instruction": "a", "output": "b", "extra": "x"}\n', r"ift\.jsonl:1: field 'extra'"),
    ],
)
def test_bad_dataset_lines(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "ift.jsonl"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(InputError, match=message):
        read_dataset(path)


def test_explicit_missing_dev_file_is_an_error(tmp_path: Path, real: dict[str, Path]) -> None:
    # Silently skipping it would also skip the dev-overlap filter and leak dev notes into training.
    with pytest.raises(InputError, match=r"nope\.jsonl: dev file not found"):
        build_dataset(tmp_path / "ift.jsonl", train=real["train"], dev=tmp_path / "nope.jsonl", symptom_map=real["map"])
    assert not (tmp_path / "ift.jsonl").exists()


def test_bad_notes_file(tmp_path: Path) -> None:
    path = tmp_path / "notes.jsonl"
    path.write_text('{"idx": "a", "symptoms": "боль", "code": "M54"}\n{"idx": "b", "symptoms": "кашель"}\n')
    with pytest.raises(InputError, match=r"notes\.jsonl:2: missing or empty ICD-10 code"):
        read_notes(path)


def test_cli_ift(tmp_path: Path, real: dict[str, Path]) -> None:
    train = tmp_path / "train.jsonl"
    train.write_text("".join(real["train"].read_text(encoding="utf-8").splitlines(keepends=True)[:60]))
    out = tmp_path / "ift.jsonl"
    cmd = [*MEDSYN, "ift", "--out", str(out), "--train", str(train), "--seed", "5"]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert f"records to {out}" in done.stdout and len(read_dataset(out)) > 60
    # The progress line (on stderr; a pipe gets its last state): every step of the build done.
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith("ift ") and " 5/5 done " in line

    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"idx": "a", "symptoms": "боль", "code": "M54"}\n{oops\n')
    done = subprocess.run([*cmd[:5], str(tmp_path / "x.jsonl"), "--train", str(bad)], capture_output=True, text=True)
    assert done.returncode == 2
    assert done.stderr.strip().startswith("error:") and f"{bad}:2: invalid JSON" in done.stderr
    assert "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) == 1

    out = tmp_path / "stated.jsonl"
    done = subprocess.run(
        [*MEDSYN, "ift", "--out", str(out), "--train", str(train), "--symptoms", "stated", "--tasks", "write"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    card = json.loads(card_paths(out)[0].read_text())
    assert set(card["by_task"]) == {"write"} and card["options"]["symptoms"] == "stated"
    assert card["instructions"] == STATED and card["records"] + card["skipped"]["write_no_symptoms"] == 60
