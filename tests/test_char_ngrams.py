"""The numpy char n-gram counts give scikit-learn's matrices entry for entry on real notes: the code-fidelity
classifier's transform, and the distinguishability AUC's per-fold fit_transform/transform (entry order included)."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.feature_extraction.text import TfidfTransformer, TfidfVectorizer
from sklearn.model_selection import StratifiedKFold

from medsyn.evaluation import char_ngrams
from medsyn.evaluation.data import default_dev, default_train, read_notes

ODD = ["Тест  с\n\nпробелами\tи\t\tтабуляцией", "", "а", "аб", "ÆØ 😀 знаки вне алфавита", "ЗАГЛАВНЫЕ И ё Ё"]


@pytest.fixture(scope="module")
def notes() -> tuple[list[str], list[str]]:
    return read_notes(default_train()).texts[:300], read_notes(default_dev()).texts[:100] + ODD


def _same(a, b) -> None:  # type: ignore[no-untyped-def]
    assert a.shape == b.shape and a.dtype == b.dtype
    assert np.array_equal(a.indptr, b.indptr)
    assert np.array_equal(a.indices, b.indices)
    assert np.array_equal(a.data, b.data)


@pytest.mark.parametrize(
    "settings",
    [
        {"ngram_range": (3, 8), "min_df": 2, "dtype": np.float32},  # the code-fidelity classifier's
        {"ngram_range": (2, 5), "min_df": 2, "sublinear_tf": True},  # the AUC's
        {"ngram_range": (1, 2), "binary": True},
    ],
)
def test_transform_is_scikit_learns(notes: tuple[list[str], list[str]], settings: dict) -> None:
    train, other = notes
    v = TfidfVectorizer(analyzer="char", **settings).fit(train)
    assert char_ngrams.counts(v, other) is not None  # the fast path ran, not the fallback
    _same(char_ngrams.tfidf(v, other), v.transform(other))
    _same(char_ngrams.tfidf(v, train[:50]), v.transform(train[:50]))


def test_other_analyzers_fall_back(notes: tuple[list[str], list[str]]) -> None:
    v = TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 3)).fit(notes[0])
    assert char_ngrams.counts(v, notes[1]) is None
    _same(char_ngrams.tfidf(v, notes[1]), v.transform(notes[1]))


def test_keys_sort_as_strings() -> None:
    terms = ["б", "аб", "а", "а ", "ab", "яя", "а!", "бв", "ёж", "аааааааа", "ааааааа"]
    packer = char_ngrams.Packer("".join(terms))
    keys = packer.term_keys(terms)
    assert len(set(keys.tolist())) == len(terms)
    assert [terms[i] for i in np.argsort(keys)] == sorted(terms)


def test_fold_counts_are_fit_transforms(notes: tuple[list[str], list[str]]) -> None:
    texts = notes[0][:200] + notes[1]
    y = np.arange(len(texts)) % 2
    every = char_ngrams.all_counts(TfidfVectorizer(analyzer="char", ngram_range=(2, 5), min_df=2), texts)
    assert every is not None
    for tr, te in StratifiedKFold(n_splits=3, shuffle=True, random_state=1).split(texts, y):
        v = TfidfVectorizer(analyzer="char", ngram_range=(2, 5), min_df=2, sublinear_tf=True)
        want_train = v.fit_transform([texts[i] for i in tr])
        want_test = v.transform([texts[i] for i in te])
        c_train, c_test = char_ngrams.fold_counts(every, tr, te, min_df=2)
        tf = TfidfTransformer(sublinear_tf=True).fit(c_train)
        _same(tf.transform(c_train), want_train)  # unsorted rows: the vocabulary's insertion order
        _same(tf.transform(c_test), want_test)
