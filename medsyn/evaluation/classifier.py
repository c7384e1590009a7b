"""The RuMedTop3 baseline: character TF-IDF (3..8-grams) + L2 logistic regression (C=10), and its metrics.

RuMedBench's feature-based baseline (``code/linear_models/single_text_classifier.py``) is
``TfidfVectorizer(analyzer="char", ngram_range=(3, 8))`` + one-vs-rest ``LogisticRegression(C=10)`` solved by
L-BFGS. Solving that exactly costs minutes per fit on two cores (760k features x 105 codes), too slow for a grid of
dozens of fits. The default ``solver="sgd"`` minimises the same one-vs-rest L2 log-loss (``alpha = 1 / (C * n)``)
with five epochs of SGD, and keeps only n-grams seen in at least two training notes (``min_df=2``: a feature of a
single note cannot generalise; 760k -> 304k features). On dev it lands within a point of the exact reference
(docs/evaluation.md has the figures). ``solver="lbfgs"`` with ``min_df=1`` is the reference itself.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol

import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression, SGDClassifier
from sklearn.multiclass import OneVsRestClassifier

from medsyn.errors import InputError
from medsyn.evaluation import char_ngrams

Solver = Literal["sgd", "lbfgs"]
Kind = Literal["tfidf", "vectors"]
KINDS: tuple[Kind, ...] = ("tfidf", "vectors")


@dataclass(frozen=True, slots=True)
class ClassifierConfig:
    """Model settings; ``epochs`` applies to SGD only (tests use fewer for speed).

    ``kind="vectors"`` selects :class:`medsyn.evaluation.vectors.VectorClassifier` (see
    :func:`medsyn.evaluation.classifiers.make_classifier`) (mean navec word vectors + a
    hidden layer), a classifier that reads meaning rather than character n-grams; ``hidden`` and ``vector_epochs``
    are its settings, the others are the TF-IDF model's.
    """

    kind: Kind = "tfidf"
    C: float = 10.0
    ngram_range: tuple[int, int] = (3, 8)
    min_df: int = 2
    solver: Solver = "sgd"
    epochs: int = 5
    hidden: int = 512
    vector_epochs: int = 30

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise InputError(f"--classifier: expected one of {', '.join(KINDS)}, got {self.kind!r}")

    def describe(self) -> str:
        """One line for reports."""
        if self.kind == "vectors":
            return (
                f"mean navec word vectors (300-d, natasha's news model) + MLP ({self.hidden} ReLU units, Adam, "
                f"{self.vector_epochs} epochs)"
            )
        return (
            f"char TF-IDF {self.ngram_range[0]}..{self.ngram_range[1]} (min_df={self.min_df}) + one-vs-rest "
            f"L2 log-loss, C={self.C:g}, {self.solver} ({self.epochs} epochs)"
        )

    @classmethod
    def reference(cls) -> ClassifierConfig:
        """RuMedBench's exact settings (slow: minutes per fit)."""
        return cls(min_df=1, solver="lbfgs")


class CodeClassifier:
    """Ranks ICD-10 categories for a note.

    >>> clf = CodeClassifier(ClassifierConfig(ngram_range=(3, 4), min_df=1, epochs=20))
    >>> clf = clf.fit(["боль в спине", "боль в пояснице", "кашель и насморк", "насморк, кашель"],
    ...               ["M54", "M54", "J06", "J06"], seed=0)
    >>> clf.top_k(["сильный кашель"], k=1)
    [['J06']]
    """

    def __init__(self, config: ClassifierConfig | None = None, *, jobs: int = 1) -> None:
        self.config = config or ClassifierConfig()
        # SGD fits its one-vs-rest classes in this many threads (seeds drawn per class first: the same model)
        self.jobs = jobs
        self.classes_: np.ndarray = np.array([], dtype=object)
        self._vec: TfidfVectorizer | None = None
        self._model: SGDClassifier | OneVsRestClassifier | None = None

    def fit(self, texts: Sequence[str], codes: Sequence[str], *, seed: int = 0) -> CodeClassifier:
        """Fit the vectorizer and the model on one training set; ``seed`` fixes SGD's shuffling."""
        if len(texts) != len(codes):
            raise InputError(f"{len(texts)} texts but {len(codes)} codes")
        if len(set(codes)) < 2:
            raise InputError("training set needs at least two distinct codes")
        cfg = self.config
        # min_df counts documents: on tiny training sets keep every n-gram rather than fail with an empty vocabulary.
        min_df = cfg.min_df if len(texts) >= 10 * cfg.min_df else 1
        self._vec = TfidfVectorizer(analyzer="char", ngram_range=cfg.ngram_range, min_df=min_df, dtype=np.float32)
        x = self._vec.fit_transform(texts)
        y = np.asarray(codes, dtype=object)
        if cfg.solver == "sgd":
            self._model = SGDClassifier(
                loss="log_loss",
                alpha=1.0 / (cfg.C * x.shape[0]),
                max_iter=cfg.epochs,
                tol=None,
                random_state=seed,
                n_jobs=self.jobs,
            )
        else:
            self._model = OneVsRestClassifier(LogisticRegression(C=cfg.C, max_iter=100))
        with warnings.catch_warnings():
            # A fixed epoch budget is the point of the SGD setting; its "did not converge" warning is expected.
            warnings.simplefilter("ignore")
            self._model.fit(x, y)
        self.classes_ = np.asarray(self._model.classes_, dtype=object)
        return self

    def decision(self, texts: Sequence[str]) -> np.ndarray:
        """One score per (note, class) in ``classes_`` order; higher ranks first."""
        if self._vec is None or self._model is None:
            raise RuntimeError("fit the classifier first")
        x = char_ngrams.tfidf(self._vec, texts)
        if isinstance(self._model, SGDClassifier):
            scores = np.asarray(self._model.decision_function(x))
            # With two codes sklearn returns one margin (for classes_[1]); rank both codes from it.
            return np.column_stack([-scores, scores]) if scores.ndim == 1 else scores
        return np.asarray(self._model.predict_proba(x))

    def top_k(self, texts: Sequence[str], k: int = 3) -> list[list[str]]:
        return ranked_codes(self.decision(texts), self.classes_, k)


