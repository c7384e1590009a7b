"""``eval quality``'s faster paths report the same figures as the paths they replaced, on real notes: numpy char
n-grams for the code-fidelity classifier and the AUC (scikit-learn's vectorizers when turned off), the linked
prompt-note pairs, prefix-filtered within-set near-duplicates, and ``jobs`` 2 (processes and threads)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from medsyn.evaluation import char_ngrams, quality
from medsyn.evaluation.classifier import ClassifierConfig, CodeClassifier
from medsyn.evaluation.data import (
    Note,
    NoteSet,
    attach_requested,
    default_requested,
    default_synthetic,
    default_train,
    read_notes,
    read_requested,
)
from medsyn.evaluation.report import quality_rows


@pytest.fixture(scope="module")
def sets() -> tuple[NoteSet, NoteSet, NoteSet]:
    train = read_notes(default_train())
    train = replace(train, notes=train.notes[:250])
    gpt4, _ = attach_requested(read_notes(default_synthetic()[0]), read_requested(default_requested()))
    picked = [n for n in gpt4.notes if n.code in set(train.codes)][:100]
    gpt4 = replace(gpt4, notes=picked)
    # The same notes as a `generate` set: each linked to a train note of its code (the prompt's example), some
    # notes copied from it, and a few repeated
    by_code = {n.code: n for n in train.notes}
    linked = [
        Note(
            f"g{i}",
            by_code[n.code].text if i % 9 == 0 else n.text,
            n.code,
            "notes.jsonl",
            i + 1,
            requested=n.requested,
            example_id=by_code[n.code].id,
        )
        for i, n in enumerate(picked + picked[:12])
    ]
    return train, gpt4, NoteSet("linked", gpt4.path, "generate", linked)


def _rows(train: NoteSet, syn: NoteSet, jobs: int = 1) -> tuple[object, ...]:
    """The report's rows and the unrounded figures behind them."""
    clf = CodeClassifier(ClassifierConfig(epochs=2), jobs=jobs).fit(train.texts, train.codes, seed=0)
    q = quality.assess(syn, train, np.random.default_rng(0), auc_folds=3, classifier=clf, jobs=jobs)
    return quality_rows([q]), q.auc, q.fidelity, q.symptom_recall, q.nonword_share, q.nonword_share_real


def test_same_report_as_scikit_learn_vectorizers(monkeypatch: pytest.MonkeyPatch, sets) -> None:  # type: ignore[no-untyped-def]
    train, _, linked = sets
    fast = _rows(train, linked)
    monkeypatch.setattr(char_ngrams, "counts", lambda *a: None)  # tfidf() falls back to vectorizer.transform
    monkeypatch.setattr(char_ngrams, "all_counts", lambda *a: None)  # the AUC fits a TfidfVectorizer per fold
    slow = _rows(train, linked)
    assert fast == slow
    # copies of train notes and repeated notes are found (the comparison is not of zeros)
    near = {row[0]: row[2] for row in fast[0][1]}
    assert near["near-copy of its prompt note (J ≥ 0.5)"] != "0.00%"
    assert near["near-duplicates within the set (J ≥ 0.5)"] != "0.00%"


def test_figures_match_all_pairs_overlap(sets) -> None:  # type: ignore[no-untyped-def]
    train, _, linked = sets
    q = quality.assess(linked, train, np.random.default_rng(0), auc_folds=3)
    syn = linked.texts
    assert np.array_equal(q.within_near, quality.overlap(syn, syn, skip_self=True).jaccard >= quality.NEAR_DUPLICATE)
    ids = {n.id: i for i, n in enumerate(train.notes)}
    allowed = np.zeros((len(syn), len(train.notes)), dtype=bool)
    allowed[np.arange(len(syn)), [ids[n.example_id] for n in linked.notes]] = True
    want = quality.overlap(syn, train.texts, allowed=allowed)
    assert np.array_equal(q.prompt_overlap.jaccard, want.jaccard)
    assert np.array_equal(q.prompt_overlap.containment, want.containment)
    assert np.array_equal(q.prompt_overlap.best, want.best)


def test_jobs_change_nothing(sets) -> None:  # type: ignore[no-untyped-def]
    train, _, linked = sets
    assert _rows(train, linked, jobs=2) == _rows(train, linked, jobs=1)
