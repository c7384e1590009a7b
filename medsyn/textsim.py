"""Russian text similarity shared by the quality filter and the evaluation report.

Word tokens, Snowball stems (the curator's near-duplicate labels) and shingle overlap. Whether a note mentions a
symptom is :mod:`medsyn.symptom_mentions` (lemmas and negation).

>>> round(jaccard(shingles("одна и та же фраза"), shingles("одна и та же фраза")), 2)
1.0
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from functools import lru_cache

import snowballstemmer

_WORD = re.compile(r"[0-9a-zа-яё]+", re.IGNORECASE)
# Function words carry no symptom meaning; leaving them in would make "боль в спине" match any "в".
STOPWORDS = frozenset(
    [
        "и",
        "в",
        "во",
        "на",
        "с",
        "со",
        "по",
        "к",
        "ко",
        "у",
        "о",
        "об",
        "от",
        "до",
        "из",
        "за",
        "для",
        "при",
        "без",
        "не",
        "ни",
        "но",
        "а",
        "или",
        "же",
        "ли",
        "бы",
        "что",
        "как",
        "так",
        "то",
        "это",
        "the",
        "a",
        "an",
        "of",
        "in",
        "on",
        "and",
        "or",
        "with",
        "to",
        "at",
        "for",
    ]
)
_stemmer = snowballstemmer.stemmer("russian")
_en_stemmer = snowballstemmer.stemmer("english")


def tokens(text: str) -> list[str]:
    return [t.lower().replace("ё", "е") for t in _WORD.findall(text)]


@lru_cache(maxsize=200_000)
def stem(word: str) -> str:
    if word.isascii():
        return _en_stemmer.stemWord(word)
    return _stemmer.stemWord(word)


def content_stems(text: str) -> list[str]:
    return [stem(t) for t in tokens(text) if t not in STOPWORDS and len(t) > 1]


def shingles(text: str, n: int = 3) -> set[str]:
    """Word n-gram shingles over normalised tokens (the whole text when shorter than n)."""
    t = tokens(text)
    if len(t) < n:
        return {" ".join(t)} if t else set()
    return {" ".join(t[i : i + n]) for i in range(len(t) - n + 1)}


def jaccard(a: set[str], b: set[str]) -> float:
    if not a and not b:
        return 1.0
    return len(a & b) / len(a | b)


def containment(a: set[str], b: set[str]) -> float:
    """Share of ``a``'s shingles found in ``b``: high when ``a`` copies ``b``."""
    return len(a & b) / len(a) if a else 0.0


_MERSENNE = (1 << 61) - 1


class MinHasher:
    """MinHash signatures for near-duplicate search (estimates Jaccard of shingle sets).

    >>> m = MinHasher(64, seed=0)
    >>> a, b = m.signature({"x", "y", "z"}), m.signature({"x", "y", "z"})
    >>> m.similarity(a, b)
    1.0
    """

    def __init__(self, num_perm: int = 128, *, seed: int = 0) -> None:
        import numpy as np

        rng = np.random.default_rng(seed)
        self._np = np
        self.a = rng.integers(1, _MERSENNE, size=num_perm, dtype=np.uint64)
        self.b = rng.integers(0, _MERSENNE, size=num_perm, dtype=np.uint64)
        self.num_perm = num_perm

    def signature(self, items: Iterable[str]):  # -> np.ndarray
        np = self._np
        hs = np.array(
            [int.from_bytes(hashlib.blake2b(x.encode(), digest_size=8).digest(), "little") >> 3 for x in items],
            dtype=np.uint64,
        )
        if hs.size == 0:
            return np.full(self.num_perm, np.iinfo(np.uint64).max, dtype=np.uint64)
        # (a*h + b) mod p, in uint64 with wrap-around: a universal-enough family for shingle sets.
        return ((np.outer(hs, self.a) + self.b) % _MERSENNE).min(axis=0)

    def similarity(self, s1, s2) -> float:  # type: ignore[no-untyped-def]
        return float((s1 == s2).mean())
