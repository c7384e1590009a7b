"""Issue 22.2: the filter judges a note as a note (novelty against the requested list, non-words), measured on the
labelled table tests/data/note_labels.tsv."""

from __future__ import annotations

import json
import random
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from medsyn.errors import InputError
from medsyn.evaluation.data import default_requested, default_train, read_notes, read_requested
from medsyn.evaluation.note_labels import (
    LABELS,
    OLD_FILTER,
    OthersHold,
    acceptance,
    read_labels,
    real_phrase_counts,
    real_vocabulary,
    table_scores,
)
from medsyn.generation.filter import FilterConfig, Scores, decide, score_note
from medsyn.generation.fluency import known_phrases, nonwords, note_vocabulary, novelty, phrases, unseen_phrases
from medsyn.generation.run_folder import failure_reasons
from medsyn.textsim import tokens, words

TABLE = Path(__file__).parent / "data" / "note_labels.tsv"


@pytest.fixture(scope="module")
def table() -> tuple[list, list[Scores]]:
    rows = read_labels(TABLE)
    return rows, table_scores(rows, real_vocabulary())


def test_the_labelled_table_loads_with_every_label() -> None:
    rows = read_labels(TABLE)
    assert len(rows) >= 200
    assert {r.label for r in rows} == set(LABELS)
    assert {r.source for r in rows} == {"own", "own_rejected", "gpt4", "real"}
    # Real notes were never prompted; every generated note names what it was asked for.
    assert all(bool(r.requested) == (r.source != "real") for r in rows)
    assert all(r.why for r in rows if r.label != "plausible")


def test_a_bad_row_names_its_line_and_field(tmp_path: Path) -> None:
    lines = TABLE.read_text(encoding="utf-8").split("\n")[:4]
    cells = lines[2].split("\t")
    cells[5] = "fine"
    bad = tmp_path / "labels.tsv"
    bad.write_text("\n".join([lines[0], lines[1], "\t".join(cells), lines[3]]) + "\n", encoding="utf-8")
    with pytest.raises(InputError) as e:
        read_labels(bad)
    assert ":3" in str(e.value) and "label" in str(e.value)


def test_the_new_filter_accepts_more_precisely_than_the_old(table: tuple[list, list[Scores]]) -> None:
    rows, scores = table
    old = acceptance(rows, scores, OLD_FILTER)
    new = acceptance(rows, scores, FilterConfig())
    assert new.precision > old.precision
    # The restatement check is what removes the lists: the old filter took nearly all of them.
    assert new.accepted["list"] < old.accepted["list"] / 4
    assert new.accepted["plausible"] <= old.accepted["plausible"]


def _echo(symptoms: list[str], rng: random.Random) -> str:
    items = list(symptoms)
    rng.shuffle(items)
    items = [s.capitalize() if rng.random() < 0.3 else s for s in items]
    form = rng.randrange(3)
    if form == 0:
        return "; ".join(items) + "."
    if form == 1:
        return ", ".join(items)
    return "Жалобы на " + ", ".join(items) + "."


def test_a_planted_list_echo_is_rejected_as_a_restatement() -> None:
    rng = random.Random(7)
    lists = [list(s) for sets in read_requested(default_requested()).values() for s in sets]
    # Lists long enough to pass the length check, so the verdict is the restatement check's to give.
    lists = [s for s in lists if len(tokens(" ".join(s))) >= 6]
    chosen = rng.sample(lists, 50)
    reasons = [decide(score_note(_echo(s, rng), s, None), FilterConfig())[1] for s in chosen]
    restated = sum(r.startswith("restatement") for r in reasons)
    assert restated >= 0.95 * len(chosen), [r for r in reasons if not r.startswith("restatement")]


def test_novelty_counts_what_the_note_adds() -> None:
    requested = ["тошнота", "головная боль"]
    assert novelty("Тошнота; головная боль.", requested) == 0.0
    assert novelty("Жалобы на головную боль и тошноту", requested) == 0.0  # framing and inflection add nothing
    added = novelty("Головная боль, тошнота после еды, рвота два дня.", requested)
    assert 0.5 < added < 1.0
    assert novelty("Боль в колене при ходьбе.", []) == 1.0
    # The cost of the threshold chosen on the table: a short note that adds one word to two symptoms is rejected.
    short = score_note("Беспокоят тошнота и рвота после еды.", ["тошнота", "рвота"], None)
    assert decide(short, FilterConfig())[1].startswith("restatement")


