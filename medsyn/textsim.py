"""Russian text similarity shared by the quality filter and the evaluation report.

Word tokens, Snowball stems (the curator's near-duplicate labels) and shingle overlap. Whether a note mentions a
symptom is :mod:`medsyn.generation.mentions` (lemmas and negation).

>>> round(jaccard(shingles("одна и та же фраза"), shingles("одна и та же фраза")), 2)
1.0
"""

from __future__ import annotations

import re
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


def words(text: str) -> list[str]:
    """The word tokens of ``text`` as written (case kept: "ОРВИ" is an abbreviation, "орви" would not say so)."""
    return _WORD.findall(text)


def normalised(text: str) -> str:
    """Case, punctuation and spacing removed: two notes equal under this are exact duplicates.

    >>> normalised("Онемение в руках,  больше справа.") == normalised("онемение в руках больше справа")
    True
    """
    return " ".join(tokens(text))


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
