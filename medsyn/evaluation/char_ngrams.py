"""Character n-gram counts computed with numpy: exactly what scikit-learn's ``analyzer="char"`` vectorizers give.

scikit-learn cuts every note into its n-grams in a Python loop (one string object per n-gram: ~3,000 per note for
3..8-grams, 2.8 ms a note), which made code fidelity the largest cost of ``eval quality`` at 41k notes. Here an
n-gram of at most 8 characters is packed into one unsigned 64-bit key, a byte per character, left-aligned:
characters are numbered 1..k in code-point order (k <= 254, one number for every character outside the alphabet),
so the packing is one-to-one and sorting the keys sorts the n-grams as Python sorts strings, which is the column
order scikit-learn gives its vocabulary. Counting is then array work: keys of every window, a look-up in the sorted
vocabulary keys, one sort per batch of notes.

The results are the same matrices, entry for entry (tests/test_char_ngrams.py compares them with scikit-learn's on
real notes); a vectorizer this cannot reproduce (another analyzer, n > 8, a custom preprocessor, more than 254
distinct characters) falls back to scikit-learn's own transform.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import sparse

from medsyn.evaluation.csr_rows import row_positions

MAX_N = 8  # characters a 64-bit key holds at a byte each
_MAX_ALPHABET = 254  # byte values 1..255 less the one for "outside the alphabet"; 0 pads shorter n-grams
_WHITE_SPACES = re.compile(r"\s\s+")  # scikit-learn's _VectorizerMixin._white_spaces: runs become one space
_BATCH_CHARS = 500_000  # characters keyed at once: a few arrays of 6 n-gram lengths x 8 bytes x this, ~25 MB each


class Packer:
    """Numbers an alphabet's characters and packs n-grams into sortable 64-bit keys.

    >>> p = Packer("абв")
    >>> [hex(int(k)) for k in p.term_keys(["а", "аб", "б"])]
    ['0x100000000000000', '0x102000000000000', '0x200000000000000']
    """

    def __init__(self, alphabet: str) -> None:
        chars = sorted(set(alphabet))
        if len(chars) > _MAX_ALPHABET:
            raise ValueError(f"{len(chars)} distinct characters: more than {_MAX_ALPHABET}")
        self.points = np.array([ord(c) for c in chars], dtype=np.uint32)
        self.outside = len(chars) + 1

    def codes(self, text: str) -> np.ndarray:
        """1..k per character of ``text`` (k + 1 for a character outside the alphabet), as uint64."""
        cp = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)
        pos = np.searchsorted(self.points, cp)
        known = pos < len(self.points)
        known[known] = self.points[pos[known]] == cp[known]
        return np.where(known, pos + 1, self.outside).astype(np.uint64)

    def term_keys(self, terms: Sequence[str]) -> np.ndarray:
        """The key of each term (at most MAX_N characters, none empty)."""
        lengths = np.array([len(t) for t in terms], dtype=np.int64)
        if not len(terms):
            return np.zeros(0, dtype=np.uint64)
        starts = np.cumsum(lengths) - lengths
        at = np.arange(int(lengths.sum())) - np.repeat(starts, lengths)  # position of each character in its term
        shifted = self.codes("".join(terms)) << (np.uint64(8) * (np.uint64(MAX_N - 1) - at.astype(np.uint64)))
        return np.bitwise_or.reduceat(shifted, starts)

    def windows(self, texts: Sequence[str], ngram_range: tuple[int, int]) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """(note index, key) of every n-gram of every text, for each n in ``ngram_range`` (texts as analysed)."""
        lengths = np.array([len(t) for t in texts], dtype=np.int64)
        codes = self.codes("".join(texts))
        starts = np.cumsum(lengths) - lengths
        doc = np.repeat(np.arange(len(texts)), lengths)
        left = np.repeat(starts + lengths, lengths) - np.arange(len(codes))  # characters from here to the end
        key = np.zeros(len(codes), dtype=np.uint64)
        lo, hi = ngram_range
        for n in range(1, hi + 1):
            # key of the window of n characters starting at i: the (n-1)-key plus character i+n-1 in byte n-1
            shifted = np.zeros(len(codes), dtype=np.uint64)
            shifted[: len(codes) - n + 1] = codes[n - 1 :]
            key |= shifted << np.uint64(8 * (MAX_N - n))
            if n >= lo:
                ok = left >= n
                yield doc[ok], key[ok]


class KeyTable:
    """Open-addressing hash table from non-zero 64-bit keys to their positions, looked up a whole array at once
    (a binary search over 300k keys costs ~18 cache misses a key; this one or two).

    >>> KeyTable(np.array([7, 3], dtype=np.uint64)).find(np.array([3, 5, 7], dtype=np.uint64)).tolist()
    [1, -1, 0]
    """

    _MIX = np.uint64(0x9E3779B97F4A7C15)  # Fibonacci hashing: the top bits of key * 2^64 / phi

    def __init__(self, keys: np.ndarray) -> None:
        self.bits = max(4, int(len(keys) * 3).bit_length())  # load factor at most 1/3
        size = 1 << self.bits
        self.keys = np.zeros(size, dtype=np.uint64)  # 0: empty (no packed n-gram is 0: its first byte is >= 1)
        self.values = np.full(size, -1, dtype=np.int64)
        slot = self._slot(keys)
        todo = np.arange(len(keys))
        while len(todo):
            s = slot[todo]
            free = self.keys[s] == 0
            # of keys racing for one free slot the first wins; the rest probe on
            _, first = np.unique(s[free], return_index=True)
            won = todo[free][first]
            self.keys[slot[won]] = keys[won]
            self.values[slot[won]] = won
            lost = np.ones(len(todo), dtype=bool)
            lost[np.flatnonzero(free)[first]] = False
            todo = todo[lost]
            slot[todo] = (slot[todo] + 1) & (size - 1)

    def _slot(self, keys: np.ndarray) -> np.ndarray:
        return ((keys * self._MIX) >> np.uint64(64 - self.bits)).astype(np.int64)

    def find(self, keys: np.ndarray) -> np.ndarray:
        """The position of each key in the table's keys, -1 for a key not there."""
        out = np.full(len(keys), -1, dtype=np.int64)
        slot = self._slot(keys)
        todo = np.arange(len(keys))
        mask = len(self.keys) - 1
        while len(todo):
            s = slot[todo]
            k = self.keys[s]
            hit = k == keys[todo]
            out[todo[hit]] = self.values[s[hit]]
            todo = todo[~hit & (k != 0)]
            slot[todo] = (slot[todo] + 1) & mask
        return out


