"""Russian text similarity shared by the quality filter and the evaluation report.

Symptom recall is lemma-free but stem-based: a symptom counts as mentioned when most of its content-word stems
(Snowball Russian stemmer) occur in the note. This is cheap, deterministic and needs no model download.

>>> symptom_recall("Жалобы на сильные головные боли и тошноту", ["головная боль", "тошнота", "сыпь"])
0.6666666666666666
>>> round(jaccard(shingles("одна и та же фраза"), shingles("одна и та же фраза")), 2)
1.0
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import lru_cache

import snowballstemmer

_WORD = re.compile(r"[0-9a-zа-яё]+", re.IGNORECASE)
# Function words carry no symptom meaning; leaving them in would make "боль в спине" match any "в".
_STOP = frozenset(
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
    return [stem(t) for t in tokens(text) if t not in _STOP and len(t) > 1]


def mentions(note_stems: set[str], symptom: str, *, threshold: float = 0.5) -> bool:
    """True when at least ``threshold`` of the symptom's content stems occur in the note (prefix match)."""
    sy = content_stems(symptom)
    if not sy:
        return False
    hit = 0
    for s in sy:
        # Russian endings vary more than Snowball trims ("головные"/"головная"): accept a shared 4-char prefix.
        if s in note_stems or (len(s) >= 4 and any(n.startswith(s[:4]) for n in note_stems)):
            hit += 1
    return hit / len(sy) >= threshold


def symptom_recall(note: str, symptoms: Sequence[str], *, threshold: float = 0.5) -> float:
    """Share of requested symptoms mentioned in the note (0 when none were requested)."""
    if not symptoms:
        return 0.0
    ns = set(content_stems(note))
    return sum(mentions(ns, s, threshold=threshold) for s in symptoms) / len(symptoms)


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
