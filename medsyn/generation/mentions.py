"""Does a note mention a symptom as present? Lemma matching with negation scope, for the quality filter.

A symptom counts as mentioned when every required content word of it has a lemma (pymorphy3, Russian
dictionary) that occurs, not negated, within one sentence of the note and within a window of ``2 * words + 3``
tokens. Function words, generic words ("тело", "область", "ощущение"), degree words ("выраженный") and adverbs
are not required; side words ("левый", "справа") always are; a symptom of four or more required words may miss
one modifier that names no side. Lemmas, not stems or prefixes:
"головокружение" shares a stem prefix with "головная", "слабоумие" with "слабость", and "левом" with nothing
but itself. Every dictionary reading of a word counts ("боли" is "боль" or "болеть"), so ambiguity widens a
match rather than guessing one parse.

Negation (rule-based, in the spirit of NegEx):

* cues: "нет", "без", "ни", "отрицать", "отсутствовать", "отсутствие", and "не" + a verb of presence ("не
  беспокоит", "не отмечает", "не было", "не выявлено");
* forward scope: to the end of the sentence (``. ; : ! ? ( ) *`` or a new line), a contrastive conjunction ("но",
  "однако", "а", "зато", "хотя") or a new predicate (a finite verb or short form: "беспокоит", "была"). It crosses
  commas only after a cue that opens its clause ("Отрицает тошноту, рвоту"); "без" and a cue inside a clause
  ("Тошноты нет, была рвота") stop at the comma;
* backward scope (post-posed "Тошноты и рвоты нет", "озноба не было", "Высыпаний не отмечает"): back to the
  previous comma, conjunction, predicate or sentence start. "нет", "без" and "ни" followed by their object do
  not look back.

Known misses (see ``tests/data/symptom_mentions.tsv`` and docs/generation.md): paraphrases with other lemmas
("скованность по утрам" for "утренняя скованность", "частые позывы" for "учащенное мочеиспускание"),
misspellings, and a post-posed cue over a comma-separated list ("Одышку, сердцебиение отрицает" negates only
"сердцебиение").

>>> symptom_recall("Отрицает тошноту и рвоту. Беспокоит головная боль.", ["тошнота", "рвота", "головная боль"])
0.3333333333333333
>>> mentioned("Жалобы на головную боль", "головокружение"), mentioned("Боль в правом колене", "боль в левом колене")
(False, False)
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache, lru_cache
from typing import Any

from medsyn.textsim import STOPWORDS, stem

# Words, line breaks and single punctuation marks; punctuation marks are scope boundaries.
_TOKEN = re.compile(r"[0-9a-zа-яё]+|\n|[^\s0-9a-zа-яё]", re.IGNORECASE)
_SENTENCE_END = frozenset(".;:!?()[]*•\n")
_CONTRAST = frozenset(["но", "однако", "а", "зато", "хотя"])
_AND = frozenset(["и", "или", "ни"])
# Cues by lemma. "не" alone is no cue: "не сильная боль" and "боль не проходит" state a symptom.
_CUES = frozenset(["нет", "без", "ни", "отрицать", "отсутствовать", "отсутствие"])
_FORWARD_ONLY = frozenset(["без", "ни", "отсутствие"])
_COMMA_BOUND = frozenset(["без", "отсутствие"])
_PRESENCE_VERBS = frozenset(
    [
        "беспокоить",
        "отмечать",
        "отмечаться",
        "наблюдаться",
        "быть",
        "выявить",
        "выявлять",
        "выявляться",
        "определяться",
        "обнаружить",
        "обнаруживаться",
        "предъявлять",
        "испытывать",
        "чувствовать",
        "ощущать",
        "иметься",
        "возникать",
        "возникнуть",
        "появляться",
        "появиться",
        "замечать",
        "жаловаться",
        "регистрироваться",
    ]
)
# Words that may precede a cue without making it clause-internal ("Пациент отрицает тошноту, рвоту").
_SUBJECTS = frozenset(["пациент", "пациентка", "больной", "больная", "ребенок", "также", "категорически"])
# Generic words a symptom may carry that notes leave out ("повышение температуры тела" / "температура до 38").
# So are degree and frequency words: "выраженный зуд" is mentioned by "заметный зуд".
_OPTIONAL = frozenset(
    [
        "тело",
        "область",
        "ощущение",
        "чувство",
        "общий",
        "жалоба",
        "выраженный",
        "резкий",
        "сильный",
        "умеренный",
        "незначительный",
        "легкий",
        "небольшой",
        "значительный",
        "интенсивный",
        "периодический",
        "постоянный",
    ]
)
# Side and level words are never optional: "боль в левом колене" is not "боль в правом колене".
_SIDES = frozenset(
    [
        "левый",
        "правый",
        "слева",
        "справа",
        "верхний",
        "нижний",
        "передний",
        "задний",
        "внутренний",
        "наружный",
        "левосторонний",
        "правосторонний",
        "двусторонний",
        "односторонний",
    ]
)
# A symptom of this many required words may miss one modifier that names no side ("жалобы на головные боли
# тупые"): long MKG phrases are rarely repeated word for word. Never a noun: "онемение пальцев левой руки" is not
# "онемение пальцев левой ноги".
_LONG = 4
_MODIFIER_POS = frozenset(["ADJF", "ADJS", "PRTF", "PRTS"])
_PREDICATE_POS = frozenset(["VERB", "PRTS", "ADJS"])


@cache
def _morph() -> Any:
    import pymorphy3

    return pymorphy3.MorphAnalyzer(lang="ru")


@lru_cache(maxsize=200_000)
def known_word(word: str) -> bool:
    """pymorphy3 knows the lower-cased word, or parses it as a dictionary word behind a prefix ("мягко-эластичная");
    a guess from the word's ending alone does not count."""
    morph = _morph()
    if morph.word_is_known(word):
        return True
    return any(type(step[0]).__name__ == "DictionaryAnalyzer" for p in morph.parse(word) for step in p.methods_stack)