def test_invented_words_are_flagged_and_medical_words_are_not(table: tuple[list, list[Scores]]) -> None:
    rows, _ = table
    vocabulary = real_vocabulary()
    invented = {"подколедочная", "питьеводяние", "лихорадственность", "гнойство", "рефлексеях"}
    found = set()
    for r in rows:
        found |= invented & set(nonwords(r.note, r.requested, vocabulary))
    assert found == invented
    assert nonwords("Избытокое потоотделение, холоскусть.") == ["избытокое", "холоскусть"]
    clean = "ОРВИ неделю назад. АД 140/90 мм рт. ст., ЭКГ без изменений, принимает 5 мг, ЧСС 80, t 37,2."
    assert nonwords(clean, (), vocabulary) == []
    # Words of the medical vocabulary that pymorphy3 lacks: known from the real notes or the requested list.
    medical = "Тахипноэ, ортопноэ; принимает бисопролол, сальбутамол."
    assert nonwords(medical, ["тахипноэ"], vocabulary) == []
    assert nonwords(medical, [], ()) == ["тахипноэ", "ортопноэ", "бисопролол", "сальбутамол"]


def test_the_vocabulary_keeps_words_of_several_notes_only() -> None:
    notes = ["Беспокоит тахипноэ.", "Тахипноэ при нагрузке.", "Колическтве небольшом."]
    vocabulary = note_vocabulary(notes)
    assert nonwords("Тахипноэ", (), vocabulary) == []
    assert nonwords("колическтве", (), vocabulary) == ["колическтве"]


def test_reasons_flow_and_old_scores_stay_readable(tmp_path: Path) -> None:
    cfg = FilterConfig()
    rejected = decide(
        score_note("Жалобы на головную боль, тошноту, рвоту.", ["головная боль", "тошнота", "рвота"], None), cfg
    )
    assert rejected[0] is False and rejected[1].startswith("restatement")
    junk = score_note("Головная боль, питьеводяние, кровоизде, слабость.", ["головная боль"], None)
    assert junk.nonwords == ("питьеводяние", "кровоизде")
    assert decide(junk, cfg)[1].startswith("non-word (питьеводяние")
    assert decide(junk, replace(cfg, max_nonword_rate=-1.0))[0] is True
    assert junk.to_dict()["nonwords"] == ["питьеводяние", "кровоизде"]
    # A record written before issue 22.2 has no novelty: not measured, so no restatement.
    old = Scores(recall=1.0, similarity=0.0, words=8)
    assert decide(old, cfg) == (True, "")
    reasons = [
        "restatement of the requested symptoms (novelty 0.00 <= 0.35)",
        "restatement of the requested symptoms (novelty 0.20 <= 0.35)",
        decide(junk, cfg)[1],
    ]
    (tmp_path / "failures.jsonl").write_text(
        "".join(json.dumps({"id": str(i), "sample_id": "s", "reason": r}) + "\n" for i, r in enumerate(reasons)),
        encoding="utf-8",
    )
    assert failure_reasons(tmp_path).startswith("2 restatement of the requested symptoms, 1 non-word")


def test_thresholds_out_of_range_are_refused() -> None:
    with pytest.raises(InputError, match="max-restatement"):
        FilterConfig(max_restatement=1.5)
    with pytest.raises(InputError, match="max-nonword-rate"):
        FilterConfig(max_nonword_rate=2.0)


