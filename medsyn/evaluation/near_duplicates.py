"""Which notes of a set have a near-duplicate in the same set (word-shingle Jaccard at or above a threshold), exactly,
without scoring every pair.

Scoring all pairs (:func:`medsyn.evaluation.quality.overlap` of a set with itself) is quadratic: 1.6e9 pairs at
41k notes. Prefix filtering (Chaudhuri et al. 2006; Bayardo et al.'s All-Pairs, 2007) skips only pairs that cannot
reach the threshold: with each note's shingles in one global order (rarest first), two sets with Jaccard >= t share
at least ceil(t * |x|) shingles, so their first |x| - ceil(t * |x|) + 1 shingles (the prefix) must meet. A note
whose prefix meets no other note's prefix, or meets only notes whose size rules out t (t * |x| <= |y| <= |x| / t),
has no near-duplicate; every other candidate pair is scored exactly. A note stops being probed at its first
near-duplicate: the figure reported is the share of notes that have one, not how many. Unlike MinHash/LSH this
misses nothing: tests/test_near_duplicates.py finds the same notes as the all-pairs path on real notes.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import sparse

from medsyn.evaluation.csr_rows import row_positions

_CHUNK = 512  # candidates scored at once before looking for a hit (most notes of a templated set hit in the first)


def _prefix_lengths(sizes: np.ndarray, threshold: float) -> np.ndarray:
    # ceil(t * s) taken a hair low: a longer prefix only adds candidates, which are then scored exactly.
    need = np.array([max(1, math.ceil(threshold * s - 1e-9)) for s in sizes.tolist()], dtype=np.int64)
    return np.maximum(sizes - need + 1, 0)


def near_duplicates(shingle_sets: sparse.csr_matrix, threshold: float) -> np.ndarray:
    """Per row of a 0/1 note x shingle matrix: whether another row has Jaccard >= ``threshold`` (0 < t <= 1) with
    it. Empty rows have none (as in ``overlap``, where an empty pair scores 0).

    >>> from medsyn.evaluation.quality import shingle_sets
    >>> near_duplicates(shingle_sets(["боль в спине слева", "боль в спине слева", "кашель"]), 0.5).tolist()
    [True, True, False]
    """
    if not 0 < threshold <= 1:
        raise ValueError(f"threshold must be in (0, 1], got {threshold}")
    m = sparse.csr_matrix(shingle_sets, dtype=np.float32)
    m.sum_duplicates()
    m.data[:] = 1.0
    n = m.shape[0]
    near = np.zeros(n, dtype=bool)
    sizes = np.diff(m.indptr).astype(np.int64)
    # Identical shingle sets are near one another (J = 1); the rest is probed once per distinct set.
    groups: dict[bytes, list[int]] = {}
    for i in range(n):
        if sizes[i]:
            groups.setdefault(m.indices[m.indptr[i] : m.indptr[i + 1]].tobytes(), []).append(i)
    reps = np.array([g[0] for g in groups.values()], dtype=np.int64)
    for g in groups.values():
        if len(g) > 1:
            near[g] = True
    u = m[reps]
    u_near = near[reps]
    _probe(u, sizes[reps], u_near, threshold)
    for k, g in enumerate(groups.values()):
        if u_near[k]:
            near[g] = True
    return near


def _probe(u: sparse.csr_matrix, sizes: np.ndarray, near: np.ndarray, threshold: float) -> None:
    """Marks in ``near`` each row of ``u`` (distinct, non-empty sets) that has a near-duplicate among the others."""
    n, vocab = u.shape
    df = np.bincount(u.indices, minlength=vocab)
    rank = np.empty(vocab, dtype=np.int64)
    rank[np.lexsort((np.arange(vocab), df))] = np.arange(vocab)  # rarest first, ties by column
    plen = _prefix_lengths(sizes, threshold)
    rows = np.repeat(np.arange(n), sizes)
    order = np.lexsort((rank[u.indices], rows))  # each row's shingles, rarest first
    in_prefix = np.arange(len(order)) - np.repeat(u.indptr[:-1], sizes) < np.repeat(plen, sizes)
    tokens = u.indices[order][in_prefix]  # each row's prefix, rarest first
    starts = np.r_[0, np.cumsum(plen)]
    postings = sparse.csc_matrix(
        (np.ones(len(tokens), dtype=np.int8), (rows[in_prefix], tokens)), shape=(n, vocab)
    )  # column t: the rows with t in their prefix
    mine = np.zeros(vocab, dtype=np.float32)
    seen = np.full(n, -1, dtype=np.int64)  # seen[j] == i: j was already a candidate of i
    for i in range(n):
        if near[i]:
            continue
        s = sizes[i]
        own = u.indices[u.indptr[i] : u.indptr[i + 1]]
        mine[own] = 1.0
        seen[i] = i
        # The rarest shingles first: a near-duplicate most likely shares them, and the probe stops at the first.
        for t in tokens[starts[i] : starts[i + 1]]:
            cand = postings.indices[postings.indptr[t] : postings.indptr[t + 1]]
            cand = cand[seen[cand] != i]
            seen[cand] = i
            cand = cand[(sizes[cand] >= threshold * s - 1e-9) & (sizes[cand] * threshold <= s + 1e-9)]
            if len(cand) and _first_hit(u, cand, mine, s, threshold, near):
                near[i] = True
                break
        mine[own] = 0.0


def _first_hit(
    u: sparse.csr_matrix,
    cand: np.ndarray,
    mine: np.ndarray,
    size: int,
    threshold: float,
    near: np.ndarray,
) -> bool:
    """Scores the candidates against the probed row (``mine``: its 0/1 shingle vector) a chunk at a time, marks
    those at or above the threshold, and says whether there was one."""
    for a in range(0, len(cand), _CHUNK):
        c = cand[a : a + _CHUNK]
        at, lengths = row_positions(u.indptr, c)
        inter = np.add.reduceat(mine[u.indices[at]], np.r_[0, np.cumsum(lengths)[:-1]])
        # float32 as in ``overlap``, whose figures these must equal
        jac = inter / (np.float32(size) + lengths.astype(np.float32) - inter)
        hit = jac >= threshold
        if hit.any():
            near[c[hit]] = True
            return True
    return False
