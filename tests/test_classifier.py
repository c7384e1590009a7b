"""Metrics on hand-made cases and the baseline classifier on a small slice of the real RuMedTop3 data."""

from __future__ import annotations

import math
from collections import Counter

import pytest

from medsyn.evaluation.classifier import ClassifierConfig, CodeClassifier, evaluate, hit_at, score
from medsyn.evaluation.data import default_dev, default_train, read_notes

CHEAP = ClassifierConfig(ngram_range=(3, 5), epochs=3)


def test_hit_at_counts_gold_within_first_k() -> None:
    gold = ["A01", "B02", "C03", "D04"]
    ranked = [["A01", "B02", "C03"], ["C03", "B02", "A01"], ["A01", "B02", "D04"], ["D04"]]
    assert hit_at(gold, ranked, 1) == 50.0
    assert hit_at(gold, ranked, 2) == 75.0
    assert hit_at(gold, ranked, 3) == 75.0


def test_score_macro_f1_and_recall_by_hand() -> None:
    gold = ["A", "A", "A", "B", "C"]
    ranked = [["A"], ["A"], ["B"], ["B"], ["A"]]
    s = score(gold, ranked)
    # A: tp 2, fp 1, fn 1 -> F1 2/3; B: tp 1, fp 1, fn 0 -> 2/3; C: tp 0 -> 0.
    assert s.macro_f1 == pytest.approx(100 * (2 / 3 + 2 / 3 + 0) / 3)
    assert s.accuracy == pytest.approx(60.0)
    assert s.per_code_recall == pytest.approx({"A": 200 / 3, "B": 100.0, "C": 0.0})
    assert s.per_code_n == {"A": 3, "B": 1, "C": 1}
    assert s.group_accuracy({"B", "C"}) == pytest.approx(50.0)
    assert math.isnan(s.group_accuracy({"Z"}))


def test_code_missing_from_training_counts_as_miss() -> None:
    s = score(["A", "Z"], [["A", "B"], ["A", "B"]], known=["A", "B"])
    assert s.unseen == ("Z",)
    assert s.accuracy == 50.0
    assert s.n == 2


def test_reference_config_is_rumedbench() -> None:
    ref = ClassifierConfig.reference()
    assert (ref.C, ref.ngram_range, ref.min_df, ref.solver) == (10.0, (3, 8), 1, "lbfgs")


def test_classifier_beats_majority_on_real_slice() -> None:
    train = read_notes(default_train())
    dev = read_notes(default_dev())
    top = [c for c, _ in Counter(train.codes).most_common(8)]
    tr = [n for n in train.notes if n.code in top][:900]
    dv = [n for n in dev.notes if n.code in top]
    clf = CodeClassifier(CHEAP).fit([n.text for n in tr], [n.code for n in tr], seed=0)
    s, ranked = evaluate(clf, [n.text for n in dv], [n.code for n in dv])
    majority = 100 * Counter(n.code for n in dv).most_common(1)[0][1] / len(dv)
    assert s.accuracy > majority + 10
    assert s.hit3 > s.accuracy
    assert all(len(r) == 3 and len(set(r)) == 3 for r in ranked)
    # Same seed, same model: the SGD shuffling is the only randomness.
    again = CodeClassifier(CHEAP).fit([n.text for n in tr], [n.code for n in tr], seed=0)
    assert again.top_k([n.text for n in dv[:50]]) == ranked[:50]


def test_fit_rejects_single_code() -> None:
    from medsyn.errors import InputError

    with pytest.raises(InputError, match="two distinct codes"):
        CodeClassifier(CHEAP).fit(["a b c", "d e f"], ["A01", "A01"])


def test_two_codes_rank_both() -> None:
    texts = ["боль в спине", "боль в пояснице", "кашель и насморк", "насморк, кашель"]
    clf = CodeClassifier(ClassifierConfig(ngram_range=(3, 4), min_df=1, epochs=20)).fit(
        texts, ["M54", "M54", "J06", "J06"]
    )
    assert clf.top_k(["сильный кашель", "боль в спине"], k=3) == [["J06", "M54"], ["M54", "J06"]]


def test_vector_classifier_reads_meaning_on_real_slice() -> None:
    """Mean navec vectors + MLP beat the majority code on real notes; the same seed gives the same model."""
    from medsyn.evaluation.classifiers import make_classifier
    from medsyn.evaluation.vectors import VectorClassifier

    train, dev = read_notes(default_train()), read_notes(default_dev())
    codes = {c for c, _ in Counter(train.codes).most_common(8)}
    tr = [n for n in train.notes if n.code in codes]
    dv = [n for n in dev.notes if n.code in codes]
    clf = make_classifier(ClassifierConfig(kind="vectors", hidden=64, vector_epochs=20))
    assert isinstance(clf, VectorClassifier)
    clf.fit([n.text for n in tr], [n.code for n in tr], seed=0)
    s, _ = evaluate(clf, [n.text for n in dv], [n.code for n in dv])
    majority = 100 * Counter(n.code for n in dv).most_common(1)[0][1] / len(dv)
    assert s.accuracy > majority + 10
    again = make_classifier(ClassifierConfig(kind="vectors", hidden=64, vector_epochs=20))
    again.fit([n.text for n in tr], [n.code for n in tr], seed=0)
    assert again.top_k([n.text for n in dv[:20]]) == clf.top_k([n.text for n in dv[:20]])


def test_unknown_classifier_is_refused_in_one_line() -> None:
    from medsyn.errors import InputError

    with pytest.raises(InputError, match="--classifier: expected one of tfidf, vectors, got 'bert'"):
        ClassifierConfig(kind="bert")  # type: ignore[arg-type]
