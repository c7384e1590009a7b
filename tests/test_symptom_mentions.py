"""The quality filter's symptom matcher against a hand-labelled table of (note, symptom, mentioned?) cases.

``tests/data/symptom_mentions.tsv``: about 180 cases, real RuMedTop3 notes (source column names the idx) and written
complaint texts, symptoms in the MKG's wording, labelled by reading the note: is the symptom stated as present?
Paraphrases that no lexical matcher can see are labelled as a reader would and stay in the table; they are why
recall is below 1 (docs/generation.md reports the figures against the old stem matcher).
"""

from __future__ import annotations

import csv
import statistics
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from medsyn.generation.filter import FilterConfig, decide, score_note
from medsyn.generation.mentions import analyse, mentioned, symptom_recall, symptom_words

TABLE = Path(__file__).parent / "data" / "symptom_mentions.tsv"


@dataclass(frozen=True)
class Case:
    note: str
    symptom: str
    label: bool
    source: str


def _cases() -> list[Case]:
    with TABLE.open(encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE))
    return [Case(r["note"], r["symptom"], r["mentioned"] == "1", r["source"]) for r in rows]


CASES = _cases()

# The failures the issue names: each must be right, whatever the table's overall figures.
MANDATORY = [
    ("Жалобы на головную боль в затылочной области, шум в ушах.", "головокружение", False),
    ("Жалобы на головную боль в затылочной области, шум в ушах.", "головная боль", True),
    ("Жалобы на общую слабость, быструю утомляемость.", "слабоумие", False),
    ("Жалобы на общую слабость, быструю утомляемость.", "слабость", True),
    ("Боль и отёк в правом колене после падения.", "боль в левом колене", False),
    ("Боль и отёк в левом колене после падения.", "боль в левом колене", True),
    ("Отрицает тошноту и рвоту. Беспокоит боль в эпигастрии.", "тошнота", False),
    ("Отрицает тошноту и рвоту. Беспокоит боль в эпигастрии.", "рвота", False),
    ("Отрицает тошноту и рвоту. Беспокоит боль в эпигастрии.", "боль в эпигастрии", True),
]


def test_table_is_large_balanced_and_holds_the_issue_cases() -> None:
    assert len(CASES) >= 60
    positives = sum(c.label for c in CASES)
    assert 0.3 < positives / len(CASES) < 0.7
    assert sum(c.source.startswith("RuMedTop3:") for c in CASES) >= 30
    table = {(c.note, c.symptom, c.label) for c in CASES}
    assert set(MANDATORY) <= table


@pytest.mark.parametrize(("note", "symptom", "label"), MANDATORY, ids=[f"{s}-{n[:20]}" for n, s, _ in MANDATORY])
def test_issue_cases(note: str, symptom: str, label: bool) -> None:
    assert mentioned(note, symptom) is label


def test_precision_and_recall_on_the_table() -> None:
    tp = sum(c.label and mentioned(c.note, c.symptom) for c in CASES)
    fp = sum(not c.label and mentioned(c.note, c.symptom) for c in CASES)
    fn = sum(c.label and not mentioned(c.note, c.symptom) for c in CASES)
    precision, recall = tp / (tp + fp), tp / (tp + fn)
    wrong = [(c.symptom, c.note[:60], c.label) for c in CASES if mentioned(c.note, c.symptom) is not c.label]
    # Measured 0.988 / 0.825 (docs/generation.md); the old stem matcher had 0.609 / 0.922.
    assert precision >= 0.95, wrong
    assert recall >= 0.80, wrong
    assert len(wrong) <= 0.15 * len(CASES), wrong


@pytest.mark.parametrize(
    ("note", "symptom", "label"),
    [
        ("Тошноты и рвоты нет.", "рвота", False),  # post-posed cue looks back over "и"
        ("Тошноты нет, была однократная рвота.", "рвота", True),  # a clause-internal cue stops at the comma
        ("Без температуры, беспокоит кашель.", "кашель", True),
        ("Отрицает боли в груди, но отмечает одышку.", "одышка", True),
        ("Озноба не было, беспокоит кашель.", "озноб", False),
        ("Нет слабости, утомляемости; беспокоит кашель.", "утомляемость", False),
        ("Головная боль не проходит после приёма анальгетиков.", "головная боль", True),  # "не" + other verb
        ("Несильная головная боль, тошнота.", "головная боль", True),
        ("Повышение температуры до 38,5 °C.", "повышение температуры тела", True),  # "тела" is optional
        ("Боль в правом колене, отёк стопы.", "боль в колене", True),
    ],
)
def test_negation_scope_and_optional_words(note: str, symptom: str, label: bool) -> None:
    assert mentioned(note, symptom) is label


def test_recall_is_a_share_and_empty_request_is_zero() -> None:
    note = "Жалобы на головные боли, тошноту. Рвоты нет."
    assert symptom_recall(note, ["головная боль", "тошнота", "рвота", "сыпь"]) == 0.5
    assert symptom_recall(note, []) == 0.0


def test_the_filter_rejects_a_note_that_negates_the_requested_symptoms() -> None:
    # Recall alone: "Беспокоят тошнота и рвота после еды." adds one content word to the two requested ones
    # (novelty 0.33), which the default restatement threshold (0.35) rejects; tests/test_note_filter.py covers that.
    cfg = FilterConfig(min_recall=0.5, max_similarity=0.6, min_words=3, max_restatement=-1.0)
    s = score_note("Отрицает тошноту и рвоту, жалоб на головокружение нет.", ["тошнота", "рвота"], None)
    assert s.recall == 0.0
    assert decide(s, cfg) == (False, "symptom recall 0.00 < 0.5")
    ok = score_note("Беспокоят тошнота и рвота после еды.", ["тошнота", "рвота"], None)
    assert ok.recall == 1.0 and decide(ok, cfg)[0]


def _cpu_ms(fn, *args) -> float:  # type: ignore[no-untyped-def]
    t = time.process_time()
    fn(*args)
    return (time.process_time() - t) * 1e3


def test_lemmatising_a_50_word_note_is_fast() -> None:
    notes = [c.note for c in CASES]
    words = sum(len(n.split()) for n in dict.fromkeys(notes))
    mentioned("разогрев", "словаря")  # the dictionary loads once per process
    analyse.cache_clear()
    symptom_words.cache_clear()
    first_pass = _cpu_ms(lambda: [mentioned(n, "боль") for n in dict.fromkeys(notes)])
    # CPU time, not wall time: the machine may be shared. First pass lemmatises every word once.
    assert first_pass / words * 50 < 5.0
    note = " ".join(list(dict.fromkeys(notes))[:8])
    assert len(note.split()) >= 50
    assert statistics.median(_cpu_ms(mentioned, note, "головная боль") for _ in range(20)) < 5.0