def test_the_quality_report_shows_restatement_and_nonword_shares(tmp_path: Path) -> None:
    from medsyn.evaluation.data import Note, NoteSet, default_train, read_notes
    from medsyn.evaluation.quality import assess
    from medsyn.evaluation.report import write_quality_report

    train = read_notes(default_train())
    small = replace(train, notes=train.notes[:300])
    lists = [("тошнота", "головная боль"), ("кашель", "одышка", "мокрота")]
    # Four notes restate their list, two add to it; one of the six holds an invented word.
    texts = [
        ("Тошнота, головная боль.", 0),
        ("Жалобы на кашель, одышку, мокроту.", 1),
        ("Головная боль; тошнота.", 0),
        ("Одышка, кашель с мокротой.", 1),
        ("Головная боль и тошнота после еды третий день, хуже вечером.", 0),
        ("Кашель с мокротой по утрам, одышка при ходьбе, питьеводяние, слабость.", 1),
    ]
    notes = [Note(f"n{i}", t, "R51", "s.jsonl", i + 1, lists[k]) for i, (t, k) in enumerate(texts)]
    q = assess(NoteSet("probe", small.path, "generate", notes * 5), small, np.random.default_rng(0), auc_folds=2)
    assert q.restatement_share == pytest.approx(4 / 6)
    assert q.nonword_share == pytest.approx(1 / 6)
    assert q.nonword_share_real is not None and 0.0 < q.nonword_share_real < 0.5
    report = write_quality_report(tmp_path, [q], train="train", notes=[]).read_text(encoding="utf-8")
    assert "restatement share" in report and "66.67%" in report
    assert "non-word share" in report and "16.67%" in report


# ------------------------------------------------------------------------------------------ phrasing (word salad)
PHRASING = 0.6


def test_word_pairs_stay_inside_a_clause() -> None:
    assert phrases("Боль в горле, кашель 3 дня. Т 37,5") == {"боль в", "в горле", "кашель #", "# дня", "т #"}
    known = known_phrases(["Боль в горле, кашель.", "Кашель с мокротой."])
    assert unseen_phrases("Кашель, боль в горле.", known) == 0.0
    assert unseen_phrases("Боль в ресницах.", known) == 0.5
    assert unseen_phrases("Кашель.", known) == 0.0  # no pair, nothing unfamiliar: the length check judges it


def test_a_planted_word_salad_of_real_words_is_unfamiliar_and_real_notes_are_not() -> None:
    """The real notes' own words shuffled: every word is known to the dictionary and the vocabulary, so only the
    phrasing check can see it. Real notes are scored against the other real notes (their own pairs left out)."""
    counts = real_phrase_counts()
    rng = random.Random(5)
    notes = [t for t in rng.sample(read_notes(default_train()).texts, 300) if len(words(t)) >= 6]
    salads = []
    for t in notes:
        w = words(t)
        rng.shuffle(w)
        salads.append(" ".join(w))
    real = [unseen_phrases(t, OthersHold(counts, frozenset(phrases(t)))) for t in notes]
    salad = [unseen_phrases(t, counts) for t in salads]
    assert sum(x > PHRASING for x in salad) >= 0.85 * len(salad)
    assert sum(x > PHRASING for x in real) <= 0.06 * len(real)


def test_the_phrasing_check_takes_nonsense_out_of_our_accepted_notes(table: tuple[list, list[Scores]]) -> None:
    rows, _ = table
    own = [r for r in rows if r.source == "own"]
    scores = table_scores(own, real_vocabulary(), real_phrase_counts())
    today = acceptance(own, scores, FilterConfig())
    checked = acceptance(own, scores, FilterConfig(max_unseen_phrases=PHRASING))
    assert checked.precision > today.precision
    assert checked.accepted["nonsense"] <= 0.7 * today.accepted["nonsense"]
    assert checked.accepted["plausible"] >= today.accepted["plausible"] - 1
    assert "unfamiliar" in checked.reasons


def test_the_phrasing_check_is_off_unless_asked_and_keeps_old_identities() -> None:
    salad = score_note("Сон болит, боли в ресницах, почечная боль в ногах.", ["бессонница"], None, phrases=frozenset())
    assert salad.unseen_phrases == 1.0
    assert decide(salad, FilterConfig(min_recall=0.0))[0] is True
    why = decide(salad, FilterConfig(min_recall=0.0, max_unseen_phrases=0.6))[1]
    assert why.startswith("unfamiliar phrasing (1.00")
    assert "max_unseen_phrases" not in FilterConfig().describe()
    assert FilterConfig(max_unseen_phrases=0.6).describe()["max_unseen_phrases"] == 0.6
    # Not measured without the real notes' pairs: no score, no verdict.
    plain = score_note("Сон болит.", [], None)
    assert plain.unseen_phrases is None and "unseen_phrases" not in plain.to_dict()
    with pytest.raises(InputError, match="max-unseen-phrases"):
        FilterConfig(max_unseen_phrases=1.5)
