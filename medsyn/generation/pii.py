"""Personal data in clinical note text: Russian names, places and organisations, dates, phone numbers and document
numbers.

Two layers:

* regexes (:data:`PATTERNS`) for the structured kinds: a calendar date (``18.02.15``, ``3 марта 2019``; a year alone
  is no date of a person), a Russian phone number, a passport, SNILS, OMS policy or INN number, an e-mail address,
  a medical record number. RuMedTop3 masks dates as ``*ДАТА*``: the mask is no date;
* natasha's NER (its models ship inside the natasha wheel) for person, place and organisation names. On clinical
  notes it tags drug names and abbreviations too ("Нурофен" as a person, "ОАК" as an organisation), so a span
  counts only when pymorphy3 knows one of its words as a first name, surname or patronymic (person), a place name
  (place) or an organisation (organisation), or an organisation span names its kind (больница, ГБУЗ, ООО ...).
  A surname after "синдром", "симптом", "проба" ... or a hyphenated pair is an eponym, not a person.
  NER is slow (tens of milliseconds a note), so it runs only on notes with such a capitalised word to begin with.

>>> sorted(regex_kinds("Звонить +7 (912) 345-67-89, осмотр 18.02.15"))
['date', 'phone']
>>> regex_kinds("Температура 38.5, АД 120/80, *ДАТА* приём")
set()
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

_MONTHS = "января|февраля|марта|апреля|мая|июня|июля|августа|сентября|октября|ноября|декабря"
PATTERNS: dict[str, re.Pattern[str]] = {
    "date": re.compile(
        r"(?<![\d.,/])(?:0?[1-9]|[12]\d|3[01])([./-])(?:0?[1-9]|1[0-2])\1(?:19|20)?\d\d(?![\d.,/]\d)"
        rf"|(?<!\d)(?:0?[1-9]|[12]\d|3[01])\s+(?:{_MONTHS})(?:\s+(?:19|20)\d\d)?(?!\w)",
        re.IGNORECASE,
    ),
    "phone": re.compile(r"(?<![\d\w])(?:\+7|8)[\s(-]*\d{3}[\s)-]*\d{3}[\s-]*\d{2}[\s-]*\d{2}(?!\d)"),
    "passport": re.compile(r"паспорт\w*\D{0,20}\d{2}\s?\d{2}\s?(?:№\s?)?\d{6}(?!\d)", re.IGNORECASE),
    "snils": re.compile(r"(?<!\d)\d{3}-\d{3}-\d{3}[\s-]\d{2}(?!\d)|снилс\D{0,10}\d{11}(?!\d)", re.IGNORECASE),
    "oms_policy": re.compile(r"полис\w*\D{0,20}\d[\d\s]{8,18}\d|(?<![\d.,])\d{16}(?![\d.,])", re.IGNORECASE),
    "inn": re.compile(r"инн\W{0,5}\d{10}(?:\d{2})?(?!\d)", re.IGNORECASE),
    "email": re.compile(r"[\w.+-]+@[\w-]+\.[a-zа-я]{2,}", re.IGNORECASE),
    "record_number": re.compile(
        r"(?:истори\w+\s+болезни|медицинск\w+\s+карт\w*|амбулаторн\w+\s+карт\w*)\s*№\s*\d{3,}", re.IGNORECASE
    ),
}
NER_KINDS = {"PER": "person", "LOC": "place", "ORG": "organisation"}
KINDS: tuple[str, ...] = (*PATTERNS, *NER_KINDS.values())
_GRAMMEMES = {"person": {"Name", "Surn", "Patr"}, "place": {"Geox"}, "organisation": {"Orgn"}}
_ORG_WORD = re.compile(
    r"больниц|поликлиник|клиник|госпитал|диспансер|санатори|\bГБУЗ\b|\bГКБ\b|\bГП\b|\bООО\b|\bЗАО\b|\bОАО\b|\bАО\b"
    r"|\bФГБУ\b|\bНИИ\b|центр\b",
    re.IGNORECASE,
)
_CAPITALISED = re.compile(r"\b[А-ЯЁ][а-яё]{2,}\b")
_SENTENCE = re.compile(r"(?<=[.!?;\n])\s+")
# A surname after these words names a syndrome, sign or method (an eponym: "симптом Пастернацкого"), not a person.
_EPONYM_CUE = re.compile(
    r"синдром|симптом|болезн|признак|проб[аеуы]|триад|рефлекс|феномен|аппликатор|метод|шкал|классификаци|операци"
    r"|узелк|пятн|точк|маневр|манёвр|приём|прием|тест|\bпо\s+$",
    re.IGNORECASE,
)


def regex_kinds(text: str) -> set[str]:
    """The structured kinds of personal data found in ``text`` (see :data:`PATTERNS`)."""
    return {kind for kind, pattern in PATTERNS.items() if pattern.search(text)}


@lru_cache(maxsize=1)
def _morph() -> Any:
    import pymorphy3

    return pymorphy3.MorphAnalyzer()


@lru_cache(maxsize=100_000)
def _name_kinds(word: str) -> frozenset[str]:
    """The name kinds pymorphy3 gives a capitalised word in any of its likely parses."""
    tags: set[str] = set()
    for p in _morph().parse(word)[:3]:
        # Only dictionary words: the predictor guesses a surname for any unknown word in -ов or -ин (drug names).
        if p.score >= 0.1 and p.is_known:
            tags |= {g for g in _GRAMMEMES if _GRAMMEMES[g] & set(p.tag.grammemes)}
    return frozenset(tags)


def _candidates(text: str) -> set[str]:
    return {k for w in _CAPITALISED.findall(text) for k in _name_kinds(w)} | (
        {"organisation"} if _ORG_WORD.search(text) else set()
    )


@lru_cache(maxsize=1)
def _ner() -> tuple[Any, Any]:
    from natasha import NewsEmbedding, NewsNERTagger, Segmenter

    return Segmenter(), NewsNERTagger(NewsEmbedding())


def ner_kinds(text: str) -> set[str]:
    """Person, place and organisation names natasha finds and pymorphy3 (or an organisation word) confirms."""
    # The tagger's cost grows with the text: only the sentences holding a candidate go through it.
    found_in = [(p, _candidates(p)) for p in _SENTENCE.split(text)]
    parts = [p for p, kinds in found_in if kinds]
    wanted = {k for _, kinds in found_in for k in kinds}
    if not wanted:
        return set()
    text = "\n".join(parts)
    from natasha import Doc

    segmenter, tagger = _ner()
    doc = Doc(text)
    doc.segment(segmenter)
    doc.tag_ner(tagger)
    found: set[str] = set()
    for span in doc.spans:
        kind = NER_KINDS.get(span.type)
        if kind is None or kind not in wanted:
            continue
        if kind == "person" and (_EPONYM_CUE.search(text[max(0, span.start - 40) : span.start]) or "-" in span.text):
            continue  # an eponym ("синдром Патерсона-Келли"), a disease's name, not a patient's or doctor's
        confirmed = any(kind in _name_kinds(w) for w in _CAPITALISED.findall(span.text))
        if confirmed or (kind == "organisation" and _ORG_WORD.search(span.text)):
            found.add(kind)
    return found


def pii_kinds(text: str, *, names: bool = True) -> set[str]:
    """Every kind of personal data in ``text``; ``names=False`` skips the (slow) name recogniser."""
    return regex_kinds(text) | (ner_kinds(text) if names else set())


@dataclass(slots=True)
class PiiScan:
    """How many notes of a set hold each kind of personal data."""

    n: int
    notes_with_pii: int
    per_kind: dict[str, int] = field(default_factory=dict)
    examples: list[str] = field(default_factory=list)
    """Ids of notes with personal data (the first few), for a reviewer to look at; never the text."""

    @property
    def rate(self) -> float:
        return self.notes_with_pii / self.n if self.n else 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "n": self.n,
            "notes_with_pii": self.notes_with_pii,
            "rate": round(self.rate, 5),
            "per_kind": self.per_kind,
            "examples": self.examples,
        }


def scan(texts: Sequence[str], ids: Iterable[str] | None = None, *, names: bool = True, keep: int = 10) -> PiiScan:
    """Count the notes of ``texts`` holding personal data, by kind."""
    per_kind: Counter[str] = Counter()
    hits = 0
    examples: list[str] = []
    id_list = list(ids) if ids is not None else [str(i) for i in range(len(texts))]
    for note_id, text in zip(id_list, texts, strict=True):
        kinds = pii_kinds(text, names=names)
        if kinds:
            hits += 1
            per_kind.update(kinds)
            if len(examples) < keep:
                examples.append(note_id)
    return PiiScan(len(texts), hits, {k: per_kind[k] for k in KINDS if per_kind[k]}, examples)