@dataclass(frozen=True)
class _Word:
    lemmas: frozenset[str]
    predicate: bool  # a finite verb or short form: starts a new statement
    pos: str | None  # part of speech of the likeliest reading


@lru_cache(maxsize=200_000)
def analyse(word: str) -> _Word:
    """Lemmas of a lower-cased word (all dictionary readings, ё as е) and whether it is a predicate."""
    if word.isascii():
        return _Word(frozenset([stem(word) if word.isalpha() else word]), False, None)
    parses = _morph().parse(word)
    lemmas = frozenset(p.normal_form.replace("ё", "е") for p in parses)
    pos = {p.tag.POS for p in parses}
    predicate = parses[0].tag.POS in _PREDICATE_POS and "NOUN" not in pos
    return _Word(lemmas, predicate, parses[0].tag.POS)


def sentences(text: str) -> list[list[str]]:
    """Lower-cased tokens, split into sentences; commas stay in as tokens, other marks are dropped."""
    out: list[list[str]] = [[]]
    for t in _TOKEN.findall(text.lower().replace("ё", "е")):
        if t in _SENTENCE_END:
            if out[-1]:
                out.append([])
        elif t == "," or t[0].isalnum():
            out[-1].append(t)
    return [s for s in out if s]


def _cue(tokens: list[str], i: int) -> tuple[str, int] | None:
    """(cue lemma, index of its last token) when a negation cue starts at ``tokens[i]``."""
    t = tokens[i]
    if t == "не":
        if i + 1 < len(tokens) and tokens[i + 1] != "," and analyse(tokens[i + 1]).lemmas & _PRESENCE_VERBS:
            return "не", i + 1
        return None
    if t == ",":
        return None
    hit = analyse(t).lemmas & _CUES
    return (min(hit), i) if hit else None


def _opens_clause(tokens: list[str], i: int) -> bool:
    for t in reversed(tokens[:i]):
        if t == "," or t in _CONTRAST:
            return True
        if t not in STOPWORDS and not analyse(t).lemmas & _SUBJECTS:
            return False
    return True


def _negated(tokens: list[str]) -> list[bool]:
    neg = [False] * len(tokens)
    i = 0
    while i < len(tokens):
        found = _cue(tokens, i)
        if found is None:
            i += 1
            continue
        lemma, last = found
        for k in range(i, last + 1):
            neg[k] = True
        crosses_commas = lemma not in _COMMA_BOUND and _opens_clause(tokens, i)
        j = last + 1
        while j < len(tokens):
            t = tokens[j]
            if t in _CONTRAST or (t == "," and not crosses_commas):
                break
            if t != "," and t not in _AND and t != "не" and analyse(t).predicate:
                break
            neg[j] = True
            j += 1
        if lemma not in _FORWARD_ONLY:
            j = i - 1
            while j >= 0 and tokens[j] != "," and tokens[j] not in _CONTRAST and not analyse(tokens[j]).predicate:
                neg[j] = True
                j -= 1
        i = last + 1
    return neg


