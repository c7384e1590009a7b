"""Quality and privacy of a synthetic note set measured against the real notes.

* diversity: distinct-n (unique / total word n-grams) on equally many real and synthetic notes, because distinct-n
  falls as a corpus grows and the sets differ in size;
* lengths in words;
* symptom recall of the requested symptoms (:func:`medsyn.generation.mentions.symptom_recall`: lemmas, negation scope);
* copying: word 3-shingle Jaccard and containment (:mod:`medsyn.textsim`) of every synthetic note against the real
  note it was prompted with (``example_id`` of ``medsyn generate`` output; for sets without it, the closest real
  note of the same code stands in) and against the whole train set. Computed exactly with a sparse shingle
  matrix rather than estimated with MinHash: 2k x 5k pairs are cheap this way. Near-duplicates within the set
  (1.6e9 pairs at 41k notes) are found exactly by prefix filtering (:mod:`medsyn.evaluation.near_duplicates`);
* distinguishability: cross-validated AUC of a char TF-IDF + logistic regression telling real train notes from
  synthetic ones on a balanced sample (0.5 = indistinguishable), next to the AUC of note length alone;
* code fidelity: the share of notes that a classifier trained on the real train notes puts in their intended code
  (top-1 and top-3). A filter can be passed by notes that merely list the requested symptoms; such notes rarely
  read like the code's real notes, and fidelity shows it where the accept rate cannot;
* accept rate: the share of a ``medsyn generate`` set's scored notes that the quality filter accepted (when the
  rejected notes were read too). Fidelity is measured on the accepted notes;
* restatement share: of the notes with a requested symptom list, those whose novelty
  (:func:`medsyn.generation.fluency.novelty`) is at most the filter's default ``max_restatement``: the requested
  list restated, which recall rewards;
* non-word share: the notes holding at least one word no dictionary knows
  (:func:`medsyn.generation.fluency.nonwords`, with the real train notes' vocabulary), for the real notes too:
  they have typos.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
from scipy import sparse

from medsyn.evaluation import char_ngrams
from medsyn.evaluation.classifier import CodeClassifier
from medsyn.evaluation.data import NoteSet
from medsyn.evaluation.near_duplicates import near_duplicates
from medsyn.evaluation.note_scores import score_notes
from medsyn.generation.fluency import note_vocabulary
from medsyn.textsim import normalised, shingles, tokens

NEAR_DUPLICATE = 0.5  # word 3-shingle Jaccard at or above which a note counts as a near-copy


def distinct_n(texts: Sequence[str], n: int) -> float:
    """Unique word n-grams over all word n-grams of the corpus.

    >>> distinct_n(["а б а б"], 1), distinct_n(["а б в", "а б в"], 2)
    (0.5, 0.5)
    """
    seen: set[tuple[str, ...]] = set()
    total = 0
    for t in texts:
        w = tokens(t)
        grams = [tuple(w[i : i + n]) for i in range(len(w) - n + 1)]
        total += len(grams)
        seen.update(grams)
    return len(seen) / total if total else 0.0


def word_lengths(texts: Sequence[str]) -> np.ndarray:
    return np.array([len(tokens(t)) for t in texts], dtype=int)


def shingle_sets(texts: Sequence[str], n: int = 3) -> sparse.csr_matrix:
    """0/1 matrix of the notes' word ``n``-shingles (one column per distinct shingle)."""
    return _shingle_matrix(texts, {}, n)


def _shingle_matrix(texts: Sequence[str], vocab: dict[str, int], n: int = 3) -> sparse.csr_matrix:
    rows, cols = [], []
    for i, t in enumerate(texts):
        for s in shingles(t, n):
            rows.append(i)
            cols.append(vocab.setdefault(s, len(vocab)))
    data = np.ones(len(rows), dtype=np.float32)
    return sparse.csr_matrix((data, (rows, cols)), shape=(len(texts), max(len(vocab), 1)))


_PAIRS_PER_BLOCK = 8_000_000
"""Note pairs scored at once by :func:`overlap` (a float64 block of 64 MB)."""


@dataclass(frozen=True, slots=True)
class Overlap:
    """Per synthetic note: best Jaccard and containment against the reference notes, and where it was found."""

    jaccard: np.ndarray
    containment: np.ndarray
    best: np.ndarray  # index of the reference note with the highest Jaccard (-1 when none overlaps)