class Classifier(Protocol):
    """What the evaluation needs of a code classifier (TF-IDF or word vectors)."""

    classes_: np.ndarray

    def fit(self, texts: Sequence[str], codes: Sequence[str], *, seed: int = 0) -> Classifier: ...

    def top_k(self, texts: Sequence[str], k: int = 3) -> list[list[str]]: ...


def ranked_codes(scores: np.ndarray, classes: np.ndarray, k: int) -> list[list[str]]:
    """The ``k`` best classes per row of ``scores``."""
    # Stable sort on the negated scores: ties rank in class order, so runs are reproducible.
    order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return [[str(c) for c in row] for row in classes[order]]


@dataclass(frozen=True, slots=True)
class Scores:
    """Metrics x100 on one evaluation set.

    ``unseen`` lists gold codes the model was never trained on: their notes stay in every denominator (they are
    misses), so a dev code absent from train lowers the score instead of silently vanishing.
    """

    n: int
    accuracy: float
    hit3: float
    macro_f1: float
    per_code_recall: dict[str, float] = field(default_factory=dict)
    per_code_n: dict[str, int] = field(default_factory=dict)
    unseen: tuple[str, ...] = ()

    def group_accuracy(self, group: Iterable[str]) -> float:
        """Top-1 accuracy over the notes whose gold code is in ``group`` (NaN when it has none)."""
        g = [c for c in group if c in self.per_code_n]
        total = sum(self.per_code_n[c] for c in g)
        if total == 0:
            return float("nan")
        return sum(self.per_code_recall[c] * self.per_code_n[c] for c in g) / total


def hit_at(gold: Sequence[str], ranked: Sequence[Sequence[str]], k: int) -> float:
    """Share (x100) of notes whose gold code is among the first ``k`` predictions.

    >>> hit_at(["A01", "B02"], [["A01", "C03"], ["C03", "B02"]], 1)
    50.0
    """
    if len(gold) != len(ranked):
        raise ValueError("gold and predictions differ in length")
    if not gold:
        return float("nan")
    return 100.0 * sum(g in r[:k] for g, r in zip(gold, ranked, strict=True)) / len(gold)


def score(gold: Sequence[str], ranked: Sequence[Sequence[str]], *, known: Iterable[str] | None = None) -> Scores:
    """Top-1 accuracy, Hit@3, macro-F1 over the gold codes (top-1) and per-code recall, all x100.

    ``known`` is the set of codes the model could predict; gold codes outside it are listed in ``unseen``.
    """
    top1 = [r[0] if r else "" for r in ranked]
    labels = sorted(set(gold))
    f1s: list[float] = []
    recall: dict[str, float] = {}
    per_n: dict[str, int] = {}
    for c in labels:
        tp = sum(g == c and p == c for g, p in zip(gold, top1, strict=True))
        fp = sum(g != c and p == c for g, p in zip(gold, top1, strict=True))
        n_c = sum(g == c for g in gold)
        fn = n_c - tp
        f1s.append(2 * tp / (2 * tp + fp + fn) if tp else 0.0)
        recall[c] = 100.0 * tp / n_c
        per_n[c] = n_c
    known_set = set(known) if known is not None else set(labels)
    unseen = tuple(c for c in labels if c not in known_set)
    return Scores(
        n=len(gold),
        accuracy=hit_at(gold, ranked, 1),
        hit3=hit_at(gold, ranked, 3),
        macro_f1=100.0 * float(np.mean(f1s)) if f1s else float("nan"),
        per_code_recall=recall,
        per_code_n=per_n,
        unseen=unseen,
    )


def evaluate(clf: Classifier, texts: Sequence[str], gold: Sequence[str]) -> tuple[Scores, list[list[str]]]:
    ranked = clf.top_k(texts, k=3)
    return score(gold, ranked, known=[str(c) for c in clf.classes_]), ranked