@dataclass(frozen=True)
class _Sentence:
    positions: dict[str, list[int]]  # lemma -> word positions where it occurs not negated
    anywhere: dict[str, list[int]]  # lemma -> all its word positions, for symptoms that are negative themselves


def _index(text: str) -> list[_Sentence]:
    out = []
    for tokens in sentences(text):
        neg = _negated(tokens)
        positions: dict[str, list[int]] = {}
        anywhere: dict[str, list[int]] = {}
        w = 0
        for t, n in zip(tokens, neg, strict=True):
            if t == ",":
                continue
            for lemma in analyse(t).lemmas:
                anywhere.setdefault(lemma, []).append(w)
                if not n:
                    positions.setdefault(lemma, []).append(w)
            w += 1
        out.append(_Sentence(positions, anywhere))
    return out


@dataclass(frozen=True)
class _Symptom:
    words: tuple[frozenset[str], ...]  # lemma sets of the required content words
    spare: tuple[bool, ...]  # which of them a long symptom may miss: modifiers that name no side or level
    negative: bool  # "отсутствие аппетита": the cue is part of the symptom, so negation scope does not apply

    @property
    def may_miss(self) -> int:
        return 1 if len(self.words) >= _LONG else 0


@lru_cache(maxsize=50_000)
def symptom_words(symptom: str) -> _Symptom:
    """A symptom's required content words: function words, generic words and adverbs other than sides dropped
    (all kept when nothing else is left)."""
    every = [t for s in sentences(symptom) for t in s if t != ","]
    words = [t for t in every if t not in STOPWORDS and len(t) > 1]
    analysed = [analyse(t) for t in words]
    required = [w for w in analysed if w.lemmas & _SIDES or not (w.lemmas & _OPTIONAL or w.pos == "ADVB")]
    required = required or analysed
    negative = any(t == "не" or analyse(t).lemmas & _CUES for t in every)
    return _Symptom(
        tuple(w.lemmas for w in required),
        tuple(w.pos in _MODIFIER_POS and not w.lemmas & _SIDES for w in required),
        negative,
    )


def _within(lists: list[list[int]], width: int) -> bool:
    """True when one position from each list fits in ``width`` consecutive words (sliding window)."""
    events = sorted((p, k) for k, ps in enumerate(lists) for p in ps)
    count: dict[int, int] = {}
    lo = 0
    for p, k in events:
        count[k] = count.get(k, 0) + 1
        while len(count) == len(lists):
            if p - events[lo][0] < width:
                return True
            k0 = events[lo][1]
            count[k0] -= 1
            if not count[k0]:
                del count[k0]
            lo += 1
    return False


def _mentioned_in(index: list[_Sentence], symptom: _Symptom) -> bool:
    if not symptom.words:
        return False
    width = 2 * len(symptom.words) + 3
    for sentence in index:
        where = sentence.anywhere if symptom.negative else sentence.positions
        lists = [sorted({p for lemma in w for p in where.get(lemma, ())}) for w in symptom.words]
        missing = [k for k, ps in enumerate(lists) if not ps]
        if len(missing) > symptom.may_miss or not all(symptom.spare[k] for k in missing):
            continue
        if _within([ps for ps in lists if ps], width):
            return True
    return False


def mentioned(note: str, symptom: str) -> bool:
    """True when the note states the symptom (all its content lemmas, not negated, close together)."""
    return _mentioned_in(_index(note), symptom_words(symptom))


def mentioned_symptoms(note: str, symptoms: Sequence[str]) -> list[str]:
    """The symptoms (in their order) that the note states as present; the note is indexed once for all of them.

    Few-shot selection uses it to find which of a category's graph symptoms a real note contains.

    >>> mentioned_symptoms("Беспокоит головная боль, тошноты нет.", ["тошнота", "головная боль", "кашель"])
    ['головная боль']
    """
    index = _index(note)
    return [s for s in symptoms if _mentioned_in(index, symptom_words(s))]


def symptom_recall(note: str, symptoms: Sequence[str]) -> float:
    """Share of the requested symptoms the note mentions (0 when none were requested)."""
    if not symptoms:
        return 0.0
    index = _index(note)
    return sum(_mentioned_in(index, symptom_words(s)) for s in symptoms) / len(symptoms)