def analysed(vectorizer: Any, texts: Sequence[str]) -> list[str]:
    """The texts as the vectorizer's char analyzer sees them (preprocessed, white-space runs made one space)."""
    pre = vectorizer.build_preprocessor()
    return [_WHITE_SPACES.sub(" ", pre(vectorizer.decode(t))) for t in texts]


def supported(vectorizer: Any) -> bool:
    """Whether :func:`counts` reproduces this vectorizer's counts (else use its own transform)."""
    return (
        vectorizer.analyzer == "char"
        and vectorizer.ngram_range[1] <= MAX_N
        and vectorizer.preprocessor is None
        and not vectorizer.strip_accents
        and vectorizer.input == "content"
    )


def _batches(texts: Sequence[str]) -> Iterator[tuple[int, int]]:
    a, size = 0, 0
    for i, t in enumerate(texts):
        size += len(t)
        if size >= _BATCH_CHARS:
            yield a, i + 1
            a, size = i + 1, 0
    if a < len(texts) or not texts:
        yield a, len(texts)


def _count_batch(
    texts: Sequence[str], packer: Packer, ngram_range: tuple[int, int], lookup: Any, n_cols: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(rows, cols, counts, first) of one batch, sorted by row then column; ``first`` orders a row's n-grams by
    where each first occurs in the analyser's sequence (all 2-grams in text order, then all 3-grams, ...)."""
    ids = []
    for doc, key in packer.windows(texts, ngram_range):
        col = lookup(key)
        hit = col >= 0
        ids.append(doc[hit].astype(np.int64) * n_cols + col[hit])
    flat, first, count = np.unique(
        np.concatenate(ids) if ids else np.zeros(0, np.int64), return_index=True, return_counts=True
    )
    return flat // n_cols, flat % n_cols, count, first


def _csr(
    texts: Sequence[str], packer: Packer, ngram_range: tuple[int, int], lookup: Any, n_cols: int, dtype: Any
) -> tuple[sparse.csr_matrix, np.ndarray]:
    """The count matrix (sorted indices) and, per stored entry, its ``first`` rank within its row."""
    indptr = [np.zeros(1, dtype=np.int64)]
    cols, data, firsts = [], [], []
    for a, b in _batches(texts):
        rows, c, n, first = _count_batch(texts[a:b], packer, ngram_range, lookup, n_cols)
        indptr.append(indptr[-1][-1] + np.cumsum(np.bincount(rows, minlength=b - a)))
        cols.append(c)
        data.append(n)
        firsts.append(first)
    index = np.int32 if max(n_cols, int(indptr[-1][-1])) < 2**31 else np.int64  # scipy's and sklearn's choice
    m = sparse.csr_matrix(
        (np.concatenate(data).astype(dtype), np.concatenate(cols).astype(index), np.concatenate(indptr).astype(index)),
        shape=(len(texts), n_cols),
    )
    m.has_sorted_indices = True
    return m, np.concatenate(firsts)


def counts(vectorizer: Any, texts: Sequence[str]) -> sparse.csr_matrix | None:
    """A fitted char vectorizer's count matrix of ``texts`` (CountVectorizer.transform's), or None when the
    vectorizer is not :func:`supported` or its vocabulary has too many distinct characters."""
    if not supported(vectorizer):
        return None
    cache = getattr(vectorizer, "_medsyn_keys", None)
    if cache is None:
        terms = sorted(vectorizer.vocabulary_, key=vectorizer.vocabulary_.__getitem__)
        try:
            packer = Packer("".join(terms))
        except ValueError:
            return None
        cache = (packer, KeyTable(packer.term_keys(terms)))
        vectorizer._medsyn_keys = cache  # the vocabulary's keys, built once per fitted vectorizer
    packer, table = cache
    lookup = table.find
    n_cols = len(vectorizer.vocabulary_)
    m, _ = _csr(analysed(vectorizer, texts), packer, vectorizer.ngram_range, lookup, n_cols, vectorizer.dtype)
    if vectorizer.binary:
        m.data.fill(1)
    return m


def tfidf(vectorizer: Any, texts: Sequence[str]) -> sparse.csr_matrix:
    """``vectorizer.transform(texts)`` of a fitted char TfidfVectorizer, the counts done by :func:`counts`."""
    x = counts(vectorizer, texts)
    if x is None:
        return vectorizer.transform(texts)
    return vectorizer._tfidf.transform(x, copy=False)  # the vectorizer's own TF-IDF weighting of the counts


@dataclass(frozen=True, slots=True)
class AllCounts:
    """Counts of every n-gram of a list of texts (one column per distinct n-gram, in scikit-learn's vocabulary
    order) and, per stored entry, its rank of first occurrence within its text."""

    matrix: sparse.csr_matrix
    first: np.ndarray


def all_counts(vectorizer: Any, texts: Sequence[str]) -> AllCounts | None:
    """:class:`AllCounts` of ``texts`` under an unfitted char vectorizer's settings, before its ``min_df``
    pruning (:func:`fold_counts` fits it on some rows). None when the vectorizer is not :func:`supported` or the
    texts have too many distinct characters."""
    if not supported(vectorizer):
        return None
    docs = analysed(vectorizer, texts)
    try:
        packer = Packer("".join(docs))
    except ValueError:
        return None
    keys = [np.zeros(0, dtype=np.uint64)]
    for a, b in _batches(docs):
        keys += [np.unique(key) for _, key in packer.windows(docs[a:b], vectorizer.ngram_range)]
    vocabulary = np.unique(np.concatenate(keys))
    m, first = _csr(docs, packer, vectorizer.ngram_range, KeyTable(vocabulary).find, len(vocabulary), vectorizer.dtype)
    return AllCounts(m, first)


def fold_counts(every: AllCounts, train: np.ndarray, test: np.ndarray, min_df: int) -> tuple[Any, Any]:
    """What ``fit_transform`` of the ``train`` rows and ``transform`` of the ``test`` rows give for counts under
    a char CountVectorizer with ``min_df`` (a count; ``max_df`` 1.0), entry order included: fit_transform orders
    a row's columns by where each n-gram first occurs in the whole training corpus (its vocabulary's insertion
    order), and a solver summing in another order lands a few ulps away."""
    m = every.matrix
    at, lengths = row_positions(m.indptr, train)
    rows = np.repeat(np.arange(len(train)), lengths)
    cols = m.indices[at]
    df = np.bincount(cols, minlength=m.shape[1])
    keep = np.flatnonzero(df >= min_df)
    new_col = np.full(m.shape[1], -1, dtype=np.int64)
    new_col[keep] = np.arange(len(keep))
    corpus_order = np.lexsort((every.first[at], rows))
    rank = np.empty(m.shape[1], dtype=np.int64)
    seen, where = np.unique(cols[corpus_order], return_index=True)
    rank[seen] = where
    order = np.lexsort((rank[cols], rows))
    order = order[new_col[cols[order]] >= 0]
    x_train = sparse.csr_matrix(
        (m.data[at][order], new_col[cols[order]], np.r_[0, np.cumsum(np.bincount(rows[order], minlength=len(train)))]),
        shape=(len(train), len(keep)),
    )
    x_test = m[test][:, keep]
    x_test.sort_indices()
    return x_train, x_test