def overlap(
    synthetic: Sequence[str],
    reference: Sequence[str],
    *,
    allowed: np.ndarray | None = None,
    skip_self: bool = False,
    n: int = 3,
) -> Overlap:
    """Max word ``n``-shingle (3 by default) Jaccard / containment of each synthetic note over the reference notes.

    ``allowed`` (boolean, synthetic x reference) restricts the pairs considered; ``skip_self`` ignores the
    diagonal when both sides are the same list.

    >>> o = overlap(["боль в спине слева"], ["боль в спине слева", "кашель"])
    >>> float(o.jaccard[0]), int(o.best[0])
    (1.0, 0)
    """
    return _overlap(*_shingled(synthetic, reference, n), allowed=allowed, skip_self=skip_self)


def _shingled(
    synthetic: Sequence[str], reference: Sequence[str], n: int
) -> tuple[sparse.csr_matrix, sparse.csr_matrix]:
    """Both sides' shingle matrices over one vocabulary."""
    vocab: dict[str, int] = {}
    s = _shingle_matrix(synthetic, vocab, n)
    r = _shingle_matrix(reference, vocab, n)
    s.resize((s.shape[0], len(vocab) or 1))
    r.resize((r.shape[0], len(vocab) or 1))
    return s, r


def _overlap(
    s: sparse.csr_matrix, r: sparse.csr_matrix, *, allowed: np.ndarray | None = None, skip_self: bool = False
) -> Overlap:
    size_s = np.asarray(s.sum(axis=1)).ravel()
    size_r = np.asarray(r.sum(axis=1)).ravel()
    rows = s.shape[0]
    best_j = np.zeros(rows)
    best_c = np.zeros(rows)
    best = np.full(rows, -1)
    rt = r.T.tocsc()
    # Blocks of synthetic rows against every reference note, reduced to each row's best pair before the next block:
    # notes sharing phrasing (a set compared with itself) overlap almost pairwise, and the whole product of 41k
    # notes is 1.7e9 pairs (tens of GB); a block holds at most _PAIRS_PER_BLOCK.
    step = max(1, _PAIRS_PER_BLOCK // max(1, r.shape[0]))
    for a in range(0, rows, step):
        b = min(rows, a + step)
        inter = (s[a:b] @ rt).toarray()
        if allowed is not None:
            inter[~allowed[a:b]] = 0.0
        if skip_self:  # the same list on both sides: row i's own column is i
            k = np.arange(a, b)
            inter[k - a, k] = 0.0
        union = size_s[a:b, None] + size_r[None, :] - inter
        jac = np.divide(inter, union, out=np.zeros_like(inter), where=inter > 0)
        j = jac.argmax(axis=1)
        top = jac[np.arange(b - a), j]
        best_j[a:b] = top
        best[a:b] = np.where(top > 0, j, -1)
        best_c[a:b] = inter.max(axis=1) / np.maximum(size_s[a:b], 1)
    return Overlap(best_j, best_c, best)


def linked_overlap(
    synthetic: Sequence[str], reference: Sequence[str], linked: Sequence[int | None], n: int = 3
) -> Overlap:
    """``overlap`` where each synthetic note may be compared only with its one ``linked`` reference note (None:
    none), scoring those pairs alone: the same figures as ``overlap(..., allowed=...)`` with one allowed pair a
    row (float32 like it), without the whole synthetic x reference product."""
    return _linked_overlap(*_shingled(synthetic, reference, n), linked)


def _linked_overlap(s: sparse.csr_matrix, r: sparse.csr_matrix, linked: Sequence[int | None]) -> Overlap:
    rows = np.array([i for i, j in enumerate(linked) if j is not None], dtype=np.int64)
    cols = np.array([j for j in linked if j is not None], dtype=np.int64)
    size_s = np.asarray(s.sum(axis=1)).ravel()
    size_r = np.asarray(r.sum(axis=1)).ravel()
    inter = np.asarray(s[rows].multiply(r[cols]).sum(axis=1), dtype=np.float32).ravel()
    union = size_s[rows] + size_r[cols] - inter
    jac = np.divide(inter, union, out=np.zeros_like(inter), where=inter > 0)
    jaccard = np.zeros(s.shape[0])
    containment = np.zeros(s.shape[0])
    best = np.full(s.shape[0], -1)
    jaccard[rows] = jac
    containment[rows] = inter / np.maximum(size_s[rows], 1)
    best[rows] = np.where(jac > 0, cols, -1)
    return Overlap(jaccard, containment, best)


def distinguishability_auc(
    real: Sequence[str],
    synthetic: Sequence[str],
    rng: np.random.Generator,
    *,
    folds: int = 5,
    max_per_class: int = 0,
    jobs: int = 1,
) -> tuple[float, float]:
    """Mean and std over stratified folds of a char TF-IDF (2..5) + LR real-vs-synthetic classifier's ROC AUC.

    Both classes are cut to the smaller one's size (and to ``max_per_class`` when positive) so that AUC does not
    reward a size imbalance.
    """
    from sklearn.feature_extraction.text import TfidfTransformer, TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import StratifiedKFold
    from sklearn.pipeline import make_pipeline

    k = min(len(real), len(synthetic))
    if max_per_class > 0:
        k = min(k, max_per_class)
    if k < folds:
        return float("nan"), float("nan")
    ri = rng.choice(len(real), size=k, replace=False)
    si = rng.choice(len(synthetic), size=k, replace=False)
    texts = [real[i] for i in ri] + [synthetic[i] for i in si]
    y = np.r_[np.zeros(k, dtype=int), np.ones(k, dtype=int)]
    cv = StratifiedKFold(n_splits=folds, shuffle=True, random_state=int(rng.integers(2**31 - 1)))

    def vectorizer() -> TfidfVectorizer:
        return TfidfVectorizer(analyzer="char", ngram_range=(2, 5), min_df=2, sublinear_tf=True)

    # Every note's n-grams counted once for all folds, each fold's fit_transform/transform read from them (the
    # same matrices, entry order included: tests/test_char_ngrams.py); scikit-learn cut each note again per fold.
    every = char_ngrams.all_counts(vectorizer(), texts)

    def fold(tr: np.ndarray, te: np.ndarray) -> float:
        classifier = LogisticRegression(C=10, solver="liblinear")
        if every is None:
            model = make_pipeline(vectorizer(), classifier)
            train, test = [texts[i] for i in tr], [texts[i] for i in te]
        else:
            model = make_pipeline(TfidfTransformer(sublinear_tf=True), classifier)
            train, test = char_ngrams.fold_counts(every, tr, te, min_df=2)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model.fit(train, y[tr])
        return float(roc_auc_score(y[te], model.decision_function(test)))

    splits = list(cv.split(texts, y))
    # liblinear fits without the GIL, so threads run folds side by side; each fold's figure is the same either way.
    with ThreadPoolExecutor(max(1, jobs)) as pool:
        aucs = list(pool.map(lambda s: fold(*s), splits))
    return float(np.mean(aucs)), float(np.std(aucs, ddof=1))


def length_auc(real: Sequence[str], synthetic: Sequence[str]) -> float:
    """ROC AUC of word count alone, folded so that 0.5 is the floor (either direction separates)."""
    from sklearn.metrics import roc_auc_score

    lengths = np.r_[word_lengths(real), word_lengths(synthetic)]
    y = np.r_[np.zeros(len(real)), np.ones(len(synthetic))]
    a = float(roc_auc_score(y, lengths))
    return max(a, 1 - a)


@dataclass(frozen=True, slots=True)
class Quality:
    name: str
    n: int
    n_real: int
    length_real: np.ndarray
    length_syn: np.ndarray
    distinct_real: dict[int, float]
    distinct_syn: dict[int, float]
    symptom_recall: float | None
    prompt_reference: str  # "example_id" or "closest same-code train note"
    prompt_overlap: Overlap
    train_overlap: Overlap
    within_near: np.ndarray
    """Per note: whether another note of the set is a near-duplicate (J >= NEAR_DUPLICATE), found exactly by
    :func:`medsyn.evaluation.near_duplicates.near_duplicates` (only pairs that can reach it are scored)."""
    exact_train: float
    exact_within: float
    auc: tuple[float, float]
    auc_length: float
    fidelity: tuple[float, float] | None = None
    """Share of accepted notes whose intended code a real-notes classifier ranks first / in its top 3."""
    accept_rate: float | None = None
    """Share of scored notes the filter accepted (None when only accepted notes were read)."""
    restatement_share: float | None = None
    """Share of the notes with a requested list that restate it (novelty <= the filter's max_restatement)."""
    nonword_share: float | None = None
    """Share of the notes holding a non-word."""
    nonword_share_real: float | None = None
    """The same share among the real train notes."""

    def near_rate(self, which: str, threshold: float = NEAR_DUPLICATE) -> float:
        if which == "within":
            if threshold != NEAR_DUPLICATE:
                raise ValueError(f"within-set near-duplicates are found at J >= {NEAR_DUPLICATE} only")
            return float(self.within_near.mean())
        o: Overlap = getattr(self, f"{which}_overlap")
        return float((o.jaccard >= threshold).mean())


def code_fidelity(classifier: CodeClassifier, notes: NoteSet) -> tuple[float, float]:
    """(top-1, top-3) share of the notes whose own code the classifier ranks first / among its first three."""
    texts = notes.texts
    # a chunk at a time: the TF-IDF rows of 40k notes at once take gigabytes; the ranking is per note anyway
    ranked = [r for a in range(0, len(texts), 5000) for r in classifier.top_k(texts[a : a + 5000], 3)]
    codes = notes.codes
    return (
        float(np.mean([r[0] == c for r, c in zip(ranked, codes, strict=True)])),
        float(np.mean([c in r for r, c in zip(ranked, codes, strict=True)])),
    )


def fluency_shares(notes: NoteSet, vocabulary: frozenset[str], *, jobs: int = 1) -> tuple[float | None, float]:
    """(restatement share of the notes with a requested list, or None without any; non-word share)."""
    scores = score_notes([(n.text, tuple(n.requested)) for n in notes.notes], vocabulary, recall=False, jobs=jobs)
    return scores.restatement_share(), scores.nonword_share()


def assess(
    synthetic: NoteSet,
    train: NoteSet,
    rng: np.random.Generator,
    *,
    auc_folds: int = 5,
    auc_max_per_class: int = 0,
    classifier: CodeClassifier | None = None,
    jobs: int = 1,
) -> Quality:
    """All quality and privacy figures of one synthetic set against the real train set.

    ``classifier`` (fitted on ``train``) adds code fidelity; fit it once for several sets. ``jobs`` > 1 scores
    the notes' text over that many processes and the AUC's folds in that many threads: the same figures.
    """
    accept_rate = float(np.mean([n.accepted for n in synthetic.notes]))
    kept = NoteSet(synthetic.name, synthetic.path, synthetic.format, [n for n in synthetic.notes if n.accepted])
    fidelity = code_fidelity(classifier, kept) if classifier is not None and kept.notes else None
    syn = synthetic.texts
    real = train.texts
    k = min(len(syn), len(real))
    real_sample = [real[i] for i in rng.choice(len(real), size=k, replace=False)]
    syn_sample = [syn[i] for i in rng.choice(len(syn), size=k, replace=False)]
    vocabulary = note_vocabulary(real)
    scores = score_notes([(n.text, tuple(n.requested)) for n in synthetic.notes], vocabulary, jobs=jobs)

    train_ids = {n.id: i for i, n in enumerate(train.notes)}
    linked = [train_ids.get(n.example_id) if n.example_id else None for n in synthetic.notes]
    s, r = _shingled(syn, real, 3)  # once for the prompt-note, train and within-set overlaps
    if any(x is not None for x in linked):
        prompt_overlap = _linked_overlap(s, r, linked)
        prompt_ref = "example_id"
    else:
        allowed = np.equal.outer(np.asarray(synthetic.codes, dtype=object), np.asarray(train.codes, dtype=object))
        prompt_overlap = _overlap(s, r, allowed=allowed)
        prompt_ref = "closest same-code train note"
    real_norm = {normalised(t) for t in real}
    syn_norm = [normalised(t) for t in syn]
    counts: dict[str, int] = {}
    for t in syn_norm:
        counts[t] = counts.get(t, 0) + 1
    auc = distinguishability_auc(real, syn, rng, folds=auc_folds, max_per_class=auc_max_per_class, jobs=jobs)
    return Quality(
        name=synthetic.name,
        n=len(syn),
        n_real=len(real),
        length_real=word_lengths(real),
        length_syn=word_lengths(syn),
        distinct_real={n: distinct_n(real_sample, n) for n in (1, 2, 3)},
        distinct_syn={n: distinct_n(syn_sample, n) for n in (1, 2, 3)},
        symptom_recall=scores.mean_recall(),
        prompt_reference=prompt_ref,
        prompt_overlap=prompt_overlap,
        train_overlap=_overlap(s, r),
        within_near=near_duplicates(s, NEAR_DUPLICATE),
        exact_train=float(np.mean([t in real_norm for t in syn_norm])),
        exact_within=float(np.mean([counts[t] > 1 for t in syn_norm])),
        auc=auc,
        auc_length=length_auc(real, syn),
        fidelity=fidelity,
        # Only a set read with its rejected notes (eval quality --include-rejected) has an accept rate to show.
        accept_rate=accept_rate if accept_rate < 1.0 else None,
        restatement_share=scores.restatement_share(),
        nonword_share=scores.nonword_share(),
        nonword_share_real=fluency_shares(train, vocabulary, jobs=jobs)[1],
    )
